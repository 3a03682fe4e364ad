"""Evaluation of recognition results against ground truth."""

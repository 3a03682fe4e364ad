"""Benchmarks (``crossover_ros bench <what>``): numbers for the README, never timed tests."""

"""Encoders that map sensor data into embeddings the map database can rank."""

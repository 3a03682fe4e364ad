"""CrossOver training: frozen-feature caches, datasets, encoders and their training loops."""

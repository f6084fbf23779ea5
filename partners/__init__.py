"""The domain: partners, releases, checkpoints, embargo windows, grants and decisions."""

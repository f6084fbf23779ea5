"""``accessctl``: the partner download CLI. Needs httpx, rich and cryptography only."""

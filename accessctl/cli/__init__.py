"""``accessctl``: the partner download CLI, a thin layer over ``accessctl_wire`` (formats,
the HTTP client). Needs httpx, rich and cryptography only; never Django (``.importlinter``)."""

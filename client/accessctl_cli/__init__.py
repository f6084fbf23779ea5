"""``accessctl``, the partner download CLI: a thin layer over ``accessctl_wire`` (formats,
the HTTP client). Shipped with it in the client distribution (``client/pyproject.toml``):
httpx, rich and cryptography only; never Django or the server (``.importlinter``)."""

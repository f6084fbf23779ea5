"""The one exception the fingerprint core raises on bad input."""

from __future__ import annotations

__all__ = ["FingerprintError"]


class FingerprintError(Exception):
    """A file or argument the fingerprint core cannot work with.

    ``code`` is a stable ``snake_case`` string (``not_safetensors``, ``not_gguf``,
    ``unknown_format``, ``bad_argument``) that callers turn into a problem code;
    ``str(error)`` is a sentence for a user. Neither ever contains key material.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code

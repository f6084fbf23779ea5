"""Is a secret fit for production? Placeholders, short and predictable values are not.

Used by ``settings.py`` when ``ACCESSCTL_ENV=production``: every value the example files
in ``deploy/`` ship (``change-me``, ``...example.org``, build-only keys) must be refused,
and so must anything short or low in entropy that a person typed. The messages name the
variable and never repeat the value: startup errors end up in logs.

Pure functions of strings, no Django: ``settings.py`` imports this before Django is set up.
"""

import math
import re
from collections import Counter
from urllib.parse import unquote, urlsplit

__all__ = ["PLACEHOLDER_MARKERS", "bytes_problem", "secret_problem", "url_password_problem"]

# Compared with the value lower-cased and stripped of everything but letters and digits,
# so "change-me", "CHANGE_ME" and "changeme" are one marker.
PLACEHOLDER_MARKERS = (
    "changeme",
    "example",
    "placeholder",
    "replaceme",
    "fillmein",
    "buildonly",
    "notused",
    "dummy",
    "insecure",
    "secretkey",
    "password",
    "yoursecret",
    "xxxxxx",
)


def _bits_per_character(value: str) -> float:
    counts = Counter(value)
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


def _repeats(value: str) -> bool:
    """Is ``value`` a shorter string written out more than once (``abcabcabc``)?"""
    return any(
        value == (value[:period] * (len(value) // period + 1))[: len(value)]
        for period in range(1, len(value) // 2 + 1)
    )


def secret_problem(value: str, *, min_length: int) -> str:
    """'' when ``value`` can be a production secret, else why not (without the value)."""
    folded = re.sub(r"[^a-z0-9]", "", value.lower())
    if any(marker in folded for marker in PLACEHOLDER_MARKERS):
        return "is a placeholder from an example file"
    if len(value) < min_length:
        return f"is shorter than {min_length} characters"
    if _repeats(value) or len(set(value)) < min(16, min_length // 2):
        return "is too predictable (it repeats itself or uses too few characters)"
    if _bits_per_character(value) < 3.5:
        return "is too predictable (too little entropy per character)"
    return ""


def bytes_problem(value: bytes, *, length: int) -> str:
    """'' when ``value`` can be a random key of ``length`` bytes, else why not."""
    if len(value) != length:
        return f"does not decode to {length} bytes"
    # 32 random bytes hold about 30 distinct values; fewer than half is not random.
    if len(set(value)) < length // 2:
        return "is not random (too few distinct bytes)"
    return ""


def url_password_problem(url: str, *, min_length: int = 16) -> str:
    """'' when the URL holds no password or a strong one, else why not (naming neither
    the URL nor the password)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return ""  # not a URL with a user part; the URL's own parser reports what is wrong
    if password is None:
        return ""  # no password: peer or certificate authentication, or none
    password = unquote(password)
    if parts.username and unquote(parts.username) == password:
        return "holds a password equal to its user name"
    problem = secret_problem(password, min_length=min_length)
    return f"holds a password that {problem}" if problem else ""

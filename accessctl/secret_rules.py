"""Is a secret fit for production? Placeholders, short and predictable values are not.

Used by ``settings.py`` when ``ACCESSCTL_ENV=production``: every value the example files
in ``deploy/`` ship (``change-me``, ``...example.org``, build-only keys) must be refused,
and so must anything short or low in entropy that a person typed. The messages name the
variable and never repeat the value: startup errors end up in logs.

Pure functions of strings, no Django: ``settings.py`` imports this before Django is set up.
"""

import ipaddress
import itertools
import re
from collections.abc import Sequence
from urllib.parse import parse_qsl, unquote, urlsplit

__all__ = [
    "PLACEHOLDER_MARKERS",
    "bytes_problem",
    "hosts_problem",
    "peppers_problem",
    "proxies_problem",
    "secret_problem",
    "url_password_problem",
]

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


# The thresholds below are set so that output of ``secrets.token_hex(16)`` and
# ``secrets.token_urlsafe(16)`` (and longer) is never refused: over 200,000 draws the
# largest values seen were 0.2 (steps), 4 (run), 0.19 (coverage) and 9 distinct characters
# (tests/deploy/test_secrets.py draws more). A measure of entropy per character does not
# work: 48 random hex characters fall below any useful bound now and then.
MIN_DISTINCT = 6  # fewer distinct characters (or bytes) than this: typed, not drawn
MAX_STEP_RUN = 6  # this many equal steps in a row (8 values counting up or down): a sequence
MAX_SAME_STEP_SHARE = 0.5  # more than half the steps equal to the one before: a sequence
MAX_REPEATED_SHARE = 0.4  # over 40% of the characters in a 4-gram seen before: a pattern


def _sequential(values: Sequence[int]) -> bool:
    """Is ``values`` mostly counting (``abcdef``, ``0 1 2 3``, ``zyx``) or one long run of it?"""
    steps = [b - a for a, b in itertools.pairwise(values)]
    same = [x == y for x, y in itertools.pairwise(steps)]
    run = longest = 0
    for equal in same:
        run = run + 1 if equal else 0
        longest = max(longest, run)
    return longest >= MAX_STEP_RUN or sum(same) > MAX_SAME_STEP_SHARE * len(same)


def _patterned(values: Sequence[int]) -> bool:
    """Are most of ``values`` inside 4-grams that already appeared earlier (``Kp3a1b2a1b2``)?"""
    covered: set[int] = set()
    seen: set[tuple[int, ...]] = set()
    for i in range(len(values) - 3):
        gram = tuple(values[i : i + 4])
        if gram in seen:
            covered.update(range(i, i + 4))
        seen.add(gram)
    return len(covered) > MAX_REPEATED_SHARE * len(values)


def _predictable(values: Sequence[int]) -> bool:
    return len(set(values)) < MIN_DISTINCT or _sequential(values) or _patterned(values)


def secret_problem(value: str, *, min_length: int) -> str:
    """'' when ``value`` can be a production secret, else why not (without the value)."""
    folded = re.sub(r"[^a-z0-9]", "", value.lower())
    if any(marker in folded for marker in PLACEHOLDER_MARKERS):
        return "is a placeholder from an example file"
    if len(value) < min_length:
        return f"is shorter than {min_length} characters"
    if _predictable([ord(c) for c in value]):
        return (
            "is too predictable (it repeats itself, counts up or down, or uses too few characters)"
        )
    return ""


def bytes_problem(value: bytes, *, length: int) -> str:
    """'' when ``value`` can be a random key of ``length`` bytes, else why not."""
    if len(value) != length:
        return f"does not decode to {length} bytes"
    if _predictable(list(value)):
        return "is not random (too few distinct bytes, a sequence or a repeated pattern)"
    return ""


def url_password_problem(url: str, *, min_length: int = 16) -> str:
    """'' when the URL holds no password or only strong ones, else why not (naming neither
    the URL nor the password).

    A password can sit in the user part (``postgres://user:pw@host/db``) or in the query
    (``?user=u&password=pw``: psycopg and redis-py both read it there); every one is checked.
    """
    try:
        parts = urlsplit(url)
        password = parts.password
        username = parts.username
    except ValueError:
        return ""  # not a URL with a user part; the URL's own parser reports what is wrong
    query = parse_qsl(parts.query, keep_blank_values=True)
    passwords = [unquote(password)] if password is not None else []
    passwords += [value for key, value in query if "pass" in key.lower()]
    users = [unquote(username)] if username else []
    users += [value for key, value in query if key.lower() in {"user", "username"}]
    for each in passwords:  # none: peer or certificate authentication, or none at all
        if each in users:
            return "holds a password equal to its user name"
        if problem := secret_problem(each, min_length=min_length):
            return f"holds a password that {problem}"
    return ""


def hosts_problem(hosts: Sequence[str]) -> str:
    """'' when ``hosts`` (DJANGO_ALLOWED_HOSTS) names hosts, else why not: ``*`` accepts any
    Host header, so links in emails and redirects could name an attacker's host."""
    if not hosts:
        return "must name the hosts this serves"
    if any(host.strip() == "*" for host in hosts):
        return "accepts any host (*): name the hosts this serves"
    return ""


def proxies_problem(proxies: Sequence[str]) -> str:
    """'' when ``proxies`` (ACCESSCTL_TRUSTED_PROXIES) lists proxies, else why not.

    Trusting a whole network lets every host in it choose its client address. Judged on
    the union, so 256 adjacent /24s count as the /16 they are, and on IPv4 as seen from
    IPv6 (``::ffff:0:0/96`` is every IPv4 address): at most a /24 of IPv4, a /64 of IPv6.
    """
    mapped = ipaddress.IPv6Network("::ffff:0:0/96")
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for proxy in proxies:
        try:
            network = ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            return f"{proxy!r} is not an address or CIDR range"
        if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(mapped):
            network = ipaddress.ip_network(
                f"{ipaddress.IPv4Address(int(network.network_address) & 0xFFFFFFFF)}"
                f"/{network.prefixlen - 96}"
            )
        networks.append(network)
    for version, widest in ((4, 24), (6, 64)):
        same = [n for n in networks if n.version == version]
        for union in ipaddress.collapse_addresses(same):  # type: ignore[type-var]
            if union.prefixlen < widest:
                return (
                    f"trusts a whole network ({union}): any host in it could choose its "
                    "client address. List your proxies' own addresses "
                    "(at most /24 for IPv4, /64 for IPv6)"
                )
    return ""


def peppers_problem(items: Sequence[str]) -> str:
    """'' when ``items`` (ACCESSCTL_TOKEN_PEPPERS, ``id:secret`` each) has one secret per
    distinct id, each strong, else why not. A repeated id would leave one of its peppers
    silently unused, and tokens hashed under it unreadable."""
    if not items:
        return "must be set, e.g. '1:<32+ random characters>'"
    seen: set[str] = set()
    for item in items:
        pepper_id, sep, pepper = item.partition(":")
        if not sep or not pepper_id:
            return "must be 'id:secret' pairs"
        if pepper_id in seen:
            return f"names pepper id {pepper_id!r} twice: each id must be unique"
        seen.add(pepper_id)
        if problem := secret_problem(pepper, min_length=32):
            return f"(pepper id {pepper_id!r}) {problem}"
    return ""

"""Address ranges (CIDR strings): does a client address lie in one of them?

Platform code (trusted proxies, the metrics allow list) and the domain's decisions
(partner and token ranges) share this one reading of an address.
"""

import ipaddress
from collections.abc import Iterable

__all__ = ["address_in_networks"]


def address_in_networks(address: str | None, networks: Iterable[str]) -> bool:
    """True when ``address`` lies in one of ``networks``; an unparsable address never does."""
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(network) for network in networks)

"""Allowed address ranges, stored as a list of CIDR strings."""

import ipaddress
from collections.abc import Iterable

from django.core.exceptions import ValidationError

__all__ = ["address_in_networks", "validate_networks"]


def validate_networks(value: object) -> None:
    if not isinstance(value, list):
        raise ValidationError("Enter a list of address ranges, such as 203.0.113.0/24.")
    for item in value:
        try:
            ipaddress.ip_network(str(item), strict=True)
        except ValueError as exc:
            raise ValidationError(f"{item!r} is not an address range: {exc}.") from exc


def address_in_networks(address: str | None, networks: Iterable[str]) -> bool:
    """True when ``address`` lies in one of ``networks``; an unparsable address never does."""
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(network) for network in networks)

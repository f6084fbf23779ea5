"""Allowed address ranges, stored as a list of CIDR strings.

Matching an address is platform code (``accessctl.networks``), re-exported here for the
domain's callers.
"""

import ipaddress

from django.core.exceptions import ValidationError

from accessctl.networks import address_in_networks

__all__ = ["address_in_networks", "validate_networks"]


def validate_networks(value: object) -> None:
    if not isinstance(value, list):
        raise ValidationError("Enter a list of address ranges, such as 203.0.113.0/24.")
    for item in value:
        try:
            ipaddress.ip_network(str(item), strict=True)
        except ValueError as exc:
            raise ValidationError(f"{item!r} is not an address range: {exc}.") from exc

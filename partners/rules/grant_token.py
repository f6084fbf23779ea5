"""Grant-token validation: the signed token presented with a download must verify and
name the grant, partner and checkpoint of the URL.

The signature check needs the lab's keys (I/O), so the view runs the verifier and hands
its typed verdict (``accessctl.signing.failures.TokenFailure``, never its message) and the
claims to this rule.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from accessctl.signing.failures import TokenFailure

from .result import SUCCESS, Failure, Result

__all__ = ["GrantTokenFacts", "grant_token_valid"]


@dataclass(frozen=True, slots=True)
class GrantTokenFacts:
    in_query: bool  # the URL carries a grant token (``downloads.grant_token_in_url``)
    presented: bool  # the ``X-Grant-Token`` header was sent
    failure: TokenFailure | None  # the verifier's verdict; ``None``: it verified
    claims: Mapping[str, Any]
    grant_id: int
    partner_id: int
    checkpoint_id: int


def grant_token_valid(facts: GrantTokenFacts) -> Result:
    if facts.in_query:
        # In the URL it would be written to every access log on the way.
        return Failure(
            "grant_token_in_query",
            "Send the grant token as the X-Grant-Token header, never in the URL.",
        )
    if not facts.presented:
        return Failure("grant_token_missing", "Send the grant's signed token as X-Grant-Token.")
    if facts.failure is TokenFailure.EXPIRED:
        return Failure("grant_expired", "The grant token has expired.")
    if facts.failure is TokenFailure.NOT_YET_VALID:
        return Failure(
            "window_not_open", "The grant token is not valid yet: your window has not opened."
        )
    if facts.failure is not None:
        return Failure("grant_token_invalid", "The grant token's signature does not verify.")
    named = (facts.claims.get("grant"), facts.claims.get("partner"), facts.claims.get("checkpoint"))
    if named != (facts.grant_id, facts.partner_id, facts.checkpoint_id):
        return Failure("grant_token_invalid", "The grant token is for another grant.")
    return SUCCESS

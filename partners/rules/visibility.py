"""Listing visibility: a release's export-control policy, as a Python rule and as SQL.

Both forms live here, side by side, and tests/partners/rules/test_rules.py checks they agree on
every policy/jurisdiction combination: the selectors (``partners.queries.allowed_releases``)
filter with ``export_policy_q``, the decision and the actions call ``jurisdiction_allowed``.
"""

from django.db.models import CharField, Q, Value
from django.db.models.functions import Concat

__all__ = ["export_policy_q", "jurisdiction_allowed"]


def jurisdiction_allowed(policy: str, jurisdictions: frozenset[str], code: str) -> bool:
    """``policy`` "allow": only the listed jurisdictions; "deny": all but them."""
    listed = code in jurisdictions
    return listed if policy == "allow" else not listed


def export_policy_q(code: str) -> tuple[dict[str, Concat], Q]:
    """``jurisdiction_allowed`` in SQL over ``Release``: the alias to add and the filter.

    The policy's countries are stored as "DE,FR"; with commas around both sides a
    two-letter code matches only a whole entry.
    """
    listed = Concat(Value(","), "policy_jurisdictions", Value(","), output_field=CharField())
    needle = f",{code},"
    return (
        {"listed": listed},
        Q(policy="allow", listed__contains=needle)
        | (Q(policy="deny") & ~Q(listed__contains=needle)),
    )

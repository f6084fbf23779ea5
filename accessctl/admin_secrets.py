"""Secret columns never reach the portal's lists, filters, lookups, ordering or search.

Django's changelist turns query parameters into ORM lookups (``?digest__startswith=a``)
for any field of the model, and a changing result count answers a yes/no question: any
staff role could read a token's digest character by character, or a password hash, or
an encrypted key, through a relation (``?user__access_tokens__digest__startswith=``).
``SecretFieldGuard`` refuses every lookup whose path touches a field listed in
``SECRET_FIELDS`` (Django answers 400, ``DisallowedModelAdminLookup``) and drops such
fields from list columns, filters, search and ordering. ``PortalSite.register`` mixes it
into every ModelAdmin registered, ours and third-party apps' alike, so a new admin cannot
forget it; tests/accessctl/test_admin_secrets.py generates a request per registered admin,
secret field (directly and through relations) and lookup kind.
"""

from collections.abc import Iterable, Sequence
from typing import Any

from django.core.exceptions import FieldDoesNotExist
from django.db.models import Model
from django.db.models.constants import LOOKUP_SEP
from django.http import HttpRequest

__all__ = ["SECRET_FIELDS", "SecretFieldGuard", "touches_secret"]

# model label (lower case) -> fields that hold secrets or material derived from them.
SECRET_FIELDS: dict[str, frozenset[str]] = {
    "partners.accesstoken": frozenset({"digest"}),
    "partners.tokeninvitation": frozenset({"code_digest"}),
    "signing.signingkey": frozenset({"private_key_encrypted"}),
    # Reachable from a partner's page through its fingerprint keys (docs/fingerprints.md).
    "partners.fingerprintsecret": frozenset({"secret_encrypted"}),
    "auth.user": frozenset({"password"}),
    "otp_totp.totpdevice": frozenset({"key"}),
    "otp_static.statictoken": frozenset({"token"}),
    "sessions.session": frozenset({"session_key", "session_data"}),
    "portal_sessions.usersession": frozenset({"session_key", "session_data"}),
}


def touches_secret(model: type[Model], path: str) -> bool:
    """Whether the lookup or field path (``user__access_tokens__digest__startswith``,
    ``-digest``, ``^password``) reaches a secret field, following relations both ways."""
    path = path.lstrip("-^=@")
    for part in path.split(LOOKUP_SEP):
        opts = model._meta
        name = opts.pk.name if part == "pk" else part
        try:
            field: Any = opts.get_field(name)
        except FieldDoesNotExist:
            return False  # a lookup or transform (startswith, year): the path ended
        secret = SECRET_FIELDS.get(opts.label_lower, frozenset())
        if field.name in secret or getattr(field, "attname", None) in secret:
            return True
        related = getattr(field, "related_model", None)
        if not field.is_relation or related is None or isinstance(related, str):
            return False
        model = related
    return False


def _safe(model: type[Model], names: Iterable[Any]) -> list[Any]:
    kept = []
    for item in names:
        name = item[0] if isinstance(item, list | tuple) else item
        if isinstance(name, str) and touches_secret(model, name):
            continue
        kept.append(item)
    return kept


class SecretFieldGuard:
    """Mixed into every registered ModelAdmin by ``PortalSite.register``."""

    model: type[Model]

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        if touches_secret(self.model, lookup):
            return False
        return bool(super().lookup_allowed(lookup, value, request))  # type: ignore[misc]

    def get_list_display(self, request: HttpRequest) -> Sequence[Any]:
        return _safe(self.model, super().get_list_display(request))  # type: ignore[misc]

    def get_list_filter(self, request: HttpRequest) -> Sequence[Any]:
        return _safe(self.model, super().get_list_filter(request))  # type: ignore[misc]

    def get_search_fields(self, request: HttpRequest) -> Sequence[str]:
        return _safe(self.model, super().get_search_fields(request))  # type: ignore[misc]

    def get_sortable_by(self, request: HttpRequest) -> Sequence[str]:
        return _safe(self.model, super().get_sortable_by(request))  # type: ignore[misc]

    def get_ordering(self, request: HttpRequest) -> Sequence[str]:
        return _safe(self.model, super().get_ordering(request) or ())  # type: ignore[misc]

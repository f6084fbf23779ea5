"""Who an action acts for: a person, or the system.

Every action takes ``actor`` and starts with ``partners.authority.authorize(actor, ...)``.
The actor is always a user: the person signed in to the portal, or the owner of the API
token (a token acts only for its owner, so it is never the actor itself). ``None`` is the
system (Celery tasks, migrations, the operator's commands): the authority table allows it
everything, and the audit trail names it ``system``.

accessctl does not swap ``AUTH_USER_MODEL``: a user is Django's own ``User``.
"""

from typing import TypeAlias

from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

__all__ = ["Actor", "acting_user"]

Actor: TypeAlias = User | None


def acting_user(request: HttpRequest) -> User:
    """The person a request acts for: the signed-in user, or the API token's owner.

    Every view that acts requires one (the portal's login, the API's permission classes),
    so an anonymous request never gets here; if one did, it is refused (403) rather than
    passed to an action as nobody.
    """
    user = request.user
    if isinstance(user, AnonymousUser):
        raise PermissionDenied
    return user

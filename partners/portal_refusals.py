"""Portal refusals for lack of permission leave evidence (``partners.forbidden``).

Django's admin refuses a page a person may not use by raising ``PermissionDenied`` (403),
and an action they may not use by not offering it (the list is shown again). Neither
writes anything; ``PortalRefusalMiddleware`` writes the one ``<domain>.refused`` event of
each, after the admin's own transaction ended (so it is not rolled back with it). Someone
who is not staff never reaches a page: they are sent to the sign-in page, which is no
refusal of theirs to record (their sign-in is).
"""

from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseBase

from partners.api.edge import is_api_path
from partners.forbidden import PORTAL_OPERATIONS, domain_of, forbidden_event

__all__ = ["PortalRefusalMiddleware"]

_RECORDED = "accessctl_refusal_recorded"
_STANDARD = ("add", "change", "delete", "history", "changelist")


def _page(request: HttpRequest) -> tuple[Any, str] | None:
    """The model admin and the kind of page (``add``, ``change``, ``url:<name>``...) the
    request was routed to, when it is a model admin's page of the portal."""
    match = request.resolver_match
    if match is None or match.namespace != "admin":
        return None
    url_name = match.url_name or ""
    if url_name == "autocomplete":  # a lookup for a field of the model the query names
        url_name = f"{request.GET.get('app_label', '')}_{request.GET.get('model_name', '')}_"
        url_name += "autocomplete"
    model_admin = getattr(match.func, "model_admin", None) or next(
        (
            each  # a URL an admin adds itself (``get_urls``), named after its model
            for model, each in admin.site._registry.items()
            if url_name.startswith(f"{model._meta.app_label}_{model._meta.model_name}_")
        ),
        None,
    )
    if model_admin is None:
        return None
    opts = model_admin.model._meta
    name = url_name.removeprefix(f"{opts.app_label}_{opts.model_name}_")
    return model_admin, name if name in _STANDARD else f"url:{url_name}"


def _record(request: HttpRequest, model_admin: Any, kind: str, ids: list[str], detail: str) -> None:
    opts = model_admin.model._meta
    label = opts.label_lower
    operation = PORTAL_OPERATIONS.get((label, kind))
    refused = domain_of(operation, label)
    if refused is None:  # pragma: no cover - every registered model has a domain (a test)
        return
    target_id = ids[0] if len(ids) == 1 else ""
    target_label = (
        f"{opts.verbose_name} {target_id}" if target_id else str(opts.verbose_name_plural)
    )
    forbidden_event(
        refused,
        actor=request.user,
        operation=operation,
        target_type=label,
        target_id=target_id,
        target_label=target_label,
        changes={
            "page": kind,
            "ids": ids[:20],
            "method": request.method or "",
            "path": request.path[:300],
            "detail": detail,
        },
    ).save(force_insert=True)


class PortalRefusalMiddleware:
    """One event per portal page or action refused for lack of permission."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view: Any, args: Any, kwargs: dict[str, Any]
    ) -> None:
        """An action posted that the person is not offered: refused (Django shows the list
        again with "No action selected"), recorded here."""
        # Never under /api/: reading ``request.POST`` there would parse an API body (a
        # detection's multipart upload: gigabytes) before the view and its own parser.
        if request.method != "POST" or is_api_path(request.path_info):
            return None
        if "action" not in request.POST:
            return None
        page = _page(request)
        if page is None or page[1] != "changelist":
            return None
        model_admin, _ = page
        user = getattr(request, "user", None)
        if user is None or not (user.is_active and user.is_staff):
            return None  # sent to the sign-in page
        name = request.POST["action"]
        known = {action_name for _, action_name, _ in model_admin._get_base_actions()}
        if name in known and name not in model_admin.get_actions(request):
            ids = request.POST.getlist(ACTION_CHECKBOX_NAME)
            _record(request, model_admin, f"action:{name}", ids, f"action {name} not offered")
            # Without the list itself, the list page then refuses too: one event, this one.
            setattr(request, _RECORDED, True)
        return None

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        if not isinstance(exception, PermissionDenied) or getattr(request, _RECORDED, False):
            return None
        page = _page(request)
        if page is None:
            return None
        model_admin, kind = page
        match = request.resolver_match
        object_id = match.kwargs.get("object_id") if match else None
        ids = [str(object_id)] if object_id is not None else []
        _record(request, model_admin, kind, ids, "page refused")
        return None

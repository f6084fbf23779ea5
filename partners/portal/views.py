"""The portal's own pages: the access matrix and the timeline (thin: read, render).

Served by ``accessctl.portal.PortalSite`` behind its two-factor sign-in
(``settings.ACCESSCTL_PORTAL_PAGES``). Someone signed in without the view permissions a
page reads is refused with 403; the refusal is recorded (``window.refused``, reason
``forbidden``) by ``partners.portal_refusals``, which names the pages after the windows
they show (``partners_embargowindow_...``).
"""

from collections.abc import Callable
from typing import Any

from django.contrib.admin import AdminSite
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from partners.portal.matrix import access_matrix
from partners.portal.timeline import timeline_page

__all__ = ["MATRIX_PERMISSIONS", "matrix_view", "pages", "timeline_view"]

# What the matrix and the timeline read: partners, releases, windows, grants.
MATRIX_PERMISSIONS = (
    "partners.view_partner",
    "partners.view_release",
    "partners.view_embargowindow",
    "partners.view_grant",
)


def may_see_matrix(user: Any) -> bool:
    return bool(user.has_perms(MATRIX_PERMISSIONS))


def matrix_view(request: HttpRequest, site: AdminSite) -> HttpResponse:
    """``GET /admin/access/``: the access matrix (``partners.portal.matrix``), filtered and
    paged by its GET parameters. 403 without the view permissions it reads."""
    if not may_see_matrix(request.user):
        raise PermissionDenied
    return TemplateResponse(
        request,
        "admin/accessctl/matrix_page.html",
        {
            **site.each_context(request),
            "title": "Access matrix",
            "matrix": access_matrix(request.GET or None, at=timezone.now()),
        },
    )


def timeline_view(request: HttpRequest, site: AdminSite) -> HttpResponse:
    """``GET /admin/timeline/``: the timeline (``partners.portal.timeline``) of every
    release with windows in the period, filtered by ``release``, ``partner`` and
    ``jurisdiction``. 403 without the view permissions it reads."""
    if not may_see_matrix(request.user):
        raise PermissionDenied
    return TemplateResponse(
        request,
        "admin/accessctl/timeline_page.html",
        {
            **site.each_context(request),
            "title": "Timeline",
            **timeline_page(request.GET or None, at=timezone.now()),
        },
    )


def pages() -> list[tuple[str, Callable[..., HttpResponse], str]]:
    """The portal's own pages as (route, view, URL name) for ``PortalSite.get_urls``."""
    return [
        ("access/", matrix_view, "partners_embargowindow_matrix"),
        ("timeline/", timeline_view, "partners_embargowindow_timeline"),
    ]

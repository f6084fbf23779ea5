"""The portal's confirmation before a partner change that ends access (export control).

Saving a partner whose new jurisdiction an open or upcoming window's release blocks first
shows what ends (windows, grants, people) and re-posts the form with the windows' ids;
``update_partner`` refuses unless exactly those ids come back confirmed.
"""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone

from partners import queries
from partners.actions._common import country_name

__all__ = ["CONFIRM", "confirmation_page", "confirmed_windows"]

CONFIRM = "_confirm_ended_windows"


def confirmed_windows(request: HttpRequest) -> list[int]:
    """The window ids the staff member confirmed ending (none: nothing confirmed)."""
    return [int(pk) for pk in request.POST.get(CONFIRM, "").split(",") if pk.isdigit()]


def confirmation_page(
    model_admin: admin.ModelAdmin, request: HttpRequest, object_id: str
) -> TemplateResponse | None:
    """The page asking to confirm what a posted jurisdiction change ends, or None when
    there is nothing to confirm (or it is confirmed, or the form has errors to show)."""
    if request.method != "POST" or CONFIRM in request.POST:
        return None
    partner = model_admin.get_object(request, object_id)
    if partner is None:
        return None
    form_class: Any = model_admin.get_form(request, partner, change=True)
    # The form writes the posted values on its instance: give it a copy.
    form = form_class(
        request.POST, request.FILES, instance=model_admin.get_object(request, object_id)
    )
    if not form.is_valid() or "jurisdiction" not in form.cleaned_data:
        return None
    new = str(form.cleaned_data["jurisdiction"])
    ended = queries.access_ended_by_move(partner, new, timezone.now())
    if not ended.windows:
        return None
    return TemplateResponse(
        request,
        "admin/accessctl/confirm_access_ends.html",
        {
            **model_admin.admin_site.each_context(request),
            "title": f"Confirm: moving {partner.slug} ends access",
            "opts": model_admin.model._meta,
            "partner": partner,
            "new_jurisdiction": country_name(new),
            "ended": ended,
            "post": [(k, v) for k in request.POST for v in request.POST.getlist(k)],
            "confirm_name": CONFIRM,
            "confirm_value": ",".join(str(pk) for pk in ended.window_ids),
        },
    )

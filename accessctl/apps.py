from typing import Any

from django.contrib.admin import helpers
from django.contrib.admin.apps import AdminConfig
from django.db.models import Model


class AccessctlAdminConfig(AdminConfig):
    """The staff portal: Django admin behind two-factor sign-in, with a dashboard."""

    default_site = "accessctl.portal.PortalSite"

    def ready(self) -> None:
        super().ready()
        _link_only_what_the_viewer_may_open()
        _show_values_one_way()


def _link_only_what_the_viewer_may_open() -> None:
    """A read-only relation on a change page (a grant's ``requested_by``, a token's user)
    links to the related object's page only for someone who may view it; for anyone else
    it is its name, not a link answering 403 (which would also leave a false refusal in the
    audit trail). Stock Django links it unconditionally."""
    stock = helpers.AdminReadonlyField.get_admin_url

    def get_admin_url(self: Any, remote_field: Any, remote_obj: Model) -> Any:
        from accessctl.middleware import current_request

        request = current_request()
        related = self.model_admin.admin_site._registry.get(remote_field.model)
        if request is not None and (
            related is None or not related.has_view_permission(request, remote_obj)
        ):
            return str(remote_obj)
        return stock(self, remote_field, remote_obj)

    helpers.AdminReadonlyField.get_admin_url = get_admin_url  # type: ignore[method-assign]


def _show_values_one_way() -> None:
    """Read-only fields (object pages, inlines) and list columns show a byte count
    (``quota_bytes``, ``size``, ``bytes_used``) in binary units with the count in its
    title, and a JSON list or mapping (a token's scopes, an export's filters) as words,
    not as raw JSON (``accessctl.formats.shown``). Editable inputs stay as they are."""
    from django.contrib.admin.templatetags import admin_list
    from django.db import models
    from django.utils.html import format_html

    from accessctl.formats import is_byte_field, shown

    stock = helpers.display_for_field  # type: ignore[attr-defined]

    def display_for_field(value: Any, field: Any, empty_value_display: str, **kw: Any) -> Any:
        name = getattr(field, "name", "") or ""
        if value is None:
            return stock(value, field, empty_value_display, **kw)
        if (
            isinstance(field, models.IntegerField)
            and not isinstance(value, bool)
            and is_byte_field(name)
        ):
            return format_html('<span title="{} bytes">{}</span>', value, shown(value, name))
        if isinstance(field, models.JSONField) and isinstance(value, list | dict):
            return shown(value, name)
        return stock(value, field, empty_value_display, **kw)

    # Both modules imported Django's function by name: replace both names.
    helpers.display_for_field = display_for_field  # type: ignore[attr-defined]
    admin_list.display_for_field = display_for_field  # type: ignore[attr-defined]

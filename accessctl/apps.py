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

from django.contrib.admin.apps import AdminConfig


class AccessctlAdminConfig(AdminConfig):
    """The staff portal: Django admin behind two-factor sign-in, with a dashboard."""

    default_site = "accessctl.portal.PortalSite"

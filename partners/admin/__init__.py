"""The lab-staff portal for the domain: every model, filters, and actions that call
``partners.actions``. History is read-only; changes go through the actions."""

from django.contrib import admin

from . import (  # noqa: F401  (registers admins)
    accounts,
    detections,
    grants,
    lifecycle,
    partners,
    releases,
    schedules,
    signins,
    tokens,
)

admin.site.disable_action("delete_selected")

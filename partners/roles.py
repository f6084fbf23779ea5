"""Staff roles, as Django groups with the least privilege each job needs.

The groups are created and kept in step by migrations that call ``sync_roles``; a new
permission reaches a role through a new migration, so every change of rights is a
reviewed diff.
"""

from typing import Any

__all__ = ["ROLES", "sync_roles"]

_VIEW_ALL = [
    ("partners", f"view_{model}")
    for model in (
        "partner",
        "partnercontact",
        "membership",
        "release",
        "checkpoint",
        "artifact",
        "embargowindow",
        "grant",
        "grantrequest",
        "grantapproval",
        "accesstoken",
        "tokeninvitation",
        "revocation",
        "notification",
        "artifactvariant",
        "fingerprintkey",
        "detection",
    )
] + [
    ("audit", "view_auditevent"),
    ("django_celery_results", "view_taskresult"),
    ("django_celery_results", "view_groupresult"),
    ("django_celery_beat", "view_periodictask"),
]

ROLES: dict[str, list[tuple[str, str]]] = {
    "Release manager": _VIEW_ALL
    + [
        ("partners", codename)
        for codename in (
            "add_release",
            "change_release",
            "add_checkpoint",
            "change_checkpoint",
            "add_artifact",
            "add_embargowindow",
            "change_embargowindow",
            "issue_grant",
            "revoke_grant",
            "approve_grantrequest",
            "pull_checkpoint",
        )
    ],
    "Partner manager": _VIEW_ALL
    + [
        ("partners", codename)
        for codename in (
            "add_partner",
            "change_partner",
            "suspend_partner",
            "add_partnercontact",
            "change_partnercontact",
            "delete_partnercontact",
            "add_membership",
            "change_membership",
            "delete_membership",
            "add_accesstoken",
            "revoke_accesstoken",
        )
    ],
    "Security officer": [
        *_VIEW_ALL,
        ("partners", "suspend_partner"),
        ("partners", "revoke_grant"),
        ("partners", "pull_checkpoint"),
        ("partners", "revoke_accesstoken"),
        ("partners", "withdraw_release"),
        # Leak attribution: submit a suspect file set (docs/fingerprints.md).
        ("partners", "run_detection"),
        ("audit", "export_auditevent"),
        # The lifecycle schedules (how often windows, grants and NDAs are checked).
        ("django_celery_beat", "change_periodictask"),
        ("django_celery_beat", "view_intervalschedule"),
        ("django_celery_beat", "add_intervalschedule"),
        ("django_celery_beat", "view_crontabschedule"),
        ("django_celery_beat", "add_crontabschedule"),
        # Sign-in lockouts: who is locked out, and clearing a lock (audited).
        ("axes", "view_accessattempt"),
        ("axes", "delete_accessattempt"),
        ("axes", "view_accesslog"),
        ("axes", "view_accessfailurelog"),
    ],
    "Compliance": [*_VIEW_ALL, ("audit", "export_auditevent")],
}


def sync_roles(apps: Any, schema_editor: Any) -> None:
    """Make each role group hold exactly its permissions (runs inside a migration).

    A permission whose model a later migration creates is skipped here and added by the
    migration that runs this again after it; tests check the end state equals ``ROLES``.
    """
    from django.contrib.auth.management import create_permissions

    # Permissions are normally created after all migrations; create them now so the
    # groups can reference them.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, wanted in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        permissions = [
            permission
            for app_label, codename in wanted
            for permission in Permission.objects.filter(
                content_type__app_label=app_label, codename=codename
            )
        ]
        group.permissions.set(permissions)

from django.db import migrations

from partners.roles import sync_roles


class Migration(migrations.Migration):
    """The Security officer clears sign-in lockouts (``staff.clear_lockout``): the roles
    again, now that django-axes' permissions exist."""

    dependencies = [
        ("partners", "0011_resume_revocations_every_10s"),
        ("axes", "0010_accessattemptexpiration"),
    ]

    operations = [migrations.RunPython(sync_roles, migrations.RunPython.noop)]

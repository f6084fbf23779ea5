"""Revocations of one grant or one token recorded before the root was counted said
"Grants revoked: 0" (or "Tokens revoked: 0"): count their root, as
``start_revocation`` now does. Rows already counting something are left alone."""

from django.db import migrations


def count_roots(apps, schema_editor):
    Revocation = apps.get_model("partners", "Revocation")
    Revocation.objects.filter(scope="grant", grants_revoked=0).update(grants_revoked=1)
    Revocation.objects.filter(scope="token", tokens_revoked=0).update(tokens_revoked=1)


class Migration(migrations.Migration):
    dependencies = [("partners", "0013_download_leases")]

    operations = [migrations.RunPython(count_roots, migrations.RunPython.noop)]

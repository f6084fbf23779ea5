from django.db import migrations

from partners.roles import sync_roles


class Migration(migrations.Migration):
    dependencies = [("partners", "0004_access_tokens")]

    operations = [migrations.RunPython(sync_roles, migrations.RunPython.noop)]

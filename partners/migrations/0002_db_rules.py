from django.db import migrations

from partners import db_rules


class Migration(migrations.Migration):
    dependencies = [("partners", "0001_initial")]

    operations = [migrations.RunPython(db_rules.install, db_rules.uninstall)]

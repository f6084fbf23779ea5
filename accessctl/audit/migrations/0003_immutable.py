"""PostgreSQL refuses UPDATE and DELETE on the audit trail and the sealed log.

The one exception is the retention procedure (``manage.py apply_audit_retention``), which
deletes old, sealed events inside a transaction that sets ``accessctl.audit_retention``
and records an audit event of its own. Leaves, tree nodes and checkpoints are never
deleted. Someone with superuser rights can still disable a trigger: sealing is what
makes that visible (a changed event no longer matches its sealed leaf).
"""

from django.db import migrations

FUNCTION = """
CREATE OR REPLACE FUNCTION audit_refuse_change() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' AND TG_TABLE_NAME = 'audit_auditevent'
       AND current_setting('accessctl.audit_retention', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_immutable: % on % is refused: the audit trail is append-only',
        TG_OP, TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END
$$ LANGUAGE plpgsql;
"""

TABLES = ["audit_auditevent", "audit_auditleaf", "audit_auditnode", "audit_auditcheckpoint"]


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(FUNCTION, params=None)
    for table in TABLES:
        schema_editor.execute(
            f"CREATE TRIGGER {table}_immutable BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()"
        )


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in TABLES:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_immutable ON {table}")
    schema_editor.execute("DROP FUNCTION IF EXISTS audit_refuse_change()")


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_sealed_log")]

    operations = [migrations.RunPython(forwards, backwards)]

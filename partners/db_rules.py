"""Integrity rules that span rows or tables, enforced by the database itself.

Django's constraints cover single rows; these cover the rest, for both databases we run
on (PostgreSQL in tests and production, SQLite in the embedded default):

- two windows of the same release and partner never overlap;
- a grant never outlives its window, and belongs to its window's partner and release;
- a window cannot be shortened below the expiry of a grant issued in it.

Violations raise ``IntegrityError`` with the rule's name in the message.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from django.db.backends.base.schema import BaseDatabaseSchemaEditor
    from django.db.migrations.state import StateApps

__all__ = ["install", "uninstall"]

POSTGRESQL_INSTALL = [
    "CREATE EXTENSION IF NOT EXISTS btree_gist",
    """
    ALTER TABLE partners_embargowindow ADD CONSTRAINT window_no_overlap
    EXCLUDE USING gist (
        release_id WITH =, partner_id WITH =, tstzrange(opens_at, closes_at, '[)') WITH &&
    )
    """,
    """
    CREATE FUNCTION partners_grant_fits_window() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        w partners_embargowindow%ROWTYPE;
        checkpoint_release bigint;
    BEGIN
        SELECT * INTO w FROM partners_embargowindow WHERE id = NEW.window_id;
        SELECT release_id INTO checkpoint_release FROM partners_checkpoint
            WHERE id = NEW.checkpoint_id;
        IF NEW.expires_at > w.closes_at THEN
            RAISE EXCEPTION 'grant_outlives_window: grant expires after its window closes'
                USING ERRCODE = 'check_violation';
        END IF;
        IF w.partner_id <> NEW.partner_id OR w.release_id <> checkpoint_release THEN
            RAISE EXCEPTION 'grant_window_mismatch: window is for another partner or release'
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END
    $$
    """,
    """
    CREATE TRIGGER grant_fits_window BEFORE INSERT OR UPDATE
    OF expires_at, window_id, partner_id, checkpoint_id ON partners_grant
    FOR EACH ROW EXECUTE FUNCTION partners_grant_fits_window()
    """,
    """
    CREATE FUNCTION partners_window_covers_grants() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF EXISTS (
            SELECT 1 FROM partners_grant
            WHERE window_id = NEW.id AND expires_at > NEW.closes_at
        ) THEN
            RAISE EXCEPTION 'grant_outlives_window: a grant expires after the new close'
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END
    $$
    """,
    """
    CREATE TRIGGER window_covers_grants BEFORE UPDATE OF closes_at ON partners_embargowindow
    FOR EACH ROW EXECUTE FUNCTION partners_window_covers_grants()
    """,
]

POSTGRESQL_UNINSTALL = [
    "DROP TRIGGER IF EXISTS window_covers_grants ON partners_embargowindow",
    "DROP FUNCTION IF EXISTS partners_window_covers_grants()",
    "DROP TRIGGER IF EXISTS grant_fits_window ON partners_grant",
    "DROP FUNCTION IF EXISTS partners_grant_fits_window()",
    "ALTER TABLE partners_embargowindow DROP CONSTRAINT IF EXISTS window_no_overlap",
]

# SQLite stores aware datetimes as naive UTC text in one fixed format, so comparing the
# text compares the times.
_SQLITE_OVERLAP = """
    EXISTS (SELECT 1 FROM partners_embargowindow w
            WHERE w.release_id = NEW.release_id AND w.partner_id = NEW.partner_id
              AND w.opens_at < NEW.closes_at AND w.closes_at > NEW.opens_at {extra})
"""
_SQLITE_GRANT_OUTLIVES = """
    NEW.expires_at > (SELECT closes_at FROM partners_embargowindow WHERE id = NEW.window_id)
"""
_SQLITE_GRANT_MISMATCH = """
    NOT EXISTS (SELECT 1 FROM partners_embargowindow w JOIN partners_checkpoint c
                ON c.id = NEW.checkpoint_id
                WHERE w.id = NEW.window_id AND w.partner_id = NEW.partner_id
                  AND w.release_id = c.release_id)
"""


def _sqlite_trigger(name: str, when: str, table: str, condition: str, message: str) -> str:
    return (
        f"CREATE TRIGGER {name} BEFORE {when} ON {table} WHEN {condition} "
        f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
    )


SQLITE_INSTALL = [
    _sqlite_trigger(
        "window_no_overlap_insert",
        "INSERT",
        "partners_embargowindow",
        _SQLITE_OVERLAP.format(extra=""),
        "window_no_overlap: windows overlap",
    ),
    _sqlite_trigger(
        "window_no_overlap_update",
        "UPDATE",
        "partners_embargowindow",
        _SQLITE_OVERLAP.format(extra="AND w.id <> NEW.id"),
        "window_no_overlap: windows overlap",
    ),
    _sqlite_trigger(
        "window_covers_grants",
        "UPDATE OF closes_at",
        "partners_embargowindow",
        "EXISTS (SELECT 1 FROM partners_grant WHERE window_id = NEW.id "
        "AND expires_at > NEW.closes_at)",
        "grant_outlives_window: a grant expires after the new close",
    ),
    *[
        _sqlite_trigger(
            f"grant_fits_window_{when.split()[0].lower()}",
            when,
            "partners_grant",
            _SQLITE_GRANT_OUTLIVES,
            "grant_outlives_window: grant expires after its window closes",
        )
        for when in ("INSERT", "UPDATE OF expires_at, window_id")
    ],
    *[
        _sqlite_trigger(
            f"grant_window_match_{when.split()[0].lower()}",
            when,
            "partners_grant",
            _SQLITE_GRANT_MISMATCH,
            "grant_window_mismatch: window is for another partner or release",
        )
        for when in ("INSERT", "UPDATE OF window_id, partner_id, checkpoint_id")
    ],
]

SQLITE_UNINSTALL = [
    f"DROP TRIGGER IF EXISTS {name}"
    for name in (
        "window_no_overlap_insert",
        "window_no_overlap_update",
        "window_covers_grants",
        "grant_fits_window_insert",
        "grant_fits_window_update",
        "grant_window_match_insert",
        "grant_window_match_update",
    )
]


def _run(schema_editor: "BaseDatabaseSchemaEditor", statements: dict[str, list[str]]) -> None:
    vendor = schema_editor.connection.vendor
    if vendor not in statements:
        raise NotImplementedError(f"accessctl's integrity rules do not support {vendor}.")
    for statement in statements[vendor]:
        schema_editor.execute(statement, params=None)


def install(apps: "StateApps", schema_editor: "BaseDatabaseSchemaEditor") -> None:
    _run(schema_editor, {"postgresql": POSTGRESQL_INSTALL, "sqlite": SQLITE_INSTALL})


def uninstall(apps: "StateApps", schema_editor: "BaseDatabaseSchemaEditor") -> None:
    _run(schema_editor, {"postgresql": POSTGRESQL_UNINSTALL, "sqlite": SQLITE_UNINSTALL})

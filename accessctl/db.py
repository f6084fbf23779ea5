"""Prepared statements for the few statements every download runs.

Django's PostgreSQL backend binds parameters on the client (psycopg's ``ClientCursor``)
and turns psycopg's prepared statements off, so every statement is parsed and planned
again. For the hot path's joins that planning costs more than running them (the download
target's seven-table join: about 1.5 ms planned, 0.5 ms run, measured). ``hot_cursor``
gives a cursor that binds on the server and prepares its statement on its first run in a
connection, and runs it from then on by name. Everything else keeps Django's cursor.

The statement must be one statement (no ``;``), with ``%s`` placeholders. Parameters go
with their types (``str`` as ``unknown``, so PostgreSQL infers the column's; ``int`` as
the smallest integer type that holds it).

Poolers: a pooler in transaction mode hands each transaction another server connection,
where the name is unknown (PgBouncer from 1.21 with ``max_prepared_statements`` set
handles this; older ones do not). ``DATABASE_PREPARED_STATEMENTS=false`` turns this off:
``hot_cursor`` is then Django's cursor.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.db import connection

__all__ = ["hot_cursor"]


@contextmanager
def hot_cursor() -> Iterator[Any]:
    """A cursor (Django's wrapper, so query capture and execute wrappers see it) whose
    statements are prepared on PostgreSQL (``settings.ACCESSCTL_DB_PREPARE``); elsewhere,
    or with preparing off, ``connection.cursor()``."""
    if connection.vendor != "postgresql" or not settings.ACCESSCTL_DB_PREPARE:
        with connection.cursor() as cursor:
            yield cursor
        return
    from django.db.backends.postgresql import base

    connection.ensure_connection()
    server_binding: Any = base.ServerBindingCursor  # psycopg 3's; the stubs know psycopg 2's
    raw = server_binding(connection.connection)
    # The threshold is per connection: 0 prepares a statement on its first run. Only
    # server-binding cursors read it (Django's ClientCursor never prepares).
    connection.connection.prepare_threshold = 0
    wrapped = (
        connection.make_debug_cursor(raw)
        if connection.queries_logged
        else connection.make_cursor(raw)
    )
    with wrapped as cursor:
        yield cursor

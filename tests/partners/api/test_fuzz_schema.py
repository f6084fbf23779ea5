"""Schema fuzzing (schemathesis): every operation of the generated schema, served by the
app itself (WSGI, real PostgreSQL), with a real partner token and a real staff token.

Positive and negative cases (inputs that fit the schema and inputs that do not), checked
for: no server error, a status the schema documents, the documented content type, and a
body that validates against the documented schema. Bounded by ``FUZZ_EXAMPLES`` per
operation and mode (a few minutes in all on two shared cores).
"""

import os

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accessctl.wsgi import application
from tests import factories as f

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
FUZZ_EXAMPLES = int(os.environ.get("ACCESSCTL_FUZZ_EXAMPLES", "100"))

schema = schemathesis.openapi.from_wsgi("/api/schema/", application)
schema.config.generation.update(
    modes=["positive", "negative"], max_examples=FUZZ_EXAMPLES, database="none"
)


@pytest.fixture
def tokens(db, settings):
    """A partner with a window open on a release, a checkpoint, an active grant,
    a pending request; a partner member's token and a superuser's staff token, both made
    through the real actions."""
    settings.ACCESSCTL_API_RATE = "1000000/min"
    partner = f.partner("fuzz-gpu", jurisdiction="US")
    release = f.release("fuzz-v1")
    checkpoint = f.stored_checkpoint(release, {"model.bin": b"x" * 4096, "config.json": b"{}"})
    f.window(release, partner)
    f.grant(checkpoint, partner, quota_bytes=1 << 20)
    # The app runs in this thread, inside the test's transaction: as Django's test client
    # does, keep the request signals from closing the connection under it.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield {
        "partner": f.token(f.partner_user(partner)),
        "staff": f.token(f.superuser(), scopes=["staff"]),
    }
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_every_operation_conforms_to_the_schema(case, tokens):
    caller = "staff" if case.path.startswith("/api/v1/staff/") else "partner"
    case.call_and_validate(headers={"Authorization": f"Bearer {tokens[caller]}"}, checks=CHECKS)

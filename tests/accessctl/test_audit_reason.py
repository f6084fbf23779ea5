"""``AuditEvent.stated_reason``: what a reviewer reads in a Reason column."""

import pytest

from accessctl.audit.models import AuditEvent


@pytest.mark.parametrize(
    ("reason", "changes", "shown"),
    [
        ("", {"reason": "weights leaked"}, "weights leaked"),
        ("", {"note": "checked the NDA"}, "checked the NDA"),
        ("", {"reason": "typed", "note": "not this"}, "typed"),
        ("self_approval", {}, "self_approval"),
        ("quota_exhausted", {"reason": "  "}, "quota_exhausted"),
        ("", {"reason": ["status", "x"]}, ""),
        ("", [], ""),
        ("", {}, ""),
    ],
)
def test_the_typed_reason_else_the_refusal_code(reason, changes, shown):
    assert AuditEvent(reason=reason, changes=changes).stated_reason == shown

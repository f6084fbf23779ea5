"""An audit event's changes as a person reads them: a before/after table."""

import pytest

from accessctl.audit.admin import change_rows, changes_table


@pytest.mark.parametrize(
    ("changes", "rows"),
    [
        ({"legal_name": ["Old", "New"]}, [("legal_name", "Old", "New")]),
        ({"status": ["active", None]}, [("status", "active", "-")]),
        ({"reason": "leak"}, [("reason", "", "leak")]),
        ({"ids": [1, 2, 3]}, [("ids", "", "1, 2, 3")]),
        ({"ids": []}, [("ids", "", "(none)")]),
        ({"scopes": [["read"], ["read", "download"]]}, [("scopes", "read", "read, download")]),
        ({"window": {"opens": 1, "closes": 2}}, [("window", "", "opens: 1, closes: 2")]),
        ({"window": {}}, [("window", "", "(none)")]),
        ({}, []),
        (None, []),
        ("", []),
        ("a note", [("", "", "a note")]),
    ],
)
def test_change_rows(changes, rows):
    assert change_rows(changes) == rows


def test_the_table_escapes_what_it_shows():
    html = changes_table({"legal_name": ["<b>Old</b>", "New & Co"]})
    assert '<td class="before">&lt;b&gt;Old&lt;/b&gt;</td>' in html
    assert '<td class="after">New &amp; Co</td>' in html


def test_no_changes_is_a_dash():
    assert changes_table({}) == "-"

"""An audit event's changes as a person reads them: a before/after table."""

import pytest

from accessctl.audit.admin import change_rows, changes_table, raw_rows


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


@pytest.mark.parametrize(
    ("changes", "rows"),
    [
        (
            {"expires_at": ["2026-12-13T17:21:30.914267+00:00", "2026-12-14T00:00:00Z"]},
            [("expires_at", "2026-12-13 17:21:30 UTC", "2026-12-14 00:00:00 UTC")],
        ),
        ({"quota_bytes": [20971520, 1048576]}, [("quota_bytes", "20.0 MiB", "1.0 MiB")]),
        ({"bytes_used": 0, "size": 4096}, [("bytes_used", "", "0 B"), ("size", "", "4.0 KiB")]),
        ({"grant": {"quota_bytes": 2048}}, [("grant", "", "quota_bytes: 2.0 KiB")]),
        ({"bytes": [True, False]}, [("bytes", "True", "False")]),  # not a count
        ({"note": "2026-12-13 is the day"}, [("note", "", "2026-12-13 is the day")]),
        ({"at": "2026-12-13T17:21:30"}, [("at", "", "2026-12-13T17:21:30")]),  # naive: as is
        ({"attempts": 3}, [("attempts", "", "3")]),
    ],
)
def test_times_and_sizes_read_one_way(changes, rows):
    assert change_rows(changes) == rows


def test_raw_rows_keep_the_stored_values():
    assert raw_rows({"quota_bytes": [1, 2], "reason": "x"}) == [
        ("quota_bytes", "1", "2"),
        ("reason", "", '"x"'),
    ]


def test_a_formatted_value_keeps_the_stored_one_in_its_title():
    html = changes_table(
        {
            "quota_bytes": [20971520, None],
            "expires_at": "2026-12-13T17:21:30.914267+00:00",
            "window": {"opens": "2026-12-01T00:00:00Z"},
            "ids": [1, 2, 3],
            "reason": "leak",
        }
    )
    assert '<span title="20971520">20.0 MiB</span>' in html
    assert '<td class="after">-</td>' in html
    assert (
        '<span title="&quot;2026-12-13T17:21:30.914267+00:00&quot;">2026-12-13 17:21:30 UTC' in html
    )
    assert "opens: 2026-12-01 00:00:00 UTC</span>" in html
    assert '<td class="after">1, 2, 3</td>' in html and '<td class="after">leak</td>' in html

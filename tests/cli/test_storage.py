"""Why storage refused a presigned URL (``accessctl_cli.storage.explain``): a table of
what was measured and the cause named."""

import time
from email.utils import formatdate

import pytest

from accessctl_cli.storage import Answer, explain, s3_error, signed_window

NOW = 1_800_000_000.0  # this machine's clock when the API answered
EXPIRED = "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"
SIGNATURE = "<Error><Code>SignatureDoesNotMatch</Code><Message>No.</Message></Error>"


def url(signed_at, expires=60):
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(signed_at))
    return f"http://s3/b/k?X-Amz-Date={stamp}&X-Amz-Expires={expires}&X-Amz-Signature=ab"


def answer(*, server_offset, after=0.0, status=302, body=""):
    """An answer ``after`` seconds past NOW, from a clock ``server_offset`` off ours."""
    at = NOW + after
    return Answer(status, formatdate(at + server_offset, usegmt=True), at, 1000.0 + after, body)


@pytest.mark.parametrize(
    ("signed_at", "expires", "api_offset", "storage_offset", "after", "body", "cause"),
    [
        # The server's clock an hour behind storage's (ours is right).
        (
            NOW - 3600,
            60,
            -3600,
            0,
            0.1,
            EXPIRED,
            "clock skew: the server's clock is 3600 s behind storage's",
        ),
        # Storage's clock an hour ahead of everyone's: the same skew, seen from storage.
        (
            NOW,
            60,
            0,
            3600,
            0.1,
            EXPIRED,
            "clock skew: the server's clock is 3600 s behind storage's",
        ),
        # The server an hour ahead: a URL from the future (more than S3's 15 minutes).
        (
            NOW + 3600,
            60,
            3600,
            0,
            0.1,
            SIGNATURE,
            "clock skew: the server's clock is 3600 s ahead of storage's",
        ),
        # Clocks agree; the URL took longer than its validity to arrive.
        (
            NOW,
            1,
            0,
            0,
            2.5,
            EXPIRED,
            "the URL expired before it was used: valid 1.0 s, it reached storage 2.5 s",
        ),
        # Clocks agree, in time: not a matter of time.
        (NOW, 60, 0, 0, 0.1, SIGNATURE, "not for its time (valid until "),
    ],
)
def test_the_cause_is_named_from_what_was_measured(
    signed_at, expires, api_offset, storage_offset, after, body, cause
):
    said = explain(
        url(signed_at, expires),
        answer(server_offset=api_offset),
        answer(server_offset=storage_offset, after=after, status=403, body=body),
    )
    assert cause in said, said
    assert "\n" not in said


def test_the_offsets_against_this_machines_clock_are_given():
    said = explain(
        url(NOW - 3600),
        answer(server_offset=-3600),
        answer(server_offset=5, after=0.1, status=403, body=EXPIRED),
    )
    assert "Date headers against this machine's clock: server -3600 s, storage +4.9 s" in said


def test_without_a_date_header_the_cause_is_not_guessed():
    storage = Answer(403, None, NOW, 1000.0, EXPIRED)
    said = explain(url(NOW), answer(server_offset=0), storage)
    assert said.startswith(
        "storage said AccessDenied: Request has expired; the cause cannot be measured"
    )


def test_signed_windows_and_s3_errors_are_read():
    assert signed_window(url(NOW, 300)) == (NOW, NOW + 300)
    assert signed_window("http://s3/b/k?Expires=1800000060&Signature=x") == (None, 1800000060.0)
    assert signed_window("http://s3/b/k") == (None, None)
    assert s3_error(SIGNATURE) == ("SignatureDoesNotMatch", "No.")
    assert s3_error("<html>nope</html>") == ("", "")

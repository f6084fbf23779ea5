"""Why storage refused a presigned URL, in one sentence a partner engineer can act on.

In S3 mode the API answers an authorized request with a 302 to a short-lived presigned
URL; storage checks its signature and its time (S3: ``X-Amz-Date`` plus ``X-Amz-Expires``
by storage's own clock). The download asks the API for a new URL once when storage
refuses one (``fetch.Download``); refused again, this names the likely cause from what
was measured on the way:

- **clock skew**: the URL was signed longer ago than its validity by storage's clock,
  though it reached storage sooner than that after the API answered (timed here, on a
  monotonic clock): the server's clock and storage's disagree, by the offset given;
- **expired**: it really took longer than the URL's validity to reach storage;
- **neither**: it was refused within its time (a wrong signature, revoked signing
  credentials, a missing object).

The offsets of the server's and storage's clocks against this machine's come from their
``Date`` headers (one-second resolution, so small offsets are noise: ``TOLERANCE``).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qs, urlsplit

import httpx

__all__ = ["TOLERANCE", "Answer", "explain", "s3_error"]

# Seconds: Date headers and X-Amz-Date have one-second resolution, and an answer takes time.
TOLERANCE = 2.0
# S3 accepts a request signed up to 15 minutes in the future (by its clock).
FUTURE_ALLOWED = 15 * 60


@dataclass(frozen=True)
class Answer:
    """An HTTP answer's ``Date`` header with when it arrived here (wall clock and
    monotonic clock, seconds), its status, and the start of its body."""

    status: int
    date: str | None
    wall: float
    clock: float
    body: str = ""

    @classmethod
    def of(cls, response: httpx.Response, *, body: str = "") -> Answer:
        return cls(
            response.status_code,
            response.headers.get("date"),
            time.time(),
            time.monotonic(),
            body,
        )

    @property
    def server_time(self) -> float | None:
        """The answering clock's time (epoch seconds) by its Date header, or None."""
        if not self.date:
            return None
        try:
            return parsedate_to_datetime(self.date).timestamp()
        except (TypeError, ValueError):
            return None

    @property
    def offset(self) -> float | None:
        """The answering clock minus this machine's, in seconds."""
        at = self.server_time
        return None if at is None else at - self.wall


def s3_error(body: str) -> tuple[str, str]:
    """The ``<Code>`` and ``<Message>`` of an S3 error document (empty when absent)."""

    def element(name: str) -> str:
        found = re.search(rf"<{name}>([^<]{{0,300}})</{name}>", body)
        return found.group(1).strip() if found else ""

    return element("Code"), element("Message")


def signed_window(url: str) -> tuple[float | None, float | None]:
    """When a presigned URL was signed and until when it is valid (epoch seconds), from
    its query: SigV4 (``X-Amz-Date``, ``X-Amz-Expires``), GCS V4 (``X-Goog-``), or SigV2
    (``Expires``, an epoch time). ``None`` for what the URL does not say."""
    query = parse_qs(urlsplit(url).query)
    for prefix in ("X-Amz-", "X-Goog-"):
        if dates := query.get(prefix + "Date"):
            try:
                signed = (
                    datetime.strptime(dates[0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
                )
            except ValueError:
                return None, None
            expires = query.get(prefix + "Expires", [""])[0]
            return signed, signed + int(expires) if expires.isdigit() else None
    expires = query.get("Expires", [""])[0]
    return None, float(expires) if expires.isdigit() else None


def _seconds(value: float) -> str:
    return f"{value:.0f} s" if abs(value) >= 10 else f"{value:.1f} s"


def _signed(value: float) -> str:
    return f"{'+' if value >= 0 else '-'}{_seconds(abs(value))}"


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def explain(url: str, api: Answer, storage: Answer) -> str:
    """The likely cause of ``storage``'s refusal of ``url``, which the API's answer
    ``api`` (the 302) gave: one clause, without a final full stop."""
    signed_at, valid_until = signed_window(url)
    storage_now = storage.server_time
    # Real seconds between the API's answer and storage's, measured here.
    elapsed = max(0.0, storage.clock - api.clock)
    if signed_at is None:  # the URL does not say when: the server signed it when it answered
        signed_at = api.server_time
    code, message = s3_error(storage.body)
    said = f"storage said {code}: {message}" if code else f"storage answered HTTP {storage.status}"
    clocks = (
        f"Date headers against this machine's clock: server "
        f"{'unknown' if api.offset is None else _signed(api.offset)}, storage "
        f"{'unknown' if storage.offset is None else _signed(storage.offset)}"
    )
    if signed_at is None or storage_now is None:
        return f"{said}; the cause cannot be measured (no signing time or no Date header); {clocks}"
    # The server's clock minus storage's: the server read ``signed_at`` when storage's
    # clock read ``storage_now - elapsed``.
    skew = signed_at - (storage_now - elapsed)
    validity = None if valid_until is None else valid_until - signed_at
    too_old = valid_until is not None and storage_now > valid_until
    too_new = signed_at - storage_now > FUTURE_ALLOWED
    says_time = "expired" in message.lower() or code == "RequestTimeTooSkewed"
    if too_old or too_new or says_time:
        if (validity is None or elapsed + TOLERANCE < validity) and abs(skew) > TOLERANCE:
            return (
                f"clock skew: the server's clock is {_seconds(abs(skew))} "
                f"{'behind' if skew < 0 else 'ahead of'} storage's (signed at "
                f"{_iso(signed_at)}, valid {'?' if validity is None else _seconds(validity)}, "
                f"refused at {_iso(storage_now)} by storage's clock, {_seconds(elapsed)} after "
                f"the server answered; {clocks}): ask the lab to synchronise the server's clock "
                f"(NTP); {said}"
            )
        return (
            f"the URL expired before it was used: valid "
            f"{'?' if validity is None else _seconds(validity)}, it reached storage "
            f"{_seconds(elapsed)} after the server answered (a slow or stalled connection, or "
            f"URLs valid too briefly: ACCESSCTL_PRESIGN_SECONDS on the server); {said}"
        )
    return (
        f"not for its time (valid until {_iso(valid_until) if valid_until else '?'}, refused "
        f"at {_iso(storage_now)} by storage's clock): the server's storage credentials may "
        f"have been revoked or rotated, or the URL was changed on the way; tell the lab; {said}"
    )

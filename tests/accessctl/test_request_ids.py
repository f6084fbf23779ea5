"""Request ids are the server's: a client's X-Request-ID never becomes the id its audit
events and logs hold (it could forge one, or collide with another request's), only a
separate ``client_request_id``. Through the shipped nginx: tests/deploy/test_deploy.py."""

import datetime
import logging

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import Client

from accessctl.audit.models import AuditEvent
from accessctl.logs import RequestContextFilter
from accessctl.middleware import RequestContextMiddleware
from tests import factories as f

pytestmark = pytest.mark.django_db

OTHER_REQUEST = "f3b1c2d4e5a6978812345678abcdef00"  # say, an id seen in another request's events
PROXY_ID = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def download():
    partner = f.partner()
    release = f.release(public_in=-datetime.timedelta(days=1))
    checkpoint = f.stored_checkpoint(release, {"shard.bin": b"x" * 1000})
    f.window(release, partner)
    grant = f.grant(checkpoint, partner)
    auth = {"Authorization": f"Bearer {f.token(f.partner_user(partner))}"}
    client = Client()
    token = client.get(f"/api/v1/grants/{grant.pk}", headers=auth).json()["token"]
    url = f"/api/v1/grants/{grant.pk}/files/shard.bin"

    def get(headers: dict[str, str], remote: str) -> tuple[str, AuditEvent]:
        response = client.get(
            url,
            headers={**auth, "X-Grant-Token": token, "Range": "bytes=0-9", **headers},
            REMOTE_ADDR=remote,
        )
        assert response.status_code == 206
        b"".join(response.streaming_content)
        event = AuditEvent.objects.filter(action="download.authorized").latest("id")
        return response["X-Request-ID"], event

    return get


# (who connects, headers sent, the request id kept, the client's id recorded)
CASES = {
    "client sends an id directly": (
        "203.0.113.9",
        {"X-Request-ID": OTHER_REQUEST},
        None,
        OTHER_REQUEST,
    ),
    "client sends a malformed id": ("203.0.113.9", {"X-Request-ID": "a b\x7f"}, None, ""),
    "client forges the proxy's headers": (
        "203.0.113.9",
        {"X-Request-ID": OTHER_REQUEST, "X-Client-Request-ID": "innocent-looking"},
        None,
        OTHER_REQUEST,
    ),
    "trusted proxy passes its id and the client's": (
        "10.9.0.5",
        {"X-Request-ID": PROXY_ID, "X-Client-Request-ID": OTHER_REQUEST},
        PROXY_ID,
        OTHER_REQUEST,
    ),
    "trusted proxy sends no id": ("10.9.0.5", {}, None, ""),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_request_id_is_made_by_the_server_or_its_trusted_proxy(settings, download, caplog, case):
    settings.ACCESSCTL_TRUSTED_PROXIES = ["10.9.0.0/24"]
    remote, headers, kept, client_id = CASES[case]
    answered, event = download(headers, remote)
    if kept is None:
        assert answered not in headers.values() and len(answered) == 32
        int(answered, 16)  # a fresh uuid4, in hex
    else:
        assert answered == kept
    assert event.request_id == answered
    assert event.changes.get("client_request_id", "") == client_id


def test_two_requests_sending_the_same_id_get_different_ids(download):
    first, _ = download({"X-Request-ID": OTHER_REQUEST}, "203.0.113.9")
    second, _ = download({"X-Request-ID": OTHER_REQUEST}, "203.0.113.9")
    assert first != second
    assert not AuditEvent.objects.filter(request_id=OTHER_REQUEST).exists()


def test_log_records_carry_the_clients_id_apart_from_the_request_id(rf):
    seen: dict[str, str] = {}

    def view(request: HttpRequest) -> HttpResponse:
        record = logging.LogRecord("accessctl", logging.INFO, __file__, 1, "hello", None, None)
        RequestContextFilter().filter(record)
        seen.update(request_id=record.request_id, client=record.client_request_id)
        return HttpResponse()

    response = RequestContextMiddleware(view)(rf.get("/", HTTP_X_REQUEST_ID=OTHER_REQUEST))
    assert response["X-Request-ID"] != OTHER_REQUEST
    assert seen == {"request_id": response["X-Request-ID"], "client": OTHER_REQUEST}

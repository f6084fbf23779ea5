"""The fast presigner (``partners.storage.presigned_get``) makes exactly the URL boto3's
``generate_presigned_url`` makes (through django-storages' ``url``), for a generated
matrix of keys and parameters, and storage accepts it for what it names only."""

import datetime
import itertools

import botocore.auth
import httpx
import pytest
from django.core.files.base import ContentFile

from partners.storage import artifact_storage, presigned_get

KEYS = [
    "v1/step-1/model.safetensors",
    "v1/step-1/shards/a #1?.safetensors",
    "v1/step-1/50% off+more.bin",
    'v1/step-1/deep/"quoted" ünïcødé 模型.bin',
    "v1/step-1/tilde~and;semi=colon&amp,comma.bin",
]
PARAMETERS = [
    {},
    {"ResponseCacheControl": "private, no-store"},
    {
        "ResponseCacheControl": "private, no-store",
        "ResponseContentDisposition": "attachment; filename=\"a.bin\"; filename*=UTF-8''%C3%BC",
        "ResponseContentType": "application/octet-stream",
    },
    {"ResponseContentType": "application/octet-stream", "Range": "bytes=0-99"},
    {"Range": "bytes=-5"},
]


@pytest.mark.parametrize(("key", "parameters"), list(itertools.product(KEYS, PARAMETERS)))
def test_the_fast_presigner_makes_boto3s_url(s3_mode, monkeypatch, key, parameters):
    at = datetime.datetime(2026, 11, 29, 12, tzinfo=datetime.UTC).replace(tzinfo=None)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: at)
    storage = artifact_storage()
    expected = storage.url(key, expire=60, parameters=dict(parameters))
    assert presigned_get(storage, key, expire=60, parameters=parameters) == expected


def test_storage_serves_a_fast_presigned_url_and_only_for_its_range(s3_mode):
    storage = artifact_storage()
    key = KEYS[3]
    storage.save(key, ContentFile(b"0123456789"))
    whole = presigned_get(storage, key, expire=60, parameters={"ResponseContentType": "x/y"})
    answer = httpx.get(whole)
    assert answer.status_code == 200 and answer.content == b"0123456789"
    assert answer.headers["content-type"] == "x/y"
    ranged = presigned_get(storage, key, expire=60, parameters={"Range": "bytes=2-4"})
    answer = httpx.get(ranged, headers={"Range": "bytes=2-4"})
    assert answer.status_code == 206 and answer.content == b"234"
    # The Range is signed: another one, or none, is refused.
    assert httpx.get(ranged, headers={"Range": "bytes=0-9"}).status_code == 403
    assert httpx.get(ranged).status_code == 403
    # Tampered: refused.
    assert httpx.get(whole.replace("x%2Fy", "x%2Fz")).status_code == 403


@pytest.mark.parametrize("options", [{"querystring_auth": False}, {"custom_domain": "cdn.example"}])
def test_a_storage_it_does_not_sign_for_gets_the_storages_own_url(s3_mode, settings, options):
    artifacts = settings.STORAGES["artifacts"]
    settings.STORAGES = {
        **settings.STORAGES,
        "artifacts": {**artifacts, "OPTIONS": {**artifacts["OPTIONS"], **options}},
    }
    storage = artifact_storage()
    url = presigned_get(storage, KEYS[1], expire=60, parameters={})
    assert url == storage.url(KEYS[1], expire=60) and "X-Amz-Signature" not in url

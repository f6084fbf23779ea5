"""A signed token is accepted only while its key is ours and not revoked: revoking a
signing key ends every token it signed (after the per-process key cache,
``ACCESSCTL_KEY_CACHE_SECONDS``), and a token naming a key the server never had is refused
like a forged one."""

import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from accessctl.signing import keys
from accessctl.signing.models import SigningKey

pytestmark = pytest.mark.django_db


def claims() -> dict[str, int | str]:
    at = int(time.time())
    return {"nbf": at - 1, "exp": at + 600, "sub": "grant:1"}


@pytest.fixture(autouse=True)
def no_key_cache(settings):
    settings.ACCESSCTL_KEY_CACHE_SECONDS = 0


def test_revoking_the_signing_key_ends_the_tokens_it_signed():
    token = keys.sign_token(claims())
    assert keys.verify_token(token)["sub"] == "grant:1"
    kid = jwt.get_unverified_header(token)["kid"]
    SigningKey.objects.filter(kid=kid).update(status=SigningKey.Status.REVOKED)
    with pytest.raises(keys.BadSignature, match="unknown or revoked key"):
        keys.verify_token(token)


def test_a_token_naming_a_key_the_server_never_had_is_refused():
    keys.current_key()
    forged = jwt.encode(
        {"iss": keys.ISSUER, **claims()},
        Ed25519PrivateKey.generate(),
        algorithm="EdDSA",
        headers={"kid": "never-ours-0001"},
    )
    with pytest.raises(keys.BadSignature, match="unknown or revoked key"):
        keys.verify_token(forged)

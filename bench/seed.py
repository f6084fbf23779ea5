"""Seed a benchmark database: one partner, a launched release, a grant, a token."""

import json
import sys
from datetime import timedelta
from pathlib import Path

import django

django.setup()

from django.core.files.base import ContentFile  # noqa: E402
from django.utils import timezone  # noqa: E402

from partners import actions  # noqa: E402
from partners.storage import artifact_storage  # noqa: E402


def main(files: dict[str, int]) -> dict[str, object]:
    from django.contrib.auth import get_user_model

    now = timezone.now()
    partner = actions.create_partner(
        actor=None,
        slug="bench",
        legal_name="Bench",
        kind="other",
        jurisdiction="US",
        nda_reference="B",
        nda_expires_at=now + timedelta(days=30),
    )
    release = actions.create_release(
        actor=None, slug="b1", name="b1", public_release_at=now - timedelta(days=1)
    )
    specs = []
    import hashlib

    for name, size in files.items():
        path = Path(sys.argv[2]) / name
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        key = f"b1/t/{name}"
        if not artifact_storage().exists(key):
            with path.open("rb") as handle:
                artifact_storage().save(
                    key, ContentFile(handle.read()) if size < 1 << 20 else handle
                )
        specs.append(
            actions.ArtifactSpec(path=name, size=size, sha256=digest.hexdigest(), storage_key=key)
        )
    checkpoint = actions.register_checkpoint(
        actor=None, release=release, tag="t", artifacts=specs
    ).checkpoint
    actions.set_window(
        actor=None,
        release=release,
        partner=partner,
        opens_at=now - timedelta(days=1),
        closes_at=now + timedelta(days=20),
    )
    grant = actions.issue_grant(
        actor=None, partner=partner, checkpoint=checkpoint, quota_bytes=2**62
    )
    user = get_user_model().objects.create_user("bench-user", email="bench-user@bench.example")
    actions.add_member(actor=None, partner=partner, user=user)
    return {"grant": grant.pk, "token": member_token(user)}


def member_token(user: object) -> str:
    """Invite the member and claim the token from the (in-memory) email, the only way a
    partner member's token is made."""
    import re

    from django.core import mail
    from django.test.utils import override_settings

    with override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"):
        mail.outbox = []
        actions.invite_member_token(
            actor=None, user=user, name="bench", scopes=["read", "download"]
        )
        code = re.search(r"/tokens/claim#(\S+)", str(mail.outbox[-1].body))
    if code is None:
        raise SystemExit("the bench member's token invitation was not sent")
    return actions.claim_token(code=code.group(1))[1]


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))

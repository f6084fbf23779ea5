"""Test state, built by calling the actions (so tests see what users would have made)."""

import hashlib
import itertools
import re
import secrets
from datetime import datetime, timedelta
from typing import Any

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core import mail
from django.test import TestCase
from django.utils import timezone
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken

from partners import actions
from partners.decisions import Decision
from partners.models import (
    Artifact,
    Checkpoint,
    EmbargoWindow,
    Grant,
    Partner,
    PartnerContact,
    Release,
)

_seq = itertools.count(1)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@lab.example")
    password = factory.PostGenerationMethodCall("set_password", "correct horse battery")

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


def staff(role: str | None = None, **kwargs) -> object:
    """A staff member holding one role (a group from the roles migration)."""
    user = UserFactory(is_staff=True, **kwargs)
    if role:
        user.groups.add(Group.objects.get(name=role))
    return user


def superuser(**kwargs) -> object:
    return UserFactory(is_staff=True, is_superuser=True, **kwargs)


def partner(slug: str | None = None, *, jurisdiction: str = "US", **kwargs) -> Partner:
    n = next(_seq)
    values = {
        "slug": slug or f"partner-{n}",
        "legal_name": f"Partner {n} Inc.",
        "kind": Partner.Kind.GPU_VENDOR,
        "jurisdiction": jurisdiction,
        "nda_reference": f"NDA-{n:04d}",
        "nda_expires_at": timezone.now() + timedelta(days=365),
    }
    values.update(kwargs)
    return actions.create_partner(actor=None, **values)


def partner_user(of: Partner, **kwargs) -> object:
    user = UserFactory(**kwargs)
    actions.add_member(actor=None, partner=of, user=user)
    return user


def release(
    slug: str | None = None, *, public_in: timedelta = timedelta(days=30), **kwargs
) -> Release:
    n = next(_seq)
    values = {
        "slug": slug or f"v{n}",
        "name": f"Model v{n}",
        "public_release_at": timezone.now() + public_in,
        # Test checkpoints are a few bytes; tests ask for round quotas (10,000) above 4x.
        "quota_factor": 1000,
    }
    values.update(kwargs)
    return actions.create_release(actor=None, **values)


def artifact_spec(path: str, content: bytes) -> actions.ArtifactSpec:
    """A file to register; its storage key is left to the server (derived)."""
    return actions.ArtifactSpec(
        path=path, size=len(content), sha256=hashlib.sha256(content).hexdigest()
    )


def stored_spec(of: Release, tag: str, path: str, content: bytes) -> actions.ArtifactSpec:
    """``artifact_spec``, with the bytes put in artifact storage at the derived key first
    (registration refuses a file that is not there)."""
    from django.core.files.base import ContentFile

    from partners.storage import artifact_key, artifact_storage

    key = artifact_key(of.slug, tag, path)
    storage = artifact_storage()
    if storage.exists(key):
        storage.delete(key)
    storage.save(key, ContentFile(content))
    return artifact_spec(path, content)


def checkpoint(of: Release, tag: str = "step-1000", files: int = 2) -> Checkpoint:
    specs = [
        stored_spec(of, tag, f"model-{i:05d}.safetensors", f"{of.slug}:{tag}:{i}".encode())
        for i in range(files)
    ]
    return actions.register_checkpoint(
        actor=None, release=of, tag=tag, artifacts=specs, training_step=1000
    ).checkpoint


def window(
    of: Release,
    to: Partner,
    *,
    opens: timedelta = timedelta(days=-1),
    closes: timedelta = timedelta(days=20),
    at: datetime | None = None,
) -> EmbargoWindow:
    at = at or timezone.now()
    return actions.set_window(
        actor=None, release=of, partner=to, opens_at=at + opens, closes_at=at + closes
    )


def grant(cp: Checkpoint, to: Partner, *, quota_bytes: int = 10_000, approvers=None) -> Grant:
    """A grant through the real path: direct after launch, two approvals before."""
    if cp.release.public_release_at <= timezone.now():
        return actions.issue_grant(actor=None, partner=to, checkpoint=cp, quota_bytes=quota_bytes)
    requester = partner_user(to)
    request = actions.request_grant(
        actor=requester, partner=to, checkpoint=cp, quota_bytes=quota_bytes
    )
    for approver in approvers or (staff("Release manager"), staff("Release manager")):
        actions.approve_grant_request(actor=approver, request=request)
    return Grant.objects.get(request=request)


def backup_code(user) -> str:
    """A real one-time backup code on ``user``'s own django-otp device (a fresh one each
    call: TOTP codes cannot be used twice in one time step)."""
    device, _ = StaticDevice.objects.get_or_create(user=user, name="backup", confirmed=True)
    code = secrets.token_hex(8)
    StaticToken.objects.create(device=device, token=code)
    return code


def claim_code(user) -> str:
    """The one-time claim code from the last invitation mailed to ``user``."""
    for message in reversed(mail.outbox):
        if message.to == [user.email]:
            return re.search(r"/tokens/claim#(\S+)", message.body).group(1)
    raise AssertionError(f"no invitation was mailed to {user.email}")


def invite(user, *, actor=None, scopes=("read", "grants:request", "download"), **kwargs) -> str:
    """Invite partner member ``user`` to a token and return the emailed claim code."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        actions.invite_member_token(
            actor=actor, user=user, name="test", scopes=list(scopes), **kwargs
        )
    return claim_code(user)


def token(user, *, scopes=("read", "grants:request", "download"), **kwargs) -> str:
    """A fresh API token's secret, made the way its owner would: a staff member for
    themselves with a second factor; a partner member by claiming an emailed invitation."""
    if user.is_staff:
        return actions.create_staff_token(
            actor=user, name="test", second_factor=backup_code(user), **kwargs
        )[1]
    return actions.claim_token(code=invite(user, scopes=scopes, **kwargs))[1]


def stored_checkpoint(of: Release, files: dict[str, bytes], tag: str = "step-1") -> Checkpoint:
    """A checkpoint whose files really are in artifact storage."""
    specs = [stored_spec(of, tag, path, content) for path, content in files.items()]
    return actions.register_checkpoint(actor=None, release=of, tag=tag, artifacts=specs).checkpoint


def authorize(grant: Grant, *, requested_bytes: int = 1) -> Decision:
    """Ask for a download under ``grant`` through the real action (first file, 1 byte)."""
    artifact = grant.checkpoint.artifacts.order_by("pk").first()
    return actions.authorize_download(
        actor=None,
        grant=grant,
        artifact=artifact,
        requested_bytes=requested_bytes,
        client_address="203.0.113.9",
    )


def authorize_files(grant: Grant, paths: list[str] | None = None) -> list[Any]:
    """Ask for several files under ``grant`` in one batch through the real action
    (default: the first file, whole, and a path the checkpoint lacks)."""
    grant = Grant.objects.select_related("partner", "window", "checkpoint__release").get(
        pk=grant.pk
    )
    artifacts = {a.path: a for a in grant.checkpoint.artifacts.all()}
    if paths is None:
        paths = [*sorted(artifacts)[:1], "missing.bin"]
    return actions.authorize_downloads(
        actor=None,
        grant=grant,
        asks=[actions.FileAsk(path, artifacts.get(path)) for path in paths],
        client_address="203.0.113.9",
    )


def contact(of: Partner, email: str | None = None, *, notify: bool = True) -> PartnerContact:
    n = next(_seq)
    return actions.add_contact(
        actor=None,
        partner=of,
        name=f"Contact {n}",
        email=email or f"contact{n}@{of.slug}.example",
        notify=notify,
    )


def many_grants(to: Partner, of: Release, n: int, *, prefix: str = "bulk") -> list[int]:
    """``n`` active grants for ``to`` on ``n`` new checkpoints of ``of`` (which needs a
    window for ``to``), written in bulk: the database rules still check every row."""
    at = timezone.now()
    window = EmbargoWindow.objects.get(partner=to, release=of, opens_at__lte=at, closes_at__gt=at)
    checkpoints = Checkpoint.objects.bulk_create(
        Checkpoint(release=of, tag=f"{prefix}-{i}") for i in range(n)
    )
    Artifact.objects.bulk_create(
        Artifact(
            checkpoint=cp,
            path="model.safetensors",
            size=1_000,
            sha256="0" * 64,
            storage_key=f"{of.slug}/{cp.tag}/model.safetensors",
        )
        for cp in checkpoints
    )
    grants = Grant.objects.bulk_create(
        Grant(
            partner=to,
            checkpoint=cp,
            window=window,
            issued_at=at,
            expires_at=min(at + timedelta(days=7), window.closes_at),
            quota_bytes=1_000_000,
        )
        for cp in checkpoints
    )
    return [g.pk for g in grants]

"""Fill an empty embedded install with a realistic demo, and print how to sign in.

Safe to run at every start: it seeds once, then only prints the sign-in details again.
"""

import base64
import io
import random
import re
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, User
from django.core import mail
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.test.utils import override_settings
from django.utils import timezone
from safetensors.numpy import save_file

from partners import actions
from partners.actions.accounts import new_totp_key
from partners.models import Artifact, Checkpoint, Partner, Release

DAY = timedelta(days=1)
SHARD_BYTES = 2 * 1024 * 1024
# v5's checkpoint is fingerprinted (docs/fingerprints.md): real weight matrices, so that
# each partner's copy carries its mark (4 x 512 x 512 float32, 4 MiB, and their biases).
FINGERPRINT_LAYERS = 4
FINGERPRINT_WIDTH = 512

STAFF = [
    # username, role (None: superuser)
    ("admin", None),
    ("rm-alice", "Release manager"),
    ("rm-bob", "Release manager"),
    ("pm-carol", "Partner manager"),
    ("sec-dan", "Security officer"),
    ("audit-erin", "Compliance"),
]


class Command(BaseCommand):
    help = "Seed the embedded demo (once) and print the staff sign-in details."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--url",
            default=f"{settings.ACCESSCTL_PUBLIC_URL}/",
            help="where the portal answers (default: ACCESSCTL_PUBLIC_URL)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.PRODUCTION:
            raise CommandError("seed_demo is for the embedded demo only, not for production.")
        credentials = Path(settings.DATA_DIR) / "demo-credentials.txt"
        if not Partner.objects.exists():
            password = secrets.token_urlsafe(12)
            # The demo plays the partner engineer too: it reads their invitation email
            # (kept in memory, not printed) and claims the token with its one-time code,
            # exactly as they would. No token is made any other way.
            with override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"):
                mail.outbox = []
                with transaction.atomic():
                    keys = self._staff(password)
                    engineer = self._domain()
                partner_token = self._claim(engineer)
            totp = ",".join(f"{username}={key}" for username, key in keys.items())
            credentials.write_text(f"{password}\n{totp}\n{partner_token}\n")
            credentials.chmod(0o600)
        if not credentials.exists():
            raise CommandError("The demo was seeded, but its credentials file is gone.")
        password, totp, partner_token = credentials.read_text().split()
        # Each person's own key (a demo seeded before that shared one key: shown as such).
        keys = dict(item.split("=", 1) for item in totp.split(",")) if "=" in totp else {}
        key_lines = [f"              {name:<11} {key}" for name, key in keys.items()] or [
            f"              {totp}  (all demo staff)"
        ]
        url = options["url"].rstrip("/") + "/admin/"
        self.stdout.write(
            "\n".join(
                [
                    "",
                    "accessctl demo",
                    f"  portal:     {url}",
                    "  sign in:    admin (superuser); also rm-alice, rm-bob (release managers),",
                    "              pm-carol (partner manager), sec-dan (security officer),",
                    "              audit-erin (compliance)",
                    f"  password:   {password}  (all demo staff)",
                    "  2FA (TOTP): each person's own key, for an authenticator app:",
                    *key_lines,
                    "              or print someone's current code: "
                    ".venv/bin/python manage.py demo_totp admin",
                    f"  partner API token (ada@aurora-gpu): {partner_token}",
                    f"  try:       curl -H 'Authorization: Bearer {partner_token}' {options['url'].rstrip('/')}/api/v1/grants/",
                    f"  or the CLI: .venv/bin/accessctl --server {options['url'].rstrip('/')} --token {partner_token} "
                    "download v4:step-120000 --dir ./v4",
                    "  leak attribution: v5 is fingerprinted; aurora-gpu's copy of its weights is its own:",
                    f"              .venv/bin/accessctl --server {options['url'].rstrip('/')} --token {partner_token} "
                    "download v5:step-2000 --dir ./v5",
                    f"  API docs:   {options['url'].rstrip('/')}/api/docs/",
                    "",
                ]
            )
        )

    def _staff(self, password: str) -> dict[str, str]:
        """Demo staff sharing one password (printed, for the demo only), each with their
        own TOTP key, enrolled as the operator's command would (audited). Returns the
        keys in base32, as authenticator apps take them."""
        keys = {}
        User = get_user_model()
        for username, role in STAFF:
            user = User.objects.create_user(
                username=username,
                email=f"{username}@lab.example",
                password=password,
                is_staff=True,
                is_superuser=role is None,
            )
            if role:
                user.groups.add(Group.objects.get(name=role))
            key = new_totp_key()
            actions.enroll_totp(actor=None, user=user, key=key, name="demo")
            keys[username] = base64.b32encode(bytes.fromhex(key)).decode()
        return keys

    def _domain(self) -> User:
        now = timezone.now()
        User = get_user_model()
        alice, bob = User.objects.get(username="rm-alice"), User.objects.get(username="rm-bob")
        admin = User.objects.get(username="admin")
        pm_carol = User.objects.get(username="pm-carol")

        aurora = actions.create_partner(
            actor=admin,
            slug="aurora-gpu",
            legal_name="Aurora Graphics Corp.",
            kind=Partner.Kind.GPU_VENDOR,
            jurisdiction="US",
            nda_reference="NDA-2026-014",
            nda_expires_at=now + 300 * DAY,
            allowed_networks=["127.0.0.0/8", "203.0.113.0/24"],
        )
        tessel = actions.create_partner(
            actor=admin,
            slug="tessel-accel",
            legal_name="Tessel Beschleuniger GmbH",
            kind=Partner.Kind.ACCELERATOR_VENDOR,
            jurisdiction="DE",
            nda_reference="NDA-2026-021",
            nda_expires_at=now + 200 * DAY,
        )
        hanami = actions.create_partner(
            actor=admin,
            slug="hanami-silicon",
            legal_name="Hanami Silicon K.K.",
            kind=Partner.Kind.ACCELERATOR_VENDOR,
            jurisdiction="JP",
            nda_reference="NDA-2026-030",
            nda_expires_at=now + 20 * DAY,
        )
        for partner, name in ((aurora, "Ada Park"), (tessel, "Jonas Weber"), (hanami, "Yui Sato")):
            actions.add_contact(
                actor=admin,
                partner=partner,
                name=name,
                email=f"{name.split()[0].lower()}@{partner.slug}.example",
                role="ML runtime lead",
            )

        blocked = ["CN", "RU", "KP", "IR", "BY"]
        v3 = actions.create_release(
            actor=admin,
            slug="v3",
            name="Model v3",
            public_release_at=now - 40 * DAY,
            policy=Release.Policy.DENY_LIST,
            policy_jurisdictions=blocked,
        )
        v4 = actions.create_release(
            actor=admin,
            slug="v4",
            name="Model v4",
            public_release_at=now + 21 * DAY,
            policy=Release.Policy.DENY_LIST,
            policy_jurisdictions=blocked,
            quota_factor=10,  # bring-up partners re-download: up to ten times the size
        )
        self._register(v3, "final", 3)
        self._register(v4, "step-120000", 4)
        v4_ckpt = Checkpoint.objects.get(release=v4, tag="step-120000")

        # Past, present and future windows.
        actions.set_window(
            actor=admin,
            release=v3,
            partner=aurora,
            opens_at=now - 70 * DAY,
            closes_at=now - 40 * DAY,
            tier="tier-1",
        )
        actions.set_window(
            actor=admin,
            release=v4,
            partner=aurora,
            opens_at=now - 3 * DAY,
            closes_at=now + 21 * DAY,
            tier="tier-1",
        )
        actions.set_window(
            actor=admin,
            release=v4,
            partner=tessel,
            opens_at=now - 1 * DAY,
            closes_at=now + 21 * DAY,
            tier="tier-1",
        )
        actions.set_window(
            actor=admin,
            release=v4,
            partner=hanami,
            opens_at=now + 5 * DAY,
            closes_at=now + 21 * DAY,
            tier="tier-2",
        )

        # Early access for aurora: requested by its engineer, approved by two managers.
        engineer = User.objects.create_user(
            username="ada@aurora-gpu",
            email="ada@aurora-gpu.example",
            password=secrets.token_urlsafe(),
        )
        actions.add_member(actor=pm_carol, partner=aurora, user=engineer)
        request = actions.request_grant(
            actor=engineer,
            partner=aurora,
            checkpoint=v4_ckpt,
            quota_bytes=40 * SHARD_BYTES,
            note="Kernel bring-up for launch day",
        )
        actions.approve_grant_request(actor=alice, request=request)
        actions.approve_grant_request(actor=bob, request=request)
        grant = request.grant

        # Tessel's request waits for a second approval; Hanami's for its window to open.
        tessel_engineer = User.objects.create_user(
            username="jonas@tessel-accel",
            email="jonas@tessel-accel.example",
            password=secrets.token_urlsafe(),
        )
        actions.add_member(actor=pm_carol, partner=tessel, user=tessel_engineer)
        pending = actions.request_grant(
            actor=tessel_engineer,
            partner=tessel,
            checkpoint=v4_ckpt,
            quota_bytes=10 * SHARD_BYTES,
        )
        actions.approve_grant_request(actor=alice, request=pending)

        self._fingerprinted(admin=admin, approvers=(alice, bob), partner=aurora, engineer=engineer)

        # Some download decisions, allowed and denied, for the dashboard and audit trail.
        shards = list(Artifact.objects.filter(checkpoint=v4_ckpt))
        for shard in shards:
            actions.authorize_download(
                actor=engineer,
                grant=grant,
                artifact=shard,
                requested_bytes=shard.size,
                client_address="127.0.0.1",
            )
        actions.authorize_download(
            actor=engineer,
            grant=grant,
            artifact=shards[-1],
            requested_bytes=shards[-1].size,
            client_address="198.51.100.23",
        )
        actions.authorize_download(
            actor=engineer,
            grant=grant,
            artifact=shards[-1],
            requested_bytes=grant.quota_bytes,
            client_address="203.0.113.5",
        )
        # The partner manager asks for the engineer's token; it is emailed to them.
        actions.invite_member_token(
            actor=pm_carol,
            user=engineer,
            name="demo",
            scopes=["read", "grants:request", "download"],
        )
        return engineer

    def _fingerprinted(
        self, *, admin: User, approvers: tuple[User, User], partner: Partner, engineer: User
    ) -> None:
        """v5, a fingerprinted release with a small real checkpoint, and the engineer's
        grant of it (requested, approved by two managers): the grant commits the partner's
        key and the worker writes its marked copy (docs/fingerprints.md)."""
        now = timezone.now()
        v5 = actions.create_release(
            actor=admin,
            slug="v5",
            name="Model v5 (fingerprinted)",
            public_release_at=now + 45 * DAY,
            policy=Release.Policy.DENY_LIST,
            policy_jurisdictions=["CN", "RU", "KP", "IR", "BY"],
            fingerprint=True,
        )
        directory = Path(settings.DATA_DIR) / "demo-shards" / "v5" / "step-2000"
        directory.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(5)  # the same bytes at every seed
        tensors: dict[str, np.ndarray] = {}
        for layer in range(FINGERPRINT_LAYERS):
            shape = (FINGERPRINT_WIDTH, FINGERPRINT_WIDTH)
            tensors[f"layers.{layer}.mlp.weight"] = rng.normal(0, 0.02, shape).astype(np.float32)
            tensors[f"layers.{layer}.mlp.bias"] = np.zeros(FINGERPRINT_WIDTH, dtype=np.float32)
        save_file(tensors, str(directory / "model.safetensors"), metadata={"format": "np"})
        (directory / "config.json").write_text('{"architecture": "demo", "layers": 4}\n')
        call_command(
            "register_checkpoint",
            "v5",
            "step-2000",
            "--from",
            str(directory),
            "--training-step",
            "2000",
            "--no-progress",
            stdout=io.StringIO(),
        )
        actions.set_window(
            actor=admin,
            release=v5,
            partner=partner,
            opens_at=now - DAY,
            closes_at=now + 45 * DAY,
            tier="tier-1",
        )
        request = actions.request_grant(
            actor=engineer,
            partner=partner,
            checkpoint=Checkpoint.objects.get(release=v5, tag="step-2000"),
            note="Leak attribution demo: our own marked copy",
        )
        for approver in approvers:
            actions.approve_grant_request(actor=approver, request=request)

    def _claim(self, engineer: User) -> str:
        """Open the invitation link as the engineer would, and keep the token it shows."""
        sent = [m for m in mail.outbox if m.to == [engineer.email]]
        match = re.search(r"/tokens/claim#(\S+)", str(sent[-1].body)) if sent else None
        if match is None:
            raise CommandError("The demo engineer's token invitation was not sent.")
        _, secret = actions.claim_token(code=match.group(1))
        return secret

    def _register(self, release: Release, tag: str, shards: int) -> None:
        """Small generated shards, registered the way a release pipeline would."""
        directory = Path(settings.DATA_DIR) / "demo-shards" / release.slug / tag
        directory.mkdir(parents=True, exist_ok=True)
        rng = random.Random(f"{release.slug}/{tag}")  # noqa: S311  (demo bytes)
        for i in range(shards):
            path = directory / f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
            if not path.exists():
                path.write_bytes(rng.randbytes(SHARD_BYTES))
        (directory / "config.json").write_text('{"architecture": "demo", "layers": 4}\n')
        call_command(
            "register_checkpoint",
            release.slug,
            tag,
            "--from",
            str(directory),
            "--training-step",
            "120000",
            "--no-progress",
            stdout=io.StringIO(),
        )

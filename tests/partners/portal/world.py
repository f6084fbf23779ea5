"""A portal-sized world written in bulk: ``partners`` x ``releases`` windows (one per
pair; the database's rules still check every row), one checkpoint per release, and
``grants`` grants spread over the pairs in every status, some with downloads in the
audit trail, a pending revocation and a withdrawn release. Used by the portal's tests
and by bench/portal.py."""

from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone

from accessctl.audit.events import AuditAction
from accessctl.audit.models import AuditEvent
from partners.models import Checkpoint, EmbargoWindow, Grant, Partner, Release, Revocation

__all__ = ["PortalWorld", "build"]

JURISDICTIONS = ["US", "DE", "JP", "KR", "TW", "FR", "GB", "CA"]
DAY = timedelta(days=1)


@dataclass
class PortalWorld:
    partners: list[Partner]
    releases: list[Release]
    windows: int
    grants: int


def build(*, partners: int, releases: int, grants: int, prefix: str = "w") -> PortalWorld:
    now = timezone.now()
    made_partners = Partner.objects.bulk_create(
        Partner(
            slug=f"{prefix}-partner-{i:03d}",
            legal_name=f"Partner {i} Inc.",
            kind=Partner.Kind.GPU_VENDOR,
            jurisdiction=JURISDICTIONS[i % len(JURISDICTIONS)],
            nda_reference=f"NDA-{i}",
            nda_expires_at=now + 365 * DAY,
            status=Partner.Status.SUSPENDED if i % 37 == 5 else Partner.Status.ACTIVE,
        )
        for i in range(partners)
    )
    made_releases = Release.objects.bulk_create(
        Release(
            slug=f"{prefix}-release-{j:02d}",
            name=f"Model {j}",
            public_release_at=now + (j - releases // 2) * 3 * DAY,
            status=Release.Status.WITHDRAWN if j == 3 else Release.Status.PLANNED,
            withdrawn_at=now - DAY if j == 3 else None,
            withdrawn_reason="leak" if j == 3 else "",
            policy=Release.Policy.DENY_LIST,
            policy_jurisdictions=["KR"] if j % 5 == 0 else [],
        )
        for j in range(releases)
    )
    checkpoints = Checkpoint.objects.bulk_create(
        Checkpoint(release=r, tag="step-1") for r in made_releases
    )
    # Windows of every state and length: open, upcoming, closed, spread over three months.
    windows = []
    for i, partner in enumerate(made_partners):
        for j, release in enumerate(made_releases):
            opens = now + (((i * 7 + j * 13) % 60) - 30) * DAY
            length = (10 + (i + 2 * j) % 30) * DAY
            windows.append(
                EmbargoWindow(
                    release=release,
                    partner=partner,
                    opens_at=opens,
                    closes_at=opens + length,
                    embargo_lifts_at=opens + length * 2 / 3,
                )
            )
    windows = EmbargoWindow.objects.bulk_create(windows)
    statuses = [Grant.Status.ACTIVE, Grant.Status.ACTIVE, Grant.Status.REVOKED, Grant.Status.ACTIVE]
    cells = [(w, checkpoints[k % releases]) for k, w in enumerate(windows)]
    made = []
    for n in range(grants):
        window, checkpoint = cells[n % len(cells)]
        issued = window.opens_at + timedelta(hours=1)
        expires = min(window.closes_at - timedelta(hours=1), issued + (3 + n % 20) * DAY)
        status = statuses[n % len(statuses)] if n < len(cells) else Grant.Status.EXPIRED
        if status == Grant.Status.REVOKED and issued + DAY > now:
            status = Grant.Status.ACTIVE  # revoked only once it had been issued
        if status == Grant.Status.ACTIVE and expires <= now:
            status = Grant.Status.EXPIRED
        quota = (1 + n % 8) * 1024**3
        made.append(
            Grant(
                partner_id=window.partner_id,
                checkpoint=checkpoint,
                window=window,
                status=status,
                issued_at=issued,
                expires_at=expires,
                quota_bytes=quota,
                bytes_used=quota * (n % 5) // 4 if status != Grant.Status.REVOKED else quota // 8,
                revoked_at=issued + DAY if status == Grant.Status.REVOKED else None,
                revoke_reason="test" if status == Grant.Status.REVOKED else "",
            )
        )
    made = Grant.objects.bulk_create(made)
    AuditEvent.objects.bulk_create(
        AuditEvent(
            occurred_at=now - timedelta(minutes=n),
            actor_label="system",
            action=str(AuditAction.DOWNLOAD_AUTHORIZED),
            target_type="partners.grant",
            target_id=str(g.pk),
            target_label=str(g),
            partner_id=g.partner_id,
            changes={"bytes": 1024},
        )
        for n, g in enumerate(made[::3])
    )
    Revocation.objects.create(
        scope=Revocation.Scope.RELEASE, release=made_releases[3 % releases], reason="leak"
    )
    return PortalWorld(made_partners, made_releases, len(windows), len(made))

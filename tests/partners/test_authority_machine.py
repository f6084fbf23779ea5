"""A stateful property test of the authority model (Hypothesis ``RuleBasedStateMachine``).

Hypothesis drives random sequences of real actions, each done by ONE staff member of
each role (one person per role: nobody has a colleague to approve for them), and by a
partner member: rescheduling releases, issuing, requesting and approving grants, moving
windows, registering files (including ones pointing at another release's bytes), making
tokens for other people. After every step it checks the three promises of issue 11:

1. no partner can be authorized to download bytes before their release's public time
   unless two distinct people (neither of them the requester) approved;
2. no token acts for anyone but its owner;
3. nothing is served from another checkpoint's files.

Every step runs inside one transaction that is rolled back when the example ends, so
examples never see each other's rows and no Celery task is ever sent.
"""

import contextlib
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from partners import actions
from partners.errors import ActionError
from partners.models import (
    AccessToken,
    Artifact,
    Checkpoint,
    Grant,
    GrantRequest,
    Membership,
    Release,
)
from partners.rules import decide, download_facts
from partners.storage import artifact_key
from tests import factories as f

pytestmark = pytest.mark.django_db(transaction=False)

ROLES = ("Release manager", "Partner manager", "Security officer", "Compliance")
OFFSETS = st.sampled_from([-40, -2, -1, 1, 2, 40])  # days from now
RELEASES = st.sampled_from(["embargoed", "launched"])


def _usable_now(grant: Grant) -> bool:
    """Whether the decision function would let a byte of ``grant`` through right now."""
    grant = Grant.objects.select_related("partner", "window", "checkpoint__release").get(
        pk=grant.pk
    )
    facts = download_facts(
        grant, now=timezone.now(), client_address="203.0.113.9", requested_bytes=1
    )
    return decide(facts).allowed


def _distinct_approvers(grant: Grant) -> set[int]:
    if grant.request_id is None:
        return set()
    request = GrantRequest.objects.get(pk=grant.request_id)
    approvers = set(request.approvals.values_list("approver_id", flat=True))
    return approvers - {request.requested_by_id}


class AuthorityMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self._atomic = transaction.atomic()
        self._atomic.__enter__()
        self.people = {role: f.staff(role) for role in ROLES}
        self.partner = f.partner()
        self.member = f.partner_user(self.partner)
        self.member_tokens: list[str] = []
        self.releases = {
            "embargoed": f.release(public_in=timedelta(days=30)),
            "launched": f.release(public_in=-timedelta(days=1)),
        }
        self.checkpoints = {
            name: f.stored_checkpoint(release, {f"{name}.bin": name.encode() * 64})
            for name, release in self.releases.items()
        }
        for release in self.releases.values():
            f.window(release, self.partner, opens=-timedelta(days=3), closes=timedelta(days=60))

    def teardown(self) -> None:
        transaction.set_rollback(True)
        self._atomic.__exit__(None, None, None)

    def _try(self, change, *args, **kwargs) -> None:
        # A refusal writes nothing: the invariants check the rest.
        with contextlib.suppress(ActionError):
            change(*args, **kwargs)

    # Steps: each is one real action by one person.

    @rule(role=st.sampled_from(ROLES), name=RELEASES, days=OFFSETS)
    def reschedule(self, role, name, days):
        self._try(
            actions.update_release,
            actor=self.people[role],
            release=self.releases[name],
            public_release_at=timezone.now() + timedelta(days=days),
        )

    @rule(role=st.sampled_from(ROLES), name=RELEASES)
    def issue(self, role, name):
        self._try(
            actions.issue_grant,
            actor=self.people[role],
            partner=self.partner,
            checkpoint=self.checkpoints[name],
            quota_bytes=1_000,
        )

    @rule(name=RELEASES)
    def member_requests(self, name):
        self._try(
            actions.request_grant,
            actor=self.member,
            partner=self.partner,
            checkpoint=self.checkpoints[name],
            quota_bytes=1_000,
        )

    @rule(role=st.sampled_from(ROLES), name=RELEASES)
    def staff_requests(self, role, name):
        self._try(
            actions.request_grant,
            actor=self.people[role],
            partner=self.partner,
            checkpoint=self.checkpoints[name],
            quota_bytes=1_000,
        )

    @rule(role=st.sampled_from(ROLES), twice=st.booleans())
    def approve(self, role, twice):
        for request in GrantRequest.objects.filter(status=GrantRequest.Status.PENDING):
            for _ in range(2 if twice else 1):
                self._try(actions.approve_grant_request, actor=self.people[role], request=request)

    @rule(role=st.sampled_from(ROLES), name=RELEASES, opens=OFFSETS, closes=OFFSETS)
    def move_window(self, role, name, opens, closes):
        window = self.releases[name].windows.get(partner=self.partner)
        at = timezone.now()
        self._try(
            actions.set_window,
            actor=self.people[role],
            release=self.releases[name],
            partner=self.partner,
            opens_at=at + timedelta(days=min(opens, closes)),
            closes_at=at + timedelta(days=max(opens, closes) + 1),
            window=window,
        )

    @rule(role=st.sampled_from(ROLES), n=st.integers(min_value=1, max_value=99))
    def register_alias(self, role, n):
        """Register, on the launched release, a file whose key and bytes are the embargoed
        release's shard."""
        shard = Artifact.objects.get(checkpoint=self.checkpoints["embargoed"])
        self._try(
            actions.register_checkpoint,
            actor=self.people[role],
            release=self.releases["launched"],
            tag=f"alias-{n}",
            artifacts=[
                actions.ArtifactSpec(
                    path=shard.path,
                    size=shard.size,
                    sha256=shard.sha256,
                    storage_key=shard.storage_key,
                )
            ],
        )

    @rule(role=st.sampled_from(ROLES), whom=st.sampled_from([*ROLES, "member"]))
    def invite_a_token_for_someone(self, role, whom):
        user = self.member if whom == "member" else self.people[whom]
        self._try(
            actions.invite_member_token,
            actor=self.people[role],
            user=user,
            name="x",
            scopes=["read", "download"],
        )

    @rule(role=st.sampled_from(ROLES))
    def own_staff_token(self, role):
        person = self.people[role]
        self._try(
            actions.create_staff_token, actor=person, name="x", second_factor=f.backup_code(person)
        )

    @rule()
    def member_claims_a_token(self):
        # Built the way the member would (an emailed code, claimed by them).
        self._try(lambda: self.member_tokens.append(f.token(self.member)))

    @rule(role=st.sampled_from(ROLES))
    def remove_and_readd_the_member(self, role):
        membership = Membership.objects.filter(user=self.member).first()
        if membership is not None:
            self._try(actions.remove_member, actor=self.people[role], membership=membership)
        else:
            self._try(
                actions.add_member, actor=self.people[role], partner=self.partner, user=self.member
            )

    @rule(role=st.sampled_from(ROLES), name=RELEASES)
    def kill_switch(self, role, name):
        self._try(
            actions.withdraw_release,
            actor=self.people[role],
            release=self.releases[name],
            reason="incident",
        )

    # The promises, after every step.

    @invariant()
    def no_early_bytes_without_two_approvers(self):
        needed = settings.ACCESSCTL_EARLY_ACCESS_APPROVALS
        now = timezone.now()
        for grant in Grant.objects.select_related("checkpoint__release"):
            if now < grant.checkpoint.release.public_release_at and _usable_now(grant):
                assert len(_distinct_approvers(grant)) >= needed, (
                    f"grant #{grant.pk} serves bytes of {grant.checkpoint.release.slug} before "
                    f"its public time with approvers {_distinct_approvers(grant)}"
                )

    @invariant()
    def tokens_act_for_their_owner(self):
        now = timezone.now()
        for token in AccessToken.objects.all():
            assert token.created_by_id in (None, token.user_id), (
                f"token {token.prefix} of user {token.user_id} made by {token.created_by_id}"
            )
            if token.partner_id is not None and token.revoked_at is None and token.expires_at > now:
                assert Membership.objects.filter(
                    user_id=token.user_id, partner_id=token.partner_id
                ).exists(), f"token {token.prefix} still works for a partner its owner left"

    @invariant()
    def files_belong_to_their_checkpoint(self):
        for artifact in Artifact.objects.select_related("checkpoint__release"):
            cp = artifact.checkpoint
            assert artifact.storage_key == artifact_key(cp.release.slug, cp.tag, artifact.path)
        launched = Checkpoint.objects.filter(release=self.releases["launched"])
        embargoed = Release.objects.get(pk=self.releases["embargoed"].pk)
        if timezone.now() < embargoed.public_release_at:
            shard = Artifact.objects.get(checkpoint=self.checkpoints["embargoed"])
            assert not Artifact.objects.filter(
                checkpoint__in=launched, sha256=shard.sha256
            ).exists(), "the embargoed shard's bytes are registered under a launched release"


def test_authority_holds_under_any_sequence_of_actions():
    run_state_machine_as_test(
        AuthorityMachine,
        settings=hsettings(
            max_examples=40,
            stateful_step_count=12,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )

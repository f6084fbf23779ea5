"""Who acts for a partner (members) and who hears from us (contacts).

Membership is authority: a member's tokens act for the partner. Removing a member
therefore revokes their partner tokens and cancels their pending token invitations in
the same transaction, so a departed person's credential fails on its very next request.
"""

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import transaction

from accessctl.actors import Actor
from accessctl.audit.events import AuditAction, record
from partners.authority import Operation, authorize
from partners.errors import ActionError
from partners.models import Membership, Partner, PartnerContact

from ._common import integrity_as_action_error, now, save_changes, validate
from .tokens import revoke_member_credentials

__all__ = [
    "CONTACT_FIELDS",
    "add_contact",
    "add_member",
    "change_contact",
    "remove_contact",
    "remove_member",
]

CONTACT_FIELDS = ("name", "email", "role", "notify")


@transaction.atomic
def add_member(*, actor: Actor, partner: Partner, user: User) -> Membership:
    """Let ``user`` act for ``partner``. Staff and another partner's members are refused:
    one person, one side, one partner."""
    authorize(actor, Operation.MEMBER_ADD, partner)
    user = get_user_model().objects.select_for_update().get(pk=user.pk)
    if user.is_staff or user.is_superuser:
        raise ActionError("member_is_staff", f"{user} is lab staff and cannot act for a partner.")
    existing = Membership.objects.filter(user=user).select_related("partner").first()
    if existing is not None:
        raise ActionError(
            "member_exists", f"{user} already acts for {existing.partner}; remove them there first."
        )
    membership = Membership(user=user, partner=partner)
    validate(membership)
    with integrity_as_action_error():
        membership.save()
    record(
        AuditAction.MEMBER_ADDED,
        actor=actor,
        target=membership,
        partner=partner,
        changes={"user": user.get_username()},
    )
    return membership


@transaction.atomic
def remove_member(*, actor: Actor, membership: Membership, reason: str = "") -> list[str]:
    """Stop ``membership``'s user acting for its partner: their partner tokens are revoked
    and their pending token invitations cancelled, now. Returns the revoked prefixes."""
    authorize(actor, Operation.MEMBER_REMOVE, membership)
    membership = Membership.objects.select_for_update().select_related("user").get(pk=membership.pk)
    at = now()
    why = reason.strip() or f"{membership.user} no longer acts for {membership.partner_id}"
    prefixes, cancelled = revoke_member_credentials(
        actor=actor, user=membership.user, partner_id=membership.partner_id, reason=why, at=at
    )
    record(
        AuditAction.MEMBER_REMOVED,
        actor=actor,
        target=membership,
        partner_id=membership.partner_id,
        changes={
            "user": membership.user.get_username(),
            "reason": reason.strip(),
            "tokens_revoked": prefixes,
            "invitations_cancelled": cancelled,
        },
        at=at,
    )
    membership.delete()
    return prefixes


@transaction.atomic
def add_contact(
    *,
    actor: Actor,
    partner: Partner,
    name: str,
    email: str,
    role: str = "",
    notify: bool = True,
) -> PartnerContact:
    authorize(actor, Operation.CONTACT_ADD, partner)
    if PartnerContact.objects.filter(partner=partner, email__iexact=email).exists():
        raise ActionError("contact_exists", f"{partner} already has a contact at {email}.")
    contact = PartnerContact(partner=partner, name=name, email=email, role=role, notify=notify)
    validate(contact)
    with integrity_as_action_error():
        contact.save()
    record(
        AuditAction.CONTACT_ADDED,
        actor=actor,
        target=contact,
        partner=partner,
        changes={name: [None, getattr(contact, name)] for name in CONTACT_FIELDS},
    )
    return contact


@transaction.atomic
def change_contact(*, actor: Actor, contact: PartnerContact, **values: Any) -> PartnerContact:
    authorize(actor, Operation.CONTACT_CHANGE, contact)
    email = values.get("email")
    if (
        email
        and PartnerContact.objects.filter(partner_id=contact.partner_id, email__iexact=email)
        .exclude(pk=contact.pk)
        .exists()
    ):
        raise ActionError("contact_exists", f"{contact.partner} already has a contact at {email}.")
    with integrity_as_action_error():
        contact, changes = save_changes(PartnerContact, contact.pk, values, CONTACT_FIELDS)
    if changes:
        record(
            AuditAction.CONTACT_CHANGED,
            actor=actor,
            target=contact,
            partner_id=contact.partner_id,
            changes=changes,
        )
    return contact


@transaction.atomic
def remove_contact(*, actor: Actor, contact: PartnerContact) -> None:
    authorize(actor, Operation.CONTACT_REMOVE, contact)
    contact = PartnerContact.objects.select_for_update().get(pk=contact.pk)
    record(
        AuditAction.CONTACT_REMOVED,
        actor=actor,
        target=contact,
        partner_id=contact.partner_id,
        changes={name: [getattr(contact, name), None] for name in CONTACT_FIELDS},
    )
    contact.delete()

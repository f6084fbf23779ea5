"""Buttons on an object's own portal page (suspend a partner, revoke a grant, pull a
checkpoint, withdraw a release, approve or reject a request), each through a confirmation
page that restates the impact and asks for the reason.

A button is offered only to whom the authority table allows (``partners.authority.may``)
and only in a state where it changes something. Its page is refused (403, and
``PortalRefusalMiddleware`` records the ``<domain>.refused`` event with the operation,
``partners.forbidden.PORTAL_OPERATIONS``) to anyone else, on GET and POST alike. GET
only shows; POST (CSRF-checked, like every admin form) calls the same function the
list's bulk action calls, so the action's own checks (the four-eyes rule, the reason,
the state) hold exactly as on every other path.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Count, F, Model, QuerySet, Sum
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import ngettext

from partners import rules, states
from partners.actions.grants import default_expiry
from partners.authority import Operation, may
from partners.errors import ActionError
from partners.models import (
    AccessToken,
    Checkpoint,
    EmbargoWindow,
    Grant,
    GrantRequest,
    Membership,
    Partner,
    Release,
    Revocation,
)
from partners.queries import approval_refusal, current_window, reinstate_refusal
from partners.refusals import settle

from .pages import ROWS

__all__ = ["BUTTONS", "Button", "Impact", "ObjectButtons"]


class ConfirmForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        max_length=300,
        help_text="Required. Kept in the audit trail.",
    )


@dataclass
class Impact:
    """What a button changes, as its confirmation page restates it."""

    sentence: str  # who loses (or gains) access to what
    facts: list[tuple[str, str]] = field(default_factory=list)  # (label, value)
    grants: list[Grant] = field(default_factory=list)  # the grants that end (at most ROWS)
    grant_total: int = 0
    windows: list[EmbargoWindow] = field(default_factory=list)  # windows that end (ROWS)
    window_total: int = 0
    partners: int = 0
    people: int = 0
    quota_left: int = 0


def _grants_ending(grants: QuerySet[Grant]) -> dict[str, Any]:
    """The active grants of ``grants``: their count, partners, the people acting for those
    partners, the quota they still had, and the first ``ROWS`` rows (three queries)."""
    active = grants.filter(status__in=[Grant.Status.ACTIVE, Grant.Status.EXHAUSTED])
    totals = active.aggregate(
        grant_total=Count("pk"),
        partners=Count("partner", distinct=True),
        quota_left=Sum(F("quota_bytes") - F("bytes_used"), default=0),
    )
    people = Membership.objects.filter(
        partner_id__in=active.values("partner_id"), user__is_active=True
    ).count()
    rows = list(
        active.select_related("partner", "checkpoint__release").order_by("partner__slug", "pk")[
            :ROWS
        ]
    )
    return {**totals, "people": people, "grants": rows}


def _size(n: int) -> str:
    from accessctl.formats import size

    return size(n)


def _n(count: int, singular: str, plural: str) -> str:
    """``"1 grant"``, ``"3 grants"`` (``ngettext``)."""
    return f"{count} {ngettext(singular, plural, count)}"


def _suspend_impact(partner: Partner) -> Impact:
    ending = _grants_ending(Grant.objects.filter(partner=partner))
    pending = GrantRequest.objects.filter(partner=partner, status=GrantRequest.Status.PENDING)
    tokens = AccessToken.objects.filter(
        partner=partner, revoked_at__isnull=True, expires_at__gt=timezone.now()
    )
    people = Membership.objects.filter(partner=partner, user__is_active=True).count()
    counts = {"requests": pending.count(), "tokens": tokens.count()}
    return Impact(
        sentence=(
            f"Every download by {partner.slug} will stop at once. Then its "
            f"{_n(ending['grant_total'], 'usable grant', 'usable grants')} will be revoked and "
            f"its {_n(counts['requests'], 'pending request', 'pending requests')} rejected. "
            f"Its {_n(people, 'member keeps their account', 'members keep their accounts')}, "
            "but their API tokens will be refused while it is suspended."
        ),
        facts=[
            ("Partner", f"{partner.slug} ({partner.legal_name}, {partner.jurisdiction})"),
            ("Grants that will be revoked", str(ending["grant_total"])),
            ("Quota left on them", _size(ending["quota_left"])),
            ("Pending requests that will be rejected", str(counts["requests"])),
            ("People who will lose access", str(people)),
            ("API tokens refused while suspended", str(counts["tokens"])),
        ],
        **{**ending, "people": people},
    )


def _reinstate_impact(partner: Partner) -> Impact:
    now = timezone.now()
    revoked = Grant.objects.filter(partner=partner, status=Grant.Status.REVOKED).count()
    windows = states.windows_in_state(EmbargoWindow.objects.filter(partner=partner), "open", now)
    people = Membership.objects.filter(partner=partner, user__is_active=True).count()
    tokens = AccessToken.objects.filter(
        partner=partner, revoked_at__isnull=True, expires_at__gt=now
    ).count()
    return Impact(
        sentence=(
            f"{partner.slug} will be let back in: its "
            f"{_n(tokens, 'API token works', 'API tokens work')} again for its "
            f"{_n(people, 'member', 'members')}. Its {_n(revoked, 'revoked grant', 'revoked grants')} "
            "will stay revoked: issue new ones where its windows allow."
        ),
        facts=[
            ("Partner", f"{partner.slug} ({partner.legal_name}, {partner.jurisdiction})"),
            ("Suspended because", partner.status_reason or "-"),
            ("API tokens that will work again", str(tokens)),
            ("People who will regain access", str(people)),
            ("Revoked grants that stay revoked", str(revoked)),
            ("Open windows", str(windows.count())),
        ],
        people=people,
    )


def _revoke_impact(grant: Grant) -> Impact:
    ending = _grants_ending(Grant.objects.filter(pk=grant.pk))
    return Impact(
        sentence=(
            f"{grant.partner.slug} will no longer be able to download {grant.checkpoint} under "
            f"{grant}: its next request will be refused."
        ),
        facts=[
            ("Partner", grant.partner.slug),
            ("Checkpoint", str(grant.checkpoint)),
            ("Quota", f"{_size(grant.bytes_used)} used of {_size(grant.quota_bytes)}"),
            ("Quota left that will be lost", _size(grant.bytes_left)),
            ("Expires", _moment(grant.expires_at)),
            ("People who will lose access", str(ending["people"])),
        ],
        **ending,
    )


def _pull_impact(checkpoint: Checkpoint) -> Impact:
    ending = _grants_ending(Grant.objects.filter(checkpoint=checkpoint))
    return Impact(
        sentence=(
            f"Nobody will be able to download {checkpoint} from now on, and no grant can be "
            f"issued for it again: {_n(ending['grant_total'], 'grant', 'grants')} of "
            f"{_n(ending['partners'], 'partner', 'partners')} will be revoked."
        ),
        facts=[
            ("Checkpoint", str(checkpoint)),
            ("Grants that will be revoked", str(ending["grant_total"])),
            ("Partners affected", str(ending["partners"])),
            ("People who will lose access", str(ending["people"])),
            ("Quota left on them", _size(ending["quota_left"])),
        ],
        **ending,
    )


def _withdraw_impact(release: Release) -> Impact:
    ending = _grants_ending(Grant.objects.filter(checkpoint__release=release))
    now = timezone.now()
    of_release = EmbargoWindow.objects.filter(release=release)
    open_windows = states.windows_in_state(of_release, "open", now)
    upcoming = states.windows_in_state(of_release, "upcoming", now)
    counts = {"open": open_windows.count(), "upcoming": upcoming.count()}
    ended = list(
        (open_windows | upcoming).select_related("partner").order_by("opens_at", "pk")[:ROWS]
    )
    return Impact(
        sentence=(
            f"Kill switch: every download of every checkpoint of {release.slug} will stop now, "
            f"for everyone; its {_n(counts['open'], 'open window', 'open windows')} will end, "
            f"its {_n(counts['upcoming'], 'upcoming window', 'upcoming windows')} will never "
            f"open, and {_n(ending['grant_total'], 'grant', 'grants')} will be revoked. There is "
            "no way back: a withdrawn release stays withdrawn."
        ),
        facts=[
            ("Release", f"{release.slug} ({release.name})"),
            ("Open windows that will end", str(counts["open"])),
            ("Upcoming windows that will never open", str(counts["upcoming"])),
            ("Grants that will be revoked", str(ending["grant_total"])),
            ("Partners affected", str(ending["partners"])),
            ("People who will lose access", str(ending["people"])),
            ("Quota left on them", _size(ending["quota_left"])),
        ],
        windows=ended,
        window_total=counts["open"] + counts["upcoming"],
        **ending,
    )


def _request_facts(grant_request: GrantRequest) -> tuple[list[tuple[str, str]], int, int]:
    given = grant_request.approvals.count()
    needed = rules.approvals_needed(grant_request.approvals_required)
    people = Membership.objects.filter(
        partner_id=grant_request.partner_id, user__is_active=True
    ).count()
    facts = [
        ("Partner", grant_request.partner.slug),
        ("Checkpoint", str(grant_request.checkpoint)),
        ("Quota asked for", _size(grant_request.quota_bytes)),
        ("Requested by", f"{grant_request.requested_by} at {_moment(grant_request.requested_at)}"),
        ("Approvals", f"{given} of {needed}"),
        ("People acting for the partner", str(people)),
    ]
    return facts, given, needed


def _approve_impact(grant_request: GrantRequest) -> Impact:
    facts, given, needed = _request_facts(grant_request)
    approvals = grant_request.approvals.select_related("approver").order_by("approved_at")
    facts.append(
        (
            "Already approved by",
            ", ".join(f"{a.approver} at {_moment(a.approved_at)}" for a in approvals)
            or "nobody yet",
        )
    )
    now = timezone.now()
    window = current_window(
        partner=grant_request.partner, release=grant_request.checkpoint.release, at=now
    )
    if window is None:
        facts.append(("Window", "none open now: no grant can be issued until one opens"))
    else:
        facts.append(("Window", f"{_moment(window.opens_at)} to {_moment(window.closes_at)}"))
        facts.append(("The grant would expire", _moment(default_expiry(window, now))))
    issues = given + 1 >= needed
    sentence = (
        f"Your approval is the last one needed: a grant of {_size(grant_request.quota_bytes)} "
        f"for {grant_request.checkpoint} will be issued to {grant_request.partner.slug} at once."
        if issues
        else f"Your approval will be recorded; {_n(needed - given - 1, 'more approval', 'more approvals')} "
        "will be needed before a grant is issued. You cannot approve a request you filed, nor "
        "approve twice."
    )
    return Impact(sentence=sentence, facts=facts)


def _reject_impact(grant_request: GrantRequest) -> Impact:
    facts, _, _ = _request_facts(grant_request)
    return Impact(
        sentence=(
            f"{grant_request.partner.slug} will not get {grant_request.checkpoint} under this "
            "request; the partner will be told the reason."
        ),
        facts=facts,
    )


def _moment(at: Any) -> str:
    from accessctl.formats import moment

    return moment(at)


@dataclass(frozen=True)
class Button:
    """One button: its URL name (``<app>_<model>_<name>``), label, operation, when it is
    offered, what its page restates, and the list action it runs (``run``)."""

    model: type[Model]
    name: str
    label: str
    operation: Operation
    applies: Callable[[Any], bool]
    impact: Callable[[Any], Impact]
    run: Callable[[admin.ModelAdmin, HttpRequest, Any, str], None]
    done: str = ""  # what the object is once done: "suspended"
    danger: bool = True
    # The action's own refusal for this person, asked of the rule the action applies
    # (``None`` when the action refuses nobody who may press the button).
    refuses: Callable[[Any, Any], rules.Result] | None = None

    @property
    def url_name(self) -> str:
        return f"{self.model._meta.app_label}_{self.model._meta.model_name}_{self.name}"

    def refusal(self, obj: Any, user: Any) -> rules.Failure | None:
        """Why pressing the button would be refused, said before anyone presses it: the
        object's state (nothing left to change), or the action's rule for ``user``."""
        if not self.applies(obj):
            return rules.Failure(
                _state_code(obj),
                f"{obj} is already {_state(obj)}: {self.label.lower()} would change nothing.",
            )
        result = self.refuses(obj, user) if self.refuses is not None else None
        return result if isinstance(result, rules.Failure) else None


def _bulk(action: str) -> Callable[[admin.ModelAdmin, HttpRequest, Any, str], None]:
    """The list's bulk action ``action`` for one object (``reason_action``'s ``apply``)."""

    def run(model_admin: admin.ModelAdmin, request: HttpRequest, obj: Any, reason: str) -> None:
        getattr(type(model_admin), action).apply(model_admin, request, obj, reason)

    return run


def _approve(model_admin: Any, request: HttpRequest, obj: GrantRequest, reason: str) -> None:
    model_admin.approve_one(request, obj, note=reason)


_PENDING = GrantRequest.Status.PENDING
BUTTONS: tuple[Button, ...] = (
    Button(
        Partner,
        "suspend",
        "Suspend",
        Operation.PARTNER_SUSPEND,
        lambda p: p.status == Partner.Status.ACTIVE,
        _suspend_impact,
        _bulk("suspend"),
        "suspended",
    ),
    Button(
        Partner,
        "reinstate",
        "Reinstate",
        Operation.PARTNER_REINSTATE,
        lambda p: p.status == Partner.Status.SUSPENDED,
        _reinstate_impact,
        _bulk("reinstate"),
        "reinstated",
        danger=False,
        refuses=lambda p, user: reinstate_refusal(p),
    ),
    Button(
        Grant,
        "revoke",
        "Revoke",
        Operation.GRANT_REVOKE,
        lambda g: g.status in {Grant.Status.ACTIVE, Grant.Status.EXHAUSTED},
        _revoke_impact,
        _bulk("revoke"),
        "revoked",
    ),
    Button(
        Checkpoint,
        "pull",
        "Pull",
        Operation.CHECKPOINT_PULL,
        lambda c: states.checkpoint_state(c) != Checkpoint.Status.PULLED,
        _pull_impact,
        _bulk("pull"),
        "pulled",
    ),
    Button(
        Release,
        "withdraw",
        "Kill switch: withdraw",
        Operation.RELEASE_WITHDRAW,
        lambda r: r.status != Release.Status.WITHDRAWN,
        _withdraw_impact,
        _bulk("withdraw"),
        "withdrawn",
    ),
    Button(
        GrantRequest,
        "approve",
        "Approve",
        Operation.GRANT_REQUEST_DECIDE,
        lambda r: r.status == _PENDING,
        _approve_impact,
        _approve,
        danger=False,
        refuses=lambda r, user: approval_refusal(actor=user, request=r),
    ),
    Button(
        GrantRequest,
        "reject",
        "Reject",
        Operation.GRANT_REQUEST_DECIDE,
        lambda r: r.status == _PENDING,
        _reject_impact,
        _bulk("reject"),
        "rejected",
    ),
)


class ObjectButtons:
    """Mixed into a ModelAdmin: its model's ``BUTTONS`` on its change page (and their
    confirmation pages as URLs), and its ``story`` (``partners.admin.pages``) as
    read-only panels above the form."""

    change_form_template: Any = "admin/partners/change_form.html"
    # ``staticmethod(f)``, ``f(obj, at) -> dict`` (partners.admin.pages), or None.
    story: Any = None

    def _buttons(self) -> list[Button]:
        model = self.model  # type: ignore[attr-defined]
        return [b for b in BUTTONS if b.model is model]

    def bulk_refusal(self, action: str, obj: Model, user: Any) -> dict[str, str] | None:
        """What the list action ``action`` would refuse for ``obj`` and ``user``, said on
        its confirmation page before anyone confirms (``reason_action``): the button's own
        refusal (``Button.refusal``, as ``{"code", "message"}``), ``None`` when it would
        go ahead."""
        for button in self._buttons():
            if button.name == action:
                return _said(button.refusal(obj, user))
        return None

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view  # type: ignore[attr-defined]
        own = [
            path(
                f"<path:object_id>/{button.name}/",
                wrap(self._confirm_view(button)),
                name=button.url_name,
            )
            for button in self._buttons()
        ]
        return [*own, *super().get_urls()]  # type: ignore[misc]

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Model | None = None,
    ) -> HttpResponse:
        if obj is not None and obj.pk is not None:
            # Offered where it changes something; disabled, with the refusal, for a person
            # the action would refuse (the requester approving their own request).
            context["object_buttons"] = [
                {
                    "name": b.name,
                    "label": b.label,
                    "danger": b.danger,
                    "url": reverse(f"admin:{b.url_name}", args=[obj.pk]),
                    "refusal": _said(b.refusal(obj, request.user)),
                }
                for b in self._buttons()
                if b.applies(obj) and may(request.user, b.operation, obj)
            ]
            story = type(self).story
            if story is not None:
                context["story"] = story(obj, timezone.now())
        return super().render_change_form(  # type: ignore[misc]
            request, context, add, change, form_url, obj
        )

    def _confirm_view(self, button: Button) -> Callable[..., HttpResponse]:
        def view(request: HttpRequest, object_id: str) -> HttpResponse:
            return self.confirm(request, object_id, button)

        return view

    def confirm(self, request: HttpRequest, object_id: str, button: Button) -> HttpResponse:
        model_admin: Any = self
        opts = model_admin.model._meta
        # Refused before the object is looked up: a refusal tells nothing of what exists.
        if not may(request.user, button.operation):
            raise PermissionDenied
        obj = model_admin.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404
        if not may(request.user, button.operation, obj):
            raise PermissionDenied
        change_url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
        refusal = button.refusal(obj, request.user)
        if request.method == "POST" and refusal is not None and not button.applies(obj):
            model_admin.message_user(request, refusal.message, messages.INFO)
            return HttpResponseRedirect(change_url)
        form = ConfirmForm(request.POST if request.method == "POST" else None)
        # A refusal for the person is still the action's to make on POST: it records it.
        if request.method == "POST" and form.is_valid():
            try:
                button.run(model_admin, request, obj, form.cleaned_data["reason"])
            except ActionError as exc:
                settle(exc)
                form.add_error(None, exc.message)
            else:
                if button.done:  # approve_one says what it did
                    model_admin.message_user(request, _done(obj, button), messages.SUCCESS)
                return HttpResponseRedirect(change_url)
        return TemplateResponse(
            request,
            "admin/partners/confirm.html",
            {
                **model_admin.admin_site.each_context(request),
                "title": f"{button.label}: {obj}?",
                "opts": opts,
                "object": obj,
                "button": button,
                "impact": button.impact(obj) if button.applies(obj) else None,
                "refusal": _said(refusal),
                "form": form,
                "change_url": change_url,
            },
            status=400 if form.errors else 200,
        )


def _done(obj: Any, button: Button) -> str:
    """What the button did, saying the fan-out still runs: ``Partner tessel-accel suspended;
    revocation #4 is ending its grants.`` with a link to the revocation."""
    name = f"{obj._meta.verbose_name.capitalize()} {obj} {button.done}"
    field = {Partner: "partner", Grant: "grant", Checkpoint: "checkpoint", Release: "release"}
    revocation = (
        Revocation.objects.filter(**{field[type(obj)]: obj}).order_by("-pk").first()
        if type(obj) in field
        else None
    )
    if revocation is None or revocation.status != Revocation.Status.PENDING:
        return f"{name}."
    url = reverse("admin:partners_revocation_change", args=[revocation.pk])
    return format_html(
        '{}; <a href="{}">revocation #{}</a> is ending its grants and notifying people.',
        name,
        url,
        revocation.pk,
    )


def _said(refusal: rules.Failure | None) -> dict[str, str] | None:
    """A refusal as templates test it (a ``Failure`` is falsy)."""
    return None if refusal is None else {"code": refusal.code, "message": refusal.message}


def _state_code(obj: Any) -> str:
    """The registered code (``accessctl_wire.codes``) of an object's state that leaves a
    button nothing to do."""
    if isinstance(obj, Grant):
        return "grant_expired" if obj.status == Grant.Status.EXPIRED else "grant_revoked"
    return {
        Partner: "partner_status_conflict",
        Checkpoint: "checkpoint_pulled",
        Release: "release_withdrawn",
        GrantRequest: "request_decided",
    }[type(obj)]


def _state(obj: Any) -> str:
    if isinstance(obj, Checkpoint):
        return str(states.checkpoint_state(obj))
    return str(getattr(obj, "status", ""))

"""The timeline: releases, their partners' windows and the grants inside them, drawn as
one server-rendered SVG (no script, no web font: it passes the portal's CSP as is).

``timeline(at=..., start=..., end=...)`` lays it out; ``templates/admin/accessctl/
timeline_svg.html`` draws it. All geometry is in SVG user units (px at 100 %): the
drawing is ``WIDTH`` wide and scales down with its container.

What is drawn, top to bottom: the date axis (a tick per day, a labelled tick per week,
``YYYY-MM-DD`` in UTC), then per release a header (slug, name, status; a withdrawn release
says so in red) with its public-release marker (a dashed line and a diamond) and one row
per partner: each window a bar coloured by its state (``states.window_state``) with its
state and dates written inside (or beside it when the bar is too short), its
embargo-lift marker (a flag), and under it the window's grants, one thin bar each from
issue to expiry (or revocation), coloured by status. A red line marks now. Every mark
has a ``<title>`` (the browser's tooltip); a legend explains the colours.

Three queries: the releases with a window in the period, their windows (with partners),
and those windows' grants.
"""

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from math import ceil
from typing import Any

from django import forms
from django.db.models import Max, Min, Q, QuerySet
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import ngettext

from partners import states
from partners.models import EmbargoWindow, Grant, Partner, Release
from partners.portal.matrix import MatrixFilters
from partners.portal.units import binary_size, utc, utc_date

__all__ = [
    "COLOURS",
    "DAYS",
    "MAX_DAYS",
    "PARTNERS_PER_PAGE",
    "RELEASES_PER_PAGE",
    "WIDTH",
    "Timeline",
    "TimelineFilters",
    "timeline",
    "timeline_page",
]

WIDTH = 1160
LABELS = 170  # the partner column
RIGHT = 16
AXIS = 44  # the date axis band at the top
HEADER = 26  # a release's header band
DIAMOND = 10  # the public-release diamond's half width, and a margin
ROW = 34  # one partner's row: its windows' bars
BAR = 26  # a window's bar: its label on top, its grants in a light track at the bottom
TRACK = 17  # where the grants' track starts inside the bar (below the label)
LEGEND = 54
MORE = 20  # the line saying how many partners are not drawn
CHAR = 6.6  # the width of one character of the 11 px labels, generously
RELEASES_PER_PAGE = 4
PARTNERS_PER_PAGE = 25

# Fill and text colour of each window state: every pair has a contrast ratio of at least
# 7:1 (WCAG 2.x AAA; tests/partners/portal/test_timeline.py computes it).
COLOURS: dict[str, tuple[str, str]] = {
    "upcoming": ("#0d47a1", "#ffffff"),
    "open": ("#1b5e20", "#ffffff"),
    "closed": ("#cfd8dc", "#1c262b"),
    "withdrawn": ("#7f1d1d", "#ffffff"),
    # open or upcoming, but the partner is suspended or terminated (states.access_held)
    "blocked": ("#ffb74d", "#000000"),
}
OUTSIDE_TEXT = "#1f2933"  # a label beside its bar, on the white background
GRANT_COLOURS = {
    "active": "#2e7d32",
    "revoked": "#c62828",
    "expired": "#78909c",
    "exhausted": "#6a1b9a",
}


@dataclass(slots=True)
class GrantMark:
    x: float
    width: float
    y: float
    status: str
    title: str
    url: str

    @property
    def fill(self) -> str:
        return GRANT_COLOURS.get(self.status, "#52606d")


@dataclass(slots=True)
class WindowBar:
    x: float
    width: float
    y: float
    state: str
    fill: str
    label: str
    label_x: float
    label_colour: str
    label_anchor: str
    title: str
    url: str
    lift_x: float | None
    lift_title: str
    grants: list[GrantMark] = field(default_factory=list)

    @property
    def track(self) -> dict[str, float]:
        """The light strip inside the bar's bottom that the grants are drawn on."""
        return {"x": self.x + 1, "y": self.y + TRACK, "width": max(self.width - 2, 0.0)}


@dataclass(slots=True)
class PartnerRow:
    y: float
    partner: Partner
    url: str
    bars: list[WindowBar] = field(default_factory=list)


@dataclass(slots=True)
class ReleaseGroup:
    y: float
    height: float
    release: Release
    url: str
    withdrawn: bool
    status_label: str
    public_x: float | None
    public_title: str
    rows: list[PartnerRow] = field(default_factory=list)
    hidden: int = 0  # partners with windows not drawn (``timeline(rows=...)``)
    plot_left: float = float(LABELS)
    plot_right: float = float(WIDTH - RIGHT)

    @property
    def status_text(self) -> str:
        return f"{self.release.name}: {self.status_label}"

    @property
    def status_at(self) -> tuple[float, str]:
        """Where the header's text goes (x, text-anchor): at the plot's left, unless the
        public-release diamond falls on it; then beside the diamond, clear of it."""
        width = len(self.status_text) * CHAR
        x = self.plot_left
        if self.public_x is None or not x - DIAMOND <= self.public_x <= x + width + DIAMOND:
            return x, "start"
        if self.public_x + DIAMOND + width <= self.plot_right:
            return self.public_x + DIAMOND, "start"
        return self.public_x - DIAMOND, "end"

    @property
    def status_x(self) -> float:
        return self.status_at[0]

    @property
    def status_anchor(self) -> str:
        return self.status_at[1]

    @property
    def more_y(self) -> float:
        return self.y + self.height - 6


@dataclass(slots=True)
class Tick:
    x: float
    label: str  # empty: a day's minor tick


@dataclass(slots=True)
class Timeline:
    """The laid-out drawing (see the module)."""

    start: datetime
    end: datetime
    at: datetime
    width: int
    height: float
    plot_left: float
    plot_right: float
    ticks: list[Tick]
    now_x: float | None  # None: now is outside the period
    now_label: str
    groups: list[ReleaseGroup]
    legend_y: float
    colours: dict[str, tuple[str, str]] = field(default_factory=lambda: COLOURS)
    grant_colours: dict[str, str] = field(default_factory=lambda: GRANT_COLOURS)

    @property
    def empty(self) -> bool:
        return not self.groups

    @property
    def legend(self) -> list[dict[str, Any]]:
        """Two lines: the window states and the markers; the grant statuses."""
        x, items = self.plot_left, []
        for state, (fill, text) in self.colours.items():
            items.append(
                {"kind": "window", "x": x, "y": 0, "fill": fill, "text": text, "label": state}
            )
            x += 92
        for kind, label in (
            ("today", "now"),
            ("public", "public release"),
            ("lift", "embargo lifts"),
        ):
            items.append({"kind": kind, "x": x + 8, "y": 0, "label": label})
            x += 130
        x = self.plot_left
        for status, colour in self.grant_colours.items():
            items.append(
                {"kind": "grant", "x": x, "y": 20, "fill": colour, "label": f"grant {status}"}
            )
            x += 130
        return items


@dataclass(frozen=True, slots=True)
class Scale:
    """Time to x: ``start`` at ``left``, ``end`` at ``right``, clamped to them."""

    start: datetime
    end: datetime
    left: float
    right: float

    def __call__(self, moment: datetime) -> float:
        share = (moment - self.start).total_seconds() / (self.end - self.start).total_seconds()
        return round(self.left + min(max(share, 0.0), 1.0) * (self.right - self.left), 1)

    def covers(self, moment: datetime) -> bool:
        return self.start <= moment <= self.end


def _overlapping(start: datetime, end: datetime) -> Q:
    return Q(closes_at__gt=start, opens_at__lt=end)


def timeline(
    *,
    at: datetime,
    start: datetime,
    end: datetime,
    releases: QuerySet[Release] | list[Release],
    partners: list[Partner] | None = None,
    rows: int | None = None,
) -> Timeline:
    """The drawing of ``releases`` (in that order) over ``start``..``end``, ``at`` being
    now; ``partners`` (``None``: all) limits the rows, ``rows`` (``None``: all) how many
    partners a release shows (the others are counted, not drawn). Two queries: the
    windows and their grants."""
    plot_left, plot_right = float(LABELS), float(WIDTH - RIGHT)
    x_of = Scale(start, end, plot_left, plot_right)

    release_list = list(releases)
    windows = EmbargoWindow.objects.filter(
        _overlapping(start, end), release__in=[r.pk for r in release_list]
    ).select_related("partner")
    if partners is not None:
        windows = windows.filter(partner__in=[p.pk for p in partners])
    window_list = list(windows.order_by("partner__slug", "opens_at", "pk"))
    by_release: dict[int, dict[int, list[EmbargoWindow]]] = {}
    for window in window_list:
        by_release.setdefault(window.release_id, {}).setdefault(window.partner_id, []).append(
            window
        )
    every_row = {r: list(by_release.get(r.pk, {}).values()) for r in release_list}
    drawn_rows = {r: found[:rows] if rows is not None else found for r, found in every_row.items()}
    grants: dict[int, list[Grant]] = {}
    drawn_windows = [w.pk for found in drawn_rows.values() for row in found for w in row]
    if drawn_windows:  # the grants of the windows drawn only
        for grant in (
            Grant.objects.filter(window__in=drawn_windows)
            .select_related("checkpoint")
            .order_by("issued_at", "pk")
        ):
            grants.setdefault(grant.window_id, []).append(grant)

    y = float(AXIS)
    groups = []
    for release in release_list:
        drawn = drawn_rows[release]
        hidden = len(every_row[release]) - len(drawn)
        group = ReleaseGroup(
            y=y,
            height=HEADER + ROW * len(drawn) + (MORE if hidden else 0),
            hidden=hidden,
            release=release,
            url=reverse("admin:partners_release_change", args=[release.pk]),
            withdrawn=release.status == Release.Status.WITHDRAWN,
            status_label=_release_status(release),
            public_x=x_of(release.public_release_at)
            if x_of.covers(release.public_release_at)
            else None,
            public_title=f"{release.slug}: public release {utc(release.public_release_at)}",
        )
        row_y = y + HEADER
        for found in drawn:
            partner = found[0].partner
            row = PartnerRow(
                y=row_y,
                partner=partner,
                url=reverse("admin:partners_partner_change", args=[partner.pk]),
            )
            for window in found:
                window.release = release  # no query per window
                row.bars.append(_bar(window, grants.get(window.pk, []), row_y, at, x_of))
            group.rows.append(row)
            row_y += ROW
        groups.append(group)
        y += group.height
    return Timeline(
        start=start,
        end=end,
        at=at,
        width=WIDTH,
        height=y + LEGEND,
        plot_left=plot_left,
        plot_right=plot_right,
        ticks=_ticks(start, end, x_of),
        now_x=x_of(at) if x_of.covers(at) else None,
        now_label=f"now {utc(at)}",
        groups=groups,
        legend_y=y + 14,
    )


def _release_status(release: Release) -> str:
    if release.status == Release.Status.WITHDRAWN:
        return f"WITHDRAWN {utc(release.withdrawn_at)}: every window ended"
    return f"{release.get_status_display()}, public release {utc(release.public_release_at)}"


def _ticks(start: datetime, end: datetime, x_of: Scale) -> list[Tick]:
    """A tick each UTC midnight; Mondays labelled with their date."""
    day = start.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    ticks = []
    while day <= end:
        ticks.append(Tick(x=x_of(day), label=utc_date(day) if day.weekday() == 0 else ""))
        day += timedelta(days=1)
    return ticks


def _bar(
    window: EmbargoWindow, grants: list[Grant], row_y: float, at: datetime, x_of: Scale
) -> WindowBar:
    state = states.window_state(window, at).value
    held = states.access_held(state, window.partner.status)
    fill, text = COLOURS["blocked" if held else state]
    x, right = x_of(window.opens_at), x_of(window.closes_at)
    width = max(right - x, 2.0)
    shown = f"{state} · {held}" if held else state
    label = f"{shown} {utc_date(window.opens_at)} to {utc_date(window.closes_at)}"
    if len(label) * CHAR + 10 <= width:  # inside the bar, in the state's text colour
        label_x, colour, anchor = x + 6, text, "start"
    elif right + 6 + len(label) * CHAR <= WIDTH - RIGHT:  # beside it, on the right
        label_x, colour, anchor = right + 6, OUTSIDE_TEXT, "start"
    else:  # beside it, on the left
        label_x, colour, anchor = x - 6, OUTSIDE_TEXT, "end"
    title = (
        f"{window.release.slug} x {window.partner.slug}: {shown}, "
        f"{utc(window.opens_at)} to {utc(window.closes_at)}; "
        f"embargo lifts {utc(window.embargo_lifts_at)}; {len(grants)} {ngettext('grant', 'grants', len(grants))}"
    )
    lifts = window.embargo_lifts_at
    bar = WindowBar(
        x=x,
        width=width,
        y=row_y + 4,
        state="blocked" if held else state,
        fill=fill,
        label=label,
        label_x=label_x,
        label_colour=colour,
        label_anchor=anchor,
        title=title,
        url=reverse("admin:partners_embargowindow_change", args=[window.pk]),
        lift_x=x_of(lifts) if x_of.covers(lifts) else None,
        lift_title=f"{window.release.slug} x {window.partner.slug}: embargo lifts {utc(lifts)}",
    )
    inside_left, inside_right = bar.x + 2, bar.x + bar.width - 2
    for lane, grant in enumerate(grants):
        ends = grant.revoked_at if grant.revoked_at else grant.expires_at
        gx = min(max(x_of(grant.issued_at), inside_left), inside_right)
        bar.grants.append(
            GrantMark(
                x=gx,
                width=max(min(x_of(ends), inside_right) - gx, 2.0),
                y=bar.y + TRACK + 1 + (lane % 2) * 3,
                status=grant.status,
                title=(
                    f"grant #{grant.pk} ({grant.status}) for {grant.checkpoint.tag}: "
                    f"{utc(grant.issued_at)} to {utc(ends)}, used "
                    f"{binary_size(grant.bytes_used)} of {binary_size(grant.quota_bytes)}"
                ),
                url=reverse("admin:partners_grant_change", args=[grant.pk]),
            )
        )
    return bar


def releases_in(start: datetime, end: datetime) -> QuerySet[Release]:
    """Releases with a window overlapping ``start``..``end``, by public release time."""
    return (
        Release.objects.filter(windows__in=EmbargoWindow.objects.filter(_overlapping(start, end)))
        .distinct()
        .order_by("public_release_at", "slug")
    )


DAYS = 60  # the period's default length: the past week and the next 53 days
MAX_DAYS = 366
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2100, 12, 31)


class TimelineFilters(MatrixFilters):
    """The matrix's filters and the period: ``from`` (``YYYY-MM-DD``, UTC midnight; 2000
    to 2100) and ``days`` (1 to ``MAX_DAYS``). Bad values are form errors, shown on the
    page; the timeline is then drawn unfiltered over the default period."""

    days = forms.IntegerField(required=False, min_value=1, max_value=MAX_DAYS)

    def __init__(self, data: Any, **kwargs: Any) -> None:
        super().__init__(data, **kwargs)
        # "from" is a keyword: the field is added by name.
        self.fields["from"] = forms.DateField(
            required=False, input_formats=["%Y-%m-%d"], help_text="YYYY-MM-DD (UTC)"
        )
        self.order_fields(["release", "partner", "jurisdiction", "from", "days"])

    def clean_from(self) -> date | None:
        day: date | None = self.cleaned_data.get("from")
        if day is not None and not FIRST_DAY <= day <= LAST_DAY:
            raise forms.ValidationError(f"Choose a day from {FIRST_DAY} to {LAST_DAY}.")
        return day


def _period_of(chosen: dict[str, Any], at: datetime) -> tuple[datetime, datetime]:
    """The period to draw: ``from`` and ``days`` if given; else, with a release chosen,
    its windows whenever they are (a day either side); else ``period(at)``."""
    days = chosen.get("days")
    if chosen.get("from"):
        start = datetime.combine(chosen["from"], time(), tzinfo=UTC)
        return start, start + timedelta(days=days or DAYS)
    if chosen.get("release"):
        span = EmbargoWindow.objects.filter(release__slug=chosen["release"]).aggregate(
            first=Min("opens_at"), last=Max("closes_at")
        )
        if span["first"] is not None:
            start = datetime.combine(span["first"].date() - timedelta(days=1), time(), tzinfo=UTC)
            end = span["last"] + timedelta(days=1)
            return start, start + timedelta(days=days) if days else end
    start, end = period(at)
    return start, start + timedelta(days=days) if days else end


def timeline_page(data: Any, *, at: datetime) -> dict[str, Any]:
    """The timeline page's context for its GET parameters, those of the matrix: the
    filters ``release``, ``partner``, ``jurisdiction``; ``page`` (``PARTNERS_PER_PAGE``
    partners, by slug) and ``columns`` (``RELEASES_PER_PAGE`` releases, by public
    release); and the period (``TimelineFilters``: ``from``, ``days``), by default the
    past week and the next 53 days, or a chosen release's windows whenever they are;
    with links to the periods before and after. Five or six queries."""
    partners = list(Partner.objects.order_by("slug"))
    releases = list(Release.objects.order_by("-public_release_at", "slug"))
    form = TimelineFilters(data, partners=partners, releases=releases)
    chosen: dict[str, Any] = form.cleaned_data if form.is_valid() else {}
    start, end = _period_of(chosen, at)
    length = max((end - start).days, 1)
    shown = list(releases_in(start, end))
    if chosen.get("release"):
        shown = [r for r in shown if r.slug == chosen["release"]]
    if chosen.get("partner"):
        partners = [p for p in partners if p.slug == chosen["partner"]]
    if chosen.get("jurisdiction"):
        partners = [p for p in partners if str(p.jurisdiction) == chosen["jurisdiction"]]
    pages = max(ceil(len(partners) / PARTNERS_PER_PAGE), 1)
    page = min(max(chosen.get("page") or 1, 1), pages)
    columns_pages = max(ceil(len(shown) / RELEASES_PER_PAGE), 1)
    columns = min(max(chosen.get("columns") or 1, 1), columns_pages)
    params = {
        k: str(v) for k, v in chosen.items() if v and k not in ("page", "columns", "from", "days")
    }

    def link(**changes: Any) -> str:
        held = {"from": f"{start:%Y-%m-%d}", "days": str(length)} if chosen.get("from") else {}
        return "?" + urlencode({**params, **held, "page": page, "columns": columns, **changes})

    def moved(by: int) -> str:
        day = start.date() + timedelta(days=by)
        if not FIRST_DAY <= day <= LAST_DAY:
            return ""
        return "?" + urlencode({**params, "from": f"{day:%Y-%m-%d}", "days": str(length)})

    return {
        "form": form,
        "timeline": timeline(
            at=at,
            start=start,
            end=end,
            releases=shown[(columns - 1) * RELEASES_PER_PAGE : columns * RELEASES_PER_PAGE],
            partners=partners[(page - 1) * PARTNERS_PER_PAGE : page * PARTNERS_PER_PAGE],
        ),
        "page": page,
        "pages": pages,
        "columns": columns,
        "columns_pages": columns_pages,
        "previous_page": link(page=page - 1) if page > 1 else "",
        "next_page": link(page=page + 1) if page < pages else "",
        "previous_columns": link(columns=columns - 1) if columns > 1 else "",
        "next_columns": link(columns=columns + 1) if columns < columns_pages else "",
        "days": length,
        "earlier_period": moved(-length),
        "later_period": moved(length),
        "this_period": "?" + urlencode(params) if chosen.get("from") else "",
    }


def period(at: datetime) -> tuple[datetime, datetime]:
    """The period the timeline shows: from a week before ``at`` to 53 days after."""
    return at - timedelta(days=7), at + timedelta(days=53)

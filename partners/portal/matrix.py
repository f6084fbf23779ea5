"""The access matrix: partners x releases, one cell per pair, answering "who can reach
what, until when, and how much did they take".

A cell holds the pair's window on show (``queries.display_window``: the open one, else the
next, else the last that closed) with its state (``states.window_state``: ``upcoming``,
``open``, ``closed``, ``withdrawn``) and dates, how many other windows the pair has, the
counts of its grants by status, the bytes used of the bytes granted over those grants, the
last authorized download (``download.authorized`` in the audit trail), and whether the
release's export policy blocks the partner's jurisdiction.

The matrix is read in a fixed number of queries whatever its size (pinned in
tests/query_counts.json): every partner, every release, the windows of the page's cells,
and the page's grants aggregated per cell with their last download. Rows are paged
(``ROWS`` partners a page) and columns windowed (``COLUMNS`` releases at a time), so the
page fits 1280 px.
"""

from dataclasses import dataclass, field
from datetime import datetime
from math import ceil
from typing import Any

from django import forms
from django.db.models import CharField, Count, Max, OuterRef, Q, Subquery, Sum
from django.db.models.functions import Cast
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import ngettext

from accessctl.audit.events import AuditAction
from accessctl.audit.models import AuditEvent
from partners import queries, states
from partners.models import EmbargoWindow, Grant, Partner, Release
from partners.portal.units import binary_size, utc, utc_date

__all__ = ["COLUMNS", "ROWS", "Cell", "Matrix", "MatrixFilters", "access_matrix"]

ROWS = 25
COLUMNS = 6


class MatrixFilters(forms.Form):
    """The matrix's GET parameters: ``release`` and ``partner`` (slugs), ``jurisdiction``
    (ISO 3166-1 alpha-2, as partners hold it), ``page`` (rows, from 1) and ``columns``
    (the window of releases, from 1). An unknown value is a form error, shown on the page;
    the matrix is then drawn unfiltered."""

    release = forms.ChoiceField(required=False)
    partner = forms.ChoiceField(required=False)
    jurisdiction = forms.ChoiceField(required=False)
    page = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)
    columns = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    def __init__(
        self, data: Any, *, partners: list[Partner], releases: list[Release], **kwargs: Any
    ) -> None:
        super().__init__(data, **kwargs)
        everything = [("", "All")]
        release_field: Any = self.fields["release"]
        partner_field: Any = self.fields["partner"]
        jurisdiction_field: Any = self.fields["jurisdiction"]
        release_field.choices = everything + [(r.slug, r.slug) for r in releases]
        partner_field.choices = everything + [(p.slug, p.slug) for p in partners]
        codes = sorted({str(p.jurisdiction) for p in partners})
        # A CountryField's value is a Country (django-countries), typed as str.
        names = {str(p.jurisdiction): getattr(p.jurisdiction, "name", "") for p in partners}
        jurisdiction_field.choices = everything + [(c, f"{c} {names[c]}") for c in codes]


@dataclass(slots=True)
class Cell:
    """One partner and one release (see the module)."""

    partner: Partner
    release: Release
    blocked: bool
    window: EmbargoWindow | None = None
    state: str = ""
    held: str = ""  # states.access_held: "partner suspended" beside an open window
    windows: int = 0
    active: int = 0
    revoked: int = 0
    expired: int = 0
    exhausted: int = 0
    quota_bytes: int = 0
    used_bytes: int = 0
    last_download: datetime | None = None

    @property
    def grants(self) -> int:
        return self.active + self.revoked + self.expired + self.exhausted

    @property
    def quota(self) -> str:
        """``used of granted`` in binary units, e.g. ``1.5 GiB of 4 GiB``."""
        return f"{binary_size(self.used_bytes)} of {binary_size(self.quota_bytes)}"

    @property
    def used_percent(self) -> int:
        return round(100 * self.used_bytes / self.quota_bytes) if self.quota_bytes else 0

    @property
    def opens(self) -> str:
        return utc_date(self.window.opens_at) if self.window else ""

    @property
    def closes(self) -> str:
        return utc_date(self.window.closes_at) if self.window else ""

    @property
    def last_download_at(self) -> str:
        return utc(self.last_download)

    @property
    def window_url(self) -> str:
        if self.window is None:
            return ""
        return reverse("admin:partners_embargowindow_change", args=[self.window.pk])

    @property
    def windows_url(self) -> str:
        query = {"partner__id__exact": self.partner.pk, "release__id__exact": self.release.pk}
        return f"{reverse('admin:partners_embargowindow_changelist')}?{urlencode(query)}"

    @property
    def grants_url(self) -> str:
        query = {
            "partner__id__exact": self.partner.pk,
            "checkpoint__release__id__exact": self.release.pk,
        }
        return f"{reverse('admin:partners_grant_changelist')}?{urlencode(query)}"

    @property
    def title(self) -> str:
        """The cell as one sentence, for its tooltip."""
        parts = [f"{self.partner.slug} x {self.release.slug}"]
        if self.blocked:
            parts.append("export policy blocks this partner's jurisdiction")
        if self.window is not None:
            held = f" ({self.held}: no access)" if self.held else ""
            parts.append(
                f"window {self.state}{held}, {utc(self.window.opens_at)} to "
                f"{utc(self.window.closes_at)}"
            )
        parts.append(
            f"{self.grants} {ngettext('grant', 'grants', self.grants)} ({self.active} active, {self.revoked} revoked, "
            f"{self.expired} expired, {self.exhausted} exhausted), used {self.quota}"
        )
        if self.last_download:
            parts.append(f"last download {utc(self.last_download)}")
        return "; ".join(parts)


@dataclass(slots=True)
class Row:
    partner: Partner
    cells: list[Cell]

    @property
    def url(self) -> str:
        return reverse("admin:partners_partner_change", args=[self.partner.pk])


@dataclass(slots=True)
class Matrix:
    """What the matrix page draws: ``releases`` (this window of columns) and ``rows``
    (this page of partners), with the paging state and the filter form."""

    form: MatrixFilters
    releases: list[Release]
    rows: list[Row]
    page: int
    pages: int
    partners_total: int
    columns: int
    column_windows: int
    releases_total: int
    params: dict[str, str] = field(default_factory=dict)
    per_page: int = ROWS

    @property
    def first_column(self) -> int:
        return (self.columns - 1) * COLUMNS + 1 if self.releases else 0

    @property
    def last_column(self) -> int:
        return self.first_column + len(self.releases) - 1 if self.releases else 0

    @property
    def first_row(self) -> int:
        return (self.page - 1) * self.per_page + 1 if self.rows else 0

    @property
    def last_row(self) -> int:
        return self.first_row + len(self.rows) - 1 if self.rows else 0

    def _link(self, **changes: int) -> str:
        return "?" + urlencode({**self.params, **{k: str(v) for k, v in changes.items()}})

    @property
    def previous_page(self) -> str:
        return self._link(page=self.page - 1) if self.page > 1 else ""

    @property
    def next_page(self) -> str:
        return self._link(page=self.page + 1) if self.page < self.pages else ""

    @property
    def previous_columns(self) -> str:
        return self._link(columns=self.columns - 1) if self.columns > 1 else ""

    @property
    def next_columns(self) -> str:
        return self._link(columns=self.columns + 1) if self.columns < self.column_windows else ""

    @property
    def headers(self) -> list[dict[str, Any]]:
        """One per column: the release, its page, its public release date and status."""
        return [
            {
                "release": r,
                "url": reverse("admin:partners_release_change", args=[r.pk]),
                "public": utc_date(r.public_release_at),
                "withdrawn": r.status == Release.Status.WITHDRAWN,
            }
            for r in self.releases
        ]


def _clamp(value: int | None, pages: int) -> int:
    return min(max(value or 1, 1), max(pages, 1))


def access_matrix(data: Any, *, at: datetime, rows: int | None = None) -> Matrix:
    """The matrix for the GET parameters ``data`` (see ``MatrixFilters``) at ``at``,
    ``rows`` partners a page (default ``ROWS``).

    Four queries: partners, releases, the page's windows, the page's grants per cell.
    """
    per_page = rows or ROWS
    partners = list(
        Partner.objects.only("id", "slug", "legal_name", "jurisdiction", "status").order_by("slug")
    )
    releases = list(
        Release.objects.only(
            "id", "slug", "name", "public_release_at", "status", "policy", "policy_jurisdictions"
        ).order_by("-public_release_at", "slug")
    )
    form = MatrixFilters(data, partners=partners, releases=releases)
    chosen: dict[str, Any] = form.cleaned_data if form.is_valid() else {}
    if chosen.get("partner"):
        partners = [p for p in partners if p.slug == chosen["partner"]]
    if chosen.get("jurisdiction"):
        partners = [p for p in partners if str(p.jurisdiction) == chosen["jurisdiction"]]
    if chosen.get("release"):
        releases = [r for r in releases if r.slug == chosen["release"]]

    pages, column_windows = ceil(len(partners) / per_page), ceil(len(releases) / COLUMNS)
    page, columns = _clamp(chosen.get("page"), pages), _clamp(chosen.get("columns"), column_windows)
    shown_partners = partners[(page - 1) * per_page : page * per_page]
    shown_releases = releases[(columns - 1) * COLUMNS : columns * COLUMNS]
    params = {
        k: str(v) for k, v in chosen.items() if v and k in ("release", "partner", "jurisdiction")
    }

    cells = {
        (p.pk, r.pk): Cell(
            partner=p, release=r, blocked=not r.jurisdiction_allowed(str(p.jurisdiction))
        )
        for p in shown_partners
        for r in shown_releases
    }
    partner_ids = [p.pk for p in shown_partners]
    release_ids = [r.pk for r in shown_releases]
    if cells:
        _add_windows(cells, partner_ids, release_ids, {r.pk: r for r in shown_releases}, at)
        _add_grants(cells, partner_ids, release_ids)
    return Matrix(
        form=form,
        releases=shown_releases,
        rows=[Row(p, [cells[p.pk, r.pk] for r in shown_releases]) for p in shown_partners],
        page=page,
        pages=max(pages, 1),
        partners_total=len(partners),
        columns=columns,
        column_windows=max(column_windows, 1),
        releases_total=len(releases),
        params=params,
        per_page=per_page,
    )


def _add_windows(
    cells: dict[tuple[int, int], Cell],
    partner_ids: list[int],
    release_ids: list[int],
    releases: dict[int, Release],
    at: datetime,
) -> None:
    by_cell: dict[tuple[int, int], list[EmbargoWindow]] = {}
    windows = (
        EmbargoWindow.objects.filter(partner_id__in=partner_ids, release_id__in=release_ids)
        .only("id", "partner_id", "release_id", "tier", "opens_at", "closes_at", "embargo_lifts_at")
        .order_by("opens_at", "pk")
    )
    for window in windows:
        window.release = releases[window.release_id]  # read once, above: no query per row
        by_cell.setdefault((window.partner_id, window.release_id), []).append(window)
    for key, found in by_cell.items():
        cell = cells[key]
        cell.windows = len(found)
        cell.window = queries.display_window(found, at)
        if cell.window is not None:
            cell.state = states.window_state(cell.window, at).value
            cell.held = states.access_held(cell.state, cell.partner.status)


def _add_grants(
    cells: dict[tuple[int, int], Cell], partner_ids: list[int], release_ids: list[int]
) -> None:
    last_download = (
        AuditEvent.objects.filter(
            target_type=Grant._meta.label_lower,
            target_id=Cast(OuterRef("pk"), CharField()),
            action=AuditAction.DOWNLOAD_AUTHORIZED,
        )
        .order_by("-occurred_at")
        .values("occurred_at")[:1]
    )
    status = Grant.Status
    rows = (
        Grant.objects.filter(partner_id__in=partner_ids, checkpoint__release_id__in=release_ids)
        .values("partner_id", "checkpoint__release_id")
        .annotate(
            active=Count("pk", filter=Q(status=status.ACTIVE)),
            revoked=Count("pk", filter=Q(status=status.REVOKED)),
            expired=Count("pk", filter=Q(status=status.EXPIRED)),
            exhausted=Count("pk", filter=Q(status=status.EXHAUSTED)),
            quota=Sum("quota_bytes"),
            used=Sum("bytes_used"),
            last=Max(Subquery(last_download)),
        )
        .order_by()
    )
    for row in rows:
        cell = cells[row["partner_id"], row["checkpoint__release_id"]]
        cell.active, cell.revoked = row["active"], row["revoked"]
        cell.expired, cell.exhausted = row["expired"], row["exhausted"]
        cell.quota_bytes, cell.used_bytes = row["quota"] or 0, row["used"] or 0
        cell.last_download = row["last"]

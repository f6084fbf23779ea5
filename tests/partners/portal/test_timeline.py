"""The timeline SVG: date ticks, now, public-release and embargo-lift markers, windows
coloured by state with readable labels, grants inside windows, withdrawn releases, the
legend and the tooltips; read as XML, the way a browser reads it."""

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest
from django.template.loader import render_to_string

from partners import actions
from partners.portal import timeline as tl
from tests import factories as f
from tests.accessctl.test_portal import portal_client

pytestmark = pytest.mark.django_db

SVG = "{http://www.w3.org/2000/svg}"
DAY = timedelta(days=1)
# A Wednesday, so the period (a week before, 53 days after) holds known Mondays.
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def luminance(colour: str) -> float:
    """WCAG 2.x relative luminance of ``#rrggbb``."""
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def classes(element: ET.Element) -> set[str]:
    return set(element.get("class", "").split())


def titles(svg: ET.Element) -> list[str]:
    return [t.text or "" for t in svg.iter(f"{SVG}title")]


@pytest.fixture
def drawing():
    aurora = f.partner("aurora-gpu")
    tessel = f.partner("tessel-accel", jurisdiction="DE")
    v4 = f.release("v4", public_in=timedelta(0))
    v4.__class__.objects.filter(pk=v4.pk).update(public_release_at=NOW + 10 * DAY)
    v4.refresh_from_db()
    actions.set_window(
        actor=None,
        release=v4,
        partner=aurora,
        opens_at=NOW - 3 * DAY,
        closes_at=NOW + 30 * DAY,
        embargo_lifts_at=NOW + 12 * DAY,
    )
    # One day long: too short for its label, which goes beside it.
    actions.set_window(
        actor=None, release=v4, partner=tessel, opens_at=NOW + 20 * DAY, closes_at=NOW + 21 * DAY
    )
    v9 = f.release("v9", public_in=-DAY)
    f.window(v9, aurora, opens=-DAY, closes=10 * DAY)
    grant = f.grant(f.checkpoint(v9), aurora)
    v5 = f.release("v5", public_in=-DAY)
    f.window(v5, tessel, opens=-DAY, closes=5 * DAY)
    actions.withdraw_release(actor=f.staff("Security officer"), release=v5, reason="leak")
    return {"aurora": aurora, "tessel": tessel, "grant": grant}


def draw(at: datetime = NOW) -> tuple[tl.Timeline, ET.Element]:
    start, end = tl.period(at)
    drawing = tl.timeline(at=at, start=start, end=end, releases=tl.releases_in(start, end))
    svg = render_to_string("admin/accessctl/timeline_svg.html", {"tl": drawing})
    return drawing, ET.fromstring(svg)  # noqa: S314 (our own drawing, not untrusted input)


def test_the_axis_has_a_tick_a_day_and_a_dated_tick_each_monday(drawing):
    layout, svg = draw()
    ticks = [e for e in svg.iter(f"{SVG}line") if "tl-tick" in classes(e)]
    assert len(ticks) == 60  # the midnights from a week before to 53 days after
    labels = [e.text for e in svg.iter(f"{SVG}text") if "tl-tick-label" in classes(e)]
    assert labels == [
        "2026-11-30", "2026-12-07", "2026-12-14", "2026-12-21", "2026-12-28",
        "2027-01-04", "2027-01-11", "2027-01-18",
    ]  # fmt: skip
    xs = [float(e.get("x1")) for e in ticks]
    assert xs == sorted(xs) and layout.plot_left <= xs[0] and xs[-1] <= layout.plot_right


def test_now_is_a_red_line_labelled_today(drawing):
    layout, svg = draw()
    now = next(g for g in svg.iter(f"{SVG}g") if "tl-now" in classes(g))
    line = now.find(f"{SVG}line")
    assert line.get("stroke") == "#d32f2f"
    assert float(line.get("x1")) == layout.now_x == tl.Scale(*tl.period(NOW), 170.0, 1144.0)(NOW)
    assert "today" in "".join(now.itertext()) and "now 2026-12-02 12:00:00 UTC" in titles(now)


def test_each_release_has_its_public_release_marker_and_each_window_its_embargo_lift(drawing):
    _, svg = draw()
    groups = {g.get("data-release"): g for g in svg.iter(f"{SVG}g") if g.get("data-release")}
    assert list(groups) == ["v9", "v5", "v4"]  # by public release time
    public = [g for g in groups["v4"].iter(f"{SVG}g") if "tl-public" in classes(g)]
    assert len(public) == 1
    assert "v4: public release 2026-12-12 12:00:00 UTC" in titles(public[0])
    lifts = [p for p in groups["v4"].iter(f"{SVG}path") if "tl-lift" in classes(p)]
    assert "v4 x aurora-gpu: embargo lifts 2026-12-14 12:00:00 UTC" in titles(lifts[0])


def test_windows_are_coloured_by_state_and_labelled_with_their_dates(drawing):
    _, svg = draw()
    bars = {}
    for link in svg.iter(f"{SVG}a"):
        if "tl-window" in classes(link):
            row = link.find(f"{SVG}text").text
            bars[row] = link
    open_bar = bars["open 2026-11-29 to 2027-01-01"]
    assert "tl-open" in classes(open_bar)
    assert open_bar.find(f"{SVG}rect").get("fill") == tl.COLOURS["open"][0]
    assert open_bar.find(f"{SVG}text").get("fill") == "#ffffff"  # inside, on the fill
    short = bars["upcoming 2026-12-22 to 2026-12-23"]
    assert short.find(f"{SVG}text").get("fill") == tl.OUTSIDE_TEXT  # beside, on white
    rect, label = short.find(f"{SVG}rect"), short.find(f"{SVG}text")
    assert float(label.get("x")) >= float(rect.get("x")) + float(rect.get("width"))
    assert any("v4 x tessel-accel: upcoming" in t for t in titles(short))


def test_every_label_is_readable_on_what_it_is_drawn_on():
    """WCAG AAA (7:1) for every state's label on its fill, and for text on the page's
    backgrounds (white, the alternate band, a withdrawn release's band)."""
    for state, (fill, text) in tl.COLOURS.items():
        assert contrast(fill, text) >= 7, state
    for background in ("#ffffff", "#f5f7fa", "#fdecea"):
        assert contrast(tl.OUTSIDE_TEXT, background) >= 7, background


def test_grants_are_drawn_inside_their_window_with_their_tooltip(drawing):
    _, svg = draw()
    grant = drawing["grant"]
    marks = [a for a in svg.iter(f"{SVG}a") if "tl-grant" in classes(a)]
    assert len(marks) == 1 and "tl-grant-active" in classes(marks[0])
    assert marks[0].get("href") == f"/admin/partners/grant/{grant.pk}/change/"
    (title,) = titles(marks[0])
    assert title.startswith(f"grant #{grant.pk} (active) for step-1000: ")
    assert title.endswith("used 0 B of 9.8 KiB")
    row = next(
        g
        for g in svg.iter(f"{SVG}g")
        if g.get("data-partner") == "aurora-gpu"
        and any(a.get("href", "").endswith(f"/grant/{grant.pk}/change/") for a in g.iter(f"{SVG}a"))
    )
    window = next(a for a in row.iter(f"{SVG}a") if "tl-window" in classes(a)).find(f"{SVG}rect")
    mark = marks[0].find(f"{SVG}rect")
    left, right = float(window.get("x")), float(window.get("x")) + float(window.get("width"))
    assert left <= float(mark.get("x")) and float(mark.get("x")) + float(mark.get("width")) <= right
    top, bottom = float(window.get("y")), float(window.get("y")) + float(window.get("height"))
    label = float(
        next(a for a in row.iter(f"{SVG}a") if "tl-window" in classes(a))
        .find(f"{SVG}text")
        .get("y")
    )
    # Inside the bar, below its label's baseline (on the light track under the label).
    assert label < float(mark.get("y")) and float(mark.get("y")) + 2.5 <= bottom and top < label


def test_a_withdrawn_release_is_marked_and_its_windows_hatched(drawing):
    _, svg = draw()
    group = next(g for g in svg.iter(f"{SVG}g") if g.get("data-release") == "v5")
    assert "tl-release-withdrawn" in classes(group)
    assert "WITHDRAWN" in "".join(group.itertext())
    window = next(a for a in group.iter(f"{SVG}a") if "tl-window" in classes(a))
    assert "tl-withdrawn" in classes(window)
    assert window.find(f"{SVG}rect").get("fill") == "url(#tl-hatch)"
    assert window.find(f"{SVG}text").get("text-decoration") == "line-through"


def test_the_legend_names_every_colour(drawing):
    _, svg = draw()
    legend = next(g for g in svg.iter(f"{SVG}g") if "tl-legend" in classes(g))
    text = " ".join(legend.itertext())
    for word in (*tl.COLOURS, *(f"grant {s}" for s in tl.GRANT_COLOURS)):
        assert word in text
    for marker in ("now", "public release", "embargo lifts"):
        assert marker in text


def test_the_svg_has_no_script_and_no_external_reference(drawing, client):
    page = portal_client(client, f.staff("Release manager")).get("/admin/timeline/")
    svg = re.search(r'<svg class="timeline-svg".*?</svg>', page.content.decode(), re.S).group(0)
    assert "<script" not in svg and "http://" not in svg.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )
    assert "@import" not in svg and "font-face" not in svg
    ET.fromstring(svg)  # noqa: S314 (our own page) well-formed


def test_a_release_with_more_partners_than_drawn_says_how_many_more(drawing):
    start, end = tl.period(NOW)
    drawn = tl.timeline(at=NOW, start=start, end=end, releases=tl.releases_in(start, end), rows=1)
    svg = ET.fromstring(render_to_string("admin/accessctl/timeline_svg.html", {"tl": drawn}))  # noqa: S314
    v4 = next(g for g in svg.iter(f"{SVG}g") if g.get("data-release") == "v4")
    assert [r.get("data-partner") for r in v4.iter(f"{SVG}g") if r.get("data-partner")] == [
        "aurora-gpu"
    ]
    assert "and 1 more partner: see the timeline page" in "".join(v4.itertext())


def test_the_timeline_page_filters_and_pages_partners_and_releases(drawing, client, monkeypatch):
    monkeypatch.setattr(tl, "PARTNERS_PER_PAGE", 1)
    monkeypatch.setattr(tl, "RELEASES_PER_PAGE", 2)
    c = portal_client(client, f.staff("Release manager"))

    def drawn(query: str) -> tuple[set[str], list[str]]:
        page = c.get("/admin/timeline/" + query).content.decode()
        partners = set(re.findall(r'<g class="tl-row" data-partner="([^"]+)"', page))
        return partners, re.findall(r'class="tl-release[^"]*" data-release="([^"]+)"', page)

    # The period is around the real now here: v5, v9, v4 all have windows in it.
    assert drawn("") == ({"aurora-gpu"}, ["v9", "v5"])
    assert drawn("?page=2") == ({"tessel-accel"}, ["v9", "v5"])
    assert drawn("?page=2&columns=2") == ({"tessel-accel"}, ["v4"])
    assert drawn("?jurisdiction=DE") == ({"tessel-accel"}, ["v9", "v5"])
    assert drawn("?release=v4&partner=aurora-gpu") == ({"aurora-gpu"}, ["v4"])

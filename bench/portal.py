"""Benchmark: the portal's home, access matrix and timeline at 100 partners x 50 releases
x 5,000 grants, side by side with the same pages on a tiny data set and with a stock
admin list (partners) at the same size.

    .venv/bin/python bench/portal.py [--requests 30]

Needs PostgreSQL (DATABASE_URL's server; a database ``accessctl_bench_portal`` is made
anew). Each page is requested through Django's test client in this process (no network,
no web server: the page's own cost), signed in with both factors; the first request
warms the process and is not counted. Reports the median and the 90th percentile of
``--requests`` requests, the queries each page issued and the page's size, as Markdown.
The data is written by ``tests/partners/portal/world.py`` (the query-count test's).
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_SERVER = os.environ.get("DATABASE_URL", "postgres://postgres:postgres@127.0.0.1:5432/postgres")
DB_SERVER = _SERVER.rsplit("/", 1)[0] + "/postgres"  # where the database is made
DB_URL = _SERVER.rsplit("/", 1)[0] + "/accessctl_bench_portal"
PAGES = {
    "home, release manager (matrix, timeline, panels)": ("Release manager", "/admin/"),
    "home, superuser (every panel)": (None, "/admin/"),
    "access matrix, 25 partners x 6 releases": ("Release manager", "/admin/access/"),
    "timeline, 25 partners x 4 releases": ("Release manager", "/admin/timeline/"),
    "baseline: stock admin list of partners": ("Release manager", "/admin/partners/partner/"),
}


def setup() -> None:
    subprocess.run(
        ["psql", DB_SERVER, "-q", "-c", "DROP DATABASE IF EXISTS accessctl_bench_portal"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        ["psql", DB_SERVER, "-q", "-c", "CREATE DATABASE accessctl_bench_portal"],
        check=True,
        capture_output=True,
    )
    os.environ.update(
        DJANGO_SETTINGS_MODULE="bench.settings",
        DATABASE_URL=DB_URL,
        DJANGO_DEBUG="false",
        DJANGO_ALLOWED_HOSTS="testserver",  # the test client's host
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def client_for(role: str | None) -> Any:
    from django.test import Client
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from tests import factories as f

    user = f.staff(role) if role else f.superuser()
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    client = Client()
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return client


def measure(client: Any, url: str, n: int) -> dict[str, float]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    response = client.get(url)  # warm
    if response.status_code != 200:
        raise SystemExit(f"{url}: {response.status_code}")
    times = []
    for _ in range(n):
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    return {
        "median": statistics.median(times),
        "p90": statistics.quantiles(times, n=10)[-1],
        "queries": len(queries),
        "kib": len(response.content) / 1024,
    }


def analyze() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args()
    setup()
    from tests.partners.portal import world

    clients = {role: client_for(role) for role, _ in PAGES.values()}
    world.build(partners=3, releases=2, grants=10, prefix="tiny")
    analyze()
    tiny = {name: measure(clients[role], url, args.requests) for name, (role, url) in PAGES.items()}
    started = time.perf_counter()
    world.build(partners=100, releases=50, grants=5000, prefix="big")
    built = time.perf_counter() - started
    analyze()  # what autovacuum does after a bulk load: the planner's statistics
    large = {
        name: measure(clients[role], url, args.requests) for name, (role, url) in PAGES.items()
    }
    baseline = large["baseline: stock admin list of partners"]["median"]
    print(
        f"Data: +100 partners x 50 releases (5,000 windows) x 5,000 grants, written in {built:.1f} s."
    )
    print(
        f"{args.requests} requests per page, test client in one process, DEBUG off, "
        "statistics analyzed after each load.\n"
    )
    print(
        "| page | tiny: median ms | large: median ms | large: p90 ms | queries tiny / large "
        "| KiB | large / tiny | large / stock list |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in PAGES:
        t, big = tiny[name], large[name]
        print(
            f"| {name} | {t['median']:.1f} | {big['median']:.1f} | {big['p90']:.1f} "
            f"| {t['queries']} / {big['queries']} | {big['kib']:.0f} "
            f"| {big['median'] / t['median']:.2f} | {big['median'] / baseline:.2f} |"
        )


if __name__ == "__main__":
    main()

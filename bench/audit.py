"""Benchmark the audit log: sealing, export and offline verification of N events.

    .venv/bin/python bench/audit.py [--events 1000000]

Needs PostgreSQL (DATABASE_URL's server; a database ``accessctl_bench_audit`` is made
anew). Inserts N audit events with COPY (shaped like download authorizations, 40
partners), then measures, each in its own process so peak memory is its own:

- sealing: ``seal()`` over all N events (events/s) and the delay of sealing a fresh batch
  of 1,000 events written after the big seal;
- export of every event (JSONL with proofs, CSV, OCSF): seconds and peak RSS;
- verification of that export with the standalone verifier: seconds and peak RSS.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.run import PY, psql  # noqa: E402
from bench.run import env as bench_env  # noqa: E402

DB_SERVER = os.environ.get("DATABASE_URL", "postgres://postgres:postgres@127.0.0.1:5432/postgres")
DB_URL = DB_SERVER.rsplit("/", 1)[0] + "/accessctl_bench_audit"

DJANGO = """
import django, json, sys, time
django.setup()
step = sys.argv[1]
if step == "seal":
    from accessctl.audit.sealing import seal
    started = time.perf_counter()
    checkpoint = seal()
    print(json.dumps({"seconds": time.perf_counter() - started, "size": checkpoint.tree_size}))
elif step == "fresh":
    from django.utils import timezone
    from accessctl.audit.events import AuditAction, event
    from accessctl.audit.models import AuditEvent
    from accessctl.audit.sealing import seal
    AuditEvent.objects.bulk_create(
        event(AuditAction.DOWNLOAD_AUTHORIZED, actor=None, target_type="partners.grant",
              target_id=str(i), changes={"bytes": 1}) for i in range(1000)
    )
    written = timezone.now()
    checkpoint = seal()
    print(json.dumps({"seconds": (checkpoint.sealed_at - written).total_seconds()}))
elif step == "export":
    from django.contrib.auth import get_user_model
    from accessctl.audit.exports import request_export, write_export
    user = get_user_model().objects.create_superuser("bench", "b@x.example", "x")
    export = request_export(actor=user, filters={})
    started = time.perf_counter()
    done = write_export(export.pk)
    print(json.dumps({"seconds": time.perf_counter() - started, "events": done.events, "files": done.files}))
elif step == "jwks":
    from accessctl.signing.keys import jwks
    print(json.dumps(jwks()))
"""


def env(**extra: str) -> dict[str, str]:
    return {**bench_env(**extra), "DATABASE_URL": DB_URL}


def run(args: list[str], extra: dict[str, str]) -> tuple[dict, float]:
    """Run a child; its JSON output and its peak RSS in MB."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    out = subprocess.run(
        args, cwd=ROOT, env=env(**extra), check=True, capture_output=True, text=True
    ).stdout
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the largest child so far: run the big ones in order.
    return (
        json.loads(out.strip().splitlines()[-1]) if out.strip().startswith("{") else {"out": out}
    ), max(peak, before) / 1024


def insert_events(n: int) -> float:
    started = time.perf_counter()
    with psycopg.connect(DB_URL) as conn, conn.cursor() as cursor:
        with cursor.copy(
            "COPY audit_auditevent (occurred_at, actor_label, action, outcome, reason, target_type,"
            " target_id, target_label, partner_id, client_address, request_id, changes)"
            " FROM STDIN"
        ) as copy:
            for i in range(n):
                allowed = i % 10 != 0
                copy.write_row(
                    (
                        "2026-11-01 00:00:00+00",
                        "system",
                        "download.authorized" if allowed else "download.denied",
                        "success" if allowed else "denied",
                        "" if allowed else "quota_exhausted",
                        "partners.grant",
                        str(i % 5000),
                        f"grant #{i % 5000}",
                        i % 40 + 1,
                        f"203.0.113.{i % 250}",
                        f"req-{i:08x}",
                        json.dumps(
                            {
                                "artifact": f"model-{i % 8:05d}.safetensors",
                                "bytes": 1 << 20,
                                "range": "bytes=0-1048575",
                            }
                        ),
                    )
                )
        conn.commit()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    options = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="accessctl-bench-audit-"))
    common = {"ACCESSCTL_DATA_DIR": str(data_dir)}
    psql("DROP DATABASE IF EXISTS accessctl_bench_audit")
    psql("CREATE DATABASE accessctl_bench_audit")
    subprocess.run([PY, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env(**common), check=True)
    inserted = insert_events(options.events)
    sealed, seal_rss = run([PY, "-c", DJANGO, "seal"], common)
    fresh, _ = run([PY, "-c", DJANGO, "fresh"], common)
    exported, export_rss = run([PY, "-c", DJANGO, "export"], common)
    jwks = data_dir / "jwks.json"
    jwks.write_text(json.dumps(run([PY, "-c", DJANGO, "jwks"], common)[0]))
    evidence = data_dir / "exports" / exported["files"]["jsonl"]["name"]
    started = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    check = subprocess.run(
        [
            sys.executable,
            str(ROOT / "client/accessctl_wire/verify_export.py"),
            str(evidence),
            "--public-key",
            str(jwks),
        ],
        capture_output=True,
        text=True,
    )
    verify_seconds = time.perf_counter() - started
    verify_rss = max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, before) / 1024
    n = options.events
    sizes = {k: v["size"] / 1e6 for k, v in exported["files"].items()}
    print(f"# Audit log with {n:,} events ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores)\n")
    print("| measure | result | target |")
    print("| --- | ---: | ---: |")
    print(f"| insert {n:,} events (COPY, for scale) | {inserted:.1f} s ({n / inserted:,.0f}/s) | |")
    print(
        f"| seal {n:,} events (leaves, tree nodes, signed checkpoint) | {sealed['seconds']:.1f} s ({n / sealed['seconds']:,.0f}/s), peak {seal_rss:.0f} MB | |"
    )
    print(
        f"| delay from writing 1,000 new events to their signed checkpoint | {fresh['seconds']:.2f} s + the beat interval (5 s) | < 10 s |"
    )
    print(
        f"| export {exported['events']:,} events (JSONL with proofs {sizes['jsonl']:.0f} MB, CSV {sizes['csv']:.0f} MB, OCSF {sizes['ocsf']:.0f} MB) | {exported['seconds']:.1f} s, peak {export_rss:.0f} MB (largest child so far) | < 60 s, < 300 MB |"
    )
    print(
        f"| verify the export offline (standalone verifier) | {verify_seconds:.1f} s, peak {verify_rss:.0f} MB; `{check.stdout.strip()}` | < 15 s |"
    )


if __name__ == "__main__":
    main()

"""Load test: authorization throughput with one and with two gunicorn processes.

    .venv/bin/python bench/scale.py [--seconds 10] [--rounds 3]

Both configurations share one PostgreSQL and one Redis (the broker and the rate-limit
cache, ``CACHE_URL``), with two Celery worker processes running (sealing the audit log
every 5 s as in production, so the database sees its real background load). wrk (2
threads, 32 connections, loopback, bounded in time) drives the nginx-mode authorization
endpoint; rounds are interleaved and medians reported.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.run import PY, env, gunicorn, median, psql, wrk  # noqa: E402

BROKER = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/13")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="accessctl-bench-scale-"))
    source = work / "source"
    source.mkdir()
    (source / "small.bin").write_bytes(os.urandom(4096))
    common = {
        "ACCESSCTL_DATA_DIR": str(work / "data"),
        "CELERY_BROKER_URL": BROKER,
        "CACHE_URL": BROKER.rsplit("/", 1)[0] + "/12",
        "ACCESSCTL_DOWNLOAD_MODE": "nginx",
    }
    psql("DROP DATABASE IF EXISTS accessctl_bench")
    psql("CREATE DATABASE accessctl_bench")
    subprocess.run([PY, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env(**common), check=True)
    seeded = json.loads(
        subprocess.run(
            [PY, "bench/seed.py", json.dumps({"small.bin": 4096}), str(source)],
            cwd=ROOT,
            env=env(**common),
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    redis.Redis.from_url(BROKER).flushdb()
    workers = [
        subprocess.Popen(
            [
                str(ROOT / ".venv/bin/celery"),
                "-A",
                "accessctl",
                "worker",
                "--concurrency",
                "1",
                "--hostname",
                f"w{i}@%h",
                "--loglevel",
                "WARNING",
                *(["--beat"] if i == 0 else []),
            ],
            cwd=ROOT,
            env=env(**common),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for i in range(2)
    ]
    grant, token = seeded["grant"], seeded["token"]
    auth = {"Authorization": f"Bearer {token}"}
    runs: dict[int, list[dict[str, float]]] = {1: [], 2: []}
    try:
        for _ in range(options.rounds):
            for processes in (1, 2):
                with gunicorn(common, workers=processes) as base:
                    grant_token = httpx.get(f"{base}/api/v1/grants/{grant}", headers=auth).json()[
                        "token"
                    ]
                    url = f"{base}/api/v1/grants/{grant}/files/small.bin"
                    headers = {**auth, "X-Grant-Token": grant_token}
                    wrk(url, 2, headers)
                    runs[processes].append(wrk(url, options.seconds, headers))
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=30)
    one, two = median(runs[1]), median(runs[2])
    print(
        f"# Authorization throughput by web processes ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores)\n"
    )
    print(
        f"gunicorn sync workers, wrk -t2 -c32, {options.rounds} interleaved rounds of {options.seconds}s, "
        "medians; one PostgreSQL, one Redis (broker and rate-limit cache), two Celery workers running.\n"
    )
    print("| web processes | requests/s | p50 ms | p99 ms | non-2xx/3xx | ratio |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for n, result in ((1, one), (2, two)):
        print(
            f"| {n} | {result['rps']:.0f} | {result['p50']:.1f} | {result['p99']:.1f} | "
            f"{result['errors']:.0f} | {result['rps'] / one['rps']:.2f} |"
        )


if __name__ == "__main__":
    main()

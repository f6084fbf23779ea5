"""Benchmarks of the download path, each side by side with its baseline in one run.

    .venv/bin/python bench/run.py [--seconds 10] [--rounds 3] [--big-mib 1024] [--skip-throughput]

Needs PostgreSQL (DATABASE_URL's server; a database ``accessctl_bench`` is made anew),
wrk, curl and nginx; scripts/test installs them. Results go to stdout as Markdown.

1. Authorization: ``GET /api/v1/grants/{id}/files/{path}`` (token auth, signed grant
   token, decision, quota debit, audit insert) against a bare DRF endpoint doing one
   SELECT by key and one INSERT; same gunicorn (2 sync workers), wrk, 32 connections.
2. Throughput of one large file through each mode against the server serving it
   directly: Django's FileResponse via gunicorn sendfile vs nginx static; nginx
   X-Accel-Redirect vs nginx static; presigned S3 redirect vs the presigned URL itself.
"""

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.servers import free_port, nginx, seaweedfs  # noqa: E402

PY = str(ROOT / ".venv" / "bin" / "python")
DB_SERVER = os.environ.get("DATABASE_URL", "postgres://postgres:postgres@127.0.0.1:5432/postgres")
DB_URL = DB_SERVER.rsplit("/", 1)[0] + "/accessctl_bench"


def env(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DATABASE_URL": DB_URL,
        "DJANGO_DEBUG": "false",
        "PYTHONPATH": str(ROOT),
        **extra,
    }


def psql(sql: str) -> None:
    subprocess.run(["psql", DB_SERVER, "-q", "-c", sql], check=True, capture_output=True)


@contextmanager
def gunicorn(extra: dict[str, str], workers: int = 2):
    port = free_port()
    process = subprocess.Popen(
        [
            str(ROOT / ".venv/bin/gunicorn"),
            "accessctl.wsgi",
            "-b",
            f"127.0.0.1:{port}",
            "-w",
            str(workers),
            "--worker-class",
            "sync",
            "--access-logfile",
            "/dev/null",
            "--error-logfile",
            "-",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env(**extra),
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.get(base + "/.well-known/jwks.json", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    try:
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def wrk(url: str, seconds: int, headers: dict[str, str]) -> dict[str, float]:
    args = ["wrk", "-t2", "-c32", f"-d{seconds}s", "--latency"]
    for key, value in headers.items():
        args += ["-H", f"{key}: {value}"]
    out = subprocess.run([*args, url], check=True, capture_output=True, text=True).stdout
    return parse_wrk(out)


# wrk prints durations with the unit it picks: us, ms, s, m (minutes) or h.
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def parse_wrk(out: str) -> dict[str, float]:
    """Requests/s, p50 and p99 (ms) and the non-2xx/3xx count of ``wrk --latency``'s
    report; SystemExit with the report when it is not one (wrk saw no answer)."""
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    latency = {}
    for pct in ("50", "99"):
        found = re.search(rf"^\s*{pct}(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", out, re.M)
        if found is None or rate is None:
            raise SystemExit(f"wrk's report has no {pct}th percentile:\n{out}")
        latency[pct] = float(found.group(1)) * _UNITS[found.group(2)]
    return {
        "rps": float(rate.group(1)) if rate else 0.0,
        "p50": latency["50"],
        "p99": latency["99"],
        "errors": int(non2xx.group(1)) if non2xx else 0,
    }


def median(runs: list[dict[str, float]]) -> dict[str, float]:
    """Per metric, the median over the rounds."""
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def curl_speed(url: str, headers: dict[str, str] | None = None, follow: bool = False) -> float:
    args = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{speed_download}"]
    if follow:
        args.append("-L")
    for key, value in (headers or {}).items():
        args += ["-H", f"{key}: {value}"]
    code, speed = subprocess.run(
        [*args, url], check=True, capture_output=True, text=True
    ).stdout.split()
    if code not in {"200", "206"}:
        raise RuntimeError(f"{url} answered {code}")
    return float(speed) / 1e6


def interleaved(rounds: int, **paths: tuple) -> dict[str, float]:
    """Median MB/s of each path, measured in turns so that drift hits all alike."""
    speeds: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(rounds):
        for name, (url, headers, follow) in paths.items():
            speeds[name].append(curl_speed(url, headers, follow))
    return {name: statistics.median(values) for name, values in speeds.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--transfers", type=int, default=5, help="large-file rounds")
    parser.add_argument("--big-mib", type=int, default=1024)
    parser.add_argument("--skip-throughput", action="store_true")
    options = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="accessctl-bench-"))
    data_dir, source = work / "data", work / "source"
    source.mkdir(parents=True)
    (source / "small.bin").write_bytes(os.urandom(4096))
    files = {"small.bin": 4096}
    if not options.skip_throughput:
        with (source / "big.bin").open("wb") as handle:
            for _ in range(options.big_mib):
                handle.write(os.urandom(1 << 20))
        files["big.bin"] = options.big_mib << 20

    psql("DROP DATABASE IF EXISTS accessctl_bench")
    psql("CREATE DATABASE accessctl_bench")
    common = {"ACCESSCTL_DATA_DIR": str(data_dir)}
    subprocess.run([PY, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env(**common), check=True)
    seeded = json.loads(
        subprocess.run(
            [PY, "bench/seed.py", json.dumps(files), str(source)],
            cwd=ROOT,
            env=env(**common),
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    grant, token = seeded["grant"], seeded["token"]
    auth = {"Authorization": f"Bearer {token}"}

    print(
        f"# accessctl benchmarks ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, load generator on the same cores)\n"
    )
    print("## Authorization endpoint vs bare DRF endpoint (SELECT + INSERT)\n")
    print(
        f"gunicorn 2 sync workers, wrk -t2 -c32, {options.rounds} interleaved rounds of "
        f"{options.seconds}s each, medians; PostgreSQL; 4 KiB file.\n"
    )
    print("| endpoint | requests/s | p50 ms | p99 ms | non-2xx/3xx | ratio rps | ratio p99 |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    s3_fake = {
        "ACCESSCTL_ARTIFACT_STORAGE": "s3",
        "ACCESSCTL_S3_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench-secret",
    }
    modes = [
        ("nginx (X-Accel-Redirect answer)", {"ACCESSCTL_DOWNLOAD_MODE": "nginx"}),
        ("s3 (302 to presigned URL)", {"ACCESSCTL_DOWNLOAD_MODE": "s3", **s3_fake}),
    ]
    for label, extra in modes:
        with gunicorn({**common, **extra}) as base:
            grant_token = httpx.get(f"{base}/api/v1/grants/{grant}", headers=auth).json()["token"]
            targets = {
                "baseline": (f"{base}/bench/baseline/{grant}", {}),
                "authorize": (
                    f"{base}/api/v1/grants/{grant}/files/small.bin",
                    {**auth, "X-Grant-Token": grant_token},
                ),
            }
            for url, headers in targets.values():  # warm up both
                wrk(url, 3, headers)
            runs: dict[str, list[dict[str, float]]] = {"baseline": [], "authorize": []}
            for _ in range(options.rounds):  # interleaved, so drift hits both alike
                for name, (url, headers) in targets.items():
                    runs[name].append(wrk(url, options.seconds, headers))
        baseline, result = median(runs["baseline"]), median(runs["authorize"])
        print(
            f"| baseline (bare DRF, SELECT + INSERT) | {baseline['rps']:.0f} | {baseline['p50']:.1f} | "
            f"{baseline['p99']:.1f} | {baseline['errors']:.0f} | 1.00 | 1.00 |"
        )
        print(
            f"| authorize, {label} | {result['rps']:.0f} | {result['p50']:.1f} | {result['p99']:.1f} | "
            f"{result['errors']:.0f} | {result['rps'] / baseline['rps']:.2f} | "
            f"{result['p99'] / baseline['p99']:.2f} |"
        )

    print("\n## Cost of auditing\n")
    print(
        "The same authorization (nginx mode) with and without its audit event (the "
        "benchmark-only switch `ACCESSCTL_BENCH_WITHOUT_AUDIT` drops the INSERT from the "
        f"debit statement); {options.rounds} interleaved rounds of {options.seconds}s, medians.\n"
    )
    print("| authorization | requests/s | p50 ms | p99 ms | ratio rps |")
    print("| --- | ---: | ---: | ---: | ---: |")
    nginx_mode = {**common, "ACCESSCTL_DOWNLOAD_MODE": "nginx"}
    with (
        gunicorn(nginx_mode) as audited,
        gunicorn({**nginx_mode, "ACCESSCTL_BENCH_WITHOUT_AUDIT": "1"}) as unaudited,
    ):
        grant_token = httpx.get(f"{audited}/api/v1/grants/{grant}", headers=auth).json()["token"]
        headers = {**auth, "X-Grant-Token": grant_token}
        targets = {
            "without audit event": f"{unaudited}/api/v1/grants/{grant}/files/small.bin",
            "with audit event": f"{audited}/api/v1/grants/{grant}/files/small.bin",
        }
        for url in targets.values():
            wrk(url, 3, headers)
        runs = {name: [] for name in targets}
        for _ in range(options.rounds):
            for name, url in targets.items():
                runs[name].append(wrk(url, options.seconds, headers))
    without = median(runs["without audit event"])
    for name in targets:
        result = median(runs[name])
        print(
            f"| {name} | {result['rps']:.0f} | {result['p50']:.1f} | {result['p99']:.1f} | "
            f"{result['rps'] / without['rps']:.2f} |"
        )

    if options.skip_throughput:
        return
    print(
        f"\n## Throughput of one {options.big_mib} MiB file (curl on loopback, {options.transfers} interleaved rounds, median MB/s)\n"
    )
    print("| path | MB/s | direct MB/s | ratio |")
    print("| --- | ---: | ---: | ---: |")
    artifact_root = data_dir / "artifacts"
    prefix = "/_artifacts/"
    with (
        gunicorn({**common, "ACCESSCTL_DOWNLOAD_MODE": "local"}) as local_base,
        gunicorn({**common, "ACCESSCTL_DOWNLOAD_MODE": "nginx"}) as accel_base,
        nginx(
            work / "nginx",
            upstream=accel_base,
            artifact_root=artifact_root,
            internal_prefix=prefix,
            direct_prefix="/direct/",
        ) as front,
    ):
        grant_token = httpx.get(f"{local_base}/api/v1/grants/{grant}", headers=auth).json()["token"]
        headers = {**auth, "X-Grant-Token": grant_token}
        speed = interleaved(
            options.transfers,
            direct=(f"{front}/direct/b1/t/big.bin", {}, False),
            local=(f"{local_base}/api/v1/grants/{grant}/files/big.bin", headers, False),
            accel=(f"{front}/api/v1/grants/{grant}/files/big.bin", headers, False),
        )
        direct, local, accel = speed["direct"], speed["local"], speed["accel"]
        print(
            f"| local: Django FileResponse via gunicorn sendfile | {local:.0f} | {direct:.0f} (nginx static) | {local / direct:.2f} |"
        )
        print(
            f"| nginx: X-Accel-Redirect through nginx | {accel:.0f} | {direct:.0f} (nginx static) | {accel / direct:.2f} |"
        )

    with seaweedfs(work / "weed") as s3:
        client = s3.client()
        client.upload_file(str(source / "big.bin"), s3.bucket, "b1/t/big.bin")
        s3_env = {
            **common,
            "ACCESSCTL_DOWNLOAD_MODE": "s3",
            "ACCESSCTL_ARTIFACT_STORAGE": "s3",
            "ACCESSCTL_S3_ENDPOINT_URL": s3.endpoint,
            "ACCESSCTL_S3_BUCKET": s3.bucket,
            "AWS_ACCESS_KEY_ID": s3.access_key,
            "AWS_SECRET_ACCESS_KEY": s3.secret_key,
        }
        with gunicorn(s3_env) as base:
            grant_token = httpx.get(f"{base}/api/v1/grants/{grant}", headers=auth).json()["token"]
            headers = {**auth, "X-Grant-Token": grant_token}
            presigned = httpx.get(
                f"{base}/api/v1/grants/{grant}/files/big.bin", headers=headers
            ).headers["Location"]
            speed = interleaved(
                options.transfers,
                direct=(presigned, {}, False),
                redirected=(f"{base}/api/v1/grants/{grant}/files/big.bin", headers, True),
            )
            direct, redirected = speed["direct"], speed["redirected"]
        print(
            f"| s3: 302 to presigned URL, followed | {redirected:.0f} | {direct:.0f} (presigned URL) | {redirected / direct:.2f} |"
        )


if __name__ == "__main__":
    main()

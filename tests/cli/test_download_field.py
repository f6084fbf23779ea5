"""The download against what the field has seen (issue 14), with a real ``accessctl``
process, a live server, a real S3 server and a real proxy: names that break unencoded
URLs, a 0-byte file, a proxy that drops Range, presigned URLs refused by storage, two
runs in one directory, ``kill -9`` at any point."""

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import wsgiref.handlers
from datetime import timedelta
from pathlib import Path

import botocore.auth
import pytest
from django.utils import timezone

from accessctl_wire.codes import Code, Exit
from partners.api import downloads
from partners.models import DownloadLease, Grant
from tests import factories as f
from tests.cli.proxy import proxy

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

CLI = str(Path(sys.executable).with_name("accessctl"))
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
# Names an unencoded URL gets wrong (`#` ends the path, `?` starts a query, `%` starts an
# escape), `+` and spaces, a quote, non-ASCII letters; subfolders; a 0-byte file.
FILES = {
    "config.json": b'{"layers": 2}',
    "empty.bin": b"",
    "shards/a #1?.safetensors": os.urandom(400_000),
    "shards/50% off+more.safetensors": os.urandom(300_000),
    'shards/deep/"quoted" ünïcødé 模型.safetensors': os.urandom(500_000),
}
TOTAL = sum(map(len, FILES.values()))
# One file for the storage refusals: its first chunk (64 KiB) is the first request.
ONE = {"model.safetensors": os.urandom(300_000)}
CHUNK = 64 << 10


@pytest.fixture
def make(live_server, tmp_path, settings):
    """``make(files)``: a checkpoint v5:step-1 of ``files`` in artifact storage (of the
    mode set up before the call), a partner with an open window, a grant and a token."""
    settings.ACCESSCTL_API_RATE = "1000000/min"

    def build(files, *, quota=100 << 20):
        partner = f.partner("aurora")
        release = f.release("v5", public_in=-DAY)
        checkpoint = f.stored_checkpoint(release, files, tag="step-1")
        f.window(release, partner)
        grant = f.grant(checkpoint, partner, quota_bytes=quota)
        return {
            "server": live_server.url,
            "secret": f.token(f.partner_user(partner)),
            "grant": grant,
            "files": files,
            "env": {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config")},
            "dir": tmp_path / "download",
        }

    return build


def command(world, *args, server=None):
    return [CLI, "--server", server or world["server"], "--token", world["secret"], *args]


def cli(world, *args, server=None, env=None):
    return subprocess.run(
        command(world, *args, server=server),
        capture_output=True,
        text=True,
        env=env or world["env"],
        timeout=120,
    )


def download(world, *extra):
    return ("download", "v5:step-1", "--dir", str(world["dir"]), "--quiet", *extra)


def used(world):
    return Grant.objects.get(pk=world["grant"].pk).bytes_used


def one_line(run):
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in run.stderr, run.stderr
    return lines[0]


def assert_verified(world):
    for name, content in world["files"].items():
        assert (world["dir"] / name).read_bytes() == content, name
    assert cli(world, "verify", str(world["dir"])).returncode == 0
    partial = world["dir"] / ".accessctl" / "partial"
    assert not [p for p in partial.rglob("*") if p.is_file()], "partial files left behind"


@pytest.mark.parametrize("mode", ["local", "s3"])
def test_names_that_need_encoding_and_a_zero_byte_file_download_and_verify(mode, request, make):
    if mode == "s3":
        request.getfixturevalue("s3_mode")
    world = make(FILES)
    run = cli(world, *download(world, "--chunk-size", "64K", "--connections", "4"))
    assert run.returncode == 0, run.stderr
    assert_verified(world)
    assert (world["dir"] / "empty.bin").stat().st_size == 0
    assert used(world) == TOTAL  # every byte authorized once


def test_a_zero_byte_file_is_asked_for_without_a_range(make, live_server):
    world = make(FILES)
    with proxy(live_server.url) as between:  # passes everything on; notes each Range
        run = cli(world, *download(world, "--chunk-size", "64K"), server=between.url)
    assert run.returncode == 0, run.stderr
    assert (world["dir"] / "empty.bin").read_bytes() == b""
    ranges = {(path, asked) for _, path, asked in between.seen if "/files/" in path}
    assert {asked for path, asked in ranges if path.endswith("/empty.bin")} == {None}
    others = [asked for path, asked in ranges if not path.endswith("/empty.bin")]
    assert others and all(re.fullmatch(r"bytes=(\d+)-(\d+)", str(r)) for r in others), others


def test_a_proxy_that_drops_range_gets_each_file_whole_once(make, live_server):
    world = make(FILES)
    with proxy(live_server.url, drop_range=True) as between:
        run = cli(
            world,
            *download(world, "--chunk-size", "64K", "--connections", "4"),
            server=between.url,
        )
    assert run.returncode == 0, run.stderr
    assert_verified(world)
    asked = [path for _, path, _ in between.seen if "/files/" in path]
    # The first 200 to a ranged request said Range is dropped: from then on each file was
    # asked for once, whole; nothing was retried in the hope of a 206.
    assert sorted(asked) == sorted(set(asked)) and len(asked) == len(FILES)
    assert used(world) == TOTAL


def test_a_proxys_page_answered_for_a_file_is_never_saved_nor_retried(make, live_server):
    world = make(FILES)
    page = b"<html><body>Access to this site is blocked by policy.</body></html>"
    with proxy(live_server.url, page=page) as between:
        run = cli(world, *download(world, "--connections", "4"), server=between.url)
    assert run.returncode == Exit.VERIFICATION
    assert re.fullmatch(
        r"error: [^:]+: asked for \d+ bytes, the answer \(HTTP 200\) announces 67: something "
        r"between you and the server \(a proxy\?\) changes the answers",
        one_line(run),
    ), run.stderr
    assert len([path for _, path, _ in between.seen if "/files/" in path]) == 1
    assert not [p for p in world["dir"].rglob("*") if p.is_file() and p.name in FILES]


# Storage refusing presigned URLs (s3 mode): one new authorization, then the cause.


def test_a_presigned_url_refused_once_is_replaced_by_one_new_authorization(
    s3_mode, make, monkeypatch
):
    world = make(ONE)
    real, signed = botocore.auth.get_current_datetime, []

    def first_an_hour_behind():
        signed.append(1)
        return real() - (HOUR if len(signed) == 1 else timedelta(0))

    monkeypatch.setattr(botocore.auth, "get_current_datetime", first_an_hour_behind)
    run = cli(world, *download(world, "--chunk-size", "64K", "--connections", "4"))
    assert run.returncode == 0, run.stderr
    assert_verified(world)
    # The refused URL's range, authorized again, is within the file's lease: paid once.
    assert used(world) == len(ONE["model.safetensors"])


def test_a_server_clock_behind_storage_is_named_with_the_measured_offset(
    s3_mode, make, monkeypatch
):
    world = make(ONE)
    real_now, real_date = botocore.auth.get_current_datetime, wsgiref.handlers.format_date_time
    # The server's machine an hour behind: it signs URLs, and dates its answers, an hour
    # in the past; storage's clock is right.
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: real_now() - HOUR)
    monkeypatch.setattr(wsgiref.handlers, "format_date_time", lambda t: real_date(t - 3600))
    run = cli(world, *download(world, "--chunk-size", "64K", "--connections", "4"))
    assert run.returncode == Exit.NETWORK == Code.STORAGE_REFUSED.exit
    line = one_line(run)
    assert line.startswith(
        "error: storage refused the presigned URL for model.safetensors, also after a new "
        "authorization: clock skew: the server's clock is "
    ), line
    behind = re.search(r"the server's clock is (\d+) s behind storage's", line)
    assert behind and 3595 <= int(behind.group(1)) <= 3605, line
    offsets = re.search(r"this machine's clock: server -(\d+) s, storage [-+](\d+(\.\d)?) s", line)
    assert offsets and 3595 <= int(offsets.group(1)) <= 3605 and float(offsets.group(2)) < 5
    assert line.endswith("(storage_refused, HTTP 403 from storage)"), line
    assert "AccessDenied: Request has expired" in line
    # Two authorizations of one range, the refused one and the one new one, paid once
    # (the lease): the other connections waited for the first answer, and nothing was
    # retried blindly.
    assert used(world) == CHUNK
    assert not (world["dir"] / "model.safetensors").exists()


def test_a_presigned_url_that_expires_on_the_way_says_so(s3_mode, make, settings):
    settings.ACCESSCTL_PRESIGN_SECONDS = 1
    world = make(ONE)
    # The way to storage takes 2.5 s (a forward proxy, as HTTP_PROXY); to the API, none.
    with proxy(delay=2.5) as slow:
        env = {**world["env"], "HTTP_PROXY": slow.url, "http_proxy": slow.url}
        env.update(NO_PROXY="localhost", no_proxy="localhost")
        run = cli(world, *download(world, "--chunk-size", "64K"), env=env)
    assert run.returncode == Exit.NETWORK
    line = one_line(run)
    took = re.search(
        r"authorization: the URL expired before it was used: valid 1\.0 s, it reached storage "
        r"(\d+\.\d) s after the server answered",
        line,
    )
    assert took and 2.5 <= float(took.group(1)) < 30, line
    assert used(world) == CHUNK


def test_a_presigned_url_refused_within_its_time_names_revoked_credentials(s3_mode, make, settings):
    world = make(ONE)
    artifacts = settings.STORAGES["artifacts"]
    settings.STORAGES = {
        **settings.STORAGES,
        "artifacts": {**artifacts, "OPTIONS": {**artifacts["OPTIONS"], "secret_key": "revoked"}},
    }
    run = cli(world, *download(world, "--chunk-size", "64K"))
    assert run.returncode == Exit.NETWORK
    line = one_line(run)
    assert "authorization: not for its time (valid until " in line, line
    assert "storage credentials may have been revoked or rotated" in line
    assert "storage said SignatureDoesNotMatch" in line
    assert used(world) == CHUNK


# One run per directory.


def test_a_second_download_into_the_same_directory_is_refused_while_the_first_runs(
    make, live_server
):
    world = make(FILES)
    lock = world["dir"] / ".accessctl" / "lock"
    # The first run goes through a proxy that delays every request: it is still running.
    with proxy(live_server.url, delay=0.2) as slow:
        first = subprocess.Popen(
            command(
                world,
                *download(world, "--chunk-size", "16K", "--connections", "1"),
                server=slow.url,
            ),
            env=world["env"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 60
            while not (lock.exists() and lock.read_text().strip() == str(first.pid)):
                assert time.monotonic() < deadline and first.poll() is None, first.stderr
                time.sleep(0.01)
            second = cli(world, *download(world))
            assert second.returncode == Exit.BUSY == Code.DIRECTORY_LOCKED.exit == 12
            assert one_line(second) == (
                f"error: {world['dir']} is in use by another accessctl download "
                f"(pid {first.pid}): wait for it to finish, or download into another --dir"
            )
        finally:
            first.send_signal(signal.SIGKILL)
            first.communicate()
    # The kernel released the killed run's lock: the next run takes it, and resumes.
    third = cli(world, *download(world))
    assert third.returncode == 0, third.stderr
    assert_verified(world)


# kill -9 at any point of a multi-file download, then resume.


@pytest.mark.parametrize("seed", [7, 1234, 98765])
def test_kill_9_at_random_points_then_resume_verifies_every_file(seed, make):
    rng = random.Random(seed)  # noqa: S311 (where to kill, not a secret)
    world = make(FILES)
    args = download(
        world,
        "--chunk-size",
        rng.choice(["16K", "32K", "64K"]),
        "--connections",
        rng.choice(["1", "2", "4"]),
    )
    kills = 3
    for _ in range(kills):
        process = subprocess.Popen(
            command(world, *args),
            env=world["env"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # Anywhere: starting, asking the API, mid-chunk, between a file's last chunk and
        # its rename, or after it finished.
        time.sleep(rng.uniform(0.0, 2.5))
        process.send_signal(signal.SIGKILL)
        process.wait()
    run = cli(world, *args)
    assert run.returncode == 0, run.stderr
    assert_verified(world)
    debited = used(world)
    # Every byte paid for exactly once: the chunks in flight at each kill are asked for
    # again on resume, within their file's lease (before the lease: 1.03 to 1.14 x TOTAL).
    assert debited == TOTAL


# s3 mode: one authorization per file, its chunks fetched from one presigned URL.

# Several chunks each (64 KiB), a one-chunk file and a 0-byte file; in this order in the
# manifest, so the run's first request is for a file of several chunks.
SHARDS = {
    "a.safetensors": os.urandom(300_000),
    "b.safetensors": os.urandom(200_000),
    "c.json": b'{"layers": 2}',
    "d/empty.bin": b"",
}


def file_requests(between):
    """(file path, Range) of each request the API got for a file, in order."""
    return [
        (path.split("/files/", 1)[1], asked) for _, path, asked in between.seen if "/files/" in path
    ]


def test_s3_mode_authorizes_each_new_file_once_and_charges_every_byte_once(
    s3_mode, make, live_server
):
    world = make(SHARDS)
    with proxy(live_server.url) as between:  # in front of the API only: storage is direct
        run = cli(
            world,
            *download(world, "--chunk-size", "64K", "--connections", "4"),
            server=between.url,
        )
    assert run.returncode == 0, run.stderr
    assert_verified(world)
    asked = file_requests(between)
    # The run's first request goes alone and ranged (the mode is not known yet): its 302
    # says redirects; from then on each file is authorized once, whole (no Range), and its
    # chunks come from that URL with their Range. The first file: +1, its whole-file
    # authorization charged only the bytes the first did not cover (the lease).
    assert asked[0] == ("a.safetensors", f"bytes=0-{CHUNK - 1}")
    assert sorted(asked[1:]) == [(name, None) for name in sorted(SHARDS)]
    assert used(world) == sum(map(len, SHARDS.values()))


def on_disk(world):
    """What a resume of ``world``'s download starts from: {file: chunks recorded done, as
    (first, last) byte spans} for the files partly there, and the bytes still missing."""
    partly, missing = {}, 0
    for name, content in world["files"].items():
        final = world["dir"] / name
        if final.exists() and final.read_bytes() == content:
            continue
        state = world["dir"] / ".accessctl" / "partial" / (name + ".json")
        if not (state.exists() and state.with_suffix(".part").exists()):
            missing += len(content)
            continue
        record = json.loads(state.read_text())
        spans = [
            (n * record["chunk"], min(len(content), (n + 1) * record["chunk"]) - 1)
            for n in record["done"]
        ]
        missing += len(content) - sum(last - first + 1 for first, last in spans)
        if spans:
            partly[name] = spans
    return partly, missing


def kill_9_after(world, args, seconds, env):
    process = subprocess.Popen(
        command(world, *args), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    time.sleep(seconds)
    process.send_signal(signal.SIGKILL)
    process.wait()


@pytest.mark.parametrize("seed", [11, 4242])
def test_s3_kill_9_then_resume_pays_the_checkpoint_once_and_only_missing_bytes_after_the_lease(
    seed, s3_mode, make, live_server
):
    rng = random.Random(seed)  # noqa: S311 (where to kill, not a secret)
    world = make(FILES)
    args = download(
        world, "--chunk-size", rng.choice(["16K", "32K"]), "--connections", rng.choice(["1", "2"])
    )
    # The way to storage (a forward proxy, as HTTP_PROXY) delays each request, so the
    # kills land mid-download; the API is reached directly.
    with proxy(delay=0.03) as slow:
        env = {**world["env"], "HTTP_PROXY": slow.url, "http_proxy": slow.url}
        env.update(NO_PROXY="localhost", no_proxy="localhost")
        for _ in range(2):
            kill_9_after(world, args, rng.uniform(0.3, 2.0), env)
        # Within the leases: whatever was authorized and not kept is not paid again.
        run = cli(world, *args)
        assert run.returncode == 0, run.stderr
        assert_verified(world)
        assert used(world) == TOTAL
        # Again from a partial state, after every lease expired: only missing bytes are
        # paid, and a file partly there is asked for by its missing chunks only.
        shutil.rmtree(world["dir"])
        kill_9_after(world, args, rng.uniform(0.5, 2.0), env)
    DownloadLease.objects.update(expires_at=timezone.now() - HOUR)
    before, (partly, missing) = used(world), on_disk(world)
    with proxy(live_server.url) as between:
        run = cli(world, *args, server=between.url)
    assert run.returncode == 0, run.stderr
    assert_verified(world)
    assert used(world) - before == missing
    for name, asked in file_requests(between):
        name = urllib.parse.unquote(name)
        if name in partly:
            first, last = map(int, re.fullmatch(r"bytes=(\d+)-(\d+)", str(asked)).groups())
            assert not any(a <= last and first <= b for a, b in partly[name]), (name, asked)


def skew_presigned_urls(monkeypatch, behind) -> None:
    """Sign the n-th presigned URL the server makes an hour behind storage's clock when
    ``behind(n)``: the signing clock of those URLs only, counted by URL (the signer may
    read the clock more than once per URL, e.g. to learn a storage's URL prefix)."""
    real_clock, real_presign, made = botocore.auth.get_current_datetime, downloads.presigned_get, []
    skewed = threading.local()

    def clock():
        return real_clock() - (HOUR if getattr(skewed, "on", False) else timedelta(0))

    def presign(*args, **kwargs):
        made.append(1)
        skewed.on = behind(len(made))
        try:
            return real_presign(*args, **kwargs)
        finally:
            skewed.on = False

    monkeypatch.setattr(botocore.auth, "get_current_datetime", clock)
    monkeypatch.setattr(downloads, "presigned_get", presign)


def test_a_refused_shared_url_is_replaced_once_for_every_connection_without_double_charge(
    s3_mode, make, live_server, monkeypatch
):
    world = make(ONE)
    skew_presigned_urls(monkeypatch, lambda n: n == 2)  # the second URL an hour behind
    with proxy(live_server.url) as between:
        run = cli(
            world,
            *download(world, "--chunk-size", "64K", "--connections", "4"),
            server=between.url,
        )
    assert run.returncode == 0, run.stderr
    assert_verified(world)
    # The first (ranged) request, the whole-file URL that storage refused (to the four
    # connections sharing it), and one new whole-file URL that they all took.
    assert file_requests(between) == [
        ("model.safetensors", f"bytes=0-{CHUNK - 1}"),
        ("model.safetensors", None),
        ("model.safetensors", None),
    ]
    assert used(world) == len(ONE["model.safetensors"])


def test_a_shared_url_refused_again_after_a_new_one_names_the_cause(
    s3_mode, make, live_server, monkeypatch
):
    world = make(ONE)
    skew_presigned_urls(monkeypatch, lambda n: n > 1)  # every URL after the first
    run = cli(world, *download(world, "--chunk-size", "64K", "--connections", "4"))
    assert run.returncode == Exit.NETWORK == Code.STORAGE_REFUSED.exit
    line = one_line(run)
    assert line.startswith(
        "error: storage refused the presigned URL for model.safetensors, also after a new "
        "authorization: clock skew: the server's clock is "
    ), line
    # The first chunk, then the rest of the file once: the refused URLs' renewals are
    # within the lease.
    assert used(world) == len(ONE["model.safetensors"])
    assert not (world["dir"] / "model.safetensors").exists()

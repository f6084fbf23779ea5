"""The partner CLI end to end: a real ``accessctl`` process against a live server."""

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from accessctl_wire.codes import Code, Exit
from partners import actions
from partners.models import Grant
from tests import factories as f

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

CLI = str(Path(sys.executable).with_name("accessctl"))
ROOT = Path(__file__).resolve().parents[2]
DAY = timedelta(days=1)
BIG = os.urandom(8 << 20)
FILES = {
    "model-00001.safetensors": BIG,
    "model-00002.safetensors": os.urandom(700_000),
    "config.json": b'{"layers": 2}',
}


@pytest.fixture
def world(live_server, tmp_path, settings):
    settings.ACCESSCTL_API_RATE = "1000000/min"
    partner = f.partner("aurora")
    release = f.release("v3", public_in=-DAY)
    checkpoint = f.stored_checkpoint(release, FILES, tag="step-1")
    f.window(release, partner)
    grant = f.grant(checkpoint, partner, quota_bytes=10 * len(BIG))
    secret = f.token(f.partner_user(partner))
    return {
        "server": live_server.url,
        "secret": secret,
        "grant": grant,
        "partner": partner,
        "release": release,
        "env": {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config")},
        "dir": tmp_path / "download",
    }


def cli(world, *args, **kwargs):
    return subprocess.run(
        [CLI, "--server", world["server"], "--token", world["secret"], *args],
        capture_output=True,
        text=True,
        env=world["env"],
        timeout=120,
        **kwargs,
    )


def one_line(run):
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in run.stderr, run.stderr
    return lines[0]


def download_args(world, *extra):
    return ("download", "v3:step-1", "--dir", str(world["dir"]), "--quiet", *extra)


def test_login_saves_the_token_privately_and_never_prints_it(world):
    run = subprocess.run(
        [CLI, "--server", world["server"], "login", "--token-stdin"],
        input=world["secret"] + "\n",
        capture_output=True,
        text=True,
        env=world["env"],
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert "Logged in" in run.stdout and "aurora" in run.stdout
    config = Path(world["env"]["XDG_CONFIG_HOME"]) / "accessctl" / "config.json"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    whoami = subprocess.run(
        [CLI, "whoami"], capture_output=True, text=True, env=world["env"], timeout=60
    )
    assert whoami.returncode == 0 and "aurora" in whoami.stdout
    for output in (run.stdout, run.stderr, whoami.stdout, whoami.stderr):
        assert world["secret"] not in output and world["secret"][12:] not in output


def test_login_takes_the_server_after_the_command_as_the_readme_shows(world, tmp_path):
    run = subprocess.run(
        [CLI, "login", "--server", world["server"], "--token-stdin"],
        input=world["secret"] + "\n",
        capture_output=True,
        text=True,
        env=world["env"],
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert "Logged in" in run.stdout and "aurora" in run.stdout
    after = subprocess.run(
        [CLI, "whoami", "--server", world["server"], "--token", world["secret"]],
        capture_output=True,
        text=True,
        env={**world["env"], "XDG_CONFIG_HOME": str(tmp_path / "elsewhere")},
        timeout=60,
    )
    assert after.returncode == 0 and "aurora" in after.stdout, after.stderr
    # Not logged in: the hint is the form that just worked.
    unset = {k: v for k, v in world["env"].items() if not k.startswith("ACCESSCTL_")}
    hint = subprocess.run(
        [CLI, "releases"],
        capture_output=True,
        text=True,
        env={**unset, "XDG_CONFIG_HOME": str(tmp_path / "nobody")},
        timeout=60,
    )
    assert hint.returncode == Exit.USAGE
    assert one_line(hint) == "error: not logged in: run `accessctl login --server URL` first"


def test_bad_arguments_are_one_line_with_the_usage_status(tmp_path):
    run = subprocess.run(
        [CLI, "download", "v3:step-1"],
        capture_output=True,
        text=True,
        env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path)},
        timeout=60,
    )
    assert run.returncode == Exit.USAGE
    assert one_line(run) == (
        "error: the following arguments are required: --dir (see `accessctl download --help`)"
    )


def test_lists_releases_checkpoints_and_grants_with_quota_left(world):
    releases = cli(world, "releases")
    assert releases.returncode == 0 and "v3" in releases.stdout and "open" in releases.stdout
    checkpoints = cli(world, "checkpoints", "v3")
    assert "v3:step-1" in checkpoints.stdout and "3" in checkpoints.stdout
    grants = cli(world, "grants")
    assert grants.returncode == 0 and "v3:step-1" in grants.stdout and "80.0 MiB" in grants.stdout


# Text the CLI prints that rich would read as markup or emoji codes if it were let to.
MARKUP = ["[/beta]", "[bold]", ":smile:", "[link=x]y[/link]"]


@pytest.mark.parametrize("text", MARKUP)
def test_names_and_paths_print_as_they_are_never_as_markup(world, text):
    """A release's name, a partner's legal name and the download directory come from
    people; every command prints them exactly (a closing tag once made every command that
    printed it end in a stack trace; an opening one vanished)."""
    world["release"].name = f"Frontier {text} preview"
    world["release"].save(update_fields=["name"])
    world["partner"].legal_name = f"Aurora {text} GPU"
    world["partner"].save(update_fields=["legal_name"])
    releases = cli(world, "releases")
    assert releases.returncode == 0 and "Traceback" not in releases.stderr, releases.stderr
    assert f"Frontier {text} preview" in releases.stdout.replace("\n", " ")
    whoami = cli(world, "whoami")
    assert whoami.returncode == 0, whoami.stderr
    assert f"Aurora {text} GPU" in whoami.stdout
    world["dir"] = Path(f"{world['dir'].parent}/download {text}")  # "/" in it: a subfolder
    run = cli(world, *download_args(world))
    assert run.returncode == 0, run.stderr
    assert f"in {world['dir']}, verified" in run.stdout
    check = cli(world, "verify", str(world["dir"]))
    assert check.returncode == 0 and f"OK every file in {world['dir']} matches" in check.stdout


def test_download_verifies_every_file_and_verify_detects_corruption(world):
    run = cli(world, *download_args(world, "--chunk-size", "1M", "--connections", "4"))
    assert run.returncode == 0, run.stderr
    assert "verified against the signed manifest" in run.stdout
    for name, content in FILES.items():
        assert (world["dir"] / name).read_bytes() == content
    assert cli(world, "verify", str(world["dir"])).returncode == 0
    shard = world["dir"] / "model-00002.safetensors"
    data = bytearray(shard.read_bytes())
    data[1000] ^= 0xFF
    shard.write_bytes(bytes(data))
    check = cli(world, "verify", str(world["dir"]))
    assert check.returncode == 1
    assert "FAIL model-00002.safetensors: SHA-256 differs from the signed manifest" in check.stderr
    again = cli(world, *download_args(world))  # repairs only what is wrong
    assert again.returncode == 0 and "1 downloaded, 2 already there" in again.stdout


def test_include_patterns_choose_files(world):
    run = cli(world, *download_args(world, "--include", "*.json"))
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in world["dir"].iterdir() if p.is_file()) == ["config.json"]


def start_slow(world, chunk=64 << 10):
    """A slow download (one connection, small chunks) of the big file, once 20 chunks are
    done: (process, state file, chunk size)."""
    process = subprocess.Popen(
        [
            CLI,
            "--server",
            world["server"],
            "--token",
            world["secret"],
            *download_args(
                world, "--connections", "1", "--chunk-size", str(chunk), "--include", "model-00001*"
            ),
        ],
        env=world["env"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    state = world["dir"] / ".accessctl" / "partial" / "model-00001.safetensors.json"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if len(json.loads(state.read_text())["done"]) >= 20:
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.005)
    return process, state, chunk


def test_a_killed_download_resumes_without_fetching_finished_parts_again(world):
    process, state, chunk = start_slow(world)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    done = set(json.loads(state.read_text())["done"])
    assert 20 <= len(done) < len(BIG) // chunk, "the download ended before it was killed"
    time.sleep(0.3)  # the server finishes the request that was in flight
    used_before = Grant.objects.get(pk=world["grant"].pk).bytes_used
    run = cli(world, *download_args(world, "--include", "model-00001*", "--chunk-size", "1M"))
    assert run.returncode == 0, run.stderr
    assert (world["dir"] / "model-00001.safetensors").read_bytes() == BIG
    used_after = Grant.objects.get(pk=world["grant"].pk).bytes_used
    # The resume paid at most for the chunks not recorded as done (less: the chunks in
    # flight at the kill were paid for then, and are free again within the file's lease);
    # over both runs every byte was paid for exactly once.
    assert used_after - used_before <= len(BIG) - len(done) * chunk
    assert used_after == len(BIG)
    assert not (world["dir"] / ".accessctl" / "partial" / "model-00001.safetensors.part").exists()


def test_a_grant_revoked_mid_download_stops_with_a_clear_message(world):
    process, state, _ = start_slow(world)
    actions.revoke_grant(actor=None, grant=world["grant"], reason="leak")
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 7
    assert stderr.strip() == "error: This grant was revoked. (grant_revoked, HTTP 403)"
    assert state.exists()  # what was fetched is kept for a new grant
    assert not (world["dir"] / "model-00001.safetensors").exists()
    again = cli(world, *download_args(world))
    assert again.returncode == 7
    assert again.stderr.strip() == (
        f"error: your grant #{world['grant'].pk} for v3:step-1 is revoked; ask for a new one "
        "with `accessctl grants request v3:step-1`"
    )


def test_a_manifest_signed_by_another_key_is_refused(world, tmp_path):
    other = tmp_path / "other.pem"
    other.write_bytes(
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    run = cli(world, *download_args(world, "--public-key", str(other)))
    assert run.returncode == 1
    assert run.stderr.strip() == (
        f"error: the manifest's signature does not verify against the pinned key {other}: refusing it"
    )
    assert not (world["dir"] / "config.json").exists()


def test_refusals_are_one_line_with_their_exit_status(world):
    wrong = subprocess.run(
        [CLI, "--server", world["server"], "--token", "acx_" + "A" * 36, "whoami"],
        capture_output=True,
        text=True,
        env=world["env"],
        timeout=60,
    )
    assert wrong.returncode == 4 and len(wrong.stderr.strip().splitlines()) == 1
    assert (
        "(token_malformed, HTTP 401)" in wrong.stderr or "(token_invalid, HTTP 401)" in wrong.stderr
    )
    actions.suspend_partner(actor=None, partner=world["partner"], reason="audit")
    suspended = cli(world, *download_args(world))
    assert suspended.returncode == 5
    assert suspended.stderr.strip() == (
        "error: Your organisation's access is suspended. (partner_suspended, HTTP 403)"
    )
    unknown = cli(world, "download", "v3:nope", "--dir", str(world["dir"]))
    assert unknown.returncode == 5  # the caller rules come first: still suspended
    nothing = subprocess.run(
        [CLI, "--server", "http://127.0.0.1:9", "--token", world["secret"], "whoami"],
        capture_output=True,
        text=True,
        env=world["env"],
        timeout=120,
    )
    assert nothing.returncode == 3 and nothing.stderr.startswith("error: giving up after")


def test_asking_again_for_a_grant_you_hold_exits_with_the_grant_status(world):
    run = cli(world, "grants", "request", "v3:step-1")
    assert run.returncode == Code.GRANT_EXISTS.exit == Exit.GRANT == 7  # not 4, the token's
    assert one_line(run).endswith("(grant_exists, HTTP 409)"), run.stderr


class CaptivePortal(BaseHTTPRequestHandler):
    """What a hotel network answers to any address: 200 and a sign-in page."""

    def do_GET(self):
        page = b"<html>Sign in to the guest network</html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def log_message(self, format, *args):
        pass


def test_an_answer_that_is_not_the_apis_json_is_one_line(world):
    portal = HTTPServer(("127.0.0.1", 0), CaptivePortal)
    thread = threading.Thread(target=portal.serve_forever)
    thread.start()
    try:
        run = subprocess.run(
            [
                CLI,
                "--server",
                f"http://127.0.0.1:{portal.server_address[1]}",
                "--token",
                world["secret"],
                "whoami",
            ],
            capture_output=True,
            text=True,
            env=world["env"],
            timeout=60,
        )
    finally:
        portal.shutdown()
        portal.server_close()
        thread.join()
    assert run.returncode == Exit.NETWORK
    assert one_line(run) == (
        "error: /api/v1/me: the answer (HTTP 200, text/html) is not the API's JSON: is "
        "something between you and the server (a proxy, a login page)?"
    )


def test_the_cli_imports_neither_django_nor_celery():
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, accessctl_cli.main, accessctl_cli.fetch, accessctl_cli.verify, accessctl_cli.storage; print(sorted(m for m in sys.modules"
            " if m.split('.')[0] in {'django', 'celery', 'kombu', 'rest_framework', 'partners', 'accessctl'}))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        # This tree's code, not whatever the venv's editable install points at.
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT / "client")},
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == "[]"


def test_download_through_presigned_urls_from_the_s3_server(s3_mode, world, settings):
    settings.ACCESSCTL_PRESIGN_SECONDS = 5
    run = cli(world, *download_args(world, "--chunk-size", "1M", "--connections", "4"))
    assert run.returncode == 0, run.stderr
    for name, content in FILES.items():
        assert (world["dir"] / name).read_bytes() == content
    grant = Grant.objects.get(pk=world["grant"].pk)
    assert grant.bytes_used == sum(len(c) for c in FILES.values())  # one authorization per byte


def test_many_small_files_are_authorized_in_batches_from_the_s3_server(s3_mode, world):
    """s3 mode: the fresh files' whole-file authorizations come in batches (docs/cli.md),
    each file still decided, debited and recorded on its own, and paid for once."""
    from accessctl.audit.models import AuditEvent

    small = {f"shards/part-{i:03d}.bin": os.urandom(1000 + i) for i in range(60)}
    checkpoint = f.stored_checkpoint(world["release"], small, tag="step-2")
    grant = f.grant(checkpoint, world["partner"], quota_bytes=10 * sum(map(len, small.values())))
    run = cli(world, "download", "v3:step-2", "--dir", str(world["dir"]), "--quiet")
    assert run.returncode == 0, run.stderr
    for name, content in small.items():
        assert (world["dir"] / name).read_bytes() == content
    assert Grant.objects.get(pk=grant.pk).bytes_used == sum(map(len, small.values()))
    authorized = AuditEvent.objects.filter(action="download.authorized", target_id=str(grant.pk))
    batched = [e for e in authorized if e.changes.get("via") == "batch"]
    # The run's first file goes alone (it learns the mode), its batch authorization is
    # then free (the file's lease); every other file comes from a batch.
    assert len(batched) == len(small)
    assert sum(e.changes["charged"] for e in authorized) == sum(map(len, small.values()))
    assert not AuditEvent.objects.filter(action="download.denied").exists()


def test_a_grant_revoked_before_a_batch_is_reported_as_the_get_reports_it(s3_mode, world):
    small = {f"s{i}.bin": os.urandom(100) for i in range(5)}
    checkpoint = f.stored_checkpoint(world["release"], small, tag="step-3")
    grant = f.grant(checkpoint, world["partner"], quota_bytes=10_000)
    actions.revoke_grant(actor=None, grant=grant, reason="leak")
    run = cli(world, "download", "v3:step-3", "--dir", str(world["dir"]), "--quiet")
    assert run.returncode == 7, run.stderr
    assert "revoked" in run.stderr


def test_a_withdrawn_release_says_so_everywhere_and_never_suggests_a_new_grant(world):
    checkpoint = world["grant"].checkpoint
    actions.withdraw_release(actor=None, release=world["release"], reason="weights leaked")
    releases = cli(world, "releases")
    assert releases.returncode == 0 and "│ withdrawn │" in releases.stdout
    assert "│ open " not in releases.stdout
    checkpoints = cli(world, "checkpoints", "v3")
    assert "pulled" in checkpoints.stdout and "available" not in checkpoints.stdout
    for name in ("v3:step-1", str(checkpoint.pk)):
        for args in (
            ("download", name, "--dir", str(world["dir"]), "--quiet"),
            ("grants", "request", name),
        ):
            run = cli(world, *args)
            assert run.returncode == 5, (args, run.stderr)
            line = run.stderr.strip()
            assert line.startswith("error: release v3 was withdrawn by the lab at "), line
            assert "no grant can be issued" in line
            assert "grants request" not in line and "ask for a new" not in line


def test_a_pulled_checkpoint_says_so_and_never_suggests_a_new_grant(world):
    actions.pull_checkpoint(actor=None, checkpoint=world["grant"].checkpoint, reason="bad")
    run = cli(world, *download_args(world))
    assert run.returncode == 5
    assert run.stderr.strip() == (
        "error: checkpoint v3:step-1 was pulled by the lab; it can no longer be downloaded and "
        "no grant can be issued for it. Delete copies you hold and ask your contact at the lab"
    )

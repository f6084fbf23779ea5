"""The Hugging Face Hub-compatible endpoint (docs/hub.md), driven by the real
``huggingface_hub`` client from PyPI (its Python API, ``HfFileSystem`` and the ``hf``
command line) against a live server, in each download mode: Django sends the bytes
(local), nginx with the shipped internal location (nginx), or SeaweedFS after a 302 to a
presigned URL (s3). Every rule, debit and audit event is the v1 download's: the tests
check the grant's debit and the audit trail after each download and each refusal.

Mocked: nothing but a network fault. A TCP proxy (``FlakyProxy``) cuts one connection in
the middle of a file, as a dropped link would, so the client resumes with Range."""

import contextlib
import hashlib
import json
import logging
import os
import re
import shlex
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from django.utils import timezone
from huggingface_hub import HfApi, HfFileSystem, hf_hub_download, snapshot_download
from huggingface_hub import errors as hf_errors
from rest_framework.test import APIClient

from accessctl.audit.models import AuditEvent
from partners import actions
from partners.manifests import commit_id, manifest
from partners.models import AccessToken, Grant, Release
from tests import factories as f
from tests.servers import free_port, nginx

DAY = timedelta(days=1)
ORG = "lab"
SHARD = 300_000  # bytes: several chunks of the client's reads, so a cut lands mid-file

ALLOWED = [
    "config.json",
    "model-00001-of-00003.safetensors",
    "model-00002-of-00003.safetensors",
    "model-00003-of-00003.safetensors",
    "tokenizer/vocab.txt",
]
FILES = {
    **{name: os.urandom(SHARD) for name in ALLOWED if name.endswith(".safetensors")},
    "config.json": b'{"model_type": "test"}',
    "tokenizer/vocab.txt": b"a\nb\nc\n",
    "README.md": b"# not asked for\n",
    "optimizer/state.bin": os.urandom(1000),
}

LIVE = pytest.mark.django_db(transaction=True, serialized_rollback=True)


# -- the live server, in each mode ---------------------------------------------------------


@pytest.fixture(params=["local", "nginx", "s3"])
def endpoint(request, settings, tmp_path, _artifact_root, live_server):
    """The URL the client is pointed at (``HF_ENDPOINT``), for the mode."""
    settings.ACCESSCTL_DOWNLOAD_MODE = request.param
    if request.param == "s3":
        request.getfixturevalue("s3_mode")
    if request.param == "nginx":
        with nginx(
            tmp_path / "nginx",
            upstream=live_server.url,
            artifact_root=_artifact_root,
            internal_prefix=settings.ACCESSCTL_NGINX_INTERNAL_PREFIX,
        ) as base:
            yield base
        return
    yield live_server.url


@pytest.fixture
def local_endpoint(settings, live_server):
    settings.ACCESSCTL_DOWNLOAD_MODE = "local"
    return live_server.url


class World:
    """A partner member's token and a release with a checkpoint of ``FILES``, the window
    open and the public time past (a grant is issued on first use) unless told."""

    def __init__(self, *, public_in=-DAY, opens=-DAY, closes=20 * DAY, window=True, files=FILES):
        self.partner = f.partner()
        self.release = f.release(public_in=public_in)
        self.checkpoint = f.stored_checkpoint(self.release, files, tag="step-100")
        if window:
            f.window(self.release, self.partner, opens=opens, closes=closes)
        self.user = f.partner_user(self.partner)
        self.token = f.token(self.user)
        self.repo = f"{ORG}/{self.release.slug}"
        self.commit = commit_id(manifest(self.checkpoint))

    def grant(self) -> Grant | None:
        return Grant.objects.filter(partner=self.partner, checkpoint=self.checkpoint).first()

    def signed_files(self) -> dict[str, str]:
        """path -> SHA-256, from the manifest the lab signed (API v1)."""
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.token}")
        answer = client.get(f"/api/v1/checkpoints/{self.checkpoint.pk}/manifest").json()
        return {item["path"]: item["sha256"] for item in answer["manifest"]["files"]}


def sha256(path: Path | str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def events(action: str, **changes) -> list[AuditEvent]:
    found = AuditEvent.objects.filter(action=action).order_by("id")
    return [e for e in found if all(e.changes.get(k) == v for k, v in changes.items())]


def charged(path: str) -> list[int]:
    """The bytes charged by each authorized GET of ``path``, in order (HEADs charge 0)."""
    return [
        e.changes["charged"]
        for e in events("download.authorized", artifact=path, method="GET", via="hub")
    ]


# -- downloads -----------------------------------------------------------------------------


@LIVE
def test_the_hub_client_downloads_a_checkpoint_in_every_mode(endpoint, tmp_path, request):
    world = World()
    signed = world.signed_files()
    cache = tmp_path / "cache"

    folder = snapshot_download(
        world.repo,
        allow_patterns=["*.safetensors", "config.json", "tokenizer/*"],
        endpoint=endpoint,
        token=world.token,
        cache_dir=cache,
    )

    # Exactly the files asked for, each the bytes the lab signed, in the snapshot named by
    # the checkpoint's commit id (main: the newest checkpoint).
    assert Path(folder).name == world.commit
    got = sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*") if p.is_file())
    assert got == sorted(ALLOWED)
    for name in ALLOWED:
        assert sha256(Path(folder) / name) == signed[name]
    # The grant was issued on first use (after the public time) and charged once per
    # file: one authorized GET each, for the file's size; the HEADs cost nothing.
    grant = world.grant()
    assert grant is not None and grant.status == Grant.Status.ACTIVE
    assert len(events("grant.issued")) == 1
    assert grant.bytes_used == sum(len(FILES[name]) for name in ALLOWED)
    for name in ALLOWED:
        assert charged(name) == [len(FILES[name])]
        heads = events("download.authorized", artifact=name, method="HEAD", via="hub")
        assert heads and all(e.changes["bytes"] == 0 for e in heads)

    # The GET itself carries the Hub's headers too, whoever sends the bytes (nginx from
    # its internal location; in s3 mode the 302 to storage).
    raw = httpx.get(
        f"{endpoint}/{world.repo}/resolve/main/config.json",
        headers={"Authorization": f"Bearer {world.token}"},
    )
    assert raw.status_code == (302 if "s3" in request.node.name else 200)
    assert raw.headers["X-Repo-Commit"] == world.commit
    assert raw.headers["X-Linked-Size"] == str(len(FILES["config.json"]))
    assert not [h for h in raw.headers if h.lower().startswith("x-xet")]

    # One file by tag, again: from the cache after a HEAD, nothing charged.
    one = hf_hub_download(
        world.repo,
        "model-00002-of-00003.safetensors",
        revision="step-100",
        endpoint=endpoint,
        token=world.token,
        cache_dir=cache,
    )
    assert sha256(one) == signed["model-00002-of-00003.safetensors"]
    assert charged("model-00002-of-00003.safetensors") == [SHARD]
    assert charged("config.json") == [len(FILES["config.json"]), 0]  # the lease: once

    # A file the snapshot did not take, into a fresh cache, by commit id.
    other = hf_hub_download(
        world.repo,
        "optimizer/state.bin",
        revision=world.commit,
        endpoint=endpoint,
        token=world.token,
        cache_dir=tmp_path / "second",
    )
    assert sha256(other) == signed["optimizer/state.bin"]

    # An optional file that is not there: the client's own entry-not-found error, and
    # its cached absence under the commit.
    with pytest.raises(hf_errors.EntryNotFoundError):
        hf_hub_download(
            world.repo,
            "generation_config.json",
            endpoint=endpoint,
            token=world.token,
            cache_dir=cache,
        )
    assert list(cache.rglob(f".no_exist/{world.commit}/generation_config.json"))
    absent = _denied("file_not_found")
    assert (absent.target_type, absent.target_id) == ("partners.release", world.release.slug)
    assert absent.changes["artifact"] == "generation_config.json"

    # HfFileSystem (vLLM lists weights with it).
    fs = HfFileSystem(endpoint=endpoint, token=world.token)
    assert sorted(fs.ls(world.repo, detail=False)) == sorted(
        f"{world.repo}/{name}"
        for name in [
            "README.md",
            "config.json",
            "model-00001-of-00003.safetensors",
            "model-00002-of-00003.safetensors",
            "model-00003-of-00003.safetensors",
            "optimizer",
            "tokenizer",
        ]
    )
    assert fs.info(f"{world.repo}/tokenizer/vocab.txt")["size"] == len(FILES["tokenizer/vocab.txt"])

    # The `hf download` command line, as a partner runs it.
    out = tmp_path / "cli"
    run = subprocess.run(
        [
            str(Path(sys.executable).with_name("hf")),
            "download",
            world.repo,
            "config.json",
            "--local-dir",
            str(out),
        ],
        env={
            **os.environ,
            "HF_ENDPOINT": endpoint,
            "HF_TOKEN": world.token,
            "HF_HOME": str(tmp_path / "hf-home"),
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert (out / "config.json").read_bytes() == FILES["config.json"]
    assert world.token not in run.stdout + run.stderr


@LIVE
def test_the_tree_is_paginated_and_paths_info_answers(local_endpoint, settings):
    settings.ACCESSCTL_HUB_TREE_PAGE = 2
    world = World()
    api = HfApi(endpoint=local_endpoint, token=world.token)
    tree = list(api.list_repo_tree(world.repo, recursive=True))
    paths = [item.path for item in tree]
    assert paths == sorted([*FILES, "optimizer", "tokenizer"])
    by_path = {item.path: item for item in tree}
    shard = "model-00001-of-00003.safetensors"
    assert by_path[shard].lfs.sha256 == hashlib.sha256(FILES[shard]).hexdigest()
    assert by_path[shard].size == SHARD
    info = api.model_info(world.repo)
    assert info.sha == world.commit
    assert sorted(s.rfilename for s in info.siblings) == sorted(FILES)
    found = api.get_paths_info(world.repo, ["config.json", "tokenizer", "nothing.bin"])
    assert [(p.path, type(p).__name__) for p in found] == [
        ("config.json", "RepoFile"),
        ("tokenizer", "RepoFolder"),
    ]
    assert api.whoami()["name"] == world.user.username
    api.auth_check(world.repo)
    # Listing and metadata charge nothing.
    assert world.grant() is None


# -- a dropped connection: the client resumes with Range and pays once ---------------------


class FlakyProxy:
    """A TCP proxy that cuts the first connection carrying ``GET <path>`` once more than
    ``after`` response bytes went through it: a link dropped mid-file."""

    def __init__(self, upstream: str, path: str, after: int) -> None:
        host, port = upstream.removeprefix("http://").split(":")
        self.upstream = (host, int(port))
        self.needle, self.after = f"GET {path}".encode(), after
        self.cuts = 0
        self.server = socket.create_server(("127.0.0.1", free_port()))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = socket.create_connection(self.upstream)
        armed = threading.Event()

        def requests() -> None:
            with contextlib.suppress(OSError):
                while data := client.recv(65536):
                    if self.needle in data and not self.cuts:
                        armed.set()
                    upstream.sendall(data)

        threading.Thread(target=requests, daemon=True).start()
        sent = 0
        with contextlib.suppress(OSError):
            while data := upstream.recv(65536):
                client.sendall(data)
                sent += len(data)
                if armed.is_set() and sent > self.after and not self.cuts:
                    self.cuts += 1
                    break
        for sock in (client, upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self.server.close()


# The client reads a file in chunks of 10 MiB (DOWNLOAD_CHUNK_SIZE) and keeps what it
# wrote of them when a connection drops: a cut after 12 MiB of a 24 MiB file resumes.
BIG = os.urandom(24 * 2**20)
CUT_AFTER = 12 * 2**20


@LIVE
@pytest.mark.parametrize("mode", ["local", "s3"])
def test_a_download_cut_mid_file_resumes_with_range_and_is_charged_once(
    mode, request, settings, live_server, tmp_path
):
    settings.ACCESSCTL_DOWNLOAD_MODE = mode
    s3 = request.getfixturevalue("s3_mode") if mode == "s3" else None
    name = "big.safetensors"
    world = World(files={name: BIG})
    if s3 is None:  # Django sends the bytes: the link to it drops
        proxy = FlakyProxy(live_server.url, f"/{world.repo}/resolve/", after=CUT_AFTER)
        endpoint = proxy.url
    else:  # storage sends them: the link to storage drops (presigned URLs name the proxy)
        proxy = FlakyProxy(s3.endpoint, f"/{s3.bucket}/", after=CUT_AFTER)
        options = {**settings.STORAGES["artifacts"]["OPTIONS"], "endpoint_url": proxy.url}
        settings.STORAGES = {
            **settings.STORAGES,
            "artifacts": {**settings.STORAGES["artifacts"], "OPTIONS": options},
        }
        endpoint = live_server.url
    try:
        path = hf_hub_download(
            world.repo, name, endpoint=endpoint, token=world.token, cache_dir=tmp_path / "c"
        )
    finally:
        proxy.close()
    assert proxy.cuts == 1
    assert sha256(path) == world.signed_files()[name]
    authorized = events("download.authorized", artifact=name, method="GET", via="hub")
    # One charged request for the whole file, then the resumed range, free (the lease).
    assert [e.changes["charged"] for e in authorized] == [len(BIG), 0]
    first, resumed = authorized
    assert first.changes["range"] == ""
    start, end = (int(x) for x in resumed.changes["range"].split("-"))
    assert 10 * 2**20 <= start <= CUT_AFTER and end == len(BIG) - 1
    assert world.grant().bytes_used == len(BIG)


# -- refusals: the client's exception, our reason, the same evidence, nothing charged ------


def _refused(world: World, endpoint: str, tmp_path: Path, name: str = "config.json"):
    with pytest.raises(Exception) as caught:
        hf_hub_download(
            world.repo, name, endpoint=endpoint, token=world.token, cache_dir=tmp_path / "c"
        )
    return caught.value


def _denied(reason: str) -> AuditEvent:
    found = AuditEvent.objects.filter(action="download.denied", reason=reason).order_by("-id")
    assert found.exists(), f"no download.denied {reason}"
    return found.first()


def _downloaded(world: World, endpoint: str, tmp_path: Path, name: str) -> None:
    hf_hub_download(
        world.repo, name, endpoint=endpoint, token=world.token, cache_dir=tmp_path / "first"
    )


@LIVE
def test_a_window_not_open_yet_is_a_gated_repo(local_endpoint, tmp_path):
    world = World(opens=DAY, closes=10 * DAY)
    error = _refused(world, local_endpoint, tmp_path)
    assert isinstance(error, hf_errors.GatedRepoError)
    assert "window_not_open" in str(error)
    assert world.grant() is None


@LIVE
def test_a_closed_window_is_a_gated_repo_and_charges_nothing(local_endpoint, tmp_path):
    world = World()
    _downloaded(world, local_endpoint, tmp_path, "config.json")
    window = world.grant().window
    closes = timezone.now() + timedelta(seconds=1)
    actions.set_window(
        actor=None,
        release=world.release,
        partner=world.partner,
        opens_at=window.opens_at,
        closes_at=closes,
        window=window,
    )
    while timezone.now() <= closes:  # the window closes (a wait, not a timing assert)
        time.sleep(0.1)
    used = world.grant().bytes_used
    error = _refused(world, local_endpoint, tmp_path, "tokenizer/vocab.txt")
    assert isinstance(error, hf_errors.GatedRepoError)
    assert "window_closed" in str(error)
    assert world.grant().bytes_used == used
    assert _denied("window_closed").changes["artifact"] == "tokenizer/vocab.txt"


@LIVE
def test_no_window_at_all_is_repository_not_found(local_endpoint, tmp_path):
    world = World(window=False)
    error = _refused(world, local_endpoint, tmp_path)
    assert isinstance(error, hf_errors.RepositoryNotFoundError)


@LIVE
def test_a_grant_revoked_mid_download_stops_new_bytes(local_endpoint, tmp_path):
    world = World()
    _downloaded(world, local_endpoint, tmp_path, "model-00001-of-00003.safetensors")
    actions.revoke_grant(actor=f.staff("Release manager"), grant=world.grant(), reason="test")
    used = world.grant().bytes_used
    error = _refused(world, local_endpoint, tmp_path, "model-00002-of-00003.safetensors")
    assert isinstance(error, hf_errors.GatedRepoError)
    assert "grant_revoked" in str(error)
    assert world.grant().bytes_used == used
    denied = _denied("grant_revoked")
    assert (denied.target_type, denied.target_id) == ("partners.grant", str(world.grant().pk))
    assert denied.changes["artifact"] == "model-00002-of-00003.safetensors"
    # No second grant on "first use": the revoked one decides.
    assert Grant.objects.filter(partner=world.partner).count() == 1


@LIVE
def test_a_suspended_partner_is_a_gated_repo(local_endpoint, tmp_path):
    world = World()
    actions.suspend_partner(actor=f.staff("Security officer"), partner=world.partner, reason="x")
    error = _refused(world, local_endpoint, tmp_path)
    assert isinstance(error, hf_errors.GatedRepoError)
    assert "partner_suspended" in str(error)
    assert _denied("partner_suspended").changes["artifact"] == "config.json"


@LIVE
def test_an_exhausted_quota_is_a_gated_repo_and_debits_nothing(local_endpoint, tmp_path):
    world = World()
    f.grant(world.checkpoint, world.partner, quota_bytes=SHARD + 10)
    _downloaded(world, local_endpoint, tmp_path, "model-00001-of-00003.safetensors")
    error = _refused(world, local_endpoint, tmp_path, "model-00002-of-00003.safetensors")
    assert isinstance(error, hf_errors.GatedRepoError)
    assert "quota_exhausted" in str(error)
    assert world.grant().bytes_used == SHARD
    assert _denied("quota_exhausted").changes["bytes"] == SHARD


@LIVE
def test_a_blocked_jurisdiction_is_repository_not_found(local_endpoint, tmp_path):
    world = World()
    # Behind the actions' back, as the v1 test does: the actions would end the window.
    Release.objects.filter(pk=world.release.pk).update(policy="deny", policy_jurisdictions=["US"])
    error = _refused(world, local_endpoint, tmp_path)
    assert isinstance(error, hf_errors.RepositoryNotFoundError)
    denied = _denied("jurisdiction_blocked")
    assert (denied.target_type, denied.target_id) == ("partners.release", world.release.slug)
    assert denied.changes["artifact"] == "config.json"


@LIVE
def test_another_partners_repository_is_not_found(local_endpoint, tmp_path):
    world, other = World(), World()
    world.repo = other.repo
    error = _refused(world, local_endpoint, tmp_path)
    assert isinstance(error, hf_errors.RepositoryNotFoundError)
    assert other.grant() is None and world.grant() is None


@LIVE
def test_a_withdrawn_release_is_disabled(local_endpoint, tmp_path):
    world = World()
    _downloaded(world, local_endpoint, tmp_path, "config.json")
    actions.withdraw_release(
        actor=f.staff("Security officer"), release=world.release, reason="test"
    )
    with pytest.raises(hf_errors.DisabledRepoError) as caught:
        HfApi(endpoint=local_endpoint, token=world.token).model_info(world.repo)
    assert "release_withdrawn" in str(caught.value)
    # Downloads fall back to the client's cache (what it holds stays), and say why they
    # could not look.
    with pytest.raises(hf_errors.LocalEntryNotFoundError) as caught:
        snapshot_download(
            world.repo, endpoint=local_endpoint, token=world.token, cache_dir=tmp_path / "s"
        )
    assert "Access to this resource is disabled." in str(caught.value)
    assert "release_withdrawn" in str(caught.value)
    error = _refused(world, local_endpoint, tmp_path, "tokenizer/vocab.txt")
    assert isinstance(error.__cause__, hf_errors.DisabledRepoError)
    assert _denied("release_withdrawn").changes["artifact"] == "tokenizer/vocab.txt"


@LIVE
def test_the_rate_limit_is_a_429_with_retry_after(local_endpoint, settings):
    world = World()
    settings.ACCESSCTL_API_RATE = "2/min"
    api = HfApi(endpoint=local_endpoint, token=world.token)
    api.model_info(world.repo)
    api.model_info(world.repo)
    with pytest.raises(hf_errors.HfHubHTTPError) as caught:
        api.model_info(world.repo)
    assert caught.value.response.status_code == 429
    assert int(caught.value.response.headers["Retry-After"]) > 0


@LIVE
def test_a_foreign_token_is_refused_and_not_recorded(local_endpoint, tmp_path):
    world = World()
    world.token = "hf_" + "x" * 34  # a partner's own huggingface.co token
    error = _refused(world, local_endpoint, tmp_path)
    assert isinstance(error, hf_errors.HfHubHTTPError)
    assert error.response.status_code == 401
    assert "Invalid credentials" in str(error)
    assert "hf_xxxx" not in str(list(AuditEvent.objects.values_list("changes", flat=True)))


@LIVE
def test_before_the_public_time_the_first_use_asks_for_a_request(local_endpoint, tmp_path):
    world = World(public_in=10 * DAY)
    error = _refused(world, local_endpoint, tmp_path)
    assert isinstance(error, hf_errors.GatedRepoError)
    assert "grant_request_needed" in str(error)
    assert f"accessctl grants request {world.checkpoint}" in str(error)
    actions.request_grant(actor=world.user, partner=world.partner, checkpoint=world.checkpoint)
    error = _refused(world, local_endpoint, tmp_path)
    assert "grant_request_pending" in str(error)
    assert world.grant() is None


@LIVE
def test_warnings_name_an_expiring_grant_and_a_quota_nearly_used(local_endpoint, tmp_path):
    world = World()
    f.grant(world.checkpoint, world.partner, quota_bytes=SHARD + SHARD // 10)
    _downloaded(world, local_endpoint, tmp_path, "model-00001-of-00003.safetensors")
    answer = httpx.head(
        f"{local_endpoint}/{world.repo}/resolve/main/config.json",
        headers={"Authorization": f"Bearer {world.token}"},
    )
    assert answer.status_code == 200
    warning = answer.headers["X-HF-Warning"]
    assert warning.startswith(f"accessctl-grant-{world.grant().pk}; ")
    assert "90%" in warning
    assert answer.headers["X-Repo-Commit"] == world.commit
    assert answer.headers["X-Linked-Size"] == str(len(FILES["config.json"]))
    assert not [h for h in answer.headers if h.lower().startswith("x-xet")]


@LIVE
def test_a_grant_expiring_within_72_hours_is_named_in_a_warning(local_endpoint):
    world = World()
    expires = timezone.now() + timedelta(hours=48)
    actions.issue_grant(
        actor=None,
        partner=world.partner,
        checkpoint=world.checkpoint,
        quota_bytes=10 * SHARD,
        expires_at=expires,
    )
    answer = httpx.head(
        f"{local_endpoint}/{world.repo}/resolve/main/config.json",
        headers={"Authorization": f"Bearer {world.token}"},
    )
    warning = answer.headers["X-HF-Warning"]
    assert f"expires at {expires:%Y-%m-%d %H:%M:%S} UTC (in 47 h)" in warning
    assert "bytes (" not in warning  # the quota is not nearly used
    # A grant with time and quota to spare gets no warning.
    # Behind the actions' back: no action extends a grant.
    Grant.objects.filter(pk=world.grant().pk).update(expires_at=timezone.now() + 5 * DAY)
    quiet = httpx.head(
        f"{local_endpoint}/{world.repo}/resolve/main/config.json",
        headers={"Authorization": f"Bearer {world.token}"},
    )
    assert quiet.status_code == 200 and "X-HF-Warning" not in quiet.headers


# -- an older client: one 0.x release, in a venv of its own --------------------------------

OLD_CLIENT = "huggingface_hub==0.36.2"  # the last 0.x release; it speaks `requests`
OLD_SCRIPT = r"""
import hashlib, json, sys
from pathlib import Path
from huggingface_hub import hf_hub_download, snapshot_download
from huggingface_hub.utils import EntryNotFoundError, GatedRepoError

repo, step = sys.argv[1], sys.argv[2]
if step == "download":
    folder = Path(snapshot_download(repo, allow_patterns=["*.safetensors", "config.json"]))
    files = {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in folder.rglob("*") if p.is_file()}
    try:
        hf_hub_download(repo, "generation_config.json")
        absent = "downloaded"
    except EntryNotFoundError:
        absent = "EntryNotFoundError"
    print(json.dumps({"commit": folder.name, "files": files, "absent": absent}))
else:
    try:
        hf_hub_download(repo, "tokenizer/vocab.txt")
        print(json.dumps({"refused": None}))
    except GatedRepoError as error:
        print(json.dumps({"refused": "GatedRepoError", "message": str(error)}))
"""


@pytest.fixture(scope="module")
def old_client(tmp_path_factory) -> Path:
    """A venv holding the 0.x client (from PyPI, as a partner would have it)."""
    venv = tmp_path_factory.mktemp("hf-0x") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", OLD_CLIENT],
        check=True,
        timeout=300,
        capture_output=True,
    )
    return venv / "bin" / "python"


@LIVE
def test_a_0x_client_downloads_and_is_refused_the_same_way(old_client, local_endpoint, tmp_path):
    world = World()
    script = tmp_path / "old.py"
    script.write_text(OLD_SCRIPT)
    env = {
        "PATH": os.environ["PATH"],
        "HF_ENDPOINT": local_endpoint,
        "HF_TOKEN": world.token,
        "HF_HOME": str(tmp_path / "hf-home"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }

    def run(step: str) -> dict:
        done = subprocess.run(
            [str(old_client), str(script), world.repo, step],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1])

    got = run("download")
    signed = world.signed_files()
    assert got["commit"] == world.commit
    assert got["files"] == {name: signed[name] for name in ALLOWED if "/" not in name}
    assert got["absent"] == "EntryNotFoundError"
    assert world.grant().bytes_used == sum(len(FILES[n]) for n in ALLOWED if "/" not in n)

    actions.revoke_grant(actor=f.staff("Release manager"), grant=world.grant(), reason="test")
    refused = run("refused")
    assert refused["refused"] == "GatedRepoError"
    assert "grant_revoked" in refused["message"]


# -- transformers, end to end --------------------------------------------------------------

TRANSFORMERS_SCRIPT = r"""
import json, sys
from transformers import AutoConfig, AutoTokenizer

repo, revision = sys.argv[1], sys.argv[2]
config = AutoConfig.from_pretrained(repo, revision=revision)
tokenizer = AutoTokenizer.from_pretrained(repo, revision=revision)
print(json.dumps({"model_type": config.model_type, "n_layer": config.n_layer,
                  "ids": tokenizer("hello world")["input_ids"]}))
"""


def _tiny_model() -> dict[str, bytes]:
    """A GPT-2 shape of two layers and a three-word tokenizer: what `from_pretrained` reads."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    tokenizer = Tokenizer(models.WordLevel({"[UNK]": 0, "hello": 1, "world": 2}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    config = {"model_type": "gpt2", "n_layer": 2, "n_head": 2, "n_embd": 8, "vocab_size": 3}
    return {
        "config.json": json.dumps(config).encode(),
        "tokenizer.json": tokenizer.to_str().encode(),
        "tokenizer_config.json": json.dumps(
            {"tokenizer_class": "PreTrainedTokenizerFast", "unk_token": "[UNK]"}
        ).encode(),
    }


@LIVE
def test_transformers_loads_a_config_and_tokenizer_through_the_endpoint(local_endpoint, tmp_path):
    world = World(files=_tiny_model())
    done = subprocess.run(
        [sys.executable, "-c", TRANSFORMERS_SCRIPT, world.repo, "step-100"],
        env={
            **os.environ,
            "HF_ENDPOINT": local_endpoint,
            "HF_TOKEN": world.token,
            "HF_HOME": str(tmp_path / "hf-home"),
            "TRANSFORMERS_VERBOSITY": "error",
        },
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got == {"model_type": "gpt2", "n_layer": 2, "ids": [1, 2]}
    # Each file it read was authorized and charged once, under the grant issued on first use.
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        assert charged(name) == [len(_tiny_model()[name])]


# -- main: the newest checkpoint the partner may download ----------------------------------


@LIVE
def test_main_stays_on_the_newest_checkpoint_the_partner_may_download(local_endpoint, tmp_path):
    """The lab registers a newer checkpoint the partner holds no grant for (before the
    public time it needs a request): an unpinned download keeps working on the one it
    may download, and nothing names the new one."""
    world = World(public_in=10 * DAY)
    f.grant(world.checkpoint, world.partner, quota_bytes=10 * SHARD)
    newer = f.stored_checkpoint(world.release, {"config.json": b"{}"}, tag="step-200")
    api = HfApi(endpoint=local_endpoint, token=world.token)
    info = api.model_info(world.repo)
    assert info.sha == world.commit
    assert sorted(s.rfilename for s in info.siblings) == sorted(FILES)
    assert api.list_repo_files(world.repo) == sorted(FILES)
    api.auth_check(world.repo)  # granted: main is downloadable
    path = hf_hub_download(
        world.repo, "config.json", endpoint=local_endpoint, token=world.token, cache_dir=tmp_path
    )
    assert Path(path).read_bytes() == FILES["config.json"]
    assert Path(path).parent.name == world.commit
    # Asked for by name, the newer one is refused, saying how to ask for it.
    with pytest.raises(hf_errors.GatedRepoError) as caught:
        hf_hub_download(
            world.repo,
            "config.json",
            revision="step-200",
            endpoint=local_endpoint,
            token=world.token,
            cache_dir=tmp_path / "new",
        )
    assert "grant_request_needed" in str(caught.value)
    assert commit_id(manifest(newer)) not in str(caught.value.response.headers)


@LIVE
def test_auth_check_answers_as_the_download_of_main_would(local_endpoint):
    world = World(public_in=10 * DAY)
    api = HfApi(endpoint=local_endpoint, token=world.token)
    with pytest.raises(hf_errors.GatedRepoError) as caught:
        api.auth_check(world.repo)
    assert "grant_request_needed" in str(caught.value)
    actions.request_grant(actor=world.user, partner=world.partner, checkpoint=world.checkpoint)
    with pytest.raises(hf_errors.GatedRepoError) as caught:
        api.auth_check(world.repo)
    assert "grant_request_pending" in str(caught.value)
    # Nothing was issued or charged by asking.
    assert world.grant() is None
    assert not events("download.authorized")


@LIVE
def test_a_pull_request_revision_is_revision_not_found_by_its_whole_name(local_endpoint, tmp_path):
    world = World()
    with pytest.raises(hf_errors.RevisionNotFoundError) as caught:
        hf_hub_download(
            world.repo,
            "config.json",
            revision="refs/pr/1",
            endpoint=local_endpoint,
            token=world.token,
            cache_dir=tmp_path,
        )
    assert "'refs/pr/1'" in str(caught.value)
    with pytest.raises(hf_errors.RevisionNotFoundError) as caught:
        HfApi(endpoint=local_endpoint, token=world.token).model_info(
            world.repo, revision="refs/pr/1"
        )
    assert "'refs/pr/1'" in str(caught.value)


@LIVE
@pytest.mark.parametrize("which", ["revoked", "malformed", "expired"])
def test_a_refused_token_says_why_and_what_to_do(local_endpoint, tmp_path, which, caplog):
    """X-Error-Message stays the exact text the client compares (else it would call a 401
    on a repository URL RepositoryNotFoundError); the reason and the advice reach the user
    in X-HF-Warning, which the client prints (a HEAD has no body)."""
    world = World()
    token = AccessToken.objects.get(user=world.user)
    if which == "revoked":
        actions.revoke_token(actor=f.staff("Security officer"), token=token, reason="lost")
        code, advice = "token_revoked", "Ask your lab contact for a new token."
    elif which == "expired":
        # Behind the actions' back: no action moves a token's expiry into the past.
        AccessToken.objects.filter(pk=token.pk).update(
            created_at=timezone.now() - 2 * DAY, expires_at=timezone.now() - DAY
        )
        code, advice = "token_expired", "Ask your lab contact for a new token."
    else:
        world.token = "acx_" + "!" * 10
        code, advice = "token_malformed", "not a huggingface.co token"
    hub_logger = logging.getLogger("huggingface_hub")  # it does not propagate
    hub_logger.addHandler(caplog.handler)
    try:
        error = _refused(world, local_endpoint, tmp_path)
    finally:
        hub_logger.removeHandler(caplog.handler)
    assert isinstance(error, hf_errors.HfHubHTTPError)
    assert not isinstance(error, hf_errors.RepositoryNotFoundError)
    assert error.response.status_code == 401
    assert (
        error.response.headers["X-Error-Message"] == "Invalid credentials in Authorization header"
    )
    printed = caplog.text
    assert f"{code}: " in printed and advice in printed


# -- docs/hub.md: its commands, run as written ---------------------------------------------

DOCS = Path(__file__).resolve().parents[3] / "docs" / "hub.md"


def _doc_blocks(language: str) -> list[str]:
    text = DOCS.read_text()
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


@LIVE
def test_the_commands_in_docs_hub_md_run_as_written(local_endpoint, tmp_path):
    """Every ``hf`` line and every Python example of docs/hub.md, against a live server
    holding ``lab/v4`` at ``step-12000``. Not run: ``vllm serve`` (vLLM is not installed
    here) and, without torch, the ``AutoModelForCausalLM`` line (docs/hub.md says so)."""
    files = {
        **_tiny_model(),
        "model-00001-of-00002.safetensors": os.urandom(1000),
        "model-00002-of-00002.safetensors": os.urandom(1000),
        "tokenizer/vocab.txt": b"hello\nworld\n",
        "README.md": b"# not asked for\n",
    }
    partner = f.partner()
    release = f.release("v4", public_in=-DAY)
    f.stored_checkpoint(release, files, tag="step-12000")
    f.window(release, partner)
    token = f.token(f.partner_user(partner))
    env = {
        **os.environ,
        "HF_ENDPOINT": local_endpoint,
        "HF_TOKEN": token,
        "HF_HOME": str(tmp_path / "hf-home"),
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "TRANSFORMERS_VERBOSITY": "error",
    }
    commands = [
        line for block in _doc_blocks("sh") for line in block.splitlines() if line.startswith("hf ")
    ]
    assert len(commands) >= 2
    for command in commands:
        done = subprocess.run(
            shlex.split(command), cwd=tmp_path, env=env, capture_output=True, text=True,
            timeout=180, check=False,
        )  # fmt: skip
        assert done.returncode == 0, (command, done.stderr)
    local = tmp_path / "v4"
    got = sorted(str(p.relative_to(local)) for p in local.rglob("*") if p.is_file())
    got = [name for name in got if not name.startswith(".cache")]
    assert got == ["config.json", *sorted(n for n in files if n.endswith(".safetensors"))]
    try:
        import torch  # noqa: F401

        has_torch = True
    except ImportError:
        has_torch = False
    examples = [
        block
        for block in _doc_blocks("python")
        if "from_pretrained" in block or "hf_hub_download" in block
    ]
    assert len(examples) >= 2
    for example in examples:
        if not has_torch:
            example = "\n".join(
                line
                for line in example.splitlines()
                if "AutoModelForCausalLM.from_pretrained" not in line
            )
        done = subprocess.run(
            [sys.executable, "-c", example], cwd=tmp_path, env=env, capture_output=True,
            text=True, timeout=180, check=False,
        )  # fmt: skip
        assert done.returncode == 0, (example, done.stderr)

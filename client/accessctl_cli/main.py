"""accessctl: download pre-release checkpoints you are granted, and verify them.

Configuration, first found wins: --server/--token, the environment (ACCESSCTL_SERVER,
ACCESSCTL_TOKEN), the file written by ``accessctl login`` (mode 0600, in
$XDG_CONFIG_HOME/accessctl/config.json or ~/.config/accessctl/config.json). The token is
never printed. Errors are one line on stderr; exit statuses are listed in docs/cli.md.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import httpx

from accessctl_wire import formats, tokens
from accessctl_wire.client import Api, CliError, segment
from accessctl_wire.codes import Code, Exit

__all__ = ["main"]


class _Output:
    """Where the CLI writes (stdout, or stderr with ``stderr=True``), printing text as it
    is: names come from the server and from the user, and ``Frontier [/beta]`` is a name,
    not rich markup (which would drop ``[beta]`` and refuse ``[/beta]`` with a stack
    trace); no emoji codes, no highlighting. A line of text is written directly; tables
    and progress bars use rich's console, made (and rich imported, 50-100 ms) on first
    use only, so a command that prints lines does not pay for it."""

    def __init__(self, *, stderr: bool = False) -> None:
        self._stderr = stderr
        self._console: Any = None

    @property
    def console(self) -> Any:
        if self._console is None:
            from rich.console import Console

            stream = sys.stderr if self._stderr else sys.stdout
            self._console = Console(
                stderr=self._stderr,
                markup=False,
                emoji=False,
                highlight=False,
                soft_wrap=True,
                # Piped output (scripts, CI logs) is not cut to 80 columns: tables keep
                # whole names.
                width=None if stream.isatty() else 250,
            )
        return self._console

    @property
    def is_terminal(self) -> bool:
        return bool(self.console.is_terminal)

    def print(self, renderable: Any) -> None:
        if isinstance(renderable, str):
            print(renderable, file=sys.stderr if self._stderr else sys.stdout, flush=True)
        else:
            self.console.print(renderable)


def _table(*columns: str) -> Any:
    from rich.table import Table

    return Table(*columns)


out = _Output()
err = _Output(stderr=True)


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "accessctl" / "config.json"


def load_config() -> dict[str, str]:
    path = config_path()
    if not path.exists():
        return {}
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError) as exc:
        raise CliError("usage", f"cannot read {path}: {exc}") from exc


def settings(options: argparse.Namespace) -> tuple[str, str]:
    saved = load_config()
    server = options.server or os.environ.get("ACCESSCTL_SERVER") or saved.get("server")
    token = options.token or os.environ.get("ACCESSCTL_TOKEN") or saved.get("token")
    if not server or not token:
        raise CliError("usage", "not logged in: run `accessctl login --server URL` first")
    return server, token


def size(text: str) -> int:
    match = re.fullmatch(r"(\d+)([KMG]?)i?B?", text.strip(), re.IGNORECASE)
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 16M)")
    return (
        int(match.group(1))
        * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[match.group(2).upper()]
    )


def when(text: str | None) -> str:
    """An API time (RFC 3339) as the portal and emails show it: ``2026-11-29 16:40:05
    UTC`` (``accessctl_wire.formats.moment``); empty for none, as received if unreadable."""
    if not text:
        return ""
    try:
        return formats.moment(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        return text


def human(n: int) -> str:
    """Bytes as the portal and emails show them (``accessctl_wire.formats.size``)."""
    return formats.size(n)


# --- commands -----------------------------------------------------------------------


def cmd_login(options: argparse.Namespace) -> int:
    server = (options.server or os.environ.get("ACCESSCTL_SERVER") or "").rstrip("/")
    if not server:
        raise CliError("usage", "say which server: accessctl login --server https://...")
    token = options.token or os.environ.get("ACCESSCTL_TOKEN")
    if not token:
        token = sys.stdin.readline().strip() if options.token_stdin else getpass.getpass("Token: ")
    if not tokens.is_well_formed(token):
        raise CliError(
            "token_malformed", "that is not an accessctl token (acx_, 36 characters, checksum)"
        )
    api = Api(server, token)
    try:
        me = api.get("/api/v1/me")
    finally:
        api.close()
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump({"server": server, "token": token}, handle)
    os.chmod(path, 0o600)
    out.print(
        f"Logged in to {server} as {me['user']} of {me['partner']['slug']} "
        f"(token {me['token']['prefix']}…)."
    )
    out.print(f"Saved to {path} (readable by you only).")
    return 0


def cmd_whoami(api: Api, options: argparse.Namespace) -> int:
    me = api.get("/api/v1/me")
    partner, token = me["partner"], me["token"]
    out.print(f"user      {me['user']}")
    out.print(f"partner   {partner['slug']} ({partner['legal_name']}, {partner['status']})")
    out.print(
        f"token     {token['name']} ({token['prefix']}…), scopes {', '.join(token['scopes'])}"
    )
    out.print(f"expires   {when(token['expires_at'])}")
    out.print(f"server    {api.server}")
    return 0


def cmd_releases(api: Api, options: argparse.Namespace) -> int:
    table = _table("release", "name", "window", "opens", "closes", "embargo lifts")
    for release in api.pages("/api/v1/releases/"):
        window = release.get("window") or {}
        state = window.get("state", "")
        if release.get("status") == "withdrawn":  # an older server says only this
            state = "withdrawn"
        table.add_row(
            release["slug"],
            release.get("name", ""),
            state,
            when(window.get("opens_at")),
            when(window.get("closes_at")),
            when(window.get("embargo_lifts_at")),
        )
    out.print(table)
    return 0


def cmd_checkpoints(api: Api, options: argparse.Namespace) -> int:
    table = _table("id", "checkpoint", "step", "files", "size", "status")
    for cp in api.pages(f"/api/v1/releases/{segment(options.release)}/checkpoints/"):
        table.add_row(
            str(cp["id"]),
            f"{cp['release']}:{cp['tag']}",
            str(cp.get("training_step") or ""),
            str(cp["files"]),
            human(cp["size"]),
            cp["status"],
        )
    out.print(table)
    return 0


def resolve(api: Api, name: str) -> dict[str, Any]:
    """A checkpoint by ``release:tag`` or id."""
    if ":" not in name:
        if not name.isdigit():
            raise CliError("usage", f"name a checkpoint as RELEASE:TAG or by id, not {name!r}")
        try:
            manifest = api.get(f"/api/v1/checkpoints/{name}/manifest")["manifest"]
        except CliError as exc:
            # A withdrawn release's (or pulled checkpoint's) manifest is refused: find the
            # checkpoint in the lists, which still show it, so the caller can say why.
            if exc.code not in {Code.RELEASE_WITHDRAWN, Code.CHECKPOINT_PULLED}:
                raise
            for listed in api.pages("/api/v1/releases/"):
                for cp in api.pages(f"/api/v1/releases/{listed['slug']}/checkpoints/"):
                    if cp["id"] == int(name):
                        return dict(cp)
            raise
        return {"id": int(name), "release": manifest["release"], "tag": manifest["tag"]}
    release, tag = name.split(":", 1)
    for cp in api.pages(f"/api/v1/releases/{segment(release)}/checkpoints/"):
        if cp["tag"] == tag:
            return dict(cp)
    raise CliError("not_found", f"release {release} has no checkpoint {tag!r}")


def withdrawn(api: Api, checkpoint: dict[str, Any]) -> CliError | None:
    """Why nothing of ``checkpoint`` can be had any more (its release withdrawn, or it was
    pulled), or None. A new grant cannot help then, so the error never suggests one."""
    name = f"{checkpoint['release']}:{checkpoint['tag']}"
    status = checkpoint.get("status")
    if status is None:  # resolved by id: look it up in its release's list
        try:
            listed = api.pages(f"/api/v1/releases/{segment(checkpoint['release'])}/checkpoints/")
        except CliError:
            listed = []
        status = next((c["status"] for c in listed if c["id"] == checkpoint["id"]), None)
    releases = [r for r in api.pages("/api/v1/releases/") if r["slug"] == checkpoint["release"]]
    if releases and releases[0].get("status") == "withdrawn":
        return CliError(
            "release_withdrawn",
            f"release {checkpoint['release']} was withdrawn by the lab"
            f"{' at ' + when(releases[0]['withdrawn_at']) if releases[0].get('withdrawn_at') else ''}; "
            f"{name} can no longer be downloaded and no grant can be issued for it. "
            "Delete copies you hold and ask your contact at the lab",
        )
    if status == "pulled":
        return CliError(
            "checkpoint_pulled",
            f"checkpoint {name} was pulled by the lab; it can no longer be downloaded and no "
            "grant can be issued for it. Delete copies you hold and ask your contact at the lab",
        )
    return None


def active_grant(api: Api, checkpoint: dict[str, Any]) -> dict[str, Any]:
    name = f"{checkpoint['release']}:{checkpoint['tag']}"
    # Pulled, or not known (resolved by id): find out first, whatever the grants say.
    if checkpoint.get("status", "pulled") == "pulled" and (gone := withdrawn(api, checkpoint)):
        raise gone
    mine = [g for g in api.pages("/api/v1/grants/") if g["checkpoint"] == checkpoint["id"]]
    for grant in mine:
        if grant["status"] == "active":
            return dict(api.get(f"/api/v1/grants/{grant['id']}"))
    if mine:  # the newest first: say what happened to it
        last = mine[0]
        code = {"revoked": Code.GRANT_REVOKED, "exhausted": Code.QUOTA_EXHAUSTED}.get(
            last["status"], Code.GRANT_EXPIRED
        )
        raise CliError(
            code,
            f"your grant #{last['id']} for {name} is {last['status']}; ask for a new one with "
            f"`accessctl grants request {name}`",
        )
    raise CliError(
        "no_grant",
        f"you hold no active grant for {checkpoint['release']}:{checkpoint['tag']}; "
        f"ask for one with `accessctl grants request {checkpoint['release']}:{checkpoint['tag']}`",
    )


def cmd_grants(api: Api, options: argparse.Namespace) -> int:
    if options.action == "request":
        if not options.checkpoint:
            raise CliError("usage", "accessctl grants request RELEASE:TAG [--quota SIZE]")
        checkpoint = resolve(api, options.checkpoint)
        if checkpoint.get("status", "pulled") == "pulled" and (gone := withdrawn(api, checkpoint)):
            raise gone
        body: dict[str, Any] = {"checkpoint": checkpoint["id"]}
        if options.quota:
            body["quota_bytes"] = options.quota
        if options.note:
            body["note"] = options.note
        status, answer = api.post("/api/v1/grants/", body)
        if status == 201:
            out.print(
                f"Grant #{answer['id']} issued: {human(answer['quota_bytes'])} until "
                f"{when(answer['expires_at'])}. Download with `accessctl download "
                f"{checkpoint['release']}:{checkpoint['tag']} --dir DIR`."
            )
        else:
            out.print(
                f"Request #{answer['id']} waits for {answer['approvals_required']} staff "
                "approvals (early access); `accessctl grants` shows it once issued."
            )
        return 0
    table = _table("grant", "checkpoint", "status", "expires", "quota", "used", "left")
    for grant in api.pages("/api/v1/grants/"):
        table.add_row(
            str(grant["id"]),
            f"{grant['release']}:{grant['tag']}",
            grant["status"],
            when(grant["expires_at"]),
            human(grant["quota_bytes"]),
            human(grant["bytes_used"]),
            human(grant["bytes_left"]),
        )
    out.print(table)
    return 0


def keys_for(api: Api | None, public_key: str | None) -> tuple[str, dict[str | None, Any], str]:
    from .verify import load_keys

    if public_key:
        try:
            text = Path(public_key).read_text()
        except OSError as exc:
            raise CliError("usage", f"cannot read {public_key}: {exc.strerror}") from exc
        return text, load_keys(text), f"the pinned key {public_key}"
    if api is None:
        raise CliError("usage", "give --public-key (a JWKS or PEM file)")
    text = json.dumps(api.get("/.well-known/jwks.json"))
    return text, load_keys(text), "the server's published keys"


def cmd_download(api: Api, options: argparse.Namespace) -> int:
    from .fetch import Download, lock_dir
    from .verify import verify_manifest

    checkpoint = resolve(api, options.checkpoint)

    def signed_manifest() -> tuple[Any, str, dict[str | None, Any], str]:
        signed = api.get(f"/api/v1/checkpoints/{checkpoint['id']}/manifest")
        return (signed, *keys_for(api, options.public_key))

    # The manifest and the keys are asked for while the grant is (three round trips on
    # one, two on the other, instead of five in a row); the grant's refusal, if any, is
    # still the one reported.
    with ThreadPoolExecutor(1) as pool:
        asked = pool.submit(signed_manifest)
        grant = active_grant(api, checkpoint)
        signed, jwks_text, keys, source = asked.result()
    verify_manifest(signed, keys, source)
    server, token = settings(options)
    download = Download(
        server=server,
        token=token,
        grant=grant,
        signed=signed,
        jwks_text=jwks_text,
        root=Path(options.dir),
        include=options.include or (),
        connections=options.connections,
        chunk=options.chunk_size,
        progress=not options.quiet and err.is_terminal,
    )
    with lock_dir(Path(options.dir)):
        fetched = download.run()
    total = sum(f["size"] for f in download.files)
    out.print(
        f"{len(download.files)} files ({human(total)}) of {checkpoint['release']}:"
        f"{checkpoint['tag']} in {options.dir}, verified against the signed manifest "
        f"({len(fetched)} downloaded, {len(download.files) - len(fetched)} already there)."
    )
    return 0


def cmd_verify(options: argparse.Namespace) -> int:
    from .verify import verify_dir

    keys = None
    if options.public_key:
        _, keys, _ = keys_for(None, options.public_key)
    problems = verify_dir(Path(options.dir), keys)
    for line in problems:
        err.print(f"FAIL {line}")
    if problems:
        raise CliError("verification_failed", f"{len(problems)} files do not verify")
    out.print(f"OK every file in {options.dir} matches the signed manifest")
    return 0


def cmd_verify_report(options: argparse.Namespace) -> int:
    """Verify a signed leak-attribution report offline, with the lab's public key only."""
    from .verify import verify_commitments, verify_report

    _, keys, source = keys_for(None, options.public_key)
    try:
        signed = json.loads(Path(options.file).read_text())
    except ValueError as exc:
        raise CliError("verification_failed", f"{options.file} is not JSON: {exc}") from exc
    if not isinstance(signed, dict):
        raise CliError("verification_failed", f"{options.file} holds no signed report")
    verify_report(signed, keys, source)
    report = signed["report"]
    proven = verify_commitments(report, keys)  # every partner's, before any OK is printed
    named = ", ".join(report.get("named") or []) or "nobody"
    out.print(
        f"OK report of detection {report.get('detection')} for release "
        f"{report.get('release')} is signed by the lab: verdict {report.get('verdict')}, "
        f"named {named}"
    )
    for line in proven:
        out.print(f"OK {line}")
    return 0


class Parser(argparse.ArgumentParser):
    """argparse, with its errors as one line like every other error (exit 2, ``usage``)."""

    def error(self, message: str) -> NoReturn:
        raise CliError("usage", f"{message} (see `{self.prog} --help`)")


def parser() -> argparse.ArgumentParser:
    # --server and --token are accepted before the command and after it (`accessctl login
    # --server URL`, `accessctl --server URL login`). The command's copies default to
    # SUPPRESS, so they set the option only when given and never hide the global one.
    shared = Parser(add_help=False)
    shared.add_argument(
        "--server", default=argparse.SUPPRESS, help="e.g. https://access.lab.example"
    )
    shared.add_argument(
        "--token", default=argparse.SUPPRESS, help="an API token (prefer `accessctl login`)"
    )
    root = Parser(prog="accessctl", description=__doc__.split("\n\n")[0])
    root.add_argument("--server", help="e.g. https://access.lab.example")
    root.add_argument("--token", help="an API token (prefer `accessctl login`)")
    sub = root.add_subparsers(dest="command", required=True)

    def command(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[shared], **kwargs)

    login = command("login", help="check a token and save it (mode 0600)")
    login.add_argument("--token-stdin", action="store_true", help="read the token from stdin")
    command("whoami", help="your partner and token")
    command("releases", help="releases you have a window for")
    cps = command("checkpoints", help="a release's checkpoints")
    cps.add_argument("release")
    grants = command("grants", help="list your grants (quota left), or request one")
    grants.add_argument("action", nargs="?", choices=["list", "request"], default="list")
    grants.add_argument("checkpoint", nargs="?", help="RELEASE:TAG or id (request)")
    grants.add_argument("--quota", type=size, help="bytes to ask for, e.g. 200G")
    grants.add_argument("--note", default="")
    download = command("download", help="download and verify a checkpoint")
    download.add_argument("checkpoint", help="RELEASE:TAG or id")
    download.add_argument("--dir", required=True)
    download.add_argument("--include", action="append", help="glob of paths (repeatable)")
    download.add_argument("--connections", type=int, default=8)
    download.add_argument("--chunk-size", type=size, default=16 << 20, help="default 16M")
    download.add_argument("--public-key", help="pin the lab's key: a JWKS or PEM file")
    download.add_argument("--quiet", action="store_true", help="no progress bars")
    verify = command("verify", help="check a downloaded directory against its manifest")
    verify.add_argument("dir")
    verify.add_argument("--public-key", help="a JWKS or PEM file (default: the saved keys)")
    report = command("verify-report", help="check a signed leak-attribution report offline")
    report.add_argument("file", help="the report JSON (GET /api/v1/staff/detections/{id})")
    report.add_argument(
        "--public-key", "--jwks", required=True, help="the lab's keys: a JWKS or PEM file"
    )
    return root


def main(argv: list[str] | None = None) -> int:
    try:
        options = parser().parse_args(argv)
        if options.command == "login":
            return cmd_login(options)
        if options.command == "verify":
            return cmd_verify(options)
        if options.command == "verify-report":
            return cmd_verify_report(options)
        api = Api(*settings(options))
        try:
            command = {
                "whoami": cmd_whoami,
                "releases": cmd_releases,
                "checkpoints": cmd_checkpoints,
                "grants": cmd_grants,
                "download": cmd_download,
            }[options.command]
            return command(api, options)
        finally:
            api.close()
    except CliError as exc:
        err.print(f"error: {exc.message}")
        return exc.exit_status
    except KeyboardInterrupt:
        err.print("interrupted: run the same command again to resume")
        return 130
    except OSError as exc:
        err.print(f"error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))
        return int(Exit.USAGE)
    except httpx.HTTPError as exc:  # not a network error (those are retried): a bad URL, say
        err.print(f"error: {type(exc).__name__}: {exc}")
        return int(Exit.NETWORK)

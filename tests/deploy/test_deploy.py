"""The files in deploy/ checked with the real tools available here: nginx, gunicorn,
systemd-analyze, kubectl kustomize (when present), and YAML parsing for the rest."""

import datetime
import hashlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.urls import resolve

from accessctl.audit.models import AuditEvent
from partners.models import Grant
from tests import factories as f
from tests.accessctl.test_embedded import PRODUCTION, manage
from tests.servers import free_port, raw_https
from tests.workers import database_url, wait_for

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
SECURITY_HEADERS = (
    "strict-transport-security",
    "x-content-type-options",
    "x-frame-options",
    "referrer-policy",
)


def self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "accessctl.example.org")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    chain, private = folder / "fullchain.pem", folder / "privkey.pem"
    chain.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return chain, private


def shipped_nginx(
    work: Path, *, upstream_port: int, artifacts: Path, changes: dict[str, str] | None = None
) -> tuple[Path, int, int]:
    """The shipped site configuration, with only host specifics replaced (ports, paths;
    and ``changes``), inside a minimal nginx.conf. Returns (conf, http port, https port)."""
    chain, private = self_signed(work)
    http_port, https_port = free_port(), free_port()
    site = (DEPLOY / "nginx" / "accessctl.conf").read_text()
    for old, new in (
        ("server 127.0.0.1:8000;", f"server 127.0.0.1:{upstream_port};"),
        ("listen 80;", f"listen 127.0.0.1:{http_port};"),
        ("listen [::]:80;", ""),
        ("listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;"),
        ("listen [::]:443 ssl http2;", ""),
        ("/etc/ssl/accessctl/fullchain.pem", str(chain)),
        ("/etc/ssl/accessctl/privkey.pem", str(private)),
        ("/srv/accessctl/data/artifacts/", f"{artifacts}/"),
        ("/var/log/nginx/accessctl.access.log", f"{work}/access.log"),
        ("/var/log/nginx/accessctl.error.log", f"{work}/accessctl.error.log"),
        *(changes or {}).items(),
    ):
        assert old in site, f"the shipped configuration no longer contains {old!r}"
        site = site.replace(old, new)
    (work / "accessctl.conf").write_text(site)
    for name in ("client", "proxy", "fastcgi", "uwsgi", "scgi"):
        (work / name).mkdir(exist_ok=True)
    conf = work / "nginx.conf"
    conf.write_text(
        f"user root; worker_processes 1; daemon off; pid {work}/nginx.pid;\n"
        f"error_log {work}/error.log warn;\nevents {{ worker_connections 256; }}\n"
        f"http {{ access_log off; client_body_temp_path {work}/client; "
        f"proxy_temp_path {work}/proxy; fastcgi_temp_path {work}/fastcgi; "
        f"uwsgi_temp_path {work}/uwsgi; scgi_temp_path {work}/scgi;\n"
        f"include {work}/accessctl.conf; }}\n"
    )
    return conf, http_port, https_port


def test_nginx_accepts_the_shipped_configuration(tmp_path):
    conf, _, _ = shipped_nginx(tmp_path, upstream_port=8000, artifacts=tmp_path)
    check = subprocess.run([NGINX, "-t", "-c", str(conf)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert "syntax is ok" in check.stderr and "test is successful" in check.stderr


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_shipped_nginx_before_gunicorn_serves_a_download_by_x_accel_redirect(tmp_path, settings):
    artifacts = tmp_path / "artifacts"
    settings.STORAGES = {
        **settings.STORAGES,
        "artifacts": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(artifacts)},
        },
    }
    content = os.urandom(300_000)
    partner = f.partner()
    release = f.release(public_in=-datetime.timedelta(days=1))
    checkpoint = f.stored_checkpoint(release, {"shard.bin": content})
    f.window(release, partner)
    grant = f.grant(checkpoint, partner, quota_bytes=10 * len(content))
    secret = f.token(f.partner_user(partner))
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        # The same embedded secrets (token pepper, key encryption key) as this process.
        "ACCESSCTL_DATA_DIR": str(settings.DATA_DIR),
        "ACCESSCTL_ARTIFACT_ROOT": str(artifacts),
        "ACCESSCTL_DOWNLOAD_MODE": "nginx",
        "ACCESSCTL_TRUSTED_PROXIES": "127.0.0.1/32",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "2",
        "DJANGO_ALLOWED_HOSTS": "*",
    }
    gunicorn = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("gunicorn")),
            "-c",
            str(DEPLOY / "gunicorn.conf.py"),
            "accessctl.wsgi",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    (tmp_path / "nginx").mkdir()
    conf, http_port, https_port = shipped_nginx(
        tmp_path / "nginx", upstream_port=port, artifacts=artifacts
    )
    proxy = subprocess.Popen([NGINX, "-c", str(conf)], stderr=subprocess.DEVNULL)
    base = f"https://127.0.0.1:{https_port}"
    try:
        with httpx.Client(base_url=base, verify=False, timeout=10) as client:  # noqa: S501 (self-signed)
            wait_for(lambda: _answers(client, "/healthz"), what="gunicorn behind nginx", timeout=60)
            auth = {"Authorization": f"Bearer {secret}"}
            detail = client.get(f"/api/v1/grants/{grant.pk}", headers=auth)
            assert detail.status_code == 200, detail.text
            token = detail.json()["token"]
            response = client.get(
                f"/api/v1/grants/{grant.pk}/files/shard.bin",
                headers={**auth, "X-Grant-Token": token, "Range": "bytes=1000-1999"},
            )
            assert response.status_code == 206
            assert response.content == content[1000:2000]
            assert "x-accel-redirect" not in response.headers  # nginx consumed it
            # The app's download headers, not nginx's (tests/partners/api/
            # test_download_modes.py has the whole contract).
            digest = hashlib.sha256(content).hexdigest()
            assert response.headers.get_list("etag") == [f'"{digest}"']
            assert response.headers.get_list("x-content-sha256") == [digest]
            assert response.headers["content-range"] == f"bytes 1000-1999/{len(content)}"
            assert (
                response.headers["content-disposition"]
                == "attachment; filename=\"shard.bin\"; filename*=UTF-8''shard.bin"
            )
            ignored = client.get(
                f"/api/v1/grants/{grant.pk}/files/shard.bin",
                headers={**auth, "X-Grant-Token": token, "Range": "bytes=1000-x"},
            )
            assert (ignored.status_code, ignored.content) == (200, content)
            assert ignored.headers.get_list("etag") == [f'"{digest}"']
            assert ignored.headers.get_list("accept-ranges") == ["bytes"]
            assert response.headers["strict-transport-security"].startswith("max-age=")
            # A client's X-Request-ID is kept apart; the request id is nginx's $request_id.
            forged = client.get(
                f"/api/v1/grants/{grant.pk}/files/shard.bin",
                headers={
                    **auth,
                    "X-Grant-Token": token,
                    "Range": "bytes=0-9",
                    "X-Request-ID": "f3b1c2d4e5a6978812345678abcdef00",
                    "X-Client-Request-ID": "smuggled-past-nginx",
                },
            )
            assert forged.status_code == 206
            event = AuditEvent.objects.filter(action="download.authorized").latest("id")
            assert event.request_id == forged.headers["x-request-id"]
            assert event.request_id != "f3b1c2d4e5a6978812345678abcdef00"
            assert event.changes["client_request_id"] == "f3b1c2d4e5a6978812345678abcdef00"
            # Each security header exactly once, on Django's answers and on nginx's own.
            answers = {
                "proxied": client.get("/readyz"),
                "proxied error": client.get("/api/v1/grants/"),
                "X-Accel-Redirect file": response,
                "nginx 404": client.get("/metrics"),
                "nginx static": client.get("/static/missing.css"),
            }
            for what, answer in answers.items():
                for header in SECURITY_HEADERS:
                    count = len(answer.headers.get_list(header))
                    assert count == 1, f"{what} ({answer.status_code}): {header} x{count}"
                for header in ("content-security-policy", "cross-origin-opener-policy"):
                    assert len(answer.headers.get_list(header)) <= 1, f"{what}: {header}"
            direct = client.get(f"/_artifacts/{checkpoint.artifacts.get().storage_key}")
            assert direct.status_code == 404  # internal only
            plain = httpx.get(f"http://127.0.0.1:{http_port}/healthz", follow_redirects=False)
            assert plain.status_code == 301 and plain.headers["location"].startswith("https://")
            ready = client.get("/readyz")
            assert ready.json()["checks"]["database"]["status"] == "ok"
            # nginx gives each request an id (its $request_id) that Django keeps.
            assert len(ready.headers["x-request-id"]) == 32
            # A token in the URL, in any spelling, is refused and never reaches the log.
            for spelling in ("grant_token", "%67rant_token", "grant%5Ftoken", "grantToken"):
                answer = client.get(
                    f"/api/v1/grants/{grant.pk}/files/shard.bin?{spelling}={token}", headers=auth
                )
                assert answer.status_code in (400, 403), spelling
            _gunicorn_limits_never_answer(https_port, auth["Authorization"])
            # gunicorn's configuration sets the umask of the master and its workers.
            workers = Path(f"/proc/{gunicorn.pid}/task/{gunicorn.pid}/children").read_text()
            for pid in [gunicorn.pid, *map(int, workers.split())]:
                assert _umask_of(pid) == 0o027
        assert Grant.objects.get(pk=grant.pk).bytes_used == len(content)  # once each byte
    finally:
        proxy.send_signal(signal.SIGQUIT)
        gunicorn.send_signal(signal.SIGTERM)
        proxy.wait(timeout=30)
        gunicorn.wait(timeout=30)
    written = (tmp_path / "nginx" / "access.log").read_text()
    assert f"GET /api/v1/grants/{grant.pk}/files/shard.bin HTTP/" in written  # the real log
    assert token not in written and "?" not in written


def _gunicorn_limits_never_answer(port: int, authorization: str) -> None:
    """gunicorn answers its own limits (request line, header size and count) with HTML;
    behind the shipped nginx, whose limits are below them, the answer is always nginx's
    problem+json or the app's (issue #12). Lengths around both limits, bare LF too."""
    problem_or_json = {"application/problem+json", "application/json"}

    def send(line: str, headers: list[str], eol: str = "\r\n") -> tuple[int, str]:
        lines = [line, "Host: accessctl.example.org", authorization, *headers]
        request = eol.join([*lines, "Connection: close", "", ""]).encode()
        status, content_type, _ = raw_https(port, request)
        return status, content_type

    authorization = f"Authorization: {authorization}"
    for count in (101, 150, 2000, 7900, 9000):
        status, content_type = send("GET /api/v1/me HTTP/1.1", ["a:"] * count)
        assert content_type in problem_or_json, (count, status, content_type)
    assert send("GET /api/v1/me HTTP/1.1", ["a:"] * 150)[0] == 200  # the app's answer
    for length in [*range(7990, 8011, 5), *range(8185, 8196)]:
        for eol in ("\r\n", "\n"):
            padding = "y" * (length - len("GET /api/v1/me?x= HTTP/1.1"))
            status, content_type = send(f"GET /api/v1/me?x={padding} HTTP/1.1", [], eol)
            assert content_type in problem_or_json, ("line", length, status, content_type)
            value = "j" * (length - len("X-Junk:"))
            status, content_type = send("GET /api/v1/me HTTP/1.1", [f"X-Junk:{value}"], eol)
            assert content_type in problem_or_json, ("header", length, status, content_type)


def test_the_nginx_access_log_format_has_no_query_string():
    site = (DEPLOY / "nginx" / "accessctl.conf").read_text()
    start = site.index("log_format accessctl")
    log_format = site[start : site.index(";", start)]
    assert "$uri" in log_format and "$request_id" in log_format
    for leaky in ("$request ", '$request"', "$request_uri", "$args", "$query_string", "$arg_"):
        assert leaky not in log_format, leaky
    assert "$http_referer" not in log_format
    logs = [line.split() for line in site.splitlines() if line.strip().startswith("access_log")]
    assert logs and all(words[-1] == "accessctl;" for words in logs)


def _answers(client: httpx.Client, path: str) -> bool:
    try:
        return client.get(path).status_code == 200
    except httpx.HTTPError:
        time.sleep(0.1)
        return False


def test_systemd_units_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here")
    units = []
    for unit in (DEPLOY / "systemd").glob("*.service"):
        text = unit.read_text()
        for old, new in (
            ("/srv/accessctl/venv/bin", str(Path(sys.executable).parent)),
            ("/srv/accessctl/app", str(ROOT)),
            ("/etc/accessctl/accessctl.env", str(DEPLOY / "accessctl.env.example")),
            ("User=accessctl", "User=root"),
            ("Group=accessctl", "Group=root"),
        ):
            text = text.replace(old, new)
        name = unit.name.replace("@.service", "@urgent.service")
        (tmp_path / name).write_text(text)
        if unit.name.endswith("@.service"):
            (tmp_path / unit.name).write_text(text)
        units.append(str(tmp_path / name))
    check = subprocess.run([analyze, "verify", *units], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert check.stderr.strip() == ""
    for unit in (DEPLOY / "systemd").glob("*.service"):
        (umask,) = re.findall(r"^UMask=(0[0-7]{3})$", unit.read_text(), flags=re.MULTILINE)
        assert int(umask, 8) & 0o027 == 0o027, f"{unit.name} writes world-readable files"


def _umask_of(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^Umask:\s+([0-7]+)$", status, flags=re.MULTILINE).group(1), 8)


def test_image_entrypoint_runs_every_command_under_umask_0027(tmp_path):
    """The image's entrypoint, run as written, before a command that reports its umask
    and writes a file; Kubernetes passes commands as args so the entrypoint stays."""
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    (entrypoint,) = re.findall(r"^ENTRYPOINT (\[.*\])$", dockerfile, flags=re.MULTILINE)
    target = tmp_path / "written"
    script = f"import os; open({str(target)!r}, 'w').close(); print(oct(os.umask(0)))"
    run = subprocess.run(
        [*json.loads(entrypoint), sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
    )
    assert run.stdout.strip() == "0o27"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    for doc in manifests():
        pod = doc.get("spec", {}).get("template", {}).get("spec", {})
        for container in pod.get("containers", []):
            assert "command" not in container and container["args"], container["name"]
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert not any("entrypoint" in service for service in compose["services"].values())


def manifests() -> list[dict]:
    docs = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def test_the_demo_script_sets_umask_0027_before_any_command():
    """Its SQLite database, shards and keys are written by the commands it runs: none may
    be world-readable. (The demo itself is not run here: it serves until Ctrl-C.)"""
    script = (DEPLOY.parent / "scripts" / "demo").read_text().splitlines()
    commands = [line.strip() for line in script if line.strip() and not line.startswith("#")]
    assert commands[0] == "umask 027", commands[0]
    shown = subprocess.run(
        ["/bin/bash", "-c", f"{commands[0]}; umask"], capture_output=True, text=True, check=True
    )
    assert shown.stdout.strip() == "0027"


def test_kubernetes_manifests_reference_what_exists():
    docs = manifests()
    by_kind: dict[str, list[dict]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    kustomization = by_kind["Kustomization"][0]
    for resource in kustomization["resources"]:
        assert (DEPLOY / "k8s" / resource).exists()
    config = by_kind["ConfigMap"][0]["data"]
    deployments = {d["metadata"]["name"]: d for d in by_kind["Deployment"]}
    assert set(deployments) == {
        "accessctl-web",
        "accessctl-worker-urgent",
        "accessctl-worker-default",
        "accessctl-beat",
    }
    assert deployments["accessctl-beat"]["spec"]["replicas"] == 1
    for deployment in deployments.values():
        spec = deployment["spec"]
        assert (
            spec["selector"]["matchLabels"].items()
            <= spec["template"]["metadata"]["labels"].items()
        )
        for container in spec["template"]["spec"]["containers"]:
            assert container["image"] == kustomization["images"][0]["name"]
            assert container["resources"]["requests"]["cpu"]
            assert {"name": "accessctl"} in [e.get("secretRef") for e in container["envFrom"]]
    web = deployments["accessctl-web"]["spec"]["template"]["spec"]["containers"][0]
    assert config["GUNICORN_BIND"].endswith(f":{web['ports'][0]['containerPort']}")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        path = web[probe]["httpGet"]["path"]
        assert resolve(path).url_name in {"healthz", "readyz"}
    # Every HPA and PDB points at a Deployment that exists, by name or by its labels.
    for hpa in by_kind["HorizontalPodAutoscaler"]:
        assert hpa["spec"]["scaleTargetRef"]["name"] in deployments
    labels = [d["spec"]["template"]["metadata"]["labels"] for d in deployments.values()]
    for pdb in by_kind["PodDisruptionBudget"]:
        wanted = pdb["spec"]["selector"]["matchLabels"].items()
        assert any(wanted <= label.items() for label in labels)
    service = by_kind["Service"][0]
    assert service["spec"]["ports"][0]["targetPort"] == web["ports"][0]["name"]
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "EXPOSE 8000" in dockerfile and "deploy/gunicorn.conf.py" in dockerfile
    kubectl = shutil.which("kubectl")
    if kubectl:
        built = subprocess.run(
            [kubectl, "kustomize", str(DEPLOY / "k8s")], capture_output=True, text=True
        )
        assert built.returncode == 0, built.stderr
        assert "image: registry.example.org/accessctl:0.1.0" in built.stdout


def test_compose_file_runs_the_same_processes():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {
        "db",
        "redis",
        "migrate",
        "web",
        "worker-urgent",
        "worker-default",
        "beat",
        "nginx",
    } <= set(services)
    assert (
        services["worker-urgent"]["command"][services["worker-urgent"]["command"].index("-Q") + 1]
        == "urgent"
    )
    assert services["nginx"]["network_mode"] == "service:web"
    env_example = (DEPLOY / "accessctl.env.example").read_text()
    for required in (
        "DJANGO_SECRET_KEY",
        "ACCESSCTL_KEY_ENCRYPTION_KEY",
        "ACCESSCTL_TOKEN_PEPPERS",
        "DJANGO_ALLOWED_HOSTS",
    ):
        assert f"{required}=" in env_example


def _selects(selector: dict, labels: dict) -> bool:
    assert set(selector) <= {"matchLabels"}, "only matchLabels selectors are evaluated here"
    return selector.get("matchLabels", {}).items() <= labels.items()


def _admitted(docs: list[dict], labels: dict) -> list[tuple[dict, list]] | None:
    """What may connect to a pod with ``labels`` under the NetworkPolicies: None when no
    policy isolates it (everything may), else the (peer, ports) pairs admitted."""
    isolating = [
        d
        for d in docs
        if d["kind"] == "NetworkPolicy"
        and "Ingress" in d["spec"].get("policyTypes", ["Ingress"])
        and _selects(d["spec"]["podSelector"], labels)
    ]
    if not isolating:
        return None
    return [
        (peer, rule.get("ports", []))
        for policy in isolating
        for rule in policy["spec"].get("ingress", [])
        for peer in rule.get("from", [{}])  # a rule without "from" admits every source
    ]


def test_kubernetes_admits_only_the_ingress_controller_to_web_and_nothing_to_workers():
    docs = manifests()
    pods = {
        d["metadata"]["name"]: d["spec"]["template"].get("metadata", {}).get("labels", {})
        for d in docs
        if d["kind"] in {"Deployment", "Job"}
    }
    assert set(pods) >= {"accessctl-web", "accessctl-beat", "accessctl-migrate"}
    web = next(
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "accessctl-web"
    )
    port = web["spec"]["template"]["spec"]["containers"][0]["ports"][0]
    for name, labels in pods.items():
        admitted = _admitted(docs, labels)
        assert admitted is not None, f"{name} is not isolated: any pod may connect"
        if name != "accessctl-web":
            assert admitted == [], f"{name} accepts connections: {admitted}"
            continue
        assert admitted, "nothing may reach the web pods"
        for peer, ports in admitted:
            # One peer naming both the namespace and the pods, never an address block.
            assert set(peer) == {"namespaceSelector", "podSelector"}, peer
            assert peer["namespaceSelector"]["matchLabels"]
            assert peer["podSelector"]["matchLabels"]
            assert ports and all(p["port"] in {port["name"], port["containerPort"]} for p in ports)
    kustomization = next(d for d in docs if d["kind"] == "Kustomization")
    assert "networkpolicy.yaml" in kustomization["resources"]
    kubectl = shutil.which("kubectl")
    if kubectl:
        built = subprocess.run(
            [kubectl, "kustomize", str(DEPLOY / "k8s")], capture_output=True, text=True
        )
        built_docs = list(yaml.safe_load_all(built.stdout))
        policies = [d for d in built_docs if d["kind"] == "NetworkPolicy"]
        assert len(policies) == 2 and {p["metadata"]["namespace"] for p in policies} == {
            "accessctl"
        }


def test_kubernetes_trusts_no_network_as_proxies_and_production_accepts_its_configuration(
    tmp_path,
):
    config = next(d for d in manifests() if d["kind"] == "ConfigMap")["data"]
    result = manage(
        tmp_path,
        "check",
        extra_env={
            **PRODUCTION,
            **{k: v for k, v in config.items() if k.startswith("ACCESSCTL_TRUSTED")},
        },
    )
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    "proxies",
    ["10.0.0.0/8", "0.0.0.0/0", "172.16.0.0/12", "127.0.0.1/32,10.0.0.0/16", "fd00::/8", "nginx"],
)
def test_production_refuses_to_trust_a_whole_network_as_proxies(tmp_path, proxies):
    env = {**PRODUCTION, "ACCESSCTL_TRUSTED_PROXIES": proxies}
    result = manage(tmp_path, "check", check=False, extra_env=env)
    assert result.returncode != 0
    assert "ACCESSCTL_TRUSTED_PROXIES" in result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("cache_url", [None, "locmemcache://", "pymemcache://127.0.0.1:11211"])
def test_production_refuses_a_cache_the_processes_do_not_share(tmp_path, cache_url):
    """The per-token rate limit lives in the cache: a per-process cache would make it a
    limit per gunicorn worker."""
    env = {k: v for k, v in PRODUCTION.items() if k != "CACHE_URL"}
    if cache_url is not None:
        env["CACHE_URL"] = cache_url
    result = manage(tmp_path, "check", check=False, extra_env=env)
    assert result.returncode != 0
    assert "CACHE_URL" in result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize(
    "cache_url", ["redis://127.0.0.1:6379/1", "rediss://redis.internal:6380/2"]
)
def test_production_accepts_a_redis_cache(tmp_path, cache_url):
    env = {**PRODUCTION, "CACHE_URL": cache_url}
    assert "no issues" in manage(tmp_path, "check", extra_env=env).stdout


@pytest.mark.parametrize("proxies", ["127.0.0.1/32", "10.42.7.0/24,10.42.9.17", "fd00:1::/64"])
def test_production_accepts_narrow_proxy_addresses(tmp_path, proxies):
    env = {**PRODUCTION, "ACCESSCTL_TRUSTED_PROXIES": proxies}
    assert "no issues" in manage(tmp_path, "check", extra_env=env).stdout

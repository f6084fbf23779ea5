"""Real servers the tests run beside the app: SeaweedFS (S3) and nginx."""

import json
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3
from botocore.config import Config

SHIPPED_SITE = Path(__file__).resolve().parents[1] / "deploy" / "nginx" / "accessctl.conf"
SHIPPED_ARTIFACT_ROOT = "/srv/accessctl/data/artifacts/"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def weed_ports(count: int) -> list[int]:
    """``count`` free ports whose +10000 twins (SeaweedFS's gRPC ports) are free and valid
    too, and none of them another's twin (a master on P would take the S3 port P+10000)."""
    taken: set[int] = set()
    ports: list[int] = []
    for port in random.sample(range(20_000, 45_000), 2000):
        if {port, port + 10_000} & taken:
            continue
        if _bindable(port) and _bindable(port + 10_000):
            ports.append(port)
            taken |= {port, port + 10_000}
            if len(ports) == count:
                return ports
    raise RuntimeError("no free ports for SeaweedFS")


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str
    bucket: str

    def client(self):
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )


@contextmanager
def seaweedfs(workdir: Path) -> Iterator[S3Server]:
    """``weed server`` with its S3 gateway enforcing SigV4 for one identity."""
    weed = Path(sys.executable).with_name("weed")
    data = workdir / "data"
    data.mkdir(parents=True)
    s3_port, master_port, volume_port, filer_port = weed_ports(4)
    server = S3Server(
        f"http://127.0.0.1:{s3_port}", "accessctl-test", "test-secret-0123456789", "artifacts"
    )
    config = workdir / "s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "accessctl",
                        "credentials": [
                            {"accessKey": server.access_key, "secretKey": server.secret_key}
                        ],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    log = (workdir / "weed.log").open("wb")
    process = subprocess.Popen(
        [
            str(weed),
            "server",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-s3",
            f"-s3.port={s3_port}",
            f"-s3.config={config}",
            f"-master.port={master_port}",
            f"-volume.port={volume_port}",
            f"-filer.port={filer_port}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",  # its fixed default port would clash between servers
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        client, deadline = server.client(), time.monotonic() + 60
        while True:
            try:
                client.create_bucket(Bucket=server.bucket)
                break
            except Exception:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError((workdir / "weed.log").read_text()[-2000:]) from None
                time.sleep(0.3)
        yield server
    finally:
        # Its data is this test's temporary directory: nothing to keep, so no need to wait
        # for weed's graceful stop (it can take 20 s, and ignores SIGTERM for a while).
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def shipped_artifact_location(artifact_root: Path, internal_prefix: str) -> str:
    """The shipped configuration's X-Accel-Redirect location block, exactly as shipped
    (its nested whole-file location included) but for the artifact root."""
    site = SHIPPED_SITE.read_text()
    opening = f"location ^~ {internal_prefix} {{"
    start = site.index(opening)  # ValueError: the prefix is not the shipped one
    depth, end = 0, start
    for end in range(start, len(site)):
        depth += {"{": 1, "}": -1}.get(site[end], 0)
        if site[end] == "}" and depth == 0:
            break
    block = site[start : end + 1]
    assert SHIPPED_ARTIFACT_ROOT in block
    return block.replace(SHIPPED_ARTIFACT_ROOT, f"{artifact_root}/")


@contextmanager
def nginx(
    workdir: Path,
    *,
    upstream: str,
    artifact_root: Path,
    internal_prefix: str,
    direct_prefix: str | None = None,
) -> Iterator[str]:
    """nginx in front of ``upstream``, serving X-Accel-Redirect from ``artifact_root``
    with the shipped internal location (and, for benchmarks, the same files directly
    under ``direct_prefix``)."""
    direct = f"location {direct_prefix} {{ alias {artifact_root}/; }}" if direct_prefix else ""
    internal = shipped_artifact_location(artifact_root, internal_prefix)
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    port = free_port()
    for name in ("client", "proxy", "fastcgi", "uwsgi", "scgi"):
        (workdir / name).mkdir(parents=True, exist_ok=True)
    conf = workdir / "nginx.conf"
    conf.write_text(f"""
user root;
worker_processes 1;
daemon off;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {workdir}/client;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;
    sendfile on;
    server {{
        listen 127.0.0.1:{port};
        {internal}
        {direct}
        location / {{
            proxy_pass {upstream};
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $remote_addr;
        }}
    }}
}}
""")
    subprocess.run([binary, "-t", "-c", str(conf)], check=True, capture_output=True)
    process = subprocess.Popen([binary, "-c", str(conf)])
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def raw_https(port: int, request: bytes) -> tuple[int, str, bytes]:
    """Send ``request`` to 127.0.0.1:``port`` over TLS as it is (bytes an HTTP client would
    not send: a malformed line, thousands of headers) and read the answer until the server
    closes: (status, content type, body). Send ``Connection: close``."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the tests' self-signed certificates
    with (
        socket.create_connection(("127.0.0.1", port), timeout=30) as plain,
        context.wrap_socket(plain) as tls,
    ):
        tls.sendall(request)
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    content_type = next(
        (
            line.split(":", 1)[1].strip()
            for line in lines
            if line.lower().startswith("content-type:")
        ),
        "",
    )
    return int(lines[0].split()[1]), content_type, body

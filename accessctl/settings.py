"""Settings, read from environment variables only.

With no variables set this is the embedded default: SQLite, local files, a broker that
needs no server. ``ACCESSCTL_ENV=production`` switches on every production guard and
refuses to start with a missing or weak secret, DEBUG, or no allowed hosts.
"""

import contextlib
import os
import re
import secrets
from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

from accessctl.secret_rules import (
    bytes_problem,
    hosts_problem,
    peppers_problem,
    proxies_problem,
    secret_problem,
    url_password_problem,
)

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

ENVIRONMENT = env.str("ACCESSCTL_ENV", default="embedded")
if ENVIRONMENT not in {"embedded", "production"}:
    raise ImproperlyConfigured("ACCESSCTL_ENV must be 'embedded' or 'production'.")
PRODUCTION = ENVIRONMENT == "production"

DATA_DIR = Path(env.str("ACCESSCTL_DATA_DIR", default=str(BASE_DIR / "var")))


def _embedded_secret(name: str, nbytes: int) -> str:
    """A random secret made once per embedded install, so no secret ships in the repository."""
    path = DATA_DIR / name
    if not path.exists():
        DATA_DIR.mkdir(parents=True, exist_ok=True, mode=0o750)
        # Written whole to a private file (0600: never readable by others), then published
        # under its name with link(2), which never replaces: of processes starting at once
        # (web, worker, beat), one secret wins and every process reads it complete.
        draft = DATA_DIR / f".{name}.{os.getpid()}.{secrets.token_hex(4)}"
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_urlsafe(nbytes))
            # Another process may have published first: its secret is the one.
            with contextlib.suppress(FileExistsError):
                os.link(draft, path)
        finally:
            draft.unlink()
    return path.read_text().strip()


def _require_secret(name: str, problem: str, requirement: str) -> None:
    """Refuse to start on a weak secret, naming the variable, never its value."""
    if problem:
        raise ImproperlyConfigured(f"{name} {problem}: {requirement}")


if PRODUCTION:
    SECRET_KEY = env.str("DJANGO_SECRET_KEY")
    _require_secret(
        "DJANGO_SECRET_KEY",
        secret_problem(SECRET_KEY, min_length=50),
        "it must be at least 50 random characters, e.g. "
        'python -c "import secrets; print(secrets.token_urlsafe(50))".',
    )
    DEBUG = env.bool("DJANGO_DEBUG", default=False)
    if DEBUG:
        raise ImproperlyConfigured("DJANGO_DEBUG must be off in production.")
    ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")
    if _problem := hosts_problem(ALLOWED_HOSTS):
        raise ImproperlyConfigured(f"DJANGO_ALLOWED_HOSTS {_problem}.")
else:
    SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="") or _embedded_secret("secret_key", 50)
    DEBUG = env.bool("DJANGO_DEBUG", default=True)
    ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])

CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
CSRF_FAILURE_VIEW = "partners.api.edge.csrf_failure"

INSTALLED_APPS = [
    "accessctl.apps.AccessctlAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "axes",
    "django_celery_beat",
    "django_celery_results",
    "django_prometheus",
    "csp",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "accessctl.audit",
    "accessctl.signing",
    "accessctl.sessions",
    "partners",
]

MIDDLEWARE = [
    # /healthz and /readyz for probes that send the pod's address as Host (accessctl/health.py).
    "accessctl.health.ProbeMiddleware",
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    # Under /api/ every error is problem+json, whatever answered it (see partners/api/edge.py).
    "partners.api.edge.ApiProblemMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "accessctl.middleware.RequestContextMiddleware",
    # Every 4xx under /api/ counts toward the rate and is one audit event (evidence.py).
    "partners.api.evidence.RefusalEvidenceMiddleware",
    "partners.api.edge.ApiInputMiddleware",
    # No path answers Django's DEBUG technical 404 page (accessctl/notfound.py).
    "accessctl.notfound.NotFoundMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # Django's, never redirecting for a trailing slash under /api/ (a 404 there).
    "partners.api.edge.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
    # A portal page or action refused for lack of permission is one audit event.
    "partners.portal_refusals.PortalRefusalMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

AUTHENTICATION_BACKENDS = [
    "accessctl.audit.lockout.LockoutBackend",  # django-axes', marking its refusals
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "accessctl.urls"
WSGI_APPLICATION = "accessctl.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
            # ``size`` and ``moment`` filters in every template (accessctl/formats.py).
            "builtins": ["accessctl.formats"],
        },
    },
    # Plain text (the emails' text/plain parts, ``templates/email/*.txt``): rendered with
    # autoescape off, so an operator's reason reads ``<b> & "x"``, not ``&lt;b&gt;``. Named:
    # only ``render_to_string(..., using="text")`` reaches it; HTML never does.
    {
        "NAME": "text",
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": False,
        "OPTIONS": {"autoescape": False, "builtins": ["accessctl.formats"]},
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat share one file: WAL lets readers run beside the writer, and
    # IMMEDIATE transactions take the write lock up front instead of failing mid-way.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# The download path's few statements run prepared on PostgreSQL (accessctl/db.py); off
# behind a pooler in transaction mode that cannot keep prepared statements.
ACCESSCTL_DB_PREPARE = env.bool("DATABASE_PREPARED_STATEMENTS", default=True)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
# Every time the portal shows (lists, read-only fields, date hierarchies): to the second,
# in UTC and saying so, e.g. 2026-11-29 16:40:05 UTC (accessctl/locale_formats/en).
FORMAT_MODULE_PATH = ["accessctl.locale_formats"]

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"

ARTIFACT_ROOT = Path(env.str("ACCESSCTL_ARTIFACT_ROOT", default=str(DATA_DIR / "artifacts")))
# Embargoed weights and audit exports are nobody else's business on the host: files the
# storages write are chmod-ed explicitly, whatever the process umask. Artifacts are
# group-readable (0640 in 0750 folders) for nginx's X-Accel-Redirect location, with nginx's
# user in the service's group; exports are the service's alone (0600 in 0700 folders).
FILE_UPLOAD_PERMISSIONS = 0o640
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o750
_PRIVATE_FILES = {"file_permissions_mode": 0o600, "directory_permissions_mode": 0o700}
# Artifacts live in local files (embedded default, or behind nginx) or in an
# S3-compatible bucket (django-storages with boto3, SigV4 presigned URLs).
ACCESSCTL_ARTIFACT_STORAGE = env.str("ACCESSCTL_ARTIFACT_STORAGE", default="local")
ACCESSCTL_S3_EXPORTS_PREFIX = "accessctl.audit-exports"
_ARTIFACT_STORAGES: dict[str, dict[str, Any]] = {
    "local": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {
            "location": str(ARTIFACT_ROOT),
            "file_permissions_mode": FILE_UPLOAD_PERMISSIONS,
            "directory_permissions_mode": FILE_UPLOAD_DIRECTORY_PERMISSIONS,
        },
    },
    "s3": {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env.str("ACCESSCTL_S3_BUCKET", default="accessctl-artifacts"),
            "endpoint_url": env.str("ACCESSCTL_S3_ENDPOINT_URL", default="") or None,
            "region_name": env.str("ACCESSCTL_S3_REGION", default="us-east-1"),
            # Credentials come from the usual AWS_* variables or the instance role.
            "signature_version": "s3v4",
            "addressing_style": env.str("ACCESSCTL_S3_ADDRESSING_STYLE", default="path"),
            "querystring_auth": True,
            "file_overwrite": False,
            "default_acl": None,
        },
    },
}
STORAGES = {
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(DATA_DIR / "media")},
    },
    "artifacts": _ARTIFACT_STORAGES[ACCESSCTL_ARTIFACT_STORAGE],
    # Audit exports: beside the artifacts (same backend), under their own root or prefix.
    # In S3 the prefix holds a "." that no release slug ([-a-zA-Z0-9_]+) can spell, so no
    # artifact key ("{release}/{tag}/{path}") can ever name an export.
    "exports": {
        **_ARTIFACT_STORAGES[ACCESSCTL_ARTIFACT_STORAGE],
        "OPTIONS": {
            **_ARTIFACT_STORAGES[ACCESSCTL_ARTIFACT_STORAGE]["OPTIONS"],
            **(
                {"location": ACCESSCTL_S3_EXPORTS_PREFIX}
                if ACCESSCTL_ARTIFACT_STORAGE == "s3"
                else {"location": str(DATA_DIR / "exports"), **_PRIVATE_FILES}
            ),
        },
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

LOGIN_URL = "admin:login"

CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}
# The per-token rate limit (partners/api/ratelimit.py) is one limit across processes only
# in Django's RedisCache; any other cache keeps it per gunicorn worker (or not at all).
_SHARED_CACHE = "django.core.cache.backends.redis.RedisCache"
if PRODUCTION and CACHES["default"]["BACKEND"] != _SHARED_CACHE:
    raise ImproperlyConfigured(
        "CACHE_URL must name a Redis cache in production (redis://host:6379/1 or "
        "rediss://...): the per-token rate limit is kept there, and with a per-process "
        f"cache ({CACHES['default']['BACKEND']}) each web worker would allow the full rate."
    )

REST_FRAMEWORK = {
    # ``?format=`` chooses nothing (DRF's override 404s on an unknown one, outside the
    # schema); the API answers JSON. No route has a format suffix either.
    "URL_FORMAT_OVERRIDE": None,
    "DEFAULT_AUTHENTICATION_CLASSES": ["partners.api.auth.TokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": ["partners.api.auth.TokenThrottle"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["partners.api.edge.BoundedJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "partners.api.problems.problems_exception_handler",
    "UNAUTHENTICATED_USER": None,
    # OPTIONS answers 405 (problem+json): DRF's metadata would show the views' docstrings
    # (internal text). Nothing relies on it: no CORS anywhere (docs/api.md).
    "DEFAULT_METADATA_CLASS": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "accessctl API",
    "DESCRIPTION": (
        "Partner API (v1) for embargoed checkpoint downloads, and the staff API. "
        "Authenticate with 'Authorization: Bearer acx_...'. Errors are RFC 9457 problem "
        "details with a stable 'code'."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    # Path ids: what a PostgreSQL bigint holds (partners/api/edge.py IdConverter).
    "PATH_CONVERTER_OVERRIDES": {
        "id": {"type": "integer", "format": "int64", "minimum": 0, "maximum": 2**63 - 1}
    },
    # Every operation lists the problem+json answers it can give.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "partners.api.schema.add_problem_responses",
    ],
    "ENUM_NAME_OVERRIDES": {
        "GrantStatusEnum": "partners.models.Grant.Status",
        "GrantRequestStatusEnum": "partners.models.GrantRequest.Status",
        "CheckpointStatusEnum": "partners.models.Checkpoint.Status",
        "PartnerStatusEnum": "partners.models.Partner.Status",
        "ReleaseStatusEnum": "partners.models.Release.Status",
        "WindowStateEnum": "partners.api.serializers.WINDOW_STATES",
    },
}

# Celery: the embedded default uses kombu's filesystem transport, which needs no server.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL == "filesystem://":
    _broker_dir = DATA_DIR / "broker"
    for _folder in ("queue", "processed", "control"):
        (_broker_dir / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "store_processed": False,
        # The exchange tables; kombu's default is "control" under the working directory.
        "control_folder": str(_broker_dir / "control"),
    }
CELERY_RESULT_BACKEND = "django-db"
CELERY_RESULT_EXTENDED = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"
# Three queues, so revocation work never waits behind email or exports. A worker started
# without -Q consumes all three (the embedded demo); production runs one pool per queue.
CELERY_TASK_QUEUES = [Queue("urgent"), Queue("default"), Queue("slow")]
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "partners.tasks.cascade_revocation": {"queue": "urgent"},
    "partners.tasks.resume_revocations": {"queue": "urgent"},
    "partners.tasks.send_notifications": {"queue": "slow"},
    "partners.tasks.send_staff_digest": {"queue": "slow"},
    "partners.tasks.write_variants": {"queue": "slow"},
    "accessctl.audit.tasks.write_audit_export": {"queue": "slow"},
    "partners.tasks.run_detection": {"queue": "slow"},
}
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # A message a killed worker held comes back after this long (longer than any
        # task's time limit); the sweepers usually finish its work well before.
        "visibility_timeout": 900,
        # Sending from a request gives up fast when Redis is down (the change is already
        # committed and a sweeper sends the work later) instead of retrying for seconds.
        "max_retries": 1,
        "interval_start": 0,
        "interval_step": 0.2,
        "interval_max": 0.2,
        "socket_connect_timeout": 2,
    }

DEFAULT_FROM_EMAIL = env.str("DJANGO_DEFAULT_FROM_EMAIL", default="accessctl@localhost")

# django-otp: staff sign in with a password and a TOTP code.
OTP_TOTP_ISSUER = env.str("ACCESSCTL_OTP_ISSUER", default="accessctl")

# django-axes: lock a username from an address out after repeated failures.
AXES_FAILURE_LIMIT = env.int("ACCESSCTL_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("ACCESSCTL_LOGIN_COOLOFF_HOURS", default=1.0)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# Behind a reverse proxy: its addresses (CIDR). A request from one of them is attributed to
# the last address it wrote in X-Forwarded-For (deploy/nginx overwrites that header);
# the middleware puts it in REMOTE_ADDR for every check, limit and audit event.
ACCESSCTL_TRUSTED_PROXIES = env.list("ACCESSCTL_TRUSTED_PROXIES", default=[])
# Trusting a whole network (a Kubernetes pod network, 10.0.0.0/8) lets every host in it
# choose its client address and request id: list the proxies, not their network.
if PRODUCTION and (_problem := proxies_problem(ACCESSCTL_TRUSTED_PROXIES)):
    raise ImproperlyConfigured(f"ACCESSCTL_TRUSTED_PROXIES {_problem}.")
# Who may scrape /metrics (CIDR); everyone else gets 404.
ACCESSCTL_METRICS_ALLOW = env.list(
    "ACCESSCTL_METRICS_ALLOW",
    default=["127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"],
)
AXES_IPWARE_META_PRECEDENCE_ORDER = ["REMOTE_ADDR"]
AXES_LOCKOUT_TEMPLATE = "admin/locked_out.html"
AXES_VERBOSE = False
# A failed sign-in keeps its form data; a backup code typed with a wrong password is still
# unused, so it is masked like the password (the Security officer reads these rows).
AXES_SENSITIVE_PARAMETERS = ["otp_token"]

# Database sessions with the user's id as a column: ending one person's sessions is one
# query (accessctl/sessions).
SESSION_ENGINE = "accessctl.sessions.backend"
SESSION_COOKIE_AGE = env.int("ACCESSCTL_SESSION_SECONDS", default=8 * 3600)
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
# Content Security Policy (django-csp): only this origin's scripts, no inline script
# anywhere but the two API documentation pages (their views opt out, see urls.py).
# Inline style *attributes* are allowed: the dashboard positions its timeline with them.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env.bool("DJANGO_HSTS_PRELOAD", default=True)
    if not SECURE_HSTS_PRELOAD:
        # The operator chose not to be on browsers' preload list; say so once, here.
        SILENCED_SYSTEM_CHECKS = ["security.W021"]

# Email: EMAIL_URL in django-environ's form, e.g. smtp+tls://user:password@host:587. The
# embedded demo prints mail to the worker's console.
vars().update(
    env.email_url("EMAIL_URL", default="smtp://localhost:25" if PRODUCTION else "consolemail://")
)

# Secrets of the product itself. Production must set them; the embedded default makes
# them once in DATA_DIR.
# Ed25519 private keys are stored encrypted under this key (32 bytes, base64url).
ACCESSCTL_KEY_ENCRYPTION_KEY = env.str("ACCESSCTL_KEY_ENCRYPTION_KEY", default="")
# API tokens are stored as HMAC-SHA256 digests under a pepper with an id, so the pepper can
# rotate: "id:secret,id:secret"; the first signs new tokens.
_pepper_items = env.list("ACCESSCTL_TOKEN_PEPPERS", default=[])
ACCESSCTL_TOKEN_PEPPERS = dict(item.split(":", 1) for item in _pepper_items if ":" in item)
if PRODUCTION:
    from accessctl_wire import unb64 as _unb64

    try:
        # Read as accessctl.signing.keys reads it: base64url, padding tolerated.
        _kek = _unb64(ACCESSCTL_KEY_ENCRYPTION_KEY.rstrip("="))
    except ValueError:
        _kek = b""
    _require_secret(
        "ACCESSCTL_KEY_ENCRYPTION_KEY",
        secret_problem(ACCESSCTL_KEY_ENCRYPTION_KEY, min_length=43)
        or bytes_problem(_kek, length=32),
        "it must be 32 random bytes, base64url-encoded: signing keys are never stored unencrypted.",
    )
    _require_secret(
        "ACCESSCTL_TOKEN_PEPPERS",
        peppers_problem(_pepper_items),
        "each pepper must be 32+ random characters under its own id, e.g. "
        "'1:<secrets.token_urlsafe(32)>'.",
    )
    # Passwords inside connection URLs; the S3 secret key is read by boto3 itself.
    for _name in ("DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL", "EMAIL_URL"):
        _require_secret(
            _name,
            url_password_problem(env.str(_name, default="")),
            "use a generated password (16+ random characters) or none (peer or "
            "certificate authentication).",
        )
    _require_secret(
        "AWS_SECRET_ACCESS_KEY",
        secret_problem(_aws, min_length=32)
        if (_aws := env.str("AWS_SECRET_ACCESS_KEY", default=""))
        else "",
        "set the bucket's real secret key, or none (an instance or pod role).",
    )
else:
    ACCESSCTL_KEY_ENCRYPTION_KEY = ACCESSCTL_KEY_ENCRYPTION_KEY or _embedded_secret(
        "key_encryption_key", 32
    )
    ACCESSCTL_TOKEN_PEPPERS = ACCESSCTL_TOKEN_PEPPERS or {"1": _embedded_secret("token_pepper", 32)}
ACCESSCTL_TOKEN_PEPPER_ID = next(iter(ACCESSCTL_TOKEN_PEPPERS))

# Domain settings.
ACCESSCTL_DEFAULT_GRANT_DAYS = env.int("ACCESSCTL_DEFAULT_GRANT_DAYS", default=14)
ACCESSCTL_EARLY_ACCESS_APPROVALS = env.int("ACCESSCTL_EARLY_ACCESS_APPROVALS", default=2)
ACCESSCTL_TOKEN_MAX_DAYS = env.int("ACCESSCTL_TOKEN_MAX_DAYS", default=90)
# How long a partner member's emailed token link (a one-time claim code) works.
ACCESSCTL_TOKEN_CLAIM_HOURS = env.int("ACCESSCTL_TOKEN_CLAIM_HOURS", default=24)
ACCESSCTL_KEY_CACHE_SECONDS = env.int("ACCESSCTL_KEY_CACHE_SECONDS", default=30)
# How downloads leave: "local" (Django streams the file), "s3" (302 to a presigned URL),
# or "nginx" (X-Accel-Redirect to an internal location).
ACCESSCTL_DOWNLOAD_MODE = env.str("ACCESSCTL_DOWNLOAD_MODE", default="local")
ACCESSCTL_PRESIGN_SECONDS = env.int("ACCESSCTL_PRESIGN_SECONDS", default=60)
# Fair quota (partners/rules/leases.py, docs/decisions.md): bytes of a file re-requested
# within its lease (a retry, a resume, a refreshed presigned URL) are not charged again;
# the lease lasts this long and allows this many such re-requests, then a new one opens.
ACCESSCTL_DOWNLOAD_LEASE_SECONDS = env.int("ACCESSCTL_DOWNLOAD_LEASE_SECONDS", default=24 * 3600)
ACCESSCTL_DOWNLOAD_LEASE_REAUTHORIZATIONS = env.int(
    "ACCESSCTL_DOWNLOAD_LEASE_REAUTHORIZATIONS", default=100
)
# Leak attribution (docs/fingerprints.md): the Retry-After of a download refused because
# the partner's marked copy is still being written (503 variant_not_ready).
ACCESSCTL_VARIANT_RETRY_SECONDS = env.int("ACCESSCTL_VARIANT_RETRY_SECONDS", default=30)
ACCESSCTL_NGINX_INTERNAL_PREFIX = env.str("ACCESSCTL_NGINX_INTERNAL_PREFIX", default="/_artifacts/")
ACCESSCTL_API_RATE = env.str("ACCESSCTL_API_RATE", default="1200/min")
# The Hugging Face Hub-compatible download endpoint (docs/hub.md): a release is the model
# repository ``<ACCESSCTL_HUB_ORG>/<release slug>``, its files are resolved under
# ``/<ACCESSCTL_HUB_ORG>/``. The name must not be a first path segment the site uses.
ACCESSCTL_HUB_ORG = env.str("ACCESSCTL_HUB_ORG", default="lab")
_SITE_SEGMENTS = {"api", "admin", "static", "tokens", "metrics", "healthz", "readyz", "_problems"}
if ACCESSCTL_HUB_ORG in _SITE_SEGMENTS or not re.fullmatch(
    r"[A-Za-z0-9][A-Za-z0-9_-]{0,95}", ACCESSCTL_HUB_ORG
):
    raise ImproperlyConfigured("ACCESSCTL_HUB_ORG must be a free path segment (docs/hub.md).")
# Tree listings (``/api/models/{repo}/tree/...``) are paginated with a Link header.
ACCESSCTL_HUB_TREE_PAGE = env.int("ACCESSCTL_HUB_TREE_PAGE", default=1000)
# A grant that expires within this many hours, or whose quota is this share used, is
# named in an ``X-HF-Warning`` the client prints.
ACCESSCTL_HUB_WARN_HOURS = 72
ACCESSCTL_HUB_WARN_QUOTA = 0.8
# A refusal raised with a code missing from the registry (client/accessctl_wire/codes.py) raises
# at once in development and tests; production logs it and answers the refusal anyway.
ACCESSCTL_STRICT_CODES = env.bool("ACCESSCTL_STRICT_CODES", default=DEBUG)
# Lifecycle: remind approvers of requests pending this long (and again as often); warn
# partners of windows closing and grants expiring this far ahead; re-run a revocation's
# fan-out not finished after this many seconds (a lost message, a broker that was down).
ACCESSCTL_REQUEST_REMINDER_HOURS = env.int("ACCESSCTL_REQUEST_REMINDER_HOURS", default=24)
ACCESSCTL_DEADLINE_NOTICE_HOURS = env.int("ACCESSCTL_DEADLINE_NOTICE_HOURS", default=72)
# Leak attribution: the most bytes one detection's suspect files may hold together.
ACCESSCTL_DETECTION_MAX_BYTES = env.int("ACCESSCTL_DETECTION_MAX_BYTES", default=20 * 1024**3)
ACCESSCTL_REVOCATION_RESUME_SECONDS = env.int("ACCESSCTL_REVOCATION_RESUME_SECONDS", default=20)
# Emails link here and sign with this name.
ACCESSCTL_PUBLIC_URL = env.str("ACCESSCTL_PUBLIC_URL", default="http://127.0.0.1:8000").rstrip("/")
ACCESSCTL_SITE_NAME = env.str("ACCESSCTL_SITE_NAME", default="accessctl")
# Audit events younger than this are never deleted, whatever the retention command asks.
ACCESSCTL_AUDIT_RETENTION_MIN_DAYS = env.int("ACCESSCTL_AUDIT_RETENTION_MIN_DAYS", default=365)

# Seams where the platform calls the domain (docs/architecture.md): named here, imported
# when used, so nothing under accessctl/ imports partners/ (checked by .importlinter).
# The audit export's partner and release filters, as Q objects over AuditEvent.
ACCESSCTL_AUDIT_EXPORT_SCOPES = {
    "partner": "partners.audit_scope.partner_events",
    "release": "partners.audit_scope.release_events",
}
# The portal's dashboard: request -> template context for admin/index.html.
ACCESSCTL_PORTAL_DASHBOARD = "partners.dashboard.dashboard"
# The portal's own pages (the access matrix, the timeline): () -> [(route, view, name)],
# each view (request, site) -> response, served behind the portal's sign-in.
ACCESSCTL_PORTAL_PAGES = "partners.portal.views.pages"
# The portal's own-account pages save through domain actions.
ACCESSCTL_PORTAL_PASSWORD_FORM = "partners.my_account.OwnPasswordChangeForm"  # noqa: S105 (a class path)
ACCESSCTL_PORTAL_TWO_FACTOR_VIEW = "partners.my_account.two_factor_view"

# Logs: one JSON object per line in production (python-json-logger), plain text in the
# embedded demo; every record carries the request id its audit events hold.
ACCESSCTL_LOG_FORMAT = env.str("ACCESSCTL_LOG_FORMAT", default="json" if PRODUCTION else "plain")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request": {"()": "accessctl.logs.RequestContextFilter"}},
    "formatters": {
        # Both write no query string (accessctl/logs.py).
        "plain": {
            "()": "accessctl.logs.PlainFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s",
        },
        "json": {
            "()": "accessctl.logs.JsonFormatter",
            "format": (
                "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s "
                "%(client_address)s %(client_request_id)s"
            ),
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": ACCESSCTL_LOG_FORMAT,
            "filters": ["request"],
        }
    },
    "root": {"handlers": ["console"], "level": env.str("ACCESSCTL_LOG_LEVEL", default="INFO")},
    # Django's own handlers (DEFAULT_LOGGING: a console for DEBUG, mail to ADMINS, the
    # runserver line) are replaced by ours, so every record is written by the one handler
    # whose formatters redact query strings.
    "loggers": {
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}

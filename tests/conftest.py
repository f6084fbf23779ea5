import os

import pytest
from django.conf import settings

from tests.servers import seaweedfs

# ``tests/accessctl/test_embedded.py`` runs the database-rule tests again on SQLite (the
# embedded default), in a subprocess that sets ACCESSCTL_TESTS_ON_SQLITE.
if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql" and not (
    os.environ.get("ACCESSCTL_TESTS_ON_SQLITE")
):
    pytest.exit(
        "The tests run on PostgreSQL: run scripts/test, or set DATABASE_URL to a PostgreSQL server.",
        returncode=2,
    )

# Live-server threads must not keep connections open past a test, or the test database
# cannot be dropped at the end.
settings.DATABASES["default"]["CONN_MAX_AGE"] = 0


@pytest.fixture(autouse=True)
def _artifact_root(settings, tmp_path):
    """Each test gets its own artifact storage, and a fast password hasher."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    root = tmp_path / "artifacts"
    settings.STORAGES = {
        **settings.STORAGES,
        "artifacts": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(root)},
        },
        "exports": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "exports")},
        },
    }
    return root


# A real S3-compatible server (SeaweedFS) for the s3 download mode, one per module.
@pytest.fixture(scope="module")
def s3_server(tmp_path_factory):
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture
def s3_mode(settings, s3_server):
    settings.ACCESSCTL_DOWNLOAD_MODE = "s3"
    settings.STORAGES = {
        **settings.STORAGES,
        "artifacts": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": s3_server.bucket,
                "endpoint_url": s3_server.endpoint,
                "access_key": s3_server.access_key,
                "secret_key": s3_server.secret_key,
                "region_name": "us-east-1",
                "signature_version": "s3v4",
                "addressing_style": "path",
                "file_overwrite": False,
                "default_acl": None,
            },
        },
    }
    return s3_server

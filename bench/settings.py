"""accessctl's settings plus the baseline endpoint the benchmarks compare against."""

from accessctl.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
ACCESSCTL_API_RATE = "100000000/min"
LOGGING = {"version": 1, "disable_existing_loggers": True}

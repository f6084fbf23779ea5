"""English display formats: ISO-like, to the second, in UTC and saying so (the same
shape as ``accessctl_wire.formats.moment``: ``2026-11-29 16:40:05 UTC``). ``T`` is the
zone's abbreviation; the portal's zone is always UTC (``TIME_ZONE``)."""

DATETIME_FORMAT = "Y-m-d H:i:s T"
SHORT_DATETIME_FORMAT = "Y-m-d H:i:s T"
DATE_FORMAT = "Y-m-d"
SHORT_DATE_FORMAT = "Y-m-d"
TIME_FORMAT = "H:i:s"
MONTH_DAY_FORMAT = "Y-m-d"  # a list's date hierarchy: each day in full, never "11-29"
YEAR_MONTH_FORMAT = "Y-m"

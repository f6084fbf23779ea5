"""Prometheus metrics: requests (django-prometheus), download decisions by reason code,
quota debits, Celery task latency and failures, and the audit log's seal delay.

Scrape ``/metrics`` on each web process (only from the addresses in
``ACCESSCTL_METRICS_ALLOW``: loopback and private ranges by default; others get 404).
With several gunicorn or Celery processes per host, set ``PROMETHEUS_MULTIPROC_DIR`` to
an empty directory so every process's counts are summed. Workers serve their metrics on
``ACCESSCTL_WORKER_METRICS_PORT`` when it is set.
"""

import os
from collections.abc import Iterator
from datetime import timedelta

import prometheus_client
from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from prometheus_client import Counter, Histogram, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from accessctl.networks import address_in_networks

__all__ = ["DEBITED", "DECISIONS", "TASK_FAILURES", "TASK_SECONDS", "metrics_view"]

DECISIONS = Counter(
    "accessctl_download_decisions_total",
    "Download authorizations, by outcome and reason code",
    ["outcome", "reason"],
)
DEBITED = Counter("accessctl_quota_debited_bytes_total", "Bytes debited from grant quotas")
TASK_SECONDS = Histogram(
    "accessctl_task_duration_seconds",
    "Celery task run time",
    ["task"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
TASK_FAILURES = Counter("accessctl_task_failures_total", "Celery task failures", ["task"])


class AuditSealCollector(Collector):
    """Read at scrape time from the database: how old the oldest unsealed event is."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from django.db.models import Exists, Max, OuterRef

        from accessctl.audit.models import AuditCheckpoint, AuditEvent, AuditLeaf

        last = AuditCheckpoint.objects.aggregate(size=Max("tree_size"), at=Max("sealed_at"))
        unsealed = AuditEvent.objects.filter(
            ~Exists(AuditLeaf.objects.filter(event_id=OuterRef("pk")))
        )
        if last["at"] is not None:
            unsealed = unsealed.filter(occurred_at__gte=last["at"] - timedelta(hours=1))
        oldest = unsealed.order_by("occurred_at").values_list("occurred_at", flat=True).first()
        delay = (timezone.now() - oldest).total_seconds() if oldest else 0.0
        yield GaugeMetricFamily(
            "accessctl_audit_seal_delay_seconds",
            "Age of the oldest audit event not yet sealed (0: all sealed)",
            value=max(delay, 0.0),
        )
        yield GaugeMetricFamily(
            "accessctl_audit_tree_size",
            "Events covered by the last checkpoint",
            value=last["size"] or 0,
        )


def registry() -> prometheus_client.CollectorRegistry:
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        collected = prometheus_client.CollectorRegistry()
        multiprocess.MultiProcessCollector(collected)
        return collected
    return prometheus_client.REGISTRY


def metrics_view(request: HttpRequest) -> HttpResponse:
    if not address_in_networks(request.META.get("REMOTE_ADDR"), settings.ACCESSCTL_METRICS_ALLOW):
        raise Http404
    local = prometheus_client.CollectorRegistry()
    local.register(AuditSealCollector())
    body = prometheus_client.generate_latest(registry()) + prometheus_client.generate_latest(local)
    return HttpResponse(body, content_type=prometheus_client.CONTENT_TYPE_LATEST)

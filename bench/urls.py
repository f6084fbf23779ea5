import os

from django.db import connection
from django.urls import include, path
from django.utils import timezone
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accessctl.audit.models import AuditEvent
from partners.models import Grant


class Baseline(APIView):
    """A bare DRF endpoint: one SELECT by key, one INSERT. No auth, no throttle."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = []

    def get(self, request: Request, grant_id: int) -> Response:
        grant = Grant.objects.only("id", "bytes_used").get(pk=grant_id)
        AuditEvent.objects.create(
            occurred_at=timezone.now(),
            actor_label="bench",
            action="bench",
            target_type="g",
            target_id=str(grant.pk),
        )
        return Response({"id": grant.pk, "bytes_used": grant.bytes_used, "db": connection.vendor})


if os.environ.get("ACCESSCTL_BENCH_WITHOUT_AUDIT"):
    # Benchmark only: the same authorization with its quota debit but no audit insert,
    # to measure what the audit event costs (bench/run.py, "Cost of auditing").
    from partners.actions import downloads

    def _debit_without_audit(grant: Grant, requested_bytes: int, authorized: AuditEvent) -> bool:
        with connection.cursor() as cursor:
            cursor.execute(downloads._DEBIT_ONLY, [requested_bytes, grant.pk, requested_bytes])
            return bool(cursor.rowcount)

    downloads._debit = _debit_without_audit


urlpatterns = [
    path("bench/baseline/<int:grant_id>", Baseline.as_view()),
    path("", include("accessctl.urls")),
]

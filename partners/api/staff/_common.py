"""What every staff view shares: the caller and authority check, and a reason."""

from typing import Any

from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.views import APIView

from accessctl.actors import acting_user
from partners.authority import Operation, authorize

from ..auth import StaffCaller

__all__ = ["ReasonSerializer", "StaffView", "given_reason"]


class StaffView(APIView):
    # A staff operation: the token's owner must be allowed ``operation`` by the authority
    # table before anything in the request is parsed (the action checks it again, with its
    # target). A comment, not a docstring: the schema would show it on every operation.

    permission_classes = [StaffCaller]
    required_scope = "staff"
    operation: Operation | None = None

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if self.operation is not None:
            authorize(acting_user(request), self.operation)


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=300)


def given_reason(request: Request) -> str:
    """The body's ``reason`` (at most 300 characters), or 400 ``invalid``."""
    data = ReasonSerializer(data=request.data)
    data.is_valid(raise_exception=True)
    return str(data.validated_data["reason"])

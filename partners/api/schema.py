"""OpenAPI pieces drf-spectacular cannot infer."""

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema

from accessctl.codes import api_codes


class TokenAuthenticationScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "partners.api.auth.TokenAuthentication"
    name = "bearerToken"

    def get_security_definition(self, auto_schema: AutoSchema) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "acx_ + 36 base62 characters (the last 6 a checksum)",
        }


PROBLEM_SCHEMA = {
    "type": "object",
    "description": "An RFC 9457 problem: branch on `code` (docs/api.md lists them all).",
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {
            "type": "string",
            "enum": api_codes(),
            "description": "Stable: the registry in client/accessctl_wire/codes.py.",
        },
        "fields": {
            "type": "object",
            "additionalProperties": {},
            "description": "Validation errors by field (code invalid and some action codes).",
        },
    },
    "required": ["type", "title", "status", "detail", "code"],
    "additionalProperties": {},
}

_WHY = {
    400: "Malformed input: the path, query, headers or body (see `code`)",
    401: "No token, or one that is malformed, unknown, expired or revoked",
    403: "Refused: scope, caller rules, window, decision, or the owner's role",
    404: "No such object (or not yours), or an id no object can have",
    406: "`Accept` excludes JSON",
    409: "The change conflicts with the current state",
    413: "The body is larger than the server accepts",
    414: "The path or the query string is too long",
    415: "The body is not JSON",
    416: "The range cannot be satisfied (`Content-Range: bytes */size`)",
    429: "Too many requests, refused ones included, for this token or address (`Retry-After`)",
    431: "A header, or all of them, too large",
    500: "A fault of the server; the detail never says more",
    502: "The application server could not be reached (answered by the shipped nginx)",
    504: "The application server did not answer in time (answered by the shipped nginx)",
}


def _statuses(path: str, method: str, operation: dict[str, Any]) -> set[int]:
    # Every refusal counts toward the rate limit (partners.api.evidence): 429 anywhere.
    statuses = {400, 406, 413, 414, 429, 431, 500, 502, 504}
    if operation.get("security"):
        statuses |= {401, 403}
    writes = method in {"post", "put", "patch", "delete"}
    if "{" in path or writes:
        statuses.add(404)
    if writes:
        statuses.add(409)
    if "requestBody" in operation:
        statuses.add(415)
    if any(
        p.get("in") == "header" and p.get("name") == "Range"
        for p in operation.get("parameters", [])
    ):
        statuses.add(416)
    return statuses


def add_problem_responses(result: dict[str, Any], generator: Any, **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular post-processing hook: every operation lists the problem+json
    answers the API can give it (the edge, the caller rules, the view, the action), so a
    client, and the schema fuzzing in the tests, know every status is documented."""
    result.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    reference = {"$ref": "#/components/schemas/Problem"}
    for path, methods in result.get("paths", {}).items():
        for method, operation in methods.items():
            responses = operation.setdefault("responses", {})
            for status in sorted(_statuses(path, method, operation)):
                answer = responses.setdefault(str(status), {"description": _WHY[status]})
                if not answer.get("content"):
                    answer["content"] = {"application/problem+json": {"schema": reference}}
    return result

"""OpenAPI: the bearer scheme, the scope each operation needs, and every problem
response an operation can give, documented as `application/problem+json`."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers

from api.problems import PROBLEM_CONTENT_TYPE, PROBLEM_TYPES


class FieldErrorSerializer(serializers.Serializer):
    field = serializers.CharField(
        allow_null=True, help_text="Dotted path of the field (`signals.3.name`); null: the body."
    )
    message = serializers.CharField()


class ProblemSerializer(serializers.Serializer):
    """RFC 9457 problem details. Extension members carry the specifics of a domain
    error: `current_state`, `transition`, `failed_conditions`, `case_id`, `required_scope`."""

    type = serializers.CharField(help_text="URI of the problem type; GET it for a description.")
    title = serializers.CharField()
    status = serializers.IntegerField()
    detail = serializers.CharField()
    code = serializers.ChoiceField(choices=sorted(PROBLEM_TYPES))
    instance = serializers.CharField(required=False)
    errors = FieldErrorSerializer(many=True, required=False)
    current_state = serializers.CharField(required=False)
    transition = serializers.CharField(required=False)
    required_scope = serializers.CharField(required=False)

    class Meta:
        ref_name = "Problem"


_DESCRIPTIONS = {
    400: "Malformed JSON body.",
    401: "No credentials, or an unknown, revoked or expired token.",
    403: "The token lacks the scope, or the caller may not do this.",
    404: "No such object (or not visible to the caller), or an invalid cursor.",
    405: "Method not allowed.",
    406: "Only JSON responses are available.",
    409: "Conflict: the transition is not allowed from the current state, or the object "
    "changed concurrently.",
    415: "The body must be application/json.",
    422: "Invalid input; see `errors`. Nothing was changed.",
    429: "Too many requests for this token; see `Retry-After`.",
    503: "Not available on this installation (reports need PostgreSQL).",
}
_ALWAYS = (401, 403, 404, 406, 429)
_WITH_BODY = (400, 415, 422)


class ProblemAutoSchema(AutoSchema):
    """Adds the problem responses and the required scope to every operation.

    A view may name extra statuses in `problem_statuses` (e.g. 409 for transitions).
    """

    def _required_scope(self) -> str | None:
        return getattr(self.view, "required_scopes", {}).get(self.method)

    def get_description(self) -> str:
        description = super().get_description()
        scope = self._required_scope()
        if scope:
            note = f"Token scope: `{scope}`."
            description = f"{description}\n\n{note}" if description else note
        return description

    def get_extensions(self) -> dict[str, Any]:
        scope = self._required_scope()
        return {"x-required-scope": scope} if scope else {}

    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        if not getattr(self.view, "required_scopes", None):
            return responses  # public pages (schema, docs) fail only as plain 4xx
        statuses = set(_ALWAYS)
        if self.method in ("POST", "PUT", "PATCH"):
            statuses.update(_WITH_BODY)
        statuses.update(getattr(self.view, "problem_statuses", ()))
        for status in sorted(statuses):
            code = str(status)
            if code in responses:
                continue
            response = self._get_response_for_code(
                ProblemSerializer, code, [PROBLEM_CONTENT_TYPE], direction
            )
            response["description"] = _DESCRIPTIONS[status]
            if status == 429:
                response["headers"] = {
                    "Retry-After": {
                        "schema": {"type": "integer"},
                        "description": "Seconds to wait before the next request.",
                    }
                }
            responses[code] = response
        return responses


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "api.auth.BearerTokenAuthentication"
    name = "bearerToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token from the admin (API tokens), e.g. `obk_…`. "
            "Each operation names the scope it needs.",
        }

"""One error body everywhere: RFC 9457 problem details, `application/problem+json`.

`problem_exception_handler` is DRF's exception handler for every API view; the
`api_page_not_found` / `api_server_error` handlers give URLs outside any view under
/api/ the same body. Field errors are `errors: [{field, message}]`; a domain error's
details (current_state, transition, case_id, …) become extension members.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.settings import api_settings

from onboarding.errors import DomainError

log = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"
TYPE_BASE = "/api/problems/"

# code → (title, what it means for a client). Each has a page under /api/problems/.
PROBLEM_TYPES: dict[str, tuple[str, str]] = {
    "malformed_request": ("Malformed request", "The body is not valid JSON."),
    "invalid_input": (
        "Invalid input",
        "A field is missing or has a value the API cannot accept; see `errors`. "
        "Nothing was changed.",
    ),
    "not_authenticated": (
        "Authentication required",
        "Send `Authorization: Bearer <token>`, or sign in to the admin first.",
    ),
    "authentication_failed": (
        "Authentication failed",
        "The token is unknown, revoked or expired.",
    ),
    "insufficient_scope": (
        "Insufficient scope",
        "The token lacks the scope this operation needs (`required_scope`).",
    ),
    "forbidden": (
        "Forbidden",
        "The caller may not do this to this object (for example an integration "
        "completing a human step).",
    ),
    "not_found": ("Not found", "No such object, or the caller may not see it."),
    "method_not_allowed": ("Method not allowed", "See the `Allow` header."),
    "not_acceptable": ("Not acceptable", "The API answers in JSON only."),
    "unsupported_media_type": ("Unsupported media type", "Send `application/json`."),
    "conflict": (
        "Conflict",
        "The object changed under the request, or the request clashes with its state "
        "(for example a second open case for the same account and playbook). Re-read, retry.",
    ),
    "transition_not_allowed": (
        "Transition not allowed",
        "The transition does not exist from the object's `current_state`, or its "
        "conditions fail (`failed_conditions`).",
    ),
    "idempotency_key_reused": (
        "Idempotency-Key reused with a different request",
        "An Idempotency-Key identifies one request: send a new key for a different body.",
    ),
    "throttled": ("Too many requests", "Wait `Retry-After` seconds."),
    "not_available": (
        "Not available here",
        "This installation cannot serve it (reports need PostgreSQL); retrying will not help.",
    ),
    "server_error": ("Internal server error", "Something broke on our side; it was logged."),
}

_DRF_CODES = {
    exceptions.ParseError: "malformed_request",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
}


def type_uri(code: str) -> str:
    return TYPE_BASE + code.replace("_", "-")


def problem_body(
    status: int,
    code: str,
    detail: str,
    *,
    instance: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    **extensions: Any,
) -> dict[str, Any]:
    title = PROBLEM_TYPES.get(code, ("Error", ""))[0]
    body: dict[str, Any] = {
        "type": type_uri(code),
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if instance:
        body["instance"] = instance
    if errors is not None:
        body["errors"] = errors
    body.update({k: v for k, v in extensions.items() if k not in body})
    return body


def problem_response(
    status: int, code: str, detail: str, *, headers: dict[str, str] | None = None, **kw: Any
) -> Response:
    return Response(
        problem_body(status, code, detail, **kw),
        status=status,
        headers=headers,
        content_type=PROBLEM_CONTENT_TYPE,
    )


def field_errors(detail: Any, path: str = "") -> Iterator[dict[str, Any]]:
    """DRF's nested error detail as a flat list; nested fields are dotted (`signals.3.name`)."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = "" if key == api_settings.NON_FIELD_ERRORS_KEY else str(key)
            yield from field_errors(value, f"{path}.{name}" if path and name else name or path)
    elif isinstance(detail, list):
        if all(isinstance(item, str) for item in detail):
            for item in detail:
                yield {"field": path or None, "message": str(item)}
        else:
            for index, item in enumerate(detail):
                if item:
                    yield from field_errors(item, f"{path}.{index}" if path else str(index))
    else:
        yield {"field": path or None, "message": str(detail)}


def _from_domain_error(exc: DomainError, instance: str | None) -> Response:
    details = dict(exc.details)
    errors = None
    if exc.status == 422:
        errors = [{"field": details.pop("field", None), "message": exc.message}]
    return problem_response(
        exc.status, exc.code, exc.message, instance=instance, errors=errors, **details
    )


def problem_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    request = context.get("request")
    instance = request.get_full_path() if request is not None else None

    if isinstance(exc, DomainError):
        return _from_domain_error(exc, instance)
    if isinstance(exc, Http404):
        return problem_response(404, "not_found", "Not found.", instance=instance)
    if isinstance(exc, DjangoPermissionDenied):
        return problem_response(
            403, "forbidden", str(exc) or "Permission denied.", instance=instance
        )
    if isinstance(exc, exceptions.ValidationError):
        errors = list(field_errors(exc.detail))
        fields = sorted({e["field"] for e in errors if e["field"]})
        if len(errors) == 1:
            first = errors[0]
            detail = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
        else:
            detail = f"{len(errors)} errors in: {', '.join(fields) or 'the body'}."
        return problem_response(422, "invalid_input", detail, instance=instance, errors=errors)
    if isinstance(exc, exceptions.APIException):
        headers: dict[str, str] = {}
        extensions: dict[str, Any] = {}
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None) is not None:
            headers["Retry-After"] = str(max(1, math.ceil(exc.wait)))
        code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), None)
        if code is None:
            code = "insufficient_scope" if hasattr(exc, "required_scope") else "forbidden"
            if exc.status_code != 403:
                code = "server_error" if exc.status_code >= 500 else "invalid_input"
        if hasattr(exc, "required_scope"):
            extensions["required_scope"] = exc.required_scope
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if code == "throttled":
            detail = f"Too many requests; retry in {headers['Retry-After']} seconds."
        return problem_response(
            exc.status_code,
            code,
            detail,
            headers=headers or None,
            instance=instance,
            **extensions,
        )

    log.exception("Unexpected error in %s", instance, exc_info=exc)
    return problem_response(
        500, "server_error", "An unexpected error occurred; it was logged.", instance=instance
    )


# --- Django-level handlers (no DRF view matched, or a failure outside one) -----------


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def _json_problem(request: HttpRequest, status: int, code: str, detail: str) -> JsonResponse:
    return JsonResponse(
        problem_body(status, code, detail, instance=request.get_full_path()),
        status=status,
        content_type=PROBLEM_CONTENT_TYPE,
    )


def api_page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return _json_problem(request, 404, "not_found", "No API operation at this URL.")
    return defaults.page_not_found(request, exception)


def api_server_error(request: HttpRequest) -> HttpResponse:
    if _is_api(request):
        return _json_problem(request, 500, "server_error", "An unexpected error occurred.")
    return defaults.server_error(request)


def problem_type_page(request: HttpRequest, slug: str) -> HttpResponse:
    """What a problem `type` URI points at: its title and meaning."""
    code = slug.replace("-", "_")
    if code not in PROBLEM_TYPES:
        return api_page_not_found(request, Http404())
    title, description = PROBLEM_TYPES[code]
    return JsonResponse(
        {"type": type_uri(code), "code": code, "title": title, "description": description}
    )

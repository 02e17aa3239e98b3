"""`Idempotency-Key` on creates: a retry gets the first response, byte for byte.

The key row is inserted first, in the same transaction as the create. A concurrent
request with the same key blocks on the unique index until the first commits, then
fails to insert and replays the stored response; if the first rolled back (a domain
error), the second inserts and runs the create itself. Only successful responses are
stored: a refused request may be retried with the same key once its cause is fixed.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpResponse
from rest_framework import exceptions
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from api.auth import owner_key
from api.models import IdempotencyKey
from onboarding.errors import InvalidInput
from onboarding.services._write import atomic_write

HEADER = "Idempotency-Key"
KEY_PATTERN = r"^[!-~]{1,255}$"  # 1 to 255 visible ASCII characters
_KEY = re.compile(KEY_PATTERN)
_REPLAYED_HEADERS = ("Location",)


class IdempotencyKeyReused(InvalidInput):
    code = "idempotency_key_reused"


def fingerprint(request: Request) -> str:
    body = json.dumps(request.data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{request.method}\n{request.path}\n{body}".encode()).hexdigest()


def _rendered(response: Response) -> HttpResponse:
    content = JSONRenderer().render(response.data)
    headers = {h: response[h] for h in _REPLAYED_HEADERS if response.has_header(h)}
    return HttpResponse(
        content, status=response.status_code, content_type="application/json", headers=headers
    )


def _replay(stored: IdempotencyKey, request_fingerprint: str) -> HttpResponse:
    if stored.fingerprint != request_fingerprint:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was used for a different request; use a new key.",
            field=HEADER,
        )
    return HttpResponse(
        stored.response_body.encode(),
        status=stored.response_status,
        content_type="application/json",
        headers={**stored.response_headers, "Idempotent-Replayed": "true"},
    )


def idempotent(request: Request, create: Callable[[], Response]) -> HttpResponse | Response:
    """Run `create` once per (caller, Idempotency-Key); replay its response on retries."""
    key = request.headers.get(HEADER)
    if key is None:
        if settings.API_IDEMPOTENCY_KEY_REQUIRED:
            raise exceptions.ValidationError({HEADER: ["This header is required."]})
        return create()
    if not _KEY.match(key):
        raise exceptions.ValidationError({HEADER: ["Use 1 to 255 visible ASCII characters."]})
    request_fingerprint = fingerprint(request)
    owner = owner_key(request)
    with atomic_write():  # a lock timeout on a key in use becomes a 409
        try:
            with transaction.atomic():  # savepoint: a duplicate undoes only this insert
                row = IdempotencyKey.objects.create(
                    owner=owner,
                    key=key,
                    fingerprint=request_fingerprint,
                    response_status=0,
                    response_body="",
                )
        except IntegrityError:
            stored = IdempotencyKey.objects.get(owner=owner, key=key)
            return _replay(stored, request_fingerprint)
        response = _rendered(create())
        row.response_status = response.status_code
        row.response_body = response.content.decode()
        row.response_headers = {h: response[h] for h in _REPLAYED_HEADERS if response.has_header(h)}
        row.save(update_fields=["response_status", "response_body", "response_headers"])
        return response

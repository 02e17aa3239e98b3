"""Per-client rate limits: one bucket per token (its own rate, else the setting), one per
signed-in user. 429 with `Retry-After` comes from the problem handler."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from api.auth import token_of


class PerClientRateThrottle(SimpleRateThrottle):
    scope = "api"

    def __init__(self) -> None:  # the rate depends on the caller: chosen per request
        self.rate = None
        self._key: str | None = None

    def allow_request(self, request: Request, view: Any) -> bool:
        token = token_of(request)
        if token is not None:
            self.rate = token.throttle_rate or settings.API_TOKEN_THROTTLE_RATE
            self._key = f"api-throttle:token:{token.pk}"
        elif request.user is not None and request.user.is_authenticated:
            self.rate = settings.API_SESSION_THROTTLE_RATE
            self._key = f"api-throttle:user:{request.user.pk}"
        else:
            return True  # anonymous requests only reach the public schema and docs
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        return self._key

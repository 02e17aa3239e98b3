"""Who is calling: an integration with a bearer token, or a signed-in staff user.

Scopes gate tokens only. A signed-in user is gated by their role, through the same
FSM permissions as in the admin (the services check them).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from api.models import ApiToken, hash_secret
from onboarding.actors import Actor

REPORTS_READ = "reports:read"  # manager reports, `/api/v1/reports/…`

# last_used_at is written at most this often per token: no write on every request.
LAST_USED_GRANULARITY = timedelta(minutes=1)


class Integration:
    """`request.user` for a token: authenticated, but no Django user and no permissions."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None
    id = None

    def __init__(self, token: ApiToken) -> None:
        self.token = token

    def get_username(self) -> str:
        return f"token:{self.token.prefix}"

    def has_perm(self, perm: str, obj: Any = None) -> bool:
        return False

    def __str__(self) -> str:
        return self.get_username()


class BearerTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer <secret>`; the secret is looked up by its SHA-256."""

    keyword = "bearer"

    def authenticate(self, request: Request) -> tuple[Integration, ApiToken] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != self.keyword:
            return None  # not ours: the session may still authenticate
        secret = secret.strip()
        if not secret or " " in secret:
            raise exceptions.AuthenticationFailed(
                "Send the token as `Authorization: Bearer <token>`."
            )
        token = ApiToken.objects.filter(secret_hash=hash_secret(secret)).first()
        if token is None or not token.is_usable:
            raise exceptions.AuthenticationFailed("The token is unknown, revoked or expired.")
        now = timezone.now()
        if token.last_used_at is None or now - token.last_used_at > LAST_USED_GRANULARITY:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
            token.last_used_at = now
        return Integration(token), token

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


def token_of(request: Request) -> ApiToken | None:
    auth = getattr(request, "auth", None)
    return auth if isinstance(auth, ApiToken) else None


def actor_for(request: Request) -> Actor:
    """The actor every service call of this request runs as."""
    actor = getattr(request, "_api_actor", None)
    if actor is None:
        token = token_of(request)
        if token is not None:
            actor = Actor.integration(str(token.pk), source="api")
        else:
            actor = Actor.for_user(request.user, source="api")
        request._api_actor = actor
    return actor


def owner_key(request: Request) -> str:
    """Whose idempotency keys these are: one namespace per token or per user."""
    token = token_of(request)
    return f"token:{token.pk}" if token is not None else f"user:{request.user.pk}"


class InsufficientScope(exceptions.PermissionDenied):
    default_code = "insufficient_scope"

    def __init__(self, scope: str) -> None:
        super().__init__(f"This token lacks the {scope!r} scope.", code="insufficient_scope")
        self.required_scope = scope


class ScopedAccess(BasePermission):
    """Tokens need the view's scope for the method; sessions need an active staff user.

    Views declare `required_scopes = {"GET": "cases:read", ...}`. A method a view does
    not declare passes here and is refused by the view itself (405).
    """

    def has_permission(self, request: Request, view: Any) -> bool:
        scopes: dict[str, str] = getattr(view, "required_scopes", {})
        token = token_of(request)
        if token is not None:
            scope = scopes.get(request.method or "")
            if scope is None or token.has_scope(scope):
                return True
            raise InsufficientScope(scope)
        user = request.user
        if not (user and user.is_authenticated):
            return False  # DRF answers 401 with the token scheme's challenge
        if not (user.is_active and user.is_staff):
            raise exceptions.PermissionDenied(
                "The API accepts API tokens and signed-in staff users."
            )
        return True

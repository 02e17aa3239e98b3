"""API tokens and stored idempotent responses."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

# What a token may do. Scopes gate tokens only; a signed-in user is gated by their role.
SCOPES: dict[str, str] = {
    "accounts:read": "Read accounts",
    "accounts:write": "Create and update accounts",
    "cases:read": "Read cases, their tasks and context log",
    "cases:write": "Open cases, run case and task transitions, add notes",
    "signals:write": "Send product signals",
    "events:read": "Export the event stream",
    "queues:read": "List queues",
    "queues:claim": "Claim the next task of a queue",
    "webhooks:manage": "Manage webhook subscriptions",
}
SECRET_PREFIX = "obk_"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiTokenQuerySet(models.QuerySet):
    def usable(self) -> ApiTokenQuerySet:
        now = timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now)
        )


class ApiToken(models.Model):
    """A credential of one integration. Only the SHA-256 of its secret is stored."""

    name = models.CharField(max_length=120, help_text="Who uses it, e.g. “CRM sync”.")
    prefix = models.CharField(
        max_length=16, unique=True, editable=False, help_text="The start of the secret."
    )
    secret_hash = models.CharField(max_length=64, unique=True, editable=False)
    scopes = models.JSONField(default=list, blank=True)
    throttle_rate = models.CharField(
        max_length=20,
        blank=True,
        help_text='Requests allowed, e.g. "100/min". Empty: the API_TOKEN_THROTTLE_RATE setting.',
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        editable=False,
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: never expires.")
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @classmethod
    def issue(cls, *, name: str, scopes: list[str], **fields: Any) -> tuple[ApiToken, str]:
        """Create a token; returns it and its secret, which is never stored or shown again."""
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        token = cls(name=name, scopes=sorted(set(scopes)), **fields)
        token.set_secret(secret)
        token.save()
        return token, secret

    def set_secret(self, secret: str) -> None:
        self.prefix = secret[: len(SECRET_PREFIX) + 8]
        self.secret_hash = hash_secret(secret)

    @property
    def is_usable(self) -> bool:
        return self.revoked_at is None and (
            self.expires_at is None or self.expires_at > timezone.now()
        )

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes


class IdempotencyKey(models.Model):
    """The first response to a create sent with an `Idempotency-Key`, replayed on retries."""

    owner = models.CharField(max_length=80, help_text='"token:<id>" or "user:<id>".')
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(
        max_length=64, help_text="SHA-256 of method, path and canonical JSON body."
    )
    response_status = models.PositiveSmallIntegerField()
    # The rendered bytes (as text), so a replay is byte-for-byte the first response.
    response_body = models.TextField()
    response_headers = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["owner", "key"], name="one_idempotency_key_per_owner")
        ]

    def __str__(self) -> str:
        return f"{self.owner} {self.key}"

"""API tokens, stored idempotent responses, webhook subscriptions and their deliveries."""

from __future__ import annotations

import hashlib
import secrets
import uuid
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
    "reports:read": "Read the manager reports",
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
        # The retention task drops responses past their TTL in batches by age.
        indexes = [models.Index(fields=["created_at"], name="idempotency_created")]

    def __str__(self) -> str:
        return f"{self.owner} {self.key}"


# --- webhooks -------------------------------------------------------------------------

WEBHOOK_SECRET_PREFIX = "whsec_"
ALL_EVENTS = "*"


class WebhookSubscription(models.Model):
    """An endpoint that receives the events it subscribed to, signed with its secret.

    Its position in the event stream (`stream_xact`, `stream_event_id`) is where the
    relay cuts its next deliveries from; it moves only in the transaction that stores
    them, so a relay that dies loses nothing.
    """

    url = models.URLField(max_length=500)
    event_names = models.JSONField(
        default=list, help_text='Event names to receive, or ["*"] for every event.'
    )
    description = models.CharField(max_length=200, blank=True)
    # Kept readable: every delivery is signed with it. Shown once, when created.
    secret = models.CharField(max_length=80, editable=False)
    is_active = models.BooleanField(default=True)
    consecutive_failures = models.PositiveIntegerField(default=0, editable=False)
    disabled_at = models.DateTimeField(null=True, blank=True, editable=False)
    disabled_reason = models.CharField(max_length=200, blank=True, editable=False)
    stream_xact = models.BigIntegerField(default=0, editable=False)
    stream_event_id = models.BigIntegerField(default=0, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        editable=False,
    )
    created_by_token = models.ForeignKey(
        ApiToken,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        editable=False,
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "webhook"

    def __str__(self) -> str:
        return self.url

    @staticmethod
    def new_secret() -> str:
        return WEBHOOK_SECRET_PREFIX + secrets.token_urlsafe(32)

    def wants(self, event_name: str) -> bool:
        return ALL_EVENTS in self.event_names or event_name in self.event_names


class WebhookDelivery(models.Model):
    """One event for one subscription, sent until the receiver answers 2xx.

    `delivery_id` is the same on every attempt and redelivery: receivers dedupe on it.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    delivery_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    subscription = models.ForeignKey(
        WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries"
    )
    # Like the event's own references: no constraint, events are purged by retention.
    event = models.ForeignKey(
        "analytics.Event",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    event_name = models.CharField(max_length=80)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(
        default=0, help_text="Attempts since it was last queued (a redelivery starts again)."
    )
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_excerpt = models.TextField(blank=True)
    error = models.CharField(max_length=300, blank=True)
    redeliveries = models.PositiveIntegerField(default=0, help_text="Manual redeliveries.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "event"], name="one_delivery_per_event_and_webhook"
            )
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(status="pending"),
                name="webhook_delivery_due",
            )
        ]

    def __str__(self) -> str:
        return f"{self.event_name} → {self.subscription_id} ({self.delivery_id})"


class WebhookAttempt(models.Model):
    """The log of one HTTP attempt of a delivery."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="log")
    number = models.PositiveIntegerField()
    attempted_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField()
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_excerpt = models.TextField(blank=True)
    error = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-attempted_at", "-id"]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.delivery_id}"

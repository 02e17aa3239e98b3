"""Raw analytics events: append-only, one row per thing that happened."""

from __future__ import annotations

import uuid
from typing import Any

from django.db import models


class AppendOnly(Exception):
    """Events are never edited; only retention removes them."""


class EventQuerySet(models.QuerySet):
    def update(self, **kwargs: Any) -> int:
        raise AppendOnly("events are append-only")

    def for_case(self, case_id: int) -> EventQuerySet:
        return self.filter(case_id=case_id).order_by("-occurred_at", "-id")


class Event(models.Model):
    # References are ids without database constraints: events outlive the rows they
    # describe and must not add foreign-key locking to every transition.
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=80)
    schema_version = models.PositiveSmallIntegerField()
    occurred_at = models.DateTimeField()
    recorded_at = models.DateTimeField()
    account = models.ForeignKey(
        "onboarding.Account",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        related_name="events",
    )
    case = models.ForeignKey(
        "onboarding.Case",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        related_name="events",
    )
    task = models.ForeignKey(
        "onboarding.Task",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        related_name="events",
    )
    step_key = models.CharField(max_length=60, blank=True)
    playbook_key = models.CharField(max_length=60, blank=True)
    playbook_version = models.PositiveIntegerField(null=True)
    actor_type = models.CharField(max_length=10)
    actor_id = models.CharField(max_length=64)
    source = models.CharField(max_length=20)
    segmentation = models.JSONField(default=dict)
    properties = models.JSONField(default=dict)

    objects = EventQuerySet.as_manager()

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [
            models.Index(fields=["case", "occurred_at"], name="event_case_time"),
            models.Index(fields=["account", "occurred_at"], name="event_account_time"),
            models.Index(fields=["name", "occurred_at"], name="event_name_time"),
            models.Index(fields=["recorded_at"], name="event_recorded"),
        ]

    def __str__(self) -> str:
        return f"{self.name} @ {self.occurred_at:%Y-%m-%d %H:%M}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnly("events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AppendOnly("events are append-only; retention purges them in bulk")

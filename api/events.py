"""The event export: pages of the commit-safe event stream behind an opaque cursor.

Why the cursor cannot skip an event is explained in `analytics.models`: the stream is
ordered by (writing transaction id, event id) and a page only ever holds events below
the oldest transaction still running, whose set can no longer change. Webhook
deliveries are cut from the same stream (`api.webhooks.relay`).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import QuerySet
from rest_framework import serializers

from analytics.models import (
    STREAM_START,
    Event,
    StreamPosition,
    position_after_page,
    stream_horizon,
)
from onboarding.actors import Actor
from onboarding.models import Account
from onboarding.selectors import scope_to_cases

CURSOR_VERSION = "1"
# What a page loads: the event and its account's external id.
_COLUMNS = (*(f.name for f in Event._meta.concrete_fields), "account__external_id")


class InvalidCursor(ValueError):
    pass


def encode_cursor(position: StreamPosition) -> str:
    raw = f"{CURSOR_VERSION}.{position.xact}.{position.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> StreamPosition:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        version, xact, event_id = raw.split(".")
        position = StreamPosition(int(xact), int(event_id))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidCursor("This is not a cursor the API gave out.") from None
    if version != CURSOR_VERSION or not (0 <= position.xact < 2**63 and 0 <= position.id < 2**63):
        raise InvalidCursor("This is not a cursor the API gave out.")
    return position


class EventSerializer(serializers.ModelSerializer):
    """One event as exported and as a webhook delivers it."""

    account_external_id = serializers.CharField(
        source="account.external_id", read_only=True, allow_null=True, default=None
    )
    case_id = serializers.IntegerField(read_only=True, allow_null=True)
    task_id = serializers.IntegerField(read_only=True, allow_null=True)
    segmentation = serializers.DictField(
        read_only=True, help_text="The account's plan, segment, region and channel then."
    )
    properties = serializers.DictField(read_only=True, help_text="As the catalog declares.")

    class Meta:
        model = Event
        fields = (
            "id",
            "uuid",
            "name",
            "schema_version",
            "occurred_at",
            "recorded_at",
            "account_external_id",
            "case_id",
            "task_id",
            "step_key",
            "playbook_key",
            "playbook_version",
            "actor_type",
            "actor_id",
            "source",
            "segmentation",
            "properties",
        )
        read_only_fields = fields


@dataclass(frozen=True)
class EventFilter:
    names: tuple[str, ...] = ()
    account_external_id: str | None = None
    case_id: int | None = None
    occurred_after: datetime | None = None  # inclusive
    occurred_before: datetime | None = None  # exclusive

    def apply(self, events: QuerySet[Event]) -> QuerySet[Event]:
        if self.names:
            events = events.filter(name__in=self.names)
        if self.account_external_id is not None:
            # Resolved first: the account is a lookup, not a join on every page.
            account_id = (
                Account.objects.filter(external_id=self.account_external_id)
                .values_list("pk", flat=True)
                .first()
            )
            events = events.filter(account_id=account_id) if account_id else events.none()
        if self.case_id is not None:
            events = events.filter(case_id=self.case_id)
        if self.occurred_after is not None:
            events = events.filter(occurred_at__gte=self.occurred_after)
        if self.occurred_before is not None:
            events = events.filter(occurred_at__lt=self.occurred_before)
        return events


@dataclass
class EventPage:
    events: list[Event]
    next_position: StreamPosition
    has_more: bool
    horizon: int | None = field(default=None)

    @property
    def next_cursor(self) -> str:
        return encode_cursor(self.next_position)


def read_page(
    after: StreamPosition = STREAM_START,
    *,
    limit: int,
    filters: EventFilter | None = None,
    actor: Actor | None = None,
) -> EventPage:
    """Up to `limit` events after `after`, in stream order, and where to continue.

    `actor` limits the events to the cases it may see (an agent's session); None or an
    integration sees every event. Must not run inside a transaction that has written.
    """
    horizon = stream_horizon()  # first: the events read next are final below it
    events = Event.objects.all()
    if actor is not None:
        events = scope_to_cases(events, actor, "case")
    if filters is not None:
        events = filters.apply(events)
    rows = list(
        events.stream_after(after, horizon).select_related("account").only(*_COLUMNS)[: limit + 1]
    )
    has_more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1].stream_position if rows else None
    return EventPage(
        events=rows,
        next_position=position_after_page(after, last, full=has_more, horizon=horizon),
        has_more=has_more,
        horizon=horizon,
    )

"""The event catalog page: every event the product records, as `analytics.catalog`
declares it, with what each row of the Events table carries besides.

Generated from the catalog in code, so it never lags behind it: a new event or
property appears here without a template change. For every staff user (analysts,
agents, managers): it documents the data, it does not show any.

Usage per event: how many occurred in the last `RECENT_DAYS` days and when it last
occurred. Not all-time counts: counting 42 M rows took 6.5 s at a million cases. One
statement: the stored names by a loose index scan of `event_name_time` (one probe per
name), then per name an index-only range count and a one-entry backward probe.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode

from django.contrib import admin
from django.db import connection
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from analytics import catalog
from analytics.catalog import EventSpec, Prop
from analytics.models import Event

# What the columns of every event row mean (`analytics.models.Event`). A column not
# described here is still listed, with its type.
COLUMN_DESCRIPTIONS = {
    "id": "Row id, in insertion order (not commit order).",
    "uuid": "Unique id of the event; stable across exports and webhook deliveries.",
    "name": "Event name from this catalog (Object Action, Title Case).",
    "schema_version": "Version of the event's definition it was validated against.",
    "occurred_at": "When it happened (a signal may report an earlier time than it arrived).",
    "recorded_at": "When it was stored. Retention counts from here.",
    "account": "The account it concerns (id; the row outlives a deleted account).",
    "case": "The onboarding case it concerns, if any (id).",
    "task": "The task (one step of a case) it concerns, if any (id).",
    "step_key": "Key of the playbook step of the task, if any.",
    "playbook_key": "Key of the case's playbook, if any.",
    "playbook_version": "Number of the playbook version the case is pinned to.",
    "actor_type": "Who did it: agent (a person), api (an integration's token) or system.",
    "actor_id": "The user id, token id or system job name of the actor.",
    "source": "Where it came from: admin, api, worker, seed, …",
    "segmentation": "The account's plan, segment, region and channel at the time.",
    "properties": "The event's own properties, listed per event below.",
}


# Column types as analysts read them (the catalog's own words where they exist).
COLUMN_TYPES = {
    "AutoField": "integer",
    "BigAutoField": "integer",
    "IntegerField": "integer",
    "PositiveIntegerField": "integer",
    "PositiveSmallIntegerField": "integer",
    "BigIntegerField": "integer",
    "CharField": "string",
    "TextField": "string",
    "UUIDField": "uuid",
    "DateTimeField": "datetime",
    "BooleanField": "boolean",
    "JSONField": "object",
}


@dataclass(frozen=True)
class PropertyRow:
    name: str
    prop: Prop


RECENT_DAYS = 7

_USAGE = """
WITH RECURSIVE names AS (
    SELECT min(name) AS name FROM analytics_event
    UNION ALL
    SELECT (SELECT min(name) FROM analytics_event WHERE name > names.name)
    FROM names WHERE names.name IS NOT NULL
)
SELECT n.name,
       (SELECT count(*) FROM analytics_event e
         WHERE e.name = n.name AND e.occurred_at >= %s),
       (SELECT max(e.occurred_at) FROM analytics_event e WHERE e.name = n.name)
FROM names n WHERE n.name IS NOT NULL
"""


@dataclass(frozen=True)
class Usage:
    recent: int = 0
    last_seen: datetime | None = None


@dataclass(frozen=True)
class EventRow:
    spec: EventSpec
    usage: Usage
    events_url: str

    @property
    def properties(self) -> list[PropertyRow]:
        return [PropertyRow(name, prop) for name, prop in self.spec.properties.items()]

    @property
    def recent_text(self) -> str:
        return f"{self.usage.recent:,}"

    @property
    def version_label(self) -> str:
        return f"v{self.spec.version}"

    @property
    def anchor(self) -> str:
        return "event-" + self.spec.name.lower().replace(" ", "-")


@dataclass(frozen=True)
class ColumnRow:
    name: str
    type: str
    nullable: bool
    description: str


def common_columns() -> list[ColumnRow]:
    rows = []
    for field in Event._meta.concrete_fields:
        name = field.name
        internal = field.get_internal_type()
        kind = "integer (id)" if field.is_relation else COLUMN_TYPES.get(internal, internal)
        rows.append(ColumnRow(name, kind, field.null, COLUMN_DESCRIPTIONS.get(name, "")))
    return rows


def usage(now: datetime | None = None) -> dict[str, Usage]:
    """Per stored event name: occurrences in the last RECENT_DAYS days, last occurrence."""
    since = (now or timezone.now()) - timedelta(days=RECENT_DAYS)
    with connection.cursor() as cursor:
        cursor.execute(_USAGE, [since])
        return {name: Usage(recent, last) for name, recent, last in cursor.fetchall()}


def events_url(name: str) -> str:
    """The Events list filtered to one name (EventAdmin's `name` filter)."""
    return f"{reverse('admin:analytics_event_changelist')}?{urlencode({'name': name})}"


def event_rows(used: dict[str, Usage]) -> list[EventRow]:
    return [
        EventRow(spec, used.get(name, Usage()), events_url(name))
        for name, spec in sorted(catalog.CATALOG.items())
    ]


def intro() -> list[SafeString]:
    """The catalog module's docstring, paragraph by paragraph (`code` as code)."""
    text = (catalog.__doc__ or "").strip()
    return [
        mark_safe(
            re.sub(r"`([^`]+)`", r"<code>\1</code>", escape(" ".join(p.split())))
        )  # escaped first
        for p in text.split("\n\n")
        if p.strip()
    ]


def event_catalog_view(request: HttpRequest) -> TemplateResponse:
    used = usage()
    context = {
        **admin.site.each_context(request),
        "title": "Event catalog",
        "intro": intro(),
        "events": event_rows(used),
        "columns": common_columns(),
        "recent_days": RECENT_DAYS,
        "recent_total": f"{sum(u.recent for u in used.values()):,}",
        # Rows kept under a name the catalog no longer declares (a renamed event).
        "uncatalogued": sorted(
            (name, u, events_url(name)) for name, u in used.items() if name not in catalog.CATALOG
        ),
    }
    return TemplateResponse(request, "analytics/catalog.html", context)

"""The event catalog page: every event the product records, as `analytics.catalog`
declares it, with what each row of the Events table carries besides.

Generated from the catalog in code, so it never lags behind it: a new event or
property appears here without a template change. For every staff user (analysts,
agents, managers): it documents the data, it does not show any. The stored counts
are one grouped query over the events table (an index-only scan of `event_name_time`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlencode

from django.contrib import admin
from django.db.models import Count
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
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


@dataclass(frozen=True)
class EventRow:
    spec: EventSpec
    stored: int
    events_url: str

    @property
    def properties(self) -> list[PropertyRow]:
        return [PropertyRow(name, prop) for name, prop in self.spec.properties.items()]

    @property
    def stored_text(self) -> str:
        return f"{self.stored:,}"

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


def stored_counts() -> dict[str, int]:
    return dict(Event.objects.order_by().values_list("name").annotate(n=Count("id")))


def events_url(name: str) -> str:
    """The Events list filtered to one name (EventAdmin's `name` filter)."""
    return f"{reverse('admin:analytics_event_changelist')}?{urlencode({'name': name})}"


def event_rows(counts: dict[str, int]) -> list[EventRow]:
    return [
        EventRow(spec, counts.get(name, 0), events_url(name))
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
    counts = stored_counts()
    context = {
        **admin.site.each_context(request),
        "title": "Event catalog",
        "intro": intro(),
        "events": event_rows(counts),
        "columns": common_columns(),
        "stored_total": f"{sum(counts.values()):,}",
        # Rows kept under a name the catalog no longer declares (a renamed event).
        "uncatalogued": sorted(
            (name, n, events_url(name)) for name, n in counts.items() if name not in catalog.CATALOG
        ),
    }
    return TemplateResponse(request, "analytics/catalog.html", context)

"""Admin for the raw event stream: look, search, filter; never add, edit or delete.

Events are append-only (`Event.save`/`delete` refuse); the admin agrees by denying
every write permission, so no form, bulk action or inline can even try.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from unfold.admin import ModelAdmin, TabularInline

from analytics.catalog import CATALOG
from analytics.models import Event
from onboarding.admin_scope import AgentScopeMixin


def pretty_json(value: Any) -> SafeString:
    """JSON as an indented, escaped `<pre>` block (stable key order for diffing by eye)."""
    if not value:
        return format_html('<span class="text-base-400">{}</span>', "—")
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    return format_html('<pre class="whitespace-pre-wrap text-xs leading-relaxed">{}</pre>', text)


def admin_link(obj: Model | None, label: str | None = None) -> SafeString | str:
    """A link to `obj`'s admin change page, or its text when it has none."""
    if obj is None:
        return "—"
    opts = obj._meta
    try:
        url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
    except NoReverseMatch:
        return label or str(obj)
    return format_html('<a href="{}" class="text-primary-600">{}</a>', url, label or str(obj))


class ReadOnlyAdminMixin:
    """No add, change or delete, whoever asks: the admin is a window, not a write path."""

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


class EventNameFilter(admin.SimpleListFilter):
    """Choices come from the catalog, so the filter never scans the table for names."""

    title = "event"
    parameter_name = "name"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(name, name) for name in sorted(CATALOG)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Event]) -> QuerySet[Event]:
        if self.value():
            return queryset.filter(name=self.value())
        return queryset


class ActorTypeFilter(admin.SimpleListFilter):
    title = "actor type"
    parameter_name = "actor_type"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("agent", "Agent (a person)"), ("api", "Integration (API)"), ("system", "System")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Event]) -> QuerySet[Event]:
        if self.value():
            return queryset.filter(actor_type=self.value())
        return queryset


@admin.register(Event)
class EventAdmin(AgentScopeMixin, ReadOnlyAdminMixin, ModelAdmin):
    case_path = "case"  # agents: events of cases they may see

    list_display = (
        "name",
        "occurred_at",
        "account_link",
        "case_link",
        "step_key",
        "actor",
        "source",
    )
    list_filter = (EventNameFilter, ActorTypeFilter, "source")
    search_fields = ("name", "uuid", "step_key")
    date_hierarchy = "occurred_at"
    list_select_related = ("account", "case__account")
    ordering = ("-occurred_at", "-id")
    # The table grows without bound: skip the unfiltered COUNT(*) on every page.
    show_full_result_count = False
    list_per_page = 50
    fieldsets = (
        (None, {"fields": ("name", "schema_version", "uuid", "occurred_at", "recorded_at")}),
        (
            "About",
            {
                "fields": (
                    "account_link",
                    "case_link",
                    "task_link",
                    "step_key",
                    "playbook_key",
                    "playbook_version",
                )
            },
        ),
        ("Who", {"fields": ("actor_type", "actor_id", "source")}),
        ("Data", {"fields": ("properties_pretty", "segmentation_pretty")}),
    )
    readonly_fields = (
        "name",
        "schema_version",
        "uuid",
        "occurred_at",
        "recorded_at",
        "account_link",
        "case_link",
        "task_link",
        "step_key",
        "playbook_key",
        "playbook_version",
        "actor_type",
        "actor_id",
        "source",
        "properties_pretty",
        "segmentation_pretty",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Event]:
        return super().get_queryset(request).select_related("account", "case__account", "task")

    @admin.display(description="Account", ordering="account__name")
    def account_link(self, event: Event) -> SafeString | str:
        return admin_link(event.account)

    @admin.display(description="Case", ordering="case_id")
    def case_link(self, event: Event) -> SafeString | str:
        return admin_link(event.case)

    @admin.display(description="Task")
    def task_link(self, event: Event) -> SafeString | str:
        return admin_link(event.task)

    @admin.display(description="Actor", ordering="actor_type")
    def actor(self, event: Event) -> str:
        return f"{event.actor_type}:{event.actor_id}"

    @admin.display(description="Properties")
    def properties_pretty(self, event: Event) -> SafeString:
        return pretty_json(event.properties)

    @admin.display(description="Segmentation (at the time)")
    def segmentation_pretty(self, event: Event) -> SafeString:
        return pretty_json(event.segmentation)


class EventInline(ReadOnlyAdminMixin, TabularInline):
    """The events of one case or task, newest first, a page at a time."""

    model = Event
    fk_name = "case"
    extra = 0
    per_page = 20
    can_delete = False
    show_change_link = True
    ordering = ("-occurred_at", "-id")
    verbose_name = "event"
    verbose_name_plural = "analytics events (newest first)"
    fields = ("occurred_at", "name", "step_key", "actor", "source", "properties_pretty")
    readonly_fields = fields

    @admin.display(description="Actor")
    def actor(self, event: Event) -> str:
        return f"{event.actor_type}:{event.actor_id}"

    @admin.display(description="Properties")
    def properties_pretty(self, event: Event) -> SafeString:
        return pretty_json(event.properties)


class CaseEventInline(EventInline):
    fk_name = "case"


class TaskEventInline(EventInline):
    fk_name = "task"

"""Business calendars, SLA policies (versioned) and SLA timers (read-only state)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db import transaction
from django.db.models import Max
from django.http import HttpRequest
from unfold.admin import ModelAdmin, TabularInline

from analytics.admin import ReadOnlyAdminMixin
from onboarding.admin._common import (
    AwareRangeDateTimeFilter,
    CappedCountPaginator,
    ManagerWritesMixin,
)
from onboarding.admin_scope import AgentScopeMixin
from onboarding.models import BusinessCalendar, CalendarDay, SlaPolicy, SlaTimer
from onboarding.services import sla


class CalendarDayInline(TabularInline):
    model = CalendarDay
    extra = 0
    fields = ("date", "name", "hours", "source")
    ordering = ("date",)


@admin.register(BusinessCalendar)
class BusinessCalendarAdmin(ManagerWritesMixin, ModelAdmin):
    list_display = ("name", "key", "tz", "country", "subdivision", "updated_at")
    search_fields = ("name", "key")
    inlines = [CalendarDayInline]

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        sla.forget_calendar(form.instance.pk)  # other processes re-read within a minute


@admin.register(SlaPolicy)
class SlaPolicyAdmin(ManagerWritesMixin, ModelAdmin):
    """Saving a change creates the next version; running timers keep theirs."""

    list_display = (
        "name",
        "key",
        "version",
        "target",
        "warn_percent",
        "calendar",
        "on_breach",
        "is_current",
    )
    list_filter = ("is_current", "on_breach", "calendar")
    search_fields = ("key", "name")
    readonly_fields = ("version", "is_current", "created_at")

    def get_readonly_fields(self, request: HttpRequest, obj: SlaPolicy | None = None) -> tuple:
        if obj is not None and not obj.is_current:
            return tuple(f.name for f in SlaPolicy._meta.fields)  # history is read-only
        if obj is not None:
            return (*self.readonly_fields, "key")
        return self.readonly_fields

    def save_model(self, request: HttpRequest, obj: SlaPolicy, form: Any, change: bool) -> None:
        if not change:
            super().save_model(request, obj, form, change)
            return
        with transaction.atomic():
            latest = SlaPolicy.objects.filter(key=obj.key).aggregate(n=Max("version"))["n"] or 0
            SlaPolicy.objects.filter(key=obj.key, is_current=True).update(is_current=False)
            obj.pk = None
            obj._state.adding = True
            obj.version = latest + 1
            obj.is_current = True
            obj.save()
        self.message_user(
            request, f"Saved as version {obj.version}; running timers keep their version."
        )


@admin.register(SlaTimer)
class SlaTimerAdmin(AgentScopeMixin, ReadOnlyAdminMixin, ModelAdmin):
    case_path = "case"

    list_display = (
        "id",
        "kind",
        "task",
        "case",
        "policy",
        "state",
        "due_at",
        "warned_at",
        "breached_at",
        "consumed_hours",
    )
    # Millions of clocks: newest first by primary key (not a sort of the table), due
    # dates as a range (a date hierarchy scans for the distinct years), a capped count.
    list_filter = ("state", "kind", "policy", ("due_at", AwareRangeDateTimeFilter))
    list_filter_submit = True
    list_select_related = ("task", "case__account", "policy")
    search_fields = ("case__account__name", "case__account__external_id", "task__step_key")
    ordering = ("-id",)
    show_full_result_count = False
    paginator = CappedCountPaginator

    @admin.display(description="Consumed (business h)", ordering="consumed_seconds")
    def consumed_hours(self, timer: SlaTimer) -> str:
        return f"{timer.consumed_seconds / 3600:.1f}"

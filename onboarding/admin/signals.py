"""Product signals and customer reminders: view-only records of what came in and went out.

Both are written only by their services (`signal_receive`, `send_due_reminders`);
the admin is where a manager checks why a step did or did not move.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.safestring import SafeString
from unfold.admin import ModelAdmin

from analytics.admin import ReadOnlyAdminMixin, admin_link, pretty_json
from onboarding.actors import Actor
from onboarding.admin_scope import AgentScopeMixin
from onboarding.models import Reminder, Signal, Step
from onboarding.selectors import sees_everything, visible_cases


class SignalNameFilter(admin.SimpleListFilter):
    """Choices are the names steps wait for: read from the small step table, not by a
    DISTINCT over every signal ever received. Other names are found by search."""

    title = "signal"
    parameter_name = "name"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        names = (
            Step.objects.exclude(signal_name="")
            .order_by("signal_name")
            .values_list("signal_name", flat=True)
            .distinct()
        )
        return [(name, name) for name in names]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Signal]) -> QuerySet[Signal]:
        if self.value():
            return queryset.filter(name=self.value())
        return queryset


@admin.register(Signal)
class SignalAdmin(ReadOnlyAdminMixin, ModelAdmin):
    def get_queryset(self, request: HttpRequest) -> QuerySet[Signal]:
        # Agents: signals of the accounts whose cases they may see.
        queryset = super().get_queryset(request)
        actor = Actor.for_user(request.user, source="admin")
        if sees_everything(actor):
            return queryset
        return queryset.filter(account_id__in=visible_cases(actor).values("account_id"))

    list_display = (
        "signal_id",
        "name",
        "account",
        "occurred_at",
        "received_at",
        "completed_tasks",
    )
    list_display_links = ("signal_id",)
    list_filter = (SignalNameFilter,)
    search_fields = ("=signal_id", "name", "=account__external_id", "account__name")
    list_select_related = ("account",)
    date_hierarchy = "received_at"
    fields = (
        "signal_id",
        "name",
        "account_link",
        "occurred_at",
        "received_at",
        "completed_tasks",
        "properties_pretty",
    )
    readonly_fields = fields

    @admin.display(description="Account")
    def account_link(self, signal: Signal) -> SafeString | str:
        return admin_link(signal.account)

    @admin.display(description="Properties")
    def properties_pretty(self, signal: Signal) -> SafeString:
        return pretty_json(signal.properties)


@admin.register(Reminder)
class ReminderAdmin(AgentScopeMixin, ReadOnlyAdminMixin, ModelAdmin):
    case_path = "task__case"

    list_display = ("task", "case_link", "kind", "window", "sent_at", "channel")
    list_display_links = ("task",)
    list_filter = ("kind", "channel")
    search_fields = ("task__step_key", "=task__case__account__external_id")
    list_select_related = ("task__case__account",)
    date_hierarchy = "sent_at"
    fields = ("task_link", "case_link", "kind", "window", "sent_at", "channel")
    readonly_fields = fields

    @admin.display(description="Task")
    def task_link(self, reminder: Reminder) -> SafeString | str:
        return admin_link(reminder.task)

    @admin.display(description="Case", ordering="task__case_id")
    def case_link(self, reminder: Reminder) -> SafeString | str:
        return admin_link(reminder.task.case)

"""Cases, tasks and the context log: view-only; the case page is the workspace page."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.urls import path
from django.utils.safestring import SafeString
from django.utils.text import Truncator
from unfold.admin import ModelAdmin, TabularInline
from unfold.decorators import display

from analytics.admin import CaseEventInline, ReadOnlyAdminMixin, TaskEventInline, admin_link
from onboarding.admin._common import (
    CASE_STATE_COLOURS,
    TASK_STATE_COLOURS,
    AwareRangeDateTimeFilter,
    CappedCountPaginator,
    ServiceAdminMixin,
    actor_for,
)
from onboarding.admin.filters import (
    ActorTypeFilter,
    AssigneeFilter,
    QueueFilter,
    SlaStatusFilter,
)
from onboarding.admin_scope import AgentScopeMixin
from onboarding.models import (
    Case,
    ContextEntry,
    Task,
)
from onboarding.selectors import scope_tasks
from onboarding.workspace.views import case_act_view, case_view

# --- cases and tasks (view-only: services own every field) ---------------------------


class TaskInline(ReadOnlyAdminMixin, TabularInline):
    model = Task
    extra = 0
    can_delete = False
    show_change_link = True
    ordering = ("step__position", "id")
    fields = (
        "step_key",
        "kind",
        "state",
        "queue",
        "assignee",
        "attempts",
        "escalated",
        "activated_at",
        "completed_at",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Task]:
        return super().get_queryset(request).select_related("queue", "assignee")


class ContextEntryInline(ReadOnlyAdminMixin, TabularInline):
    model = ContextEntry
    extra = 0
    per_page = 20
    can_delete = False
    ordering = ("-created_at", "-id")
    verbose_name_plural = "context log (newest first)"
    fields = ("created_at", "kind", "body", "task", "author", "actor")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[ContextEntry]:
        return super().get_queryset(request).select_related("task", "author")

    @admin.display(description="Actor")
    def actor(self, entry: ContextEntry) -> str:
        return f"{entry.actor_type}:{entry.actor_id}"


@admin.register(Case)
class CaseAdmin(AgentScopeMixin, ServiceAdminMixin, ReadOnlyAdminMixin, ModelAdmin):
    list_display = (
        "case_number",
        "account",
        "playbook_with_version",
        "state_badge",
        "opened_at",
        "completed_at",
    )
    list_display_links = ("case_number",)
    list_filter = (
        "state",
        SlaStatusFilter,
        QueueFilter,
        AssigneeFilter,
        "playbook",
        "account__plan",
        "account__region",
    )
    search_fields = ("account__name", "account__external_id")
    list_select_related = ("account", "playbook", "playbook_version")
    date_hierarchy = "opened_at"
    fieldsets = (
        (None, {"fields": ("account_link", "playbook", "playbook_version", "state")}),
        (
            "Timeline",
            {"fields": ("opened_at", "updated_at", "completed_at", "cancelled_at", "reopen_count")},
        ),
        ("Reasons", {"fields": ("hold_reason", "cancel_reason")}),
    )
    readonly_fields = (
        "account_link",
        "playbook",
        "playbook_version",
        "state",
        "opened_at",
        "updated_at",
        "completed_at",
        "cancelled_at",
        "reopen_count",
        "hold_reason",
        "cancel_reason",
    )
    inlines = (TaskInline, ContextEntryInline, CaseEventInline)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Case]:
        return (
            super()
            .get_queryset(request)
            .select_related("account", "playbook", "playbook_version__playbook")
        )

    # The case page is the workspace page (timeline, tasks, the actions this person may
    # take now); its actions post to `act/`, which calls one service each.

    def get_urls(self) -> list:
        act = self.admin_site.admin_view(
            lambda request, object_id: case_act_view(request, self, object_id)
        )
        return [
            path("<path:object_id>/act/", act, name="onboarding_case_act"),
            *super().get_urls(),
        ]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        if request.method not in ("GET", "HEAD"):
            # Nothing on a case is edited by form: changes are actions posted to act/.
            return HttpResponseNotAllowed(["GET"])
        return case_view(request, self, object_id)

    @admin.display(description="Case", ordering="id")
    def case_number(self, case: Case) -> str:
        return f"#{case.pk}"

    @admin.display(description="Account")
    def account_link(self, case: Case) -> SafeString | str:
        return admin_link(case.account)

    @admin.display(description="Playbook", ordering="playbook__name")
    def playbook_with_version(self, case: Case) -> str:
        return f"{case.playbook.name} v{case.playbook_version.number}"

    @display(description="State", ordering="state", label=CASE_STATE_COLOURS)
    def state_badge(self, case: Case) -> tuple[str, str]:
        return case.state, case.get_state_display()


@admin.register(Task)
class TaskAdmin(ReadOnlyAdminMixin, ModelAdmin):
    list_display = (
        "case_link",
        "step_key",
        "kind",
        "state_badge",
        "queue",
        "assignee",
        "priority",
        "attempts",
        "escalated",
    )
    list_display_links = ("step_key",)
    list_filter = ("state", SlaStatusFilter, QueueFilter, AssigneeFilter, "kind", "escalated")
    search_fields = ("step_key", "case__account__name", "case__account__external_id")
    list_select_related = ("case__account", "queue", "assignee")
    # Millions of tasks: one capped count per page instead of two full ones.
    show_full_result_count = False
    paginator = CappedCountPaginator
    fieldsets = (
        (None, {"fields": ("case_link", "step", "step_key", "kind", "state", "required")}),
        (
            "Work",
            {
                "fields": (
                    "queue",
                    "assignee",
                    "priority",
                    "attempts",
                    "max_attempts",
                    "handoff_count",
                    "escalated",
                )
            },
        ),
        (
            "Timeline",
            {"fields": ("created_at", "activated_at", "started_at", "completed_at", "updated_at")},
        ),
        ("Problems", {"fields": ("last_error", "skip_reason")}),
    )
    readonly_fields = (
        "case_link",
        "step",
        "step_key",
        "kind",
        "state",
        "required",
        "queue",
        "assignee",
        "priority",
        "attempts",
        "max_attempts",
        "handoff_count",
        "escalated",
        "created_at",
        "activated_at",
        "started_at",
        "completed_at",
        "updated_at",
        "last_error",
        "skip_reason",
    )
    inlines = (TaskEventInline,)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Task]:
        # Agents see the tasks of their queues and those assigned to them.
        queryset = (
            super()
            .get_queryset(request)
            .select_related("case__account", "queue", "assignee", "step")
        )
        return scope_tasks(queryset, actor_for(request))

    @admin.display(description="Case", ordering="case_id")
    def case_link(self, task: Task) -> SafeString | str:
        return admin_link(task.case)

    @display(description="State", ordering="state", label=TASK_STATE_COLOURS)
    def state_badge(self, task: Task) -> tuple[str, str]:
        return task.state, task.get_state_display()


@admin.register(ContextEntry)
class ContextEntryAdmin(AgentScopeMixin, ReadOnlyAdminMixin, ModelAdmin):
    case_path = "case"

    list_display = ("created_at", "kind", "case_link", "task", "author", "excerpt")
    # A million entries and growing: newest first by primary key (entries are written
    # as they happen), dates as a range, a capped count.
    list_filter = ("kind", ActorTypeFilter, ("created_at", AwareRangeDateTimeFilter))
    list_filter_submit = True
    search_fields = ("body", "case__account__name", "case__account__external_id")
    list_select_related = ("case__account", "task", "author")
    ordering = ("-id",)
    show_full_result_count = False
    paginator = CappedCountPaginator
    fields = (
        "case_link",
        "task",
        "kind",
        "body",
        "author",
        "actor_type",
        "actor_id",
        "properties",
        "created_at",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[ContextEntry]:
        return super().get_queryset(request).select_related("case__account", "task", "author")

    @admin.display(description="Case", ordering="case_id")
    def case_link(self, entry: ContextEntry) -> SafeString | str:
        return admin_link(entry.case)

    @admin.display(description="Text")
    def excerpt(self, entry: ContextEntry) -> str:
        return Truncator(entry.body).chars(80)

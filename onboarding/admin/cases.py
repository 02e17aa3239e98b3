"""Cases, tasks and the context log: view-only, transitions via buttons."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.safestring import SafeString
from django.utils.text import Truncator
from unfold.admin import ModelAdmin, TabularInline
from unfold.decorators import action, display
from unfold.enums import ActionVariant
from unfold.forms import BaseDialogForm

from analytics.admin import CaseEventInline, ReadOnlyAdminMixin, TaskEventInline, admin_link
from onboarding import services
from onboarding.admin._common import (
    CASE_STATE_COLOURS,
    TASK_STATE_COLOURS,
    ReasonForm,
    ServiceAdminMixin,
    actor_for,
    change_url,
)
from onboarding.admin_scope import AgentScopeMixin
from onboarding.models import (
    Case,
    ContextEntry,
    Task,
)
from onboarding.selectors import scope_tasks

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
    list_filter = ("state", "playbook", "account__plan", "account__region")
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
    actions_detail = ("put_on_hold", "resume", "cancel")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Case]:
        return (
            super()
            .get_queryset(request)
            .select_related("account", "playbook", "playbook_version__playbook")
        )

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

    # Buttons: each shows only when this user may run the transition on this case now;
    # the service re-checks under a row lock and its refusal becomes a message.

    def has_put_on_hold_permission(
        self, request: HttpRequest, object_id: str | None = None
    ) -> bool:
        return self.may_transition(request, object_id, "put_on_hold")

    def has_resume_permission(self, request: HttpRequest, object_id: str | None = None) -> bool:
        return self.may_transition(request, object_id, "resume")

    def has_cancel_permission(self, request: HttpRequest, object_id: str | None = None) -> bool:
        return self.may_transition(request, object_id, "cancel")

    @action(
        description="Put on hold",
        icon="pause_circle",
        variant=ActionVariant.WARNING,
        permissions=["put_on_hold"],
        dialog={
            "title": "Put this case on hold",
            "description": "Work on the case pauses until someone resumes it.",
            "form_class": ReasonForm,
            "form_submit_text": "Put on hold",
        },
    )
    def put_on_hold(self, request: HttpRequest, form: ReasonForm, object_id: str) -> HttpResponse:
        case = self.cached_object(request, object_id)
        return self.run_service(
            request,
            lambda: services.case_put_on_hold(
                case_id=case.pk, actor=actor_for(request), reason=form.cleaned_data["reason"]
            ),
            f"Case #{case.pk} is on hold.",
            change_url(case),
        )

    @action(
        description="Resume",
        icon="play_circle",
        variant=ActionVariant.SUCCESS,
        permissions=["resume"],
        dialog={
            "title": "Resume this case",
            "description": "The case becomes active again.",
            "form_class": None,
            "form_submit_text": "Resume",
        },
    )
    def resume(self, request: HttpRequest, form: BaseDialogForm, object_id: str) -> HttpResponse:
        case = self.cached_object(request, object_id)
        return self.run_service(
            request,
            lambda: services.case_resume(case_id=case.pk, actor=actor_for(request)),
            f"Case #{case.pk} is active again.",
            change_url(case),
        )

    @action(
        description="Cancel case",
        icon="cancel",
        variant=ActionVariant.DANGER,
        permissions=["cancel"],
        dialog={
            "title": "Cancel this case",
            "description": "The onboarding is abandoned and every open task is cancelled.",
            "form_class": ReasonForm,
            "form_submit_text": "Cancel case",
        },
    )
    def cancel(self, request: HttpRequest, form: ReasonForm, object_id: str) -> HttpResponse:
        case = self.cached_object(request, object_id)
        return self.run_service(
            request,
            lambda: services.case_cancel(
                case_id=case.pk, actor=actor_for(request), reason=form.cleaned_data["reason"]
            ),
            f"Case #{case.pk} is cancelled.",
            change_url(case),
        )


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
    list_filter = ("state", "kind", "queue", "escalated")
    search_fields = ("step_key", "case__account__name", "case__account__external_id")
    list_select_related = ("case__account", "queue", "assignee")
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
    list_filter = ("kind", "actor_type")
    search_fields = ("body", "case__account__name", "case__account__external_id")
    list_select_related = ("case__account", "task", "author")
    date_hierarchy = "created_at"
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

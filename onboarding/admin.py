"""The Django admin (Unfold) for onboarding: a window on every model, never a side door.

Rules this module keeps:
- FSM `state` fields are always read-only and never in a form. State changes go
  through `onboarding.services`, here only from the buttons at the top of a page
  (Unfold `actions_detail`), each shown only when this user may run it now.
- Cases, tasks and context entries are created and changed only by services, so
  their admins are view-only. Accounts and new playbooks are saved through
  `account_upsert` / `playbook_create`, so the admin records the same events the
  API does.
- Published playbook versions are frozen: their page and their steps are read-only.
- Writes need the manager role (`onboarding.manage_onboarding`) on top of the model
  permission, the same rule the services apply.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.db.models import Count, IntegerField, Model, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.safestring import SafeString
from django.utils.text import Truncator
from django_fsm import has_transition_perm
from unfold.admin import ModelAdmin, TabularInline
from unfold.decorators import action, display
from unfold.enums import ActionVariant
from unfold.forms import BaseDialogForm
from unfold.widgets import UnfoldAdminTextareaWidget

from analytics.admin import CaseEventInline, ReadOnlyAdminMixin, TaskEventInline, admin_link
from onboarding import services
from onboarding.actors import Actor
from onboarding.errors import Conflict, DomainError
from onboarding.models import (
    Account,
    Case,
    ContextEntry,
    Playbook,
    PlaybookVersion,
    Queue,
    Step,
    StepKind,
    Task,
)
from onboarding.models.cases import CaseState, TaskState
from onboarding.services.accounts import EDITABLE_FIELDS as ACCOUNT_FIELDS

# Badge colours for state columns (Unfold label variants).
CASE_STATE_COLOURS = {
    CaseState.ACTIVE: "info",
    CaseState.ON_HOLD: "warning",
    CaseState.COMPLETED: "success",
    CaseState.CANCELLED: "danger",
}
TASK_STATE_COLOURS = {
    TaskState.PENDING: "",
    TaskState.SCHEDULED: "info",
    TaskState.RUNNING: "primary",
    TaskState.QUEUED: "info",
    TaskState.IN_PROGRESS: "primary",
    TaskState.WAITING: "warning",
    TaskState.DONE: "success",
    TaskState.SKIPPED: "",
    TaskState.CANCELLED: "danger",
}
VERSION_STATE_COLOURS = {
    PlaybookVersion.State.DRAFT: "warning",
    PlaybookVersion.State.PUBLISHED: "success",
    PlaybookVersion.State.RETIRED: "",
}


def actor_for(request: HttpRequest) -> Actor:
    return Actor.for_user(request.user, source="admin")


def is_manager(request: HttpRequest) -> bool:
    return actor_for(request).is_manager


def redirect_after_action(request: HttpRequest, url: str) -> HttpResponse:
    """Unfold dialogs post with htmx, which follows `HX-Redirect` instead of a 302."""
    if request.headers.get("HX-Request"):
        return HttpResponse(headers={"HX-Redirect": url})
    return HttpResponseRedirect(url)


def change_url(obj: Model) -> str:
    opts = obj._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])


class ReasonForm(BaseDialogForm):
    reason = forms.CharField(
        label="Reason",
        max_length=2000,
        widget=UnfoldAdminTextareaWidget(attrs={"rows": 3}),
        help_text="Recorded on the case and in its event.",
    )


class ChangelogForm(BaseDialogForm):
    changelog = forms.CharField(
        label="What will change",
        required=False,
        max_length=2000,
        widget=UnfoldAdminTextareaWidget(attrs={"rows": 3}),
    )


class ServiceAdminMixin:
    """Shared by admins whose writes call services.

    A `DomainError` escaping a save (a race the form could not foresee, such as a
    version published while its step was being edited) becomes a message on the
    same page instead of a 500; the admin's own transaction has rolled back by then.
    """

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)  # type: ignore[misc]
        except DomainError as exc:
            messages.error(request, exc.message)
            return HttpResponseRedirect(request.get_full_path())

    def run_service(
        self, request: HttpRequest, call: Any, success: str, redirect_to: str
    ) -> HttpResponse:
        """Call one service; report its domain error or `success`, then go to `redirect_to`."""
        try:
            call()
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, success)
        return redirect_after_action(request, redirect_to)

    def cached_object(self, request: HttpRequest, object_id: str | None) -> Any:
        """`get_object`, once per request: every action button asks for the same row."""
        if not object_id:
            return None
        cache = request.__dict__.setdefault("_onboarding_admin_objects", {})
        key = (type(self).__name__, str(object_id))
        if key not in cache:
            cache[key] = self.get_object(request, unquote(str(object_id)))  # type: ignore[attr-defined]
        return cache[key]

    def may_transition(self, request: HttpRequest, object_id: str | None, name: str) -> bool:
        """The transition exists from the current state, its conditions hold, the actor may."""
        obj = self.cached_object(request, object_id)
        if obj is None:
            return False
        return has_transition_perm(getattr(obj, name), actor_for(request))


class ManagerWritesMixin:
    """Writes need the model permission and the manager role; reading needs neither role."""

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return super().has_add_permission(request) and is_manager(request)  # type: ignore[misc]

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return super().has_change_permission(request, obj) and is_manager(request)  # type: ignore[misc]

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return super().has_delete_permission(request, obj) and is_manager(request)  # type: ignore[misc]


# --- accounts ------------------------------------------------------------------------


@admin.register(Account)
class AccountAdmin(ServiceAdminMixin, ManagerWritesMixin, ModelAdmin):
    list_display = ("name", "external_id", "plan", "segment", "region", "channel", "case_count")
    list_filter = ("plan", "segment", "region", "channel")
    search_fields = ("name", "external_id")
    fieldsets = (
        (None, {"fields": ("external_id", "name")}),
        ("Segmentation", {"fields": ("plan", "segment", "region", "channel")}),
        ("More", {"fields": ("properties", "created_at", "updated_at")}),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Account]:
        return super().get_queryset(request).annotate(_case_count=Count("cases"))

    def get_readonly_fields(self, request: HttpRequest, obj: Account | None = None) -> tuple:
        # The external id is the upsert key other systems hold: fixed once created.
        if obj is None:
            return ("created_at", "updated_at")
        return ("external_id", "created_at", "updated_at")

    def has_delete_permission(self, request: HttpRequest, obj: Account | None = None) -> bool:
        # Cases protect their account; events keep its id. Only a superuser may try.
        return request.user.is_superuser

    @admin.display(description="Cases", ordering="_case_count")
    def case_count(self, account: Account) -> int:
        return account._case_count

    def save_model(self, request: HttpRequest, obj: Account, form: Any, change: bool) -> None:
        """Save through `account_upsert`, which records Account Created / Updated."""
        attrs = {f: form.cleaned_data[f] for f in ACCOUNT_FIELDS if f in form.cleaned_data}
        account, _ = services.account_upsert(
            external_id=obj.external_id, actor=actor_for(request), **attrs
        )
        obj.pk = account.pk
        obj.created_at = account.created_at
        obj.updated_at = account.updated_at


# --- queues --------------------------------------------------------------------------


@admin.register(Queue)
class QueueAdmin(ServiceAdminMixin, ManagerWritesMixin, ModelAdmin):
    list_display = ("name", "key", "is_exceptions", "member_count", "group_count", "waiting")
    list_filter = ("is_exceptions",)
    search_fields = ("name", "key")
    filter_horizontal = ("members", "member_groups")
    fieldsets = (
        (None, {"fields": ("key", "name", "description", "is_exceptions")}),
        ("Who works it", {"fields": ("members", "member_groups")}),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Queue]:
        queued = (
            Task.objects.filter(queue=OuterRef("pk"), state=TaskState.QUEUED)
            .order_by()
            .values("queue")
            .annotate(n=Count("*"))
            .values("n")
        )
        return (
            super()
            .get_queryset(request)
            .annotate(
                _members=Count("members", distinct=True),
                _groups=Count("member_groups", distinct=True),
                _queued=Coalesce(Subquery(queued, output_field=IntegerField()), 0),
            )
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Queue | None = None) -> tuple:
        # Events and reports refer to queues by key.
        return ("key",) if obj is not None else ()

    def has_delete_permission(self, request: HttpRequest, obj: Queue | None = None) -> bool:
        return request.user.is_superuser

    @admin.display(description="Members", ordering="_members")
    def member_count(self, queue: Queue) -> int:
        return queue._members

    @admin.display(description="Groups", ordering="_groups")
    def group_count(self, queue: Queue) -> int:
        return queue._groups

    @admin.display(description="Waiting tasks", ordering="_queued")
    def waiting(self, queue: Queue) -> int:
        return queue._queued


# --- playbooks -----------------------------------------------------------------------


class PlaybookVersionInline(ReadOnlyAdminMixin, TabularInline):
    model = PlaybookVersion
    extra = 0
    can_delete = False
    show_change_link = True
    ordering = ("-number",)
    fields = ("number", "state", "step_count", "published_at", "created_at", "changelog")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[PlaybookVersion]:
        return super().get_queryset(request).annotate(_steps=Count("steps"))

    @admin.display(description="Steps")
    def step_count(self, version: PlaybookVersion) -> int:
        return version._steps


@admin.register(Playbook)
class PlaybookAdmin(ServiceAdminMixin, ManagerWritesMixin, ModelAdmin):
    list_display = ("name", "key", "latest", "version_count", "created_at")
    search_fields = ("name", "key")
    fields = ("key", "name", "description", "created_at")
    inlines = (PlaybookVersionInline,)
    actions_detail = ("draft_new_version",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Playbook]:
        latest_published = (
            PlaybookVersion.objects.filter(
                playbook=OuterRef("pk"), state=PlaybookVersion.State.PUBLISHED
            )
            .order_by("-number")
            .values("number")[:1]
        )
        return (
            super()
            .get_queryset(request)
            .annotate(_versions=Count("versions"), _latest=Subquery(latest_published))
        )

    def get_inlines(self, request: HttpRequest, obj: Playbook | None) -> tuple:
        return self.inlines if obj is not None else ()

    def get_readonly_fields(self, request: HttpRequest, obj: Playbook | None = None) -> tuple:
        # Events carry the playbook key; it never changes after creation.
        return ("key", "created_at") if obj is not None else ("created_at",)

    def has_delete_permission(self, request: HttpRequest, obj: Playbook | None = None) -> bool:
        # Versions protect their playbook and events name it: retire versions instead.
        return False

    @admin.display(description="Published version", ordering="_latest")
    def latest(self, playbook: Playbook) -> str:
        return f"v{playbook._latest}" if playbook._latest else "—"

    @admin.display(description="Versions", ordering="_versions")
    def version_count(self, playbook: Playbook) -> int:
        return playbook._versions

    def save_model(self, request: HttpRequest, obj: Playbook, form: Any, change: bool) -> None:
        if change:  # name and description only; the key is read-only
            super().save_model(request, obj, form, change)
            return
        # A new playbook comes with its empty draft v1 and a "Playbook Version Drafted" event.
        playbook = services.playbook_create(
            key=obj.key, name=obj.name, description=obj.description, actor=actor_for(request)
        )
        obj.pk = playbook.pk
        obj.created_at = playbook.created_at

    def has_draft_new_version_permission(
        self, request: HttpRequest, object_id: str | None = None
    ) -> bool:
        playbook = self.cached_object(request, object_id)
        return (
            playbook is not None
            and is_manager(request)
            and not playbook.versions.filter(state=PlaybookVersion.State.DRAFT).exists()
        )

    @action(
        description="Draft new version",
        icon="edit_note",
        permissions=["draft_new_version"],
        dialog={
            "title": "Draft a new version",
            "description": "Copies the latest version's steps into an editable draft. "
            "Running cases keep the version they started on.",
            "form_class": ChangelogForm,
            "form_submit_text": "Create draft",
        },
    )
    def draft_new_version(
        self, request: HttpRequest, form: ChangelogForm, object_id: str
    ) -> HttpResponse:
        playbook = self.cached_object(request, object_id)
        try:
            draft = services.playbook_draft_new_version(
                playbook=playbook,
                actor=actor_for(request),
                changelog=form.cleaned_data["changelog"],
            )
        except DomainError as exc:
            messages.error(request, exc.message)
            return redirect_after_action(request, change_url(playbook))
        messages.success(request, f"Draft {draft} created: add and edit its steps here.")
        return redirect_after_action(request, change_url(draft))


class StepForm(forms.ModelForm):
    """Messages for the step-kind rules the database enforces with check constraints."""

    class Meta:
        model = Step
        fields = (
            "version",
            "key",
            "name",
            "description",
            "kind",
            "position",
            "queue",
            "handler",
            "signal_name",
            "depends_on",
            "is_milestone",
            "is_first_value",
            "required",
            "max_attempts",
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        kind = data.get("kind")
        if kind == StepKind.HUMAN and not data.get("queue"):
            self.add_error("queue", "A human step needs the queue its work waits in.")
        if kind == StepKind.AUTOMATED and not data.get("handler"):
            self.add_error("handler", "An automated step needs a registered handler.")
        if kind == StepKind.SIGNAL and not data.get("signal_name"):
            self.add_error("signal_name", "A signal step needs the signal that completes it.")
        version = data.get("version") or getattr(self.instance, "version", None)
        if version is not None and version.is_frozen:
            raise forms.ValidationError(
                f"{version} is {version.state} and frozen; draft a new version to edit it."
            )
        depends_on = data.get("depends_on") or []
        if version is not None and any(dep.version_id != version.pk for dep in depends_on):
            self.add_error("depends_on", "A step can only depend on steps of its own version.")
        if self.instance.pk and any(dep.pk == self.instance.pk for dep in depends_on):
            self.add_error("depends_on", "A step cannot depend on itself.")
        return data


class StepInline(TabularInline):
    model = Step
    form = StepForm
    extra = 0
    show_change_link = True
    ordering = ("position", "id")
    fields = (
        "position",
        "key",
        "name",
        "kind",
        "queue",
        "handler",
        "signal_name",
        "depends_on",
        "is_milestone",
        "is_first_value",
        "required",
        "max_attempts",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Step]:
        return super().get_queryset(request).select_related("queue").prefetch_related("depends_on")

    def get_formset(self, request: HttpRequest, obj: PlaybookVersion | None = None, **kwargs: Any):
        formset = super().get_formset(request, obj, **kwargs)
        # A fresh form class per call: narrowing its field does not leak to other requests.
        field = formset.form.base_fields.get("depends_on")
        if field is not None and obj is not None:
            field.queryset = obj.steps.order_by("position", "id")
        return formset

    def _editable(self, request: HttpRequest, version: PlaybookVersion | None) -> bool:
        return version is not None and not version.is_frozen and is_manager(request)

    def has_add_permission(self, request: HttpRequest, obj: PlaybookVersion | None = None) -> bool:
        return super().has_add_permission(request, obj) and self._editable(request, obj)

    def has_change_permission(
        self, request: HttpRequest, obj: PlaybookVersion | None = None
    ) -> bool:
        return super().has_change_permission(request, obj) and self._editable(request, obj)

    def has_delete_permission(
        self, request: HttpRequest, obj: PlaybookVersion | None = None
    ) -> bool:
        return super().has_delete_permission(request, obj) and self._editable(request, obj)


@admin.register(PlaybookVersion)
class PlaybookVersionAdmin(ServiceAdminMixin, ManagerWritesMixin, ModelAdmin):
    list_display = ("__str__", "state_badge", "step_count", "published_at", "created_at")
    list_filter = ("state", "playbook")
    search_fields = ("playbook__name", "playbook__key", "changelog")
    list_select_related = ("playbook",)
    fields = ("playbook", "number", "state", "changelog", "created_at", "published_at")
    readonly_fields = ("playbook", "number", "state", "created_at", "published_at")
    inlines = (StepInline,)
    actions_detail = ("publish", "retire")

    def get_queryset(self, request: HttpRequest) -> QuerySet[PlaybookVersion]:
        return (
            super().get_queryset(request).select_related("playbook").annotate(_steps=Count("steps"))
        )

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # drafts come from "Draft new version" on the playbook

    def has_change_permission(
        self, request: HttpRequest, obj: PlaybookVersion | None = None
    ) -> bool:
        if obj is not None and obj.is_frozen:
            return False  # published and retired versions are history
        return super().has_change_permission(request, obj)

    def has_delete_permission(
        self, request: HttpRequest, obj: PlaybookVersion | None = None
    ) -> bool:
        return False

    @display(description="State", ordering="state", label=VERSION_STATE_COLOURS)
    def state_badge(self, version: PlaybookVersion) -> tuple[str, str]:
        return version.state, version.get_state_display()

    @admin.display(description="Steps", ordering="_steps")
    def step_count(self, version: PlaybookVersion) -> int:
        return version._steps

    def save_model(
        self, request: HttpRequest, obj: PlaybookVersion, form: Any, change: bool
    ) -> None:
        # Lock the version for the rest of the admin's transaction (the step inline saves
        # next) and write only the changelog: the state belongs to the services.
        locked = (
            PlaybookVersion.objects.select_for_update(no_key=True)
            .filter(pk=obj.pk)
            .values_list("state", flat=True)
            .first()
        )
        if locked != PlaybookVersion.State.DRAFT:
            raise Conflict(f"{obj} was published meanwhile; its steps are frozen.")
        PlaybookVersion.objects.filter(pk=obj.pk).update(changelog=obj.changelog)

    def has_publish_permission(self, request: HttpRequest, object_id: str | None = None) -> bool:
        return self.may_transition(request, object_id, "publish")

    def has_retire_permission(self, request: HttpRequest, object_id: str | None = None) -> bool:
        return self.may_transition(request, object_id, "retire")

    @action(
        description="Publish",
        icon="publish",
        variant=ActionVariant.PRIMARY,
        permissions=["publish"],
        dialog={
            "title": "Publish this version",
            "description": "New cases will start on it and its steps become read-only.",
            "form_class": None,
            "form_submit_text": "Publish",
        },
    )
    def publish(self, request: HttpRequest, form: BaseDialogForm, object_id: str) -> HttpResponse:
        version = self.cached_object(request, object_id)
        return self.run_service(
            request,
            lambda: services.playbook_version_publish(version=version, actor=actor_for(request)),
            f"{version} is published.",
            change_url(version),
        )

    @action(
        description="Retire",
        icon="archive",
        permissions=["retire"],
        dialog={
            "title": "Retire this version",
            "description": "No new case will start on it; running cases continue on it.",
            "form_class": None,
            "form_submit_text": "Retire",
        },
    )
    def retire(self, request: HttpRequest, form: BaseDialogForm, object_id: str) -> HttpResponse:
        version = self.cached_object(request, object_id)
        return self.run_service(
            request,
            lambda: services.playbook_version_retire(version=version, actor=actor_for(request)),
            f"{version} is retired.",
            change_url(version),
        )


@admin.register(Step)
class StepAdmin(ServiceAdminMixin, ManagerWritesMixin, ModelAdmin):
    form = StepForm
    list_display = (
        "name",
        "key",
        "version",
        "position",
        "kind",
        "queue",
        "is_milestone",
        "is_first_value",
        "required",
    )
    list_filter = ("kind", "version__playbook", "version__state", "is_milestone", "required")
    search_fields = ("key", "name", "version__playbook__name", "version__playbook__key")
    list_select_related = ("version__playbook", "queue")
    filter_horizontal = ("depends_on",)
    fieldsets = (
        (None, {"fields": ("version", "key", "name", "description", "kind", "position")}),
        ("How it runs", {"fields": ("queue", "handler", "signal_name", "max_attempts")}),
        ("Flow", {"fields": ("depends_on", "required", "is_milestone", "is_first_value")}),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Step]:
        return super().get_queryset(request).select_related("version__playbook", "queue")

    def get_readonly_fields(self, request: HttpRequest, obj: Step | None = None) -> tuple:
        return ("version",) if obj is not None else ()

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        # Bulk delete runs QuerySet.delete(), which skips Step.delete's frozen check.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "version":
            kwargs["queryset"] = PlaybookVersion.objects.filter(
                state=PlaybookVersion.State.DRAFT
            ).select_related("playbook")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "depends_on":
            kwargs["queryset"] = Step.objects.filter(
                version__state=PlaybookVersion.State.DRAFT
            ).select_related("version__playbook")
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def has_change_permission(self, request: HttpRequest, obj: Step | None = None) -> bool:
        if obj is not None and obj.version.is_frozen:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Step | None = None) -> bool:
        if obj is not None and obj.version.is_frozen:
            return False
        return super().has_delete_permission(request, obj)

    def _lock_version(self, version_id: int) -> None:
        # Serialises with playbook_version_publish, which locks the same row.
        PlaybookVersion.objects.select_for_update(no_key=True).filter(pk=version_id).exists()

    def save_model(self, request: HttpRequest, obj: Step, form: Any, change: bool) -> None:
        self._lock_version(obj.version_id)
        super().save_model(request, obj, form, change)  # Step.save refuses a frozen version

    def delete_model(self, request: HttpRequest, obj: Step) -> None:
        self._lock_version(obj.version_id)
        super().delete_model(request, obj)


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
class CaseAdmin(ServiceAdminMixin, ReadOnlyAdminMixin, ModelAdmin):
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
        return (
            super()
            .get_queryset(request)
            .select_related("case__account", "queue", "assignee", "step")
        )

    @admin.display(description="Case", ordering="case_id")
    def case_link(self, task: Task) -> SafeString | str:
        return admin_link(task.case)

    @display(description="State", ordering="state", label=TASK_STATE_COLOURS)
    def state_badge(self, task: Task) -> tuple[str, str]:
        return task.state, task.get_state_display()


@admin.register(ContextEntry)
class ContextEntryAdmin(ReadOnlyAdminMixin, ModelAdmin):
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

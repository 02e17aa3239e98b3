"""Playbooks, versions and steps: drafts editable, published versions frozen."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse
from unfold.admin import ModelAdmin, TabularInline
from unfold.decorators import action, display
from unfold.enums import ActionVariant
from unfold.forms import BaseDialogForm

from analytics.admin import ReadOnlyAdminMixin
from onboarding import services
from onboarding.admin._common import (
    VERSION_STATE_COLOURS,
    ChangelogForm,
    ManagerWritesMixin,
    ServiceAdminMixin,
    actor_for,
    change_url,
    is_manager,
    redirect_after_action,
)
from onboarding.errors import Conflict, DomainError
from onboarding.models import (
    Playbook,
    PlaybookVersion,
    Step,
    StepKind,
)

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
            "expected_within",
        )
        help_texts = {
            "expected_within": "Expected done this long after the case opens, as "
            "'days hh:mm:ss' (e.g. '5 00:00:00'); the health report measures pace against it.",
        }

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
        "expected_within",
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
        (
            "Flow",
            {
                "fields": (
                    "depends_on",
                    "required",
                    "is_milestone",
                    "is_first_value",
                    "expected_within",
                )
            },
        ),
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

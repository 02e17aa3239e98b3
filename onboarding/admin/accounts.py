"""Accounts and queues."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from unfold.admin import ModelAdmin
from unfold.decorators import action
from unfold.enums import ActionVariant
from unfold.forms import BaseDialogForm

from onboarding import services
from onboarding.admin._common import (
    ManagerWritesMixin,
    ServiceAdminMixin,
    actor_for,
    change_url,
    redirect_after_action,
)
from onboarding.errors import DomainError
from onboarding.models import (
    Account,
    Case,
    Queue,
    Task,
)
from onboarding.models.cases import TaskState
from onboarding.selectors import (
    SEGMENT_COLUMNS,
    account_segment_values,
    sees_everything,
    visible_cases,
)
from onboarding.services.accounts import EDITABLE_FIELDS as ACCOUNT_FIELDS

# --- accounts ------------------------------------------------------------------------


def segment_filter(column: str) -> type[admin.SimpleListFilter]:
    """A filter on an account column whose choices come from its index (one probe per
    value), not from a DISTINCT over every account."""

    class SegmentFilter(admin.SimpleListFilter):
        title = column
        parameter_name = column

        def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
            return [(v, v) for v in account_segment_values(column)[column]]

        def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
            return queryset.filter(**{column: self.value()}) if self.value() else queryset

    return SegmentFilter


@admin.register(Account)
class AccountAdmin(ServiceAdminMixin, ManagerWritesMixin, ModelAdmin):
    list_display = ("name", "external_id", "plan", "segment", "region", "channel", "case_count")
    list_filter = [segment_filter(column) for column in SEGMENT_COLUMNS]
    search_fields = ("name", "external_id")
    fieldsets = (
        (None, {"fields": ("external_id", "name")}),
        ("Segmentation", {"fields": ("plan", "segment", "region", "channel")}),
        ("More", {"fields": ("properties", "created_at", "updated_at")}),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Account]:
        # A correlated count, computed for the page's rows only (a GROUP BY over every
        # account and case took seconds at a million accounts).
        cases = Case.objects.filter(account=OuterRef("pk")).order_by().values("account")
        queryset = (
            super()
            .get_queryset(request)
            .annotate(
                _case_count=Coalesce(
                    Subquery(cases.annotate(n=Count("*")).values("n"), output_field=IntegerField()),
                    0,
                )
            )
        )
        actor = actor_for(request)
        if sees_everything(actor):
            return queryset
        return queryset.filter(pk__in=visible_cases(actor).values("account_id"))

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
    list_display = (
        "name",
        "key",
        "assignment",
        "is_exceptions",
        "member_count",
        "group_count",
        "waiting",
    )
    list_filter = ("assignment", "is_exceptions")
    search_fields = ("name", "key")
    filter_horizontal = ("members", "member_groups")
    fieldsets = (
        (None, {"fields": ("key", "name", "description", "is_exceptions")}),
        ("Who works it", {"fields": ("members", "member_groups", "assignment")}),
        (
            "Clocks",
            {"fields": ("default_sla_policy", "claim_timeout_minutes", "calendar")},
        ),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Queue]:
        queued = (
            Task.objects.filter(queue=OuterRef("pk"), state=TaskState.QUEUED)
            .order_by()
            .values("queue")
            .annotate(n=Count("*"))
            .values("n")
        )
        queryset = (
            super()
            .get_queryset(request)
            .annotate(
                _members=Count("members", distinct=True),
                _groups=Count("member_groups", distinct=True),
                _queued=Coalesce(Subquery(queued, output_field=IntegerField()), 0),
            )
        )
        actor = actor_for(request)
        return queryset if sees_everything(actor) else queryset.filter(pk__in=actor.queue_ids)

    actions_detail = ("claim_next",)

    def has_claim_next_permission(self, request: HttpRequest, object_id: str | None = None) -> bool:
        queue = self.cached_object(request, object_id)
        actor = actor_for(request)
        return queue is not None and (
            actor.is_manager or (actor.is_agent and queue.pk in actor.queue_ids)
        )

    @action(
        description="Claim next",
        icon="front_hand",
        variant=ActionVariant.PRIMARY,
        permissions=["claim_next"],
        dialog={
            "title": "Claim the next task",
            "description": "The most urgent task of this queue becomes yours.",
            "form_class": None,
            "form_submit_text": "Claim",
        },
    )
    def claim_next(
        self, request: HttpRequest, form: BaseDialogForm, object_id: str
    ) -> HttpResponse:
        queue = self.cached_object(request, object_id)
        try:
            task = services.task_claim_next(queue_id=queue.pk, actor=actor_for(request))
        except DomainError as exc:
            messages.error(request, exc.message)
            return redirect_after_action(request, change_url(queue))
        if task is None:
            messages.info(request, f"Nothing to claim in {queue.name} right now.")
            return redirect_after_action(request, change_url(queue))
        messages.success(request, f"You claimed {task.step_key} of case #{task.case_id}.")
        return redirect_after_action(request, change_url(task.case))

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

"""Shared pieces of the onboarding admin: actors, buttons, write rules."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.admin.utils import unquote
from django.core.paginator import Paginator
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django_fsm import has_transition_perm
from unfold.contrib.filters.admin import RangeDateTimeFilter
from unfold.forms import BaseDialogForm
from unfold.utils import parse_datetime_str
from unfold.widgets import UnfoldAdminTextareaWidget

from onboarding.actors import Actor
from onboarding.errors import DomainError
from onboarding.models import (
    PlaybookVersion,
)
from onboarding.models.cases import CaseState, TaskState

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


# --- lists of millions of rows ---------------------------------------------------------


class AwareRangeDateTimeFilter(RangeDateTimeFilter):
    """Unfold's date-time range, read in the current time zone (Unfold's own parses
    naive datetimes), the "to" minute included; an unreadable bound is ignored."""

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        def bound(side: str) -> datetime | None:
            day = self.used_parameters.get(f"{self.parameter_name}_{side}_0")
            hour = self.used_parameters.get(f"{self.parameter_name}_{side}_1")
            hour = hour or ("00:00" if side == "from" else "23:59")  # a date alone: whole day
            moment = parse_datetime_str(f"{day} {hour}") if day else None
            return timezone.make_aware(moment) if moment else None

        start, end = bound("from"), bound("to")
        if start is not None:
            queryset = queryset.filter(**{f"{self.field_path}__gte": start})
        if end is not None:
            queryset = queryset.filter(**{f"{self.field_path}__lt": end + timedelta(minutes=1)})
        return queryset


class CappedCountPaginator(Paginator):
    """Counts at most `CAP` + 1 rows: an exact count of millions of rows (42 M events
    at a million cases) costs seconds on every page, and nobody pages past the first
    thousands (filters narrow faster). Past the cap the list says "10001" and stops
    paging there."""

    CAP = 10_000

    @cached_property
    def count(self) -> int:
        return self.object_list.order_by()[: self.CAP + 1].count()

"""List filters for the workspace: queue, SLA status and assignee on cases and tasks;
actor type on the context log and events.

Each offers only what the person may see (an agent's queues, not every queue) and
filters with one EXISTS subquery, so a filtered list costs what an unfiltered one does.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import HttpRequest

from onboarding import clock
from onboarding.actors import Actor
from onboarding.models import SlaTimer, Task
from onboarding.models.cases import NON_FINAL_TASK_STATES
from onboarding.sla_status import STATUS_LABELS, SlaStatus, open_work_clocks, timer_status_q
from onboarding.workspace.selectors import OPEN_WORK_STATES, queues_for

SLA_CHOICES = [
    (status, STATUS_LABELS[status])
    for status in (SlaStatus.ON_TRACK, SlaStatus.AT_RISK, SlaStatus.BREACHED, SlaStatus.PAUSED)
]


def _actor(request: HttpRequest) -> Actor:
    return Actor.for_user(request.user, source="admin")


class _CaseOrTaskFilter(admin.SimpleListFilter):
    """Filters a Case list through its open tasks, or a Task list directly."""

    def task_condition(self, value: str, request: HttpRequest) -> Q:
        raise NotImplementedError

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet | None:
        value = self.value()
        if not value:
            return None
        condition = self.task_condition(value, request)
        if queryset.model is Task:
            return queryset.filter(condition)
        open_tasks = Task.objects.filter(case=OuterRef("pk"), state__in=OPEN_WORK_STATES)
        return queryset.filter(Exists(open_tasks.filter(condition)))


class QueueFilter(_CaseOrTaskFilter):
    title = "queue"
    parameter_name = "queue"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(str(q.pk), q.name) for q in queues_for(_actor(request))]

    def task_condition(self, value: str, request: HttpRequest) -> Q:
        return Q(queue_id=value) if value.isdigit() else Q(pk__in=[])


class AssigneeFilter(_CaseOrTaskFilter):
    title = "assignee"
    parameter_name = "assignee"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        choices = [("me", "Me"), ("none", "Nobody")]
        if _actor(request).is_manager:
            people = get_user_model().objects.filter(
                pk__in=Task.objects.filter(
                    assignee__isnull=False, state__in=OPEN_WORK_STATES
                ).values("assignee_id")
            )
            choices += [(str(u.pk), u.get_full_name() or u.get_username()) for u in people]
        return choices

    def task_condition(self, value: str, request: HttpRequest) -> Q:
        if value == "me":
            return Q(assignee_id=request.user.pk)
        if value == "none":
            return Q(assignee__isnull=True)
        return Q(assignee_id=value) if value.isdigit() else Q(pk__in=[])


class SlaStatusFilter(admin.SimpleListFilter):
    """On track / at risk / breached / paused, from the clocks of open work."""

    title = "SLA status"
    parameter_name = "sla"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return SLA_CHOICES

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet | None:
        value = self.value()
        if value not in dict(SLA_CHOICES):
            return None
        condition = timer_status_q(value, clock.now())
        if queryset.model is Task:
            timers = SlaTimer.objects.filter(task=OuterRef("pk"))
            return queryset.filter(state__in=NON_FINAL_TASK_STATES).filter(
                Exists(timers.filter(condition))
            )
        return queryset.filter(Exists(open_work_clocks(OuterRef("pk")).filter(condition)))


class ActorTypeFilter(admin.SimpleListFilter):
    """The three actor types, without a DISTINCT over millions of rows."""

    title = "actor type"
    parameter_name = "actor_type"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("agent", "Agent (a person)"), ("api", "Integration (API)"), ("system", "System")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value():
            return queryset.filter(actor_type=self.value())
        return queryset

"""Reads for the API: cases and tasks with what their representations need, in a
fixed number of queries, scoped to what the caller may see."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.db.models import Case as CaseWhen
from django.db.models import CharField, Exists, OuterRef, Q, QuerySet, Value, When

from onboarding import clock
from onboarding.actors import Actor
from onboarding.models import Case, ContextEntry, SlaTimer, Task
from onboarding.selectors import scope_tasks, visible_cases

SLA_STATUSES = (
    ("on_track", "On track"),
    ("at_risk", "At risk"),
    ("breached", "Breached"),
)


def _breached(now: datetime) -> Q:
    return Q(state=SlaTimer.State.BREACHED) | Q(state=SlaTimer.State.RUNNING, due_at__lte=now)


def _at_risk(now: datetime) -> Q:
    return Q(state=SlaTimer.State.RUNNING, warn_at__lte=now)


def with_sla_status(cases: QuerySet[Case]) -> QuerySet[Case]:
    """Annotate `api_sla_status` with two EXISTS over the case's timers."""
    now = clock.now()
    timers = SlaTimer.objects.filter(case=OuterRef("pk"))
    return cases.annotate(
        api_sla_status=CaseWhen(
            When(Exists(timers.filter(_breached(now))), then=Value("breached")),
            When(Exists(timers.filter(_at_risk(now))), then=Value("at_risk")),
            default=Value("on_track"),
            output_field=CharField(),
        )
    )


def filter_sla_status(cases: QuerySet[Case], status: str) -> QuerySet[Case]:
    now = clock.now()
    timers = SlaTimer.objects.filter(case=OuterRef("pk"))
    breached = Exists(timers.filter(_breached(now)))
    at_risk = Exists(timers.filter(_at_risk(now)))
    if status == "breached":
        return cases.filter(breached)
    if status == "at_risk":
        return cases.filter(~breached & at_risk)
    return cases.filter(~breached & ~at_risk)


def sla_status_of(timers: Iterable[SlaTimer]) -> str:
    now = clock.now()
    status = "on_track"
    for timer in timers:
        if timer.state == SlaTimer.State.BREACHED or (
            timer.state == SlaTimer.State.RUNNING and timer.due_at and timer.due_at <= now
        ):
            return "breached"
        if timer.state == SlaTimer.State.RUNNING and timer.warn_at and timer.warn_at <= now:
            status = "at_risk"
    return status


def case_list(actor: Actor) -> QuerySet[Case]:
    return with_sla_status(
        visible_cases(actor).select_related("account", "playbook", "playbook_version")
    ).order_by("-id")


def _latest_timer(timers: list[SlaTimer]) -> SlaTimer | None:
    return max(timers, key=lambda t: (t.started_at, t.pk)) if timers else None


def _attach_timers(tasks: list[Task], timers: list[SlaTimer]) -> None:
    by_task: dict[int, list[SlaTimer]] = {}
    for timer in timers:
        if timer.task_id is not None:
            by_task.setdefault(timer.task_id, []).append(timer)
    for task in tasks:
        task.api_timer = _latest_timer(by_task.get(task.pk, []))


def case_detail(case_id: int, actor: Actor | None) -> Case | None:
    """The case with tasks, timers and context log (5 queries), or None if not visible.

    `actor=None` skips the visibility check: the caller has just acted on the case.
    """
    cases = Case.objects.all() if actor is None else visible_cases(actor)
    case = (
        cases.select_related("account", "playbook", "playbook_version").filter(pk=case_id).first()
    )
    if case is None:
        return None
    tasks = list(
        Task.objects.filter(case=case)
        .select_related("step", "queue", "assignee")
        .order_by("step__position", "id")
    )
    timers = list(SlaTimer.objects.filter(case=case).select_related("policy"))
    _attach_timers(tasks, timers)
    for task in tasks:
        task.case = case
    case.api_tasks = tasks
    case.api_case_timer = _latest_timer([t for t in timers if t.kind == SlaTimer.Kind.CASE])
    case.api_sla_status = sla_status_of(timers)
    case.api_context = list(
        ContextEntry.objects.filter(case=case)
        .select_related("author")
        .order_by("-created_at", "-id")
    )
    return case


def task_detail(task_id: int, actor: Actor | None) -> Task | None:
    tasks = Task.objects.all() if actor is None else scope_tasks(Task.objects.all(), actor)
    task = tasks.select_related("step", "queue", "assignee").filter(pk=task_id).first()
    if task is None:
        return None
    timers = list(SlaTimer.objects.filter(task=task).select_related("policy"))
    _attach_timers([task], timers)
    return task

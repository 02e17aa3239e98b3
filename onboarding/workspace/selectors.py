"""Reads for the workspace pages. Each runs a fixed number of queries, however many
tasks, timers or log entries there are (tests/onboarding/test_workspace_queries.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Count, F, Min, Q, QuerySet

from analytics.models import Event
from onboarding.actors import Actor
from onboarding.models import Case, ContextEntry, Queue, SlaTimer, Task
from onboarding.models.cases import TaskState
from onboarding.models.sla import TimerState
from onboarding.selectors import sees_everything
from onboarding.sla_status import SlaBadge, SlaStatus, badge_for, timer_status_q

# Work someone still owes: waiting in a queue, being worked, or waiting on the customer.
OPEN_WORK_STATES = (TaskState.QUEUED, TaskState.IN_PROGRESS, TaskState.WAITING)
TIMELINE_LIMIT = 150
# The order claim-next serves a queue in: SLA due soonest (no clock or a paused one
# last), then priority, then age.
CLAIM_ORDER = (F("sla_due_at").asc(nulls_last=True), "-priority", "activated_at", "id")


# --- queues --------------------------------------------------------------------------


@dataclass
class QueueRow:
    queue: Queue
    queued: int = 0
    in_progress: int = 0
    waiting: int = 0
    reserved: int = 0
    oldest_queued_at: datetime | None = None
    at_risk: int = 0
    breached: int = 0
    is_member: bool = False

    def oldest_wait(self, now: datetime) -> timedelta | None:
        return now - self.oldest_queued_at if self.oldest_queued_at else None


def queues_for(actor: Actor) -> QuerySet[Queue]:
    """Managers see every queue; agents the queues they work."""
    queues = Queue.objects.order_by("-is_exceptions", "name")
    return queues if sees_everything(actor) else queues.filter(pk__in=actor.queue_ids)


def queue_overview(actor: Actor, now: datetime) -> list[QueueRow]:
    """Counts, oldest wait and SLA risk per visible queue: three queries in all."""
    rows = {q.pk: QueueRow(q, is_member=q.pk in actor.queue_ids) for q in queues_for(actor)}
    if not rows:
        return []
    queued = Q(state=TaskState.QUEUED)
    counts = (
        Task.objects.filter(queue_id__in=rows, state__in=OPEN_WORK_STATES)
        .values("queue_id")
        .order_by()
        .annotate(
            queued=Count("pk", filter=queued),
            in_progress=Count("pk", filter=Q(state=TaskState.IN_PROGRESS)),
            waiting=Count("pk", filter=Q(state=TaskState.WAITING)),
            reserved=Count("pk", filter=queued & Q(assignee__isnull=False)),
            # The transition that queued a task is its last one: updated_at is when it
            # started waiting here.
            oldest_queued_at=Min("updated_at", filter=queued),
        )
    )
    for c in counts:
        row = rows[c.pop("queue_id")]
        for key, value in c.items():
            setattr(row, key, value)
    risk = (
        SlaTimer.objects.filter(
            task__queue_id__in=rows,
            task__state__in=OPEN_WORK_STATES,
            state__in=(TimerState.RUNNING, TimerState.BREACHED),
        )
        .values("task__queue_id")
        .order_by()
        .annotate(
            breached=Count("pk", filter=timer_status_q(SlaStatus.BREACHED, now)),
            at_risk=Count("pk", filter=timer_status_q(SlaStatus.AT_RISK, now)),
        )
    )
    for r in risk:
        row = rows[r["task__queue_id"]]
        row.breached, row.at_risk = r["breached"], r["at_risk"]
    return list(rows.values())


# --- tasks with their clocks -------------------------------------------------------------


def attach_badges(tasks: list[Task], now: datetime) -> list[Task]:
    """Set `task.sla` to the badge of its latest clock (one query for all of them)."""
    latest: dict[int, SlaTimer] = {}
    timers = (
        SlaTimer.objects.filter(task_id__in=[t.pk for t in tasks], kind=SlaTimer.Kind.TASK)
        .select_related("policy")
        .order_by("task_id", "-started_at", "-id")
    )
    for timer in timers:
        latest.setdefault(timer.task_id, timer)
    for task in tasks:
        task.sla = badge_for(latest.get(task.pk), now)
    return tasks


def my_work(actor: Actor, now: datetime) -> list[Task]:
    """The person's own open tasks (claimed, waiting, or reserved for them), most urgent
    first."""
    if actor.user is None:
        return []
    tasks = list(
        Task.objects.filter(assignee=actor.user, state__in=OPEN_WORK_STATES)
        .select_related("case__account", "case__playbook", "queue", "step")
        .order_by(*CLAIM_ORDER)
    )
    return attach_badges(tasks, now)


# --- the case page ---------------------------------------------------------------------


@dataclass
class TimelineItem:
    at: datetime
    kind: str  # event, note, handoff, automation, error, signal, system
    title: str
    body: str = ""
    who: str = ""
    step_key: str = ""
    details: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class CasePage:
    case: Case
    tasks: list[Task]
    case_sla: SlaBadge | None
    timeline: list[TimelineItem]
    timeline_truncated: bool
    required_total: int
    required_done: int


# Properties worth a line on the timeline, by name.
_DETAIL_KEYS = (
    "reason",
    "from_queue",
    "to_queue",
    "to_assignee_id",
    "from_assignee_id",
    "method",
    "cause",
    "error_type",
    "attempt",
    "completed_by",
    "signal_name",
    "policy_key",
)


def case_page(case: Case, now: datetime, *, people_only: bool = False) -> CasePage:
    """Everything the case page shows. `people_only` keeps the timeline to what people
    wrote (notes, handoff notes) and what automation reported (results, errors, signals),
    without the event stream."""
    tasks = list(
        case.tasks.select_related("queue", "assignee", "step").order_by("step__position", "id")
    )
    timers = list(
        SlaTimer.objects.filter(case=case).select_related("policy").order_by("-started_at", "-id")
    )
    by_task: dict[int, SlaTimer] = {}
    case_timer = None
    for timer in timers:
        if timer.task_id is None:
            case_timer = case_timer or timer
        else:
            by_task.setdefault(timer.task_id, timer)
    for task in tasks:
        task.case = case  # conditions read task.case: no query per task
        task.sla = badge_for(by_task.get(task.pk), now)
    required = [t for t in tasks if t.required]
    timeline, truncated = _timeline(
        case, {t.pk: t.step_key for t in tasks}, with_events=not people_only
    )
    return CasePage(
        case=case,
        tasks=tasks,
        case_sla=badge_for(case_timer, now),
        timeline=timeline,
        timeline_truncated=truncated,
        required_total=len(required),
        required_done=sum(t.state in (TaskState.DONE, TaskState.SKIPPED) for t in required),
    )


def _timeline(
    case: Case, step_keys: dict[int, str], *, with_events: bool = True
) -> tuple[list[TimelineItem], bool]:
    """Events and the context log merged, newest first, with who and when."""
    events = list(Event.objects.for_case(case.pk)[: TIMELINE_LIMIT + 1]) if with_events else []
    entries = list(
        ContextEntry.objects.filter(case=case)
        .select_related("author")
        .order_by("-created_at", "-id")[: TIMELINE_LIMIT + 1]
    )
    truncated = len(events) > TIMELINE_LIMIT or len(entries) > TIMELINE_LIMIT
    user_ids = {int(e.actor_id) for e in events if e.actor_type == "agent" and e.actor_id.isdigit()}
    user_ids |= {
        int(e.properties[k])
        for e in events
        for k in ("to_assignee_id", "from_assignee_id")
        if isinstance(e.properties.get(k), int)
    }
    names = {
        u.pk: (u.get_full_name() or u.get_username())
        for u in get_user_model().objects.filter(pk__in=user_ids)
    }

    def who(actor_type: str, actor_id: str, author: Any = None) -> str:
        if author is not None:
            return author.get_full_name() or author.get_username()
        if actor_type == "agent" and actor_id.isdigit():
            return names.get(int(actor_id), f"user {actor_id}")
        if actor_type == "system":
            return f"Automation ({actor_id})"
        if actor_type == "api":
            return f"Integration ({actor_id})"
        return f"{actor_type}:{actor_id}"

    items = [
        TimelineItem(
            at=e.occurred_at,
            kind="event",
            title=e.name,
            who=who(e.actor_type, e.actor_id),
            step_key=e.step_key,
            details=[
                (k.replace("_", " "), _detail_value(k, e.properties[k], names))
                for k in _DETAIL_KEYS
                if e.properties.get(k) not in (None, "")
            ],
        )
        for e in events[:TIMELINE_LIMIT]
    ]
    items += [
        TimelineItem(
            at=c.created_at,
            kind=c.kind,
            title=c.get_kind_display(),
            body=c.body,
            who=who(c.actor_type, c.actor_id, c.author),
            step_key=step_keys.get(c.task_id, "") if c.task_id else "",
            details=[
                (k.replace("_", " "), str(v))
                for k, v in (c.properties or {}).items()
                if k in ("from_queue", "to_queue", "attempt", "error_type") and v not in (None, "")
            ],
        )
        for c in entries[:TIMELINE_LIMIT]
    ]
    # Newest first; at the same instant the note reads after the event that caused it.
    items.sort(key=lambda i: (i.at, i.kind != "event"), reverse=True)
    return items, truncated


def _detail_value(key: str, value: Any, names: dict[int, str]) -> str:
    if key.endswith("assignee_id") and isinstance(value, int):
        return names.get(value, f"user {value}")
    return str(value)


def agents_for_handoff() -> list[tuple[int, str, frozenset[int]]]:
    """Active people who work at least one queue: (id, name, their queue ids). Two queries."""
    User = get_user_model()
    direct = Queue.members.through.objects.values_list("user_id", "queue_id")
    by_group = Queue.member_groups.through.objects.values_list("group__user", "queue_id").filter(
        group__user__isnull=False
    )
    memberships: dict[int, set[int]] = {}
    for user_id, queue_id in [*direct, *by_group]:
        memberships.setdefault(user_id, set()).add(queue_id)
    users = User.objects.filter(pk__in=memberships, is_active=True).order_by("username")
    return [
        (u.pk, u.get_full_name() or u.get_username(), frozenset(memberships[u.pk])) for u in users
    ]

"""SLA timers: started, paused, resumed and stopped by the write path itself.

Every task transition of a watched task calls `on_task_transition` inside the same
transaction (case and task already locked, the timer locked after them), so a
timer can never disagree with the task it watches. Warnings and breaches are found
by the sweep (`onboarding.sweeper`). Time is business time of the policy's
calendar (`onboarding.calendar`); each interval is attributed to whose time it was.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime

from django.db import transaction

from onboarding import calendar as bizcal
from onboarding import clock
from onboarding.actors import Actor
from onboarding.errors import DomainError
from onboarding.models import BusinessCalendar, Case, SlaPolicy, SlaTimer, Task
from onboarding.models.cases import FINAL_TASK_STATES, CaseState, TaskState
from onboarding.models.sla import TimerState
from onboarding.services._write import apply_transition
from onboarding.statements import insert_row

log = logging.getLogger(__name__)

# Whose time an interval is: waiting on us, on the customer, or on automation.
CATEGORY = {
    TaskState.PENDING: "internal",
    TaskState.SCHEDULED: "automation",
    TaskState.RUNNING: "automation",
    TaskState.QUEUED: "internal",
    TaskState.IN_PROGRESS: "internal",
    TaskState.WAITING: "customer",
}
HOLD = "customer"  # a held case waits on the customer's go-ahead (documented choice)
OPEN_TIMER_STATES = (TimerState.RUNNING, TimerState.PAUSED)

_calendars: dict[int, tuple[float, bizcal.BusinessCalendar]] = {}
_CALENDAR_TTL = 60.0  # seconds a compiled calendar is reused before re-reading its rows
_ALWAYS_OPEN = bizcal.always_open("UTC")


def calendar_of(policy: SlaPolicy) -> bizcal.BusinessCalendar:
    if policy.calendar_id is None:
        return _ALWAYS_OPEN
    cached = _calendars.get(policy.calendar_id)
    if cached is None or time.monotonic() - cached[0] > _CALENDAR_TTL:
        compiled = BusinessCalendar.objects.get(pk=policy.calendar_id).compile()
        cached = _calendars[policy.calendar_id] = (time.monotonic(), compiled)
    return cached[1]


def forget_calendar(calendar_id: int) -> None:
    """Call after editing a calendar's rows so this process re-reads them now."""
    _calendars.pop(calendar_id, None)


def _policy(policy_id: int) -> SlaPolicy:
    return SlaPolicy.objects.select_related("escalation_queue").get(pk=policy_id)


def _business(a: datetime, b: datetime, cal: bizcal.BusinessCalendar) -> float:
    return bizcal.business_between(a, b, cal) if b > a else 0.0


def _deadlines(
    timer: SlaTimer, policy: SlaPolicy, now: datetime, consumed: float
) -> dict[str, datetime]:
    """Due/warn instants from what is left of the target, counted from now."""
    cal = calendar_of(policy)
    target = policy.target.total_seconds()
    left = max(target - consumed, 0.0)
    deadlines = {"due_at": bizcal.add_business(now, left, cal) if left else now}
    warn_left = target * policy.warn_percent / 100 - consumed
    if timer.warned_at is None:
        deadlines["warn_at"] = bizcal.add_business(now, warn_left, cal) if warn_left > 0 else now
    return deadlines


def _schedule(timer: SlaTimer, policy: SlaPolicy, now: datetime) -> None:
    for field, value in _deadlines(timer, policy, now, timer.consumed_seconds).items():
        setattr(timer, field, value)


def _segment_closed(timer: SlaTimer, policy: SlaPolicy, now: datetime) -> dict[str, object]:
    """The timer's bookkeeping with the open segment accounted: to its category always,
    to the target while the clock counts."""
    seconds = _business(timer.segment_started_at, now, calendar_of(policy))
    attribution = dict(timer.attribution)
    attribution[timer.segment_category] = attribution.get(timer.segment_category, 0.0) + seconds
    counting = timer.state in (TimerState.RUNNING, TimerState.BREACHED)
    return {
        "attribution": attribution,
        "consumed_seconds": timer.consumed_seconds + (seconds if counting else 0.0),
        "segment_started_at": now,
    }


def _paused(policy: SlaPolicy, task_state: str | None, case_state: str) -> bool:
    return case_state == CaseState.ON_HOLD or (task_state in (policy.pause_states or []))


def _start(
    *,
    case: Case,
    task: Task | None,
    policy: SlaPolicy,
    category: str,
    paused: bool,
    actor: Actor,
) -> SlaTimer:
    from analytics.recording import build_event

    now = clock.now()
    timer = SlaTimer(
        kind=SlaTimer.Kind.TASK if task else SlaTimer.Kind.CASE,
        case=case,
        task=task,
        policy=policy,
        state=TimerState.PAUSED if paused else TimerState.RUNNING,
        started_at=now,
        segment_started_at=now,
        segment_category=category,
        attribution={},
    )
    _schedule(timer, policy, now)
    insert_row(timer)
    insert_row(
        build_event(
            "SLA Started",
            actor=actor,
            case=case,
            task=task,
            properties={
                "policy": policy.key,
                "policy_version": policy.version,
                "kind": timer.kind,
                "target_seconds": policy.target.total_seconds(),
                "due_at": timer.due_at,
            },
        )
    )
    return timer


def _open_timers(**filters: object) -> list[SlaTimer]:
    # Locked after the case and task the caller holds: one lock order.
    return list(
        SlaTimer.objects.select_for_update(no_key=True)
        .filter(state__in=(*OPEN_TIMER_STATES, TimerState.BREACHED), stopped_at=None, **filters)
        .order_by("id")
    )


def _transition(
    timer: SlaTimer,
    name: str,
    actor: Actor,
    changes: dict[str, object],
    **properties: object,
) -> None:
    # The timer's bookkeeping rides on the guarded state change and its event.
    apply_transition(timer, name, actor=actor, changes=changes, properties=properties)


def _save_bookkeeping(timer: SlaTimer, changes: dict[str, object]) -> None:
    """Counters that change without a state change (not a transition: no event)."""
    SlaTimer.objects.filter(pk=timer.pk).update(**changes)
    for field, value in changes.items():
        setattr(timer, field, value)


def _mirror_due(timer: SlaTimer, due_at: datetime | None) -> None:
    # Claim-next orders queued work by it through an index on the task row.
    if timer.task_id is not None:
        Task.objects.filter(pk=timer.task_id).update(sla_due_at=due_at)


def _follow(
    timer: SlaTimer, *, category: str, paused: bool, stop: str | None, actor: Actor
) -> None:
    """Move one timer along with the state of what it watches."""
    policy = timer.policy
    now = clock.now()
    changes = {**_segment_closed(timer, policy, now), "segment_category": category}
    consumed = changes["consumed_seconds"]
    if stop is not None:
        changes["stopped_at"] = now
        _mirror_due(timer, None)
        if timer.state == TimerState.BREACHED:
            _save_bookkeeping(timer, changes)  # the verdict stands; final numbers on the row
        elif stop == "meet":
            _transition(
                timer,
                "meet",
                actor,
                changes,
                consumed_seconds=round(consumed, 3),
                target_seconds=policy.target.total_seconds(),
            )
        else:
            _transition(timer, "cancel", actor, changes, reason=stop)
    elif timer.state == TimerState.RUNNING and paused:
        _mirror_due(timer, None)
        _transition(timer, "pause", actor, changes, consumed_seconds=round(consumed, 3))
    elif timer.state == TimerState.PAUSED and not paused:
        changes.update(_deadlines(timer, policy, now, consumed))
        _mirror_due(timer, changes["due_at"])
        _transition(timer, "resume", actor, changes, due_at=changes["due_at"])
    else:
        _save_bookkeeping(timer, changes)


def _clock_actor(cause: Actor) -> Actor:
    # Clocks move as a consequence: the system's doing, traced to what caused it.
    return cause if cause.is_system else Actor.system("sla", source=cause.source)


def on_task_transition(task: Task, *, before: str, actor: Actor) -> None:
    """Called by the write path after every task transition."""
    after = task.state
    actor = _clock_actor(actor)
    if before == TaskState.PENDING and after in CATEGORY:  # became live: start its clock
        policy_id = _policy_id_for(task)
        if policy_id is None:
            return
        policy = _policy(policy_id)
        timer = _start(
            case=task.case,
            task=task,
            policy=policy,
            category=CATEGORY[after],
            paused=_paused(policy, after, task.case.state),
            actor=actor,
        )
        due = timer.due_at if timer.state == TimerState.RUNNING else None
        Task.objects.filter(pk=task.pk).update(sla_policy_id=policy_id, sla_due_at=due)
        task.sla_policy_id, task.sla_due_at = policy_id, due
        return
    if task.sla_policy_id is None:
        return
    for timer in _open_timers(task=task):
        timer.task, timer.case = task, task.case
        if after in FINAL_TASK_STATES or after == TaskState.PENDING:  # pending: reopened
            stop = "meet" if after == TaskState.DONE else after
            _follow(timer, category=timer.segment_category, paused=True, stop=stop, actor=actor)
        else:
            _follow(
                timer,
                category=CATEGORY[after],
                paused=_paused(timer.policy, after, task.case.state),
                stop=None,
                actor=actor,
            )


def _policy_id_for(task: Task) -> int | None:
    if task.step.sla_policy_id is not None:
        return task.step.sla_policy_id
    if task.queue_id is not None:
        return task.queue.default_sla_policy_id
    return None


def on_case_opened(case: Case, *, actor: Actor) -> None:
    version = case.playbook_version
    if version.case_sla_policy_id is None:
        return
    actor = _clock_actor(actor)
    _start(
        case=case,
        task=None,
        policy=_policy(version.case_sla_policy_id),
        category="internal",
        paused=False,
        actor=actor,
    )


def on_case_transition(case: Case, *, actor: Actor) -> None:
    """Hold pauses every clock of the case; resume restarts them; the end stops them."""
    actor = _clock_actor(actor)
    timers = _open_timers(case=case)
    if not timers:
        return
    tasks = {t.pk: t for t in case.tasks.filter(pk__in=[t.task_id for t in timers if t.task_id])}
    for timer in timers:
        timer.case = case
        task = tasks.get(timer.task_id)
        if task is not None:
            task.case = case
            timer.task = task
        task_state = task.state if task else None
        if case.state == CaseState.COMPLETED:
            stop = "meet" if task is None or task.state == TaskState.DONE else "case completed"
        elif case.state == CaseState.CANCELLED:
            stop = "case cancelled"
        else:
            stop = None
        if task is not None and task.state in FINAL_TASK_STATES and stop is None:
            continue
        category = (
            HOLD
            if case.state == CaseState.ON_HOLD
            else (CATEGORY.get(task_state, "internal") if task else "internal")
        )
        _follow(
            timer,
            category=category,
            paused=_paused(timer.policy, task_state, case.state),
            stop=stop,
            actor=actor,
        )


# --- the sweep's half ------------------------------------------------------------------


def timer_warn(timer: SlaTimer, *, actor: Actor) -> bool:
    """Record the warning once: the guarded update is the only writer of warned_at."""
    from analytics.recording import record

    now = clock.now()
    if not SlaTimer.objects.filter(pk=timer.pk, warned_at=None, state=TimerState.RUNNING).update(
        warned_at=now
    ):
        return False
    policy = timer.policy
    consumed = timer.consumed_seconds + _business(
        timer.segment_started_at, now, calendar_of(policy)
    )
    record(
        "SLA Warning",
        actor=actor,
        case=timer.case,
        task=timer.task,
        properties={
            "policy": policy.key,
            "consumed_seconds": round(consumed, 3),
            "target_seconds": policy.target.total_seconds(),
        },
    )
    return True


def timer_breach(timer: SlaTimer, *, actor: Actor) -> None:
    """Mark the breach (once: it is a transition) and escalate the work if the policy says so."""
    from onboarding.services.tasks import task_escalate

    policy = timer.policy
    now = clock.now()
    # One statement: the bookkeeping rides on the guarded state change with its event.
    apply_transition(
        timer,
        "breach",
        actor=actor,
        changes={"breached_at": now, **_segment_closed(timer, policy, now)},
        properties={"policy": policy.key, "target_seconds": policy.target.total_seconds()},
    )
    task = timer.task
    if (
        task is not None
        and policy.on_breach == SlaPolicy.OnBreach.ESCALATE
        and task.state in (TaskState.QUEUED, TaskState.IN_PROGRESS, TaskState.WAITING)
    ):
        try:
            with transaction.atomic():  # the breach stands even if escalating fails
                task_escalate(
                    task_id=task.pk,
                    actor=actor,
                    reason=f"SLA {policy.name} breached",
                    to_queue_id=policy.escalation_queue_id,
                    cause="sla",
                )
        except DomainError as exc:
            log.warning("breached task %s not escalated: %s", task.pk, exc.message)


def load_timers(timer_ids: list[int]) -> dict[int, SlaTimer]:
    """The timers with what their events need, in one query (for a sweep batch)."""
    timers = SlaTimer.objects.select_related("policy", "case__account", "task").in_bulk(timer_ids)
    for timer in timers.values():
        if timer.task is not None:
            timer.task.case = timer.case
    return timers


def breach_overdue(
    timer_id: int, *, actor: Actor, now: datetime | None = None, timer: SlaTimer | None = None
) -> str:
    """Warn and/or breach one timer the sweep found due (the caller holds its lock)."""
    if timer is None:
        timer = load_timers([timer_id])[timer_id]
    now = now or clock.now()
    if timer.state != TimerState.RUNNING:
        return "skipped"
    outcome = "skipped"
    if timer.warned_at is None and timer.warn_at and timer.warn_at <= now:
        outcome = "warned" if timer_warn(timer, actor=actor) else outcome
        timer.warned_at = now
    if timer.due_at and timer.due_at <= now:
        timer_breach(timer, actor=actor)
        outcome = "breached"
    return outcome


__all__ = [
    "breach_overdue",
    "calendar_of",
    "forget_calendar",
    "on_case_opened",
    "on_case_transition",
    "on_task_transition",
]

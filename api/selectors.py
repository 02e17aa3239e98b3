"""Reads for the API: cases and tasks with what their representations need, in a
fixed number of queries, scoped to what the caller may see.

SLA status follows the project's one definition (`onboarding.sla_status`): a case is
*breached* if one of the clocks of its open work (its open tasks' clocks, and its own
time-to-live clock while it is open) is breached, else *at risk* if one is at risk,
else *on track*. A completed or cancelled case has no open work and reports
`on_track`: nothing about it can still be late (its clocks' history stays in the
task and time-to-live representations and in the SLA report).

The case detail is the hottest read of the API. On PostgreSQL it is one statement,
compiled once per process, that returns the case with its tasks, clocks and context
log aggregated as JSON; `case_detail` turns that row into the body
`api.serializers.CaseDetailSerializer` documents, without serializer instances (DRF
rebuilt the nested serializers' fields on every response). Other databases read the
same columns with three more queries.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Case as CaseWhen
from django.db.models import CharField, Exists, F, OuterRef, QuerySet, Subquery, Value, When
from rest_framework.fields import DateTimeField

from onboarding import clock
from onboarding.actors import Actor
from onboarding.models import Case, ContextEntry, SlaTimer, Task
from onboarding.models.cases import NON_FINAL_TASK_STATES, OPEN_CASE_STATES
from onboarding.selectors import scope_tasks, sees_everything, visible_cases
from onboarding.sla_status import (
    STATUS_LABELS,
    SlaStatus,
    open_work_clocks,
    timer_status,
    timer_status_q,
)
from onboarding.statements import run

# --- SLA status of a case ------------------------------------------------------------

CASE_SLA_STATUSES = (SlaStatus.ON_TRACK, SlaStatus.AT_RISK, SlaStatus.BREACHED)
SLA_STATUSES = tuple((status, STATUS_LABELS[status]) for status in CASE_SLA_STATUSES)


def _has_open_work_clock(status: str, now: datetime) -> Exists:
    return Exists(open_work_clocks(OuterRef("pk")).filter(timer_status_q(status, now)))


def with_sla_status(cases: QuerySet[Case]) -> QuerySet[Case]:
    """Annotate `api_sla_status`: two EXISTS over the clocks of the case's open work."""
    now = clock.now()
    return cases.annotate(
        api_sla_status=CaseWhen(
            When(_has_open_work_clock(SlaStatus.BREACHED, now), then=Value(SlaStatus.BREACHED)),
            When(_has_open_work_clock(SlaStatus.AT_RISK, now), then=Value(SlaStatus.AT_RISK)),
            default=Value(SlaStatus.ON_TRACK),
            output_field=CharField(),
        )
    )


def filter_sla_status(cases: QuerySet[Case], status: str) -> QuerySet[Case]:
    now = clock.now()
    breached = _has_open_work_clock(SlaStatus.BREACHED, now)
    at_risk = _has_open_work_clock(SlaStatus.AT_RISK, now)
    if status == SlaStatus.BREACHED:
        return cases.filter(breached)
    if status == SlaStatus.AT_RISK:
        return cases.filter(~breached & at_risk)
    return cases.filter(~breached & ~at_risk)


def case_sla_status(open_work: Iterable[Any], now: datetime) -> str:
    """The status of a case from the clocks of its open work (`open_work_clocks`)."""
    status = SlaStatus.ON_TRACK
    for timer in open_work:
        verdict = timer_status(timer, now)
        if verdict == SlaStatus.BREACHED:
            return SlaStatus.BREACHED
        if verdict == SlaStatus.AT_RISK:
            status = SlaStatus.AT_RISK
    return status


def case_list(actor: Actor) -> QuerySet[Case]:
    return with_sla_status(
        visible_cases(actor).select_related("account", "playbook", "playbook_version")
    ).order_by("-id")


# --- one case ------------------------------------------------------------------------
#
# Columns read for the case detail, in the order the renderers below unpack them. The
# same lookups drive the PostgreSQL statement (JSON arrays) and the portable reads.

_CASE_COLUMNS = (
    "id",
    "state",
    "opened_at",
    "updated_at",
    "completed_at",
    "cancelled_at",
    "hold_reason",
    "cancel_reason",
    "reopen_count",
    "account__external_id",
    "account__name",
    "account__plan",
    "account__segment",
    "account__region",
    "account__channel",
    "playbook__key",
    "playbook__name",
    "playbook_version__number",
)
_TASK_COLUMNS = (
    "id",
    "step_key",
    "step__name",
    "kind",
    "state",
    "required",
    "queue_id",
    "queue__key",
    "queue__name",
    "assignee_id",
    "assignee__username",
    "priority",
    "escalated",
    "handoff_count",
    "attempts",
    "max_attempts",
    "last_error",
    "skip_reason",
    "activated_at",
    "started_at",
    "completed_at",
    "updated_at",
)
_TASK_ORDER = ("step__position", "id")
_TIMER_COLUMNS = (
    "task_id",
    "kind",
    "state",
    "policy__key",
    "started_at",
    "warn_at",
    "due_at",
    "breached_at",
    "stopped_at",
    "warned_at",
)
_TIMER_ORDER = ("started_at", "id")  # the latest clock of a task comes last
_CONTEXT_COLUMNS = (
    "id",
    "kind",
    "body",
    "task_id",
    "author__username",
    "actor_type",
    "actor_id",
    "properties",
    "created_at",
)
_CONTEXT_ORDER = ("-created_at", "-id")

_DATETIME = DateTimeField()  # DRF's rendering of a timestamp (format, time zone)


def _time(value: datetime | str | None) -> str | None:
    """A timestamp as DRF renders it; JSON aggregates give PostgreSQL's ISO text."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return _DATETIME.to_representation(value)


def _parsed(value: datetime | str | None) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


class _Clock(NamedTuple):
    """What `timer_status` reads of an SlaTimer."""

    state: str
    due_at: datetime | None
    warn_at: datetime | None
    warned_at: datetime | None


def _sla(timer: Sequence[Any] | None) -> dict[str, Any] | None:
    """SlaSerializer's representation of a timer row."""
    if timer is None:
        return None
    _, _, state, policy, started, warn, due, breached, stopped, _ = timer
    return {
        "state": state,
        "policy": policy,
        "started_at": _time(started),
        "warn_at": _time(warn),
        "due_at": _time(due),
        "breached_at": _time(breached),
        "stopped_at": _time(stopped),
    }


def _render(
    case: Sequence[Any],
    tasks: Sequence[Sequence[Any]],
    timers: Sequence[Sequence[Any]],
    context: Sequence[Sequence[Any]],
    now: datetime,
) -> dict[str, Any]:
    """CaseDetailSerializer's representation, from the rows of the columns above."""
    (
        case_id,
        state,
        opened_at,
        updated_at,
        completed_at,
        cancelled_at,
        hold_reason,
        cancel_reason,
        reopen_count,
        external_id,
        account_name,
        plan,
        segment,
        region,
        channel,
        playbook_key,
        playbook_name,
        version,
    ) = case
    task_states = {task[0]: task[4] for task in tasks}
    latest: dict[int, Sequence[Any]] = {}  # task id → its latest clock
    case_timer = None
    open_work = []
    for timer in timers:
        task_id, kind = timer[0], timer[1]
        if task_id is not None:
            latest[task_id] = timer
        if kind == SlaTimer.Kind.CASE:
            case_timer = timer
        # open_work_clocks: clocks of open tasks, and the case's own while it is open
        if (task_id is None and state in OPEN_CASE_STATES) or (
            task_id is not None and task_states.get(task_id) in NON_FINAL_TASK_STATES
        ):
            open_work.append(
                _Clock(timer[2], _parsed(timer[6]), _parsed(timer[5]), _parsed(timer[9]))
            )
    return {
        "id": case_id,
        "state": state,
        "account": {
            "external_id": external_id,
            "name": account_name,
            "plan": plan,
            "segment": segment,
            "region": region,
            "channel": channel,
        },
        "playbook": {"key": playbook_key, "name": playbook_name, "version": version},
        "sla_status": case_sla_status(open_work, now),
        "opened_at": _time(opened_at),
        "updated_at": _time(updated_at),
        "completed_at": _time(completed_at),
        "cancelled_at": _time(cancelled_at),
        "hold_reason": hold_reason,
        "cancel_reason": cancel_reason,
        "reopen_count": reopen_count,
        "time_to_live": _sla(case_timer),
        "tasks": [
            {
                "id": t[0],
                "case_id": case_id,
                "step_key": t[1],
                "name": t[2],
                "kind": t[3],
                "state": t[4],
                "required": t[5],
                "queue": None if t[6] is None else {"id": t[6], "key": t[7], "name": t[8]},
                "assignee": None if t[9] is None else {"id": t[9], "username": t[10]},
                "priority": t[11],
                "escalated": t[12],
                "handoff_count": t[13],
                "attempts": t[14],
                "max_attempts": t[15],
                "last_error": t[16],
                "skip_reason": t[17],
                "sla": _sla(latest.get(t[0])),
                "activated_at": _time(t[18]),
                "started_at": _time(t[19]),
                "completed_at": _time(t[20]),
                "updated_at": _time(t[21]),
            }
            for t in tasks
        ],
        "context": [
            {
                "id": e[0],
                "kind": e[1],
                "body": e[2],
                "task_id": e[3],
                "author": e[4],
                "actor_type": e[5],
                "actor_id": e[6],
                "properties": e[7],
                "created_at": _time(e[8]),
            }
            for e in context
        ],
    }


def _json_rows(model: type, columns: tuple[str, ...], order: tuple[str, ...]) -> Subquery:
    """The case's rows of `model` as one JSON array of arrays (PostgreSQL)."""
    from django.contrib.postgres.aggregates import JSONBAgg
    from django.db.models.functions import JSONArray

    return Subquery(
        model.objects.filter(case=OuterRef("pk"))
        .order_by()
        .values("case")
        .annotate(rows=JSONBAgg(JSONArray(*(F(c) for c in columns)), order_by=order))
        .values("rows")
    )


def _detail_queryset(cases: QuerySet[Case]) -> QuerySet[Case]:
    return cases.order_by().values_list(
        *_CASE_COLUMNS,
        _json_rows(Task, _TASK_COLUMNS, _TASK_ORDER),
        _json_rows(SlaTimer, _TIMER_COLUMNS, _TIMER_ORDER),
        _json_rows(ContextEntry, _CONTEXT_COLUMNS, _CONTEXT_ORDER),
    )


_DETAIL_SQL: dict[tuple[str, str], str] = {}


def _detail_sql(using: str) -> str:
    """The one-statement case detail, compiled once per process (its one parameter is
    the case id)."""
    key = (using, connections[using].vendor)
    sql = _DETAIL_SQL.get(key)
    if sql is None:
        query = _detail_queryset(Case.objects.filter(pk=0)).query
        sql, params = query.get_compiler(using=using).as_sql()
        if tuple(params) != (0,):
            raise ValueError(f"case detail statement has parameters {params}, expected (0,)")
        sql = _DETAIL_SQL[key] = sql
    return sql


def _loaded(rows: Any) -> list[Any]:
    if rows is None:
        return []
    return json.loads(rows) if isinstance(rows, str | bytes) else rows


def _read_portably(cases: QuerySet[Case], case_id: int) -> dict[str, Any] | None:
    case = cases.order_by().filter(pk=case_id).values_list(*_CASE_COLUMNS).first()
    if case is None:
        return None
    tasks = Task.objects.filter(case_id=case_id).order_by(*_TASK_ORDER)
    timers = SlaTimer.objects.filter(case_id=case_id).order_by(*_TIMER_ORDER)
    context = ContextEntry.objects.filter(case_id=case_id).order_by(*_CONTEXT_ORDER)
    return _render(
        case,
        list(tasks.values_list(*_TASK_COLUMNS)),
        list(timers.values_list(*_TIMER_COLUMNS)),
        list(context.values_list(*_CONTEXT_COLUMNS)),
        clock.now(),
    )


def case_detail(
    case_id: int, actor: Actor | None, *, using: str = DEFAULT_DB_ALIAS
) -> dict[str, Any] | None:
    """The case's representation (CaseDetailSerializer's shape), or None if the case
    does not exist or `actor` may not see it.

    `actor=None` skips the visibility check: the caller has just acted on the case.
    One statement on PostgreSQL for callers who see every case (tokens, managers);
    an agent's read adds its visibility rule (`onboarding.selectors.visible_cases`)
    to that statement, compiled for the request.
    """
    connection = connections[using]
    if connection.vendor != "postgresql":
        cases = Case.objects.all() if actor is None else visible_cases(actor)
        return _read_portably(cases.using(using), case_id)
    if actor is None or sees_everything(actor):
        row, _ = run(connection, _detail_sql(using), (case_id,), fetch=True)
    else:
        cases = visible_cases(actor).using(using).filter(pk=case_id)
        if cases.query.is_empty():
            return None
        row = _detail_queryset(cases).first()
    if row is None:
        return None
    *case, tasks, timers, context = row
    return _render(case, _loaded(tasks), _loaded(timers), _loaded(context), clock.now())


# --- one task ------------------------------------------------------------------------


def _latest_timer(timers: list[SlaTimer]) -> SlaTimer | None:
    return max(timers, key=lambda t: (t.started_at, t.pk)) if timers else None


def _attach_timers(tasks: list[Task], timers: list[SlaTimer]) -> None:
    by_task: dict[int, list[SlaTimer]] = {}
    for timer in timers:
        if timer.task_id is not None:
            by_task.setdefault(timer.task_id, []).append(timer)
    for task in tasks:
        task.api_timer = _latest_timer(by_task.get(task.pk, []))


def task_detail(task_id: int, actor: Actor | None) -> Task | None:
    tasks = Task.objects.all() if actor is None else scope_tasks(Task.objects.all(), actor)
    task = tasks.select_related("step", "queue", "assignee").filter(pk=task_id).first()
    if task is None:
        return None
    timers = list(SlaTimer.objects.filter(task=task).select_related("policy"))
    _attach_timers([task], timers)
    return task

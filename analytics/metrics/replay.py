"""Every report recomputed from the raw events alone: the reconciliation's other side.

Deliberately simple and separate from the SQL in the report modules: it reads
`analytics.Event` rows (name, occurred_at, ids, step key, playbook, actor, the
segmentation snapshot, properties), replays each case's history in order, and
aggregates in Python. Besides the events it reads only configuration that events
name but do not copy: the SLA policy of a clock (which task states pause it, and
its business calendar, to turn wall-clock intervals into business time) and the
playbook steps (which are milestones, which is the first value).

What an event means for the facts it rebuilds (the same story the services tell):

- a task's state is the `to_state` of its latest transition event; its queue comes
  from activation (`queue`), hand-off (`to_queue`), escalation (`to_queue` when set)
  and assignment (`queue`); its assignee is the claiming person (`actor_id`), the
  hand-off's or assignment's `to_assignee_id`, and nobody after a release, an
  escalation or a skip; completion/skip/cancel stamp `completed_at`, a reopen clears
  it (and the escalated flag and the attempts);
- an SLA clock starts with "SLA Started" (paused at once if the task's state is one
  of its policy's pause states); each later transition of its task or of its case
  closes the open interval, attributed by the task's state (people: pending, queued,
  in progress; automation: scheduled, running; customer: waiting, or the case on
  hold), and a final (or reopened) task or an ended case stops it; its due instant is
  the latest "SLA Started"/"SLA Resumed" `due_at`, and the business time it counted
  is what "SLA Paused" said plus the business time since it last ran again (so
  whether it passed its warning share of the target now needs no stored warn_at);
- a failed automated attempt is "Step Failed", "Step Lease Expired", or the
  "Step Escalated" that gives up after it (cause attempts_exhausted / lease_expired).

`replay(key, filters, now=…)` returns `{table name: rows}` with the rows of every
reconciled table in the order the report gives them (see `Table.comparable`).
"""

from __future__ import annotations

import bisect
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from analytics.metrics.base import Filters, percentile, share, week_of
from analytics.metrics.first_value import DAY, bucket_edges, bucket_label

FINAL = {"done", "skipped", "cancelled"}
OPEN_WORK = {"queued", "in_progress", "waiting"}
# Whose time an interval of a clock is, by the state of the task it watches.
WHOSE = {
    "pending": "internal",
    "queued": "internal",
    "in_progress": "internal",
    "scheduled": "automation",
    "running": "automation",
    "waiting": "customer",
}
FAILURE_CAUSES = {"attempts_exhausted", "lease_expired"}


@dataclass
class TaskFacts:
    id: int
    step_key: str
    kind: str = ""
    state: str = "pending"
    queue: str | None = None
    assignee: int | None = None
    completed_at: datetime | None = None
    escalated: bool = False
    attempts: int = 0
    handoffs: int = 0


@dataclass
class Clock:
    task_id: int | None
    policy: tuple[str, int]
    state: str
    started_at: datetime
    category: str
    segment_from: datetime
    target: float = 0.0
    due_at: datetime | None = None
    # Business seconds counted before `running_since` (the last start or resume).
    consumed_before: float = 0.0
    running_since: datetime | None = None
    warned_at: datetime | None = None
    breached_at: datetime | None = None
    stopped_at: datetime | None = None
    met_seconds: float | None = None
    attribution: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    @property
    def open(self) -> bool:
        return self.stopped_at is None and self.state in ("running", "paused", "breached")

    def overdue(self, now: datetime) -> bool:
        """Running past its due instant: breached, though the sweep has not said so yet."""
        return self.state == "running" and self.due_at is not None and self.due_at <= now

    def verdict(self, now: datetime) -> tuple[str, datetime] | None:
        if self.state == "met":
            return "met", self.stopped_at
        if self.state == "breached":
            return "breached", self.breached_at
        if self.overdue(now):
            return "breached", self.due_at
        return None

    def at_risk(self, now: datetime, config: Config) -> bool:
        if self.state != "running" or self.overdue(now):
            return False
        if self.warned_at is not None:
            return True
        consumed = self.consumed_before + config.business_seconds(
            self.policy, self.running_since, now
        )
        return consumed >= self.target * config.warn_percent(self.policy) / 100


@dataclass
class Failure:
    task_id: int
    step_key: str
    at: datetime
    reason: str


@dataclass
class CaseFacts:
    id: int
    account_id: int | None = None
    playbook: str = ""
    version: int | None = None
    opened_at: datetime | None = None
    state: str = "active"
    segmentation: dict[str, str] = field(default_factory=dict)
    tasks: dict[int, TaskFacts] = field(default_factory=dict)
    clocks: list[Clock] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)

    @property
    def is_open(self) -> bool:
        return self.state in ("active", "on_hold")


# --- configuration the events name -------------------------------------------------------


class Config:
    """SLA policies (pause states, calendar) and playbook steps, read once."""

    def __init__(self) -> None:
        from onboarding.models import SlaPolicy, Step

        self._calendars: dict[int, Any] = {}
        self.policies: dict[tuple[str, int], tuple[list[str], Any, int]] = {}
        for policy in SlaPolicy.objects.select_related("calendar"):
            calendar = None  # around the clock: business time is wall-clock time
            if policy.calendar_id is not None:
                if policy.calendar_id not in self._calendars:
                    self._calendars[policy.calendar_id] = policy.calendar.compile()
                calendar = self._calendars[policy.calendar_id]
            self.policies[(policy.key, policy.version)] = (
                policy.pause_states or [],
                calendar,
                policy.warn_percent,
            )
        # (playbook key, version number) → [(step key, name, position, milestone, first value)]
        self.steps: dict[tuple[str, int], list[tuple[str, str, bool, bool]]] = defaultdict(list)
        self.published: dict[str, list[int]] = defaultdict(list)
        # (playbook key, version number) → {step key: expected duration from the opening}
        self.expected: dict[tuple[str, int], dict[str, timedelta]] = defaultdict(dict)
        rows = Step.objects.order_by("position", "id").values_list(
            "version__playbook__key",
            "version__number",
            "key",
            "name",
            "is_milestone",
            "is_first_value",
            "expected_within",
        )
        for playbook, number, key, name, milestone, first_value, expected in rows:
            self.steps[(playbook, number)].append((key, name, milestone, first_value))
            if expected is not None:
                self.expected[(playbook, number)][key] = expected
        from onboarding.models import PlaybookVersion

        for playbook, number in PlaybookVersion.objects.filter(state="published").values_list(
            "playbook__key", "number"
        ):
            self.published[playbook].append(number)

    def business_seconds(self, policy: tuple[str, int], a: datetime, b: datetime) -> float:
        from onboarding.calendar import business_between

        if b <= a:
            return 0.0
        calendar = self.policies[policy][1]
        if calendar is None:
            return (b - a).total_seconds()
        return business_between(a, b, calendar)

    def pauses(self, policy: tuple[str, int], state: str) -> bool:
        return state in self.policies[policy][0]

    def warn_percent(self, policy: tuple[str, int]) -> int:
        return self.policies[policy][2]

    def first_value(self, playbook: str, version: int | None) -> str | None:
        for key, _name, _milestone, first_value in self.steps.get((playbook, version), []):
            if first_value:
                return key
        return None


# --- replaying one case ---------------------------------------------------------------------

EVENT_FIELDS = (
    "case_id",
    "occurred_at",
    "id",
    "name",
    "task_id",
    "account_id",
    "step_key",
    "playbook_key",
    "playbook_version",
    "actor_type",
    "actor_id",
    "segmentation",
    "properties",
)


def _close(clock: Clock, at: datetime, config: Config) -> None:
    seconds = config.business_seconds(clock.policy, clock.segment_from, at)
    clock.attribution[clock.category] += seconds
    clock.segment_from = at


def fold(case_id: int, events: Iterable[tuple], config: Config) -> CaseFacts:
    """The facts of one case after its events, in (occurred_at, id) order."""
    case = CaseFacts(case_id)
    task_clock: dict[int, Clock] = {}
    case_clock: Clock | None = None
    for (
        _cid,
        at,
        _id,
        name,
        task_id,
        account_id,
        step_key,
        pb,
        ver,
        actor_type,
        actor_id,
        seg,
        props,
    ) in events:
        case.segmentation = seg or case.segmentation
        if name == "Case Opened":
            case.account_id, case.playbook, case.version, case.opened_at = account_id, pb, ver, at
            case.state = "active"
            continue
        if name.startswith("Case "):
            case.state = props["to_state"]
            for clock in [c for c in case.clocks if c.open]:
                if case.state in ("completed", "cancelled"):
                    _close(clock, at, config)
                    clock.stopped_at = at
                    continue
                task = case.tasks.get(clock.task_id) if clock.task_id else None
                if task is not None and task.state in FINAL:
                    continue
                _close(clock, at, config)
                if case.state == "on_hold":
                    clock.category = "customer"
                else:
                    clock.category = WHOSE.get(task.state, "internal") if task else "internal"
            continue
        if name.startswith("Step "):
            task = case.tasks.get(task_id)
            if task is None:
                task = case.tasks[task_id] = TaskFacts(task_id, step_key)
            _apply_step(task, name, at, actor_type, actor_id, props, case)
            clock = task_clock.get(task_id)
            if clock is not None and clock.open and name != "Step Activated":
                _close(clock, at, config)
                if task.state in FINAL or task.state == "pending":
                    clock.stopped_at = at
                else:
                    clock.category = WHOSE[task.state]
            continue
        if name == "SLA Started":
            policy = (props["policy"], props["policy_version"])
            task = case.tasks.get(task_id) if task_id else None
            state = task.state if task else "active"
            clock = Clock(
                task_id=task_id,
                policy=policy,
                state="paused" if task and config.pauses(policy, state) else "running",
                started_at=at,
                category=WHOSE.get(state, "internal"),
                segment_from=at,
                target=props["target_seconds"],
                due_at=_parse(props.get("due_at")),
            )
            clock.running_since = at if clock.state == "running" else None
            case.clocks.append(clock)
            if task_id:
                task_clock[task_id] = clock
            else:
                case_clock = clock
            continue
        if name.startswith("SLA "):
            clock = task_clock.get(task_id) if task_id else case_clock
            if clock is None:
                continue
            if name == "SLA Warning":
                clock.warned_at = at
            elif name == "SLA Paused":
                clock.state, clock.running_since = "paused", None
                clock.consumed_before = props["consumed_seconds"]
            elif name == "SLA Resumed":
                clock.state, clock.running_since = "running", at
                clock.due_at = _parse(props.get("due_at"))
            elif name == "SLA Breached":
                clock.state, clock.breached_at = "breached", at
            elif name == "SLA Met":
                clock.state, clock.met_seconds = "met", props.get("consumed_seconds")
                if clock.stopped_at is None:
                    _close(clock, at, config)
                    clock.stopped_at = at
            elif name == "SLA Cancelled":
                clock.state = "cancelled"
                if clock.stopped_at is None:
                    _close(clock, at, config)
                    clock.stopped_at = at
    return case


def _apply_step(
    task: TaskFacts,
    name: str,
    at: datetime,
    actor_type: str,
    actor_id: str,
    props: dict[str, Any],
    case: CaseFacts,
) -> None:
    task.state = props.get("to_state", task.state)
    if name == "Step Activated":
        task.kind = props.get("kind", task.kind)
        task.queue = props.get("queue", task.queue)
    elif name == "Step Started":
        task.attempts = props.get("attempt", task.attempts)
    elif name == "Step Claimed":
        task.assignee = int(actor_id) if actor_type == "agent" else None
    elif name == "Step Released":
        task.assignee = None
    elif name == "Step Handed Off":
        task.queue = props.get("to_queue")
        task.assignee = props.get("to_assignee_id")
        task.handoffs += 1
    elif name == "Step Assigned":
        task.assignee = props.get("to_assignee_id")
        if props.get("queue"):
            task.queue = props["queue"]
    elif name == "Step Escalated":
        task.escalated, task.assignee = True, None
        if props.get("to_queue"):
            task.queue = props["to_queue"]
        if props.get("cause") in FAILURE_CAUSES:
            case.failures.append(Failure(task.id, task.step_key, at, props.get("error_type", "")))
    elif name == "Step Failed":
        case.failures.append(Failure(task.id, task.step_key, at, props.get("error_type", "")))
    elif name == "Step Lease Expired":
        case.failures.append(Failure(task.id, task.step_key, at, "LeaseExpired"))
    elif name in ("Step Completed", "Step Cancelled"):
        task.completed_at = at
    elif name == "Step Skipped":
        task.completed_at, task.assignee = at, None
    elif name == "Step Reopened":
        task.completed_at, task.escalated, task.attempts = None, False, 0


def _parse(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


# --- reading events ----------------------------------------------------------------------


# Which cases each recomputation reads: those with events of these names, in the date
# range (True) or at any time (False), and ("open") those whose latest case event is
# not a completion or a cancellation: only they can have open work or running clocks.
ScopeList = list[tuple[tuple[str, ...], bool] | str]
FINISHED = ("Step Completed", "Step Skipped", "Step Cancelled", "Step Reopened")
SCOPES: dict[str, ScopeList] = {
    "sla": [
        (("SLA Met", "SLA Breached", *FINISHED, "Case Completed", "Case Cancelled"), True),
        "open",
    ],
    "funnel": [(("Case Opened",), True)],
    "first_value": [(("Case Opened",), True)],
    "automation": [
        (("Step Completed", "Step Failed", "Step Lease Expired", "Step Escalated"), True),
        (("Case Opened",), True),
    ],
    "workload": [(("Step Completed",), True), "open"],
    "cohorts": [(("Case Opened",), True)],
    "health": ["open"],
}
CASE_EVENTS = ("Case Opened", "Case Completed", "Case Cancelled", "Case Reopened")
OPEN_CASES = """
SELECT case_id FROM (
  SELECT DISTINCT ON (case_id) case_id, name FROM analytics_event
  WHERE name = ANY(%s) AND case_id IS NOT NULL
  ORDER BY case_id, occurred_at DESC, id DESC
) latest WHERE name NOT IN ('Case Completed', 'Case Cancelled')
"""


def scope_ids(key: str, f: Filters) -> set[int]:
    from django.db import connection

    from analytics.models import Event

    ids: set[int] = set()
    for scope in SCOPES[key]:
        if scope == "open":
            with connection.cursor() as cursor:
                cursor.execute(OPEN_CASES, [list(CASE_EVENTS)])
                ids |= {row[0] for row in cursor.fetchall()}
            continue
        names, windowed = scope
        events = Event.objects.filter(name__in=list(names), case_id__isnull=False)
        if windowed:
            events = events.filter(occurred_at__gte=f.since, occurred_at__lt=f.until)
        ids |= set(events.order_by().values_list("case_id", flat=True).distinct())
    return ids


EVENTS_OF = f"""
SELECT {", ".join(EVENT_FIELDS)} FROM analytics_event
WHERE case_id = ANY(%s) ORDER BY case_id, occurred_at, id
"""


def cases(
    case_ids: Iterable[int], config: Config, *, chunk: int = 2000
) -> Iterator[list[CaseFacts]]:
    """The facts of these cases, a batch at a time, in id order."""
    from django.db import connection

    ids = sorted(case_ids)
    for i in range(0, len(ids), chunk):
        with connection.cursor() as cursor:
            cursor.execute(EVENTS_OF, [ids[i : i + chunk]])
            rows = cursor.fetchall()
        batch: list[CaseFacts] = []
        current: list[tuple] = []
        for row in rows:
            row = (*row[:-2], _json(row[-2]), _json(row[-1]))
            if current and row[0] != current[0][0]:
                batch.append(fold(current[0][0], current, config))
                current = []
            current.append(row)
        if current:
            batch.append(fold(current[0][0], current, config))
        yield batch


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def segmentation(account_ids: Iterable[int]) -> dict[int, dict[str, str]]:
    """Each account's segmentation on its latest event (every change records one)."""
    from analytics.models import Event

    ids = sorted(set(account_ids))
    latest: dict[int, dict[str, str]] = {}
    for i in range(0, len(ids), 5000):
        rows = (
            Event.objects.filter(account_id__in=ids[i : i + 5000])
            .order_by("account_id", "-occurred_at", "-id")
            .distinct("account_id")
            .values_list("account_id", "segmentation")
        )
        latest.update(rows)
    return latest


class Scope:
    """The cases a report needs, replayed a batch at a time (memory stays flat at a
    million cases), with the filters applied the reports' way."""

    def __init__(self, key: str, f: Filters, config: Config) -> None:
        self.f, self.config = f, config
        self.case_ids = scope_ids(key, f)

    @property
    def cases(self) -> Iterator[CaseFacts]:
        for batch in cases(self.case_ids, self.config):
            accounts = segmentation(c.account_id for c in batch if c.account_id)
            for case in batch:
                if case.opened_at is None:
                    continue  # events of a case opened before retention: not replayable
                case.segmentation = accounts.get(case.account_id, case.segmentation)
                if self._case_matches(case):
                    yield case

    def _case_matches(self, case: CaseFacts) -> bool:
        f = self.f
        if f.playbook and case.playbook != f.playbook:
            return False
        if f.playbook and f.version is not None and case.version != f.version:
            return False
        return all(case.segmentation.get(k) == v for k, v in f.segment_values().items())

    def task_matches(self, task: TaskFacts) -> bool:
        f = self.f
        if f.queue and task.queue != f.queue:
            return False
        return f.agent is None or task.assignee == f.agent


# --- the reports ---------------------------------------------------------------------------


def _pct(met: int, breached: int) -> float | None:
    return share(met, met + breached)


def _none_last(value: Any) -> tuple[bool, Any]:
    return (value is None, value if value is not None else "")


def replay_sla(f: Filters, now: datetime, config: Config) -> dict[str, list[tuple]]:
    scope = Scope("sla", f, config)
    verdicts: list[tuple[TaskFacts, Clock, str, datetime]] = []
    stopped: list[tuple[TaskFacts, Clock]] = []
    breached_list, at_risk = [], []
    for case in scope.cases:
        for clock in case.clocks:
            task = case.tasks.get(clock.task_id) if clock.task_id else None
            if task is None or not scope.task_matches(task):
                continue
            verdict = clock.verdict(now)
            if verdict is not None and f.in_range(verdict[1]):
                verdicts.append((task, clock, *verdict))
            if clock.state in ("met", "breached") and f.in_range(clock.stopped_at):
                stopped.append((task, clock))
            row = (case.id, task.step_key, task.queue, task.assignee)
            if verdict is not None and verdict[0] == "breached" and f.in_range(verdict[1]):
                order = (-verdict[1].timestamp(), case.id, task.id)
                breached_list.append((order, (*row, verdict[1], clock.stopped_at is None)))
            if clock.at_risk(now, config):
                at_risk.append(
                    ((clock.due_at, case.id, task.id), (*row, clock.due_at, clock.warned_at))
                )

    def group(key) -> dict[Any, list]:
        groups: dict[Any, list] = defaultdict(list)
        for v in verdicts:
            groups[key(v)].append(v)
        return groups

    def counts(items: list) -> tuple[int, int, float | None]:
        met = sum(1 for v in items if v[2] == "met")
        breached = len(items) - met
        return met, breached, _pct(met, breached)

    def mean_used(items: list) -> float | None:
        met = [v[1].met_seconds for v in items if v[2] == "met"]
        return share(sum(met), len(met))

    by_step = [
        (step, *counts(items), mean_used(items))
        for step, items in group(lambda v: v[0].step_key).items()
    ]
    whose: dict[str, list] = defaultdict(list)
    for task, clock in stopped:
        whose[task.step_key].append(clock)
    whose_rows = []
    for step in sorted(whose):
        clocks = whose[step]
        internal = sum(c.attribution.get("internal", 0.0) for c in clocks)
        auto = sum(c.attribution.get("automation", 0.0) for c in clocks)
        cust = sum(c.attribution.get("customer", 0.0) for c in clocks)
        whose_rows.append(
            (step, len(clocks), internal, auto, cust, share(cust, internal + auto + cust))
        )
    return {
        "summary": [counts(verdicts)],
        "by_step": sorted(by_step),
        "by_queue": sorted(
            ((q, *counts(items)) for q, items in group(lambda v: v[0].queue).items()),
            key=lambda r: _none_last(r[0]),
        ),
        "by_agent": sorted(
            ((a, *counts(items)) for a, items in group(lambda v: v[0].assignee).items()),
            key=lambda r: (r[0] is None, r[0] or 0),
        ),
        "by_week": sorted(
            (w, *counts(items)) for w, items in group(lambda v: week_of(v[3], f.tz)).items()
        ),
        "whose_time": whose_rows,
        "breached": [row for _, row in sorted(breached_list, key=lambda r: r[0])],
        "at_risk": [row for _, row in sorted(at_risk, key=lambda r: r[0])],
    }


def _milestones(f: Filters, config: Config) -> tuple[str, int | None, list[str]]:
    from onboarding.models import Playbook

    playbook = (
        f.playbook or Playbook.objects.order_by("name", "id").values_list("key", flat=True).first()
    )
    if f.version is not None:
        number = f.version
    else:
        number = max(config.published.get(playbook, []), default=None)
    steps = config.steps.get((playbook, number), [])
    return playbook, number, [key for key, _n, milestone, _fv in steps if milestone]


def replay_funnel(f: Filters, now: datetime, config: Config) -> dict[str, list[tuple]]:
    playbook, _number, keys = _milestones(f, config)
    f = f.but(playbook=playbook)
    scope = Scope("funnel", f, config)
    cohort = [c for c in scope.cases if f.in_range(c.opened_at)]
    n = len(keys)
    stage_counts = [Counter() for _ in range(n + 1)]
    gaps: list[list[float]] = [[] for _ in range(n + 1)]
    by_segment: dict[str, Counter] = defaultdict(Counter)
    for case in cohort:
        by_key = {t.step_key: t for t in case.tasks.values()}
        deadline = case.opened_at + f.window
        stage, reached_at, skipped = 0, [case.opened_at], []
        for key in keys:
            task = by_key.get(key)
            passed = (
                task is not None
                and task.state in ("done", "skipped")
                and task.completed_at <= deadline
            )
            if not passed:
                break
            stage += 1
            reached_at.append(max(reached_at[-1], task.completed_at))
            skipped.append(task.state == "skipped")
        finished = [t.completed_at for t in case.tasks.values() if t.state in ("done", "skipped")]
        last_progress = max([case.opened_at, *finished])
        closed = not case.is_open or now >= deadline
        idle = last_progress < now - f.stall
        late = any(
            (c.state == "breached" and c.stopped_at is None) or c.overdue(now) for c in case.clocks
        )
        segment = str(case.version) if f.by == "version" else case.segmentation.get(f.by, "")
        by_segment[segment]["cohort"] += 1
        for i in range(1, stage + 1):
            stage_counts[i]["reached"] += 1
            stage_counts[i]["skipped"] += skipped[i - 1]
            gaps[i].append((reached_at[i] - reached_at[i - 1]).total_seconds())
            by_segment[segment][i] += 1
        if stage < n:
            waiting = stage_counts[stage + 1]
            if closed:
                waiting["dropped"] += 1
            else:
                waiting["stalled" if idle else "in_progress"] += 1
                waiting["breached"] += late
    stages = []
    previous = len(cohort)
    for i, key in enumerate(keys, 1):
        c = stage_counts[i]
        stages.append(
            (
                i,
                key,
                c["reached"],
                c["skipped"],
                c["in_progress"],
                c["stalled"],
                c["dropped"],
                c["breached"],
                share(c["reached"], previous),
                share(c["reached"], len(cohort)),
                percentile(gaps[i], 0.5),
                percentile(gaps[i], 0.9),
            )
        )
        previous = c["reached"]
    breakdown = []
    for segment in sorted(by_segment):
        counts = by_segment[segment]
        reached = [counts[i] for i in range(1, n + 1)]
        breakdown.append(
            (
                segment,
                counts["cohort"],
                *reached,
                share(reached[-1] if reached else 0, counts["cohort"]),
            )
        )
    return {
        "summary": [(len(cohort),)],
        "stages": stages if n else [],
        "breakdown": breakdown if n else [],
    }


def replay_first_value(f: Filters, now: datetime, config: Config) -> dict[str, list[tuple]]:
    scope = Scope("first_value", f, config)
    edges = bucket_edges(f.window_days)
    rows: list[tuple[Any, bool, bool, float | None]] = []
    for case in scope.cases:
        if not f.in_range(case.opened_at):
            continue
        key = config.first_value(case.playbook, case.version)
        if key is None:
            continue
        task = next((t for t in case.tasks.values() if t.step_key == key), None)
        deadline = case.opened_at + f.window
        reached = bool(task and task.state == "done" and task.completed_at <= deadline)
        ttfv = (task.completed_at - case.opened_at).total_seconds() if reached else None
        in_progress = not reached and case.is_open and now < deadline
        rows.append((week_of(case.opened_at, f.tz), reached, in_progress, ttfv))

    def summarize(items: list) -> tuple:
        values = [r[3] for r in items if r[1]]
        reached = len(values)
        return (
            len(items),
            reached,
            sum(1 for r in items if r[2]),
            share(reached, len(items)),
            percentile(values, 0.5),
            percentile(values, 0.9),
        )

    by_week: dict[Any, list] = defaultdict(list)
    for row in rows:
        by_week[row[0]].append(row)
    histogram = Counter(bisect.bisect_right([e * DAY for e in edges], r[3]) for r in rows if r[1])
    return {
        "summary": [summarize(rows)],
        "distribution": [
            (bucket_label(i, edges, f.window_days), histogram.get(i + 1, 0))
            for i in range(len(edges))
        ],
        "trend": sorted((week, *summarize(items)) for week, items in by_week.items()),
    }


def replay_automation(f: Filters, now: datetime, config: Config) -> dict[str, list[tuple]]:
    scope = Scope("automation", f, config)
    finished: list[TaskFacts] = []
    failures: list[Failure] = []
    handoffs: list[int] = []
    for case in scope.cases:
        for task in case.tasks.values():
            if task.kind == "automated" and task.state == "done" and f.in_range(task.completed_at):
                finished.append(task)
        failures += [x for x in case.failures if f.in_range(x.at)]
        if f.in_range(case.opened_at):
            handoffs.append(sum(t.handoffs for t in case.tasks.values()))

    def tail(tasks: list[TaskFacts]) -> tuple:
        n = len(tasks)
        alone = sum(1 for t in tasks if not t.escalated)
        first = sum(1 for t in tasks if not t.escalated and t.attempts == 1)
        return (n, alone, n - alone, first, share(alone, n), share(n - alone, n),
                share(sum(t.attempts for t in tasks), n))  # fmt: skip

    by_step: dict[str, list] = defaultdict(list)
    for task in finished:
        by_step[task.step_key].append(task)
    reasons: dict[str, list[Failure]] = defaultdict(list)
    by_step_reason: dict[tuple[str, str], list[Failure]] = defaultdict(list)
    for x in failures:
        reasons[x.reason].append(x)
        by_step_reason[(x.step_key, x.reason)].append(x)
    reason_rows = sorted(
        ((r, len(xs), len({x.task_id for x in xs})) for r, xs in reasons.items()),
        key=lambda r: (-r[1], r[0]),
    )
    distribution = Counter("3 or more" if n >= 3 else str(n) for n in handoffs)
    cases_n, total = len(handoffs), sum(handoffs)
    return {
        "summary": [tail(finished)],
        "by_step": sorted((step, *tail(tasks)) for step, tasks in by_step.items()),
        "failures": reason_rows[:10],
        "failures_by_step": sorted(
            (
                (s, r, len(xs), len({x.task_id for x in xs}))
                for (s, r), xs in by_step_reason.items()
            ),
            key=lambda r: (r[0], -r[2], r[1]),
        ),
        "handoffs": [
            (cases_n, total, share(total, cases_n), share(cases_n - distribution["0"], cases_n))
        ],
        "handoff_distribution": [(k, distribution[k]) for k in ("0", "1", "2", "3 or more")],
    }


def replay_workload(f: Filters, now: datetime, config: Config) -> dict[str, list[tuple]]:
    scope = Scope("workload", f, config)
    open_tasks: list[TaskFacts] = []
    done: list[TaskFacts] = []
    for case in scope.cases:
        for task in case.tasks.values():
            if task.queue is None or not scope.task_matches(task):
                continue
            if task.state in OPEN_WORK:
                open_tasks.append(task)
            elif task.state == "done" and f.in_range(task.completed_at):
                done.append(task)

    def open_counts(tasks: list[TaskFacts]) -> tuple:
        unassigned = sum(1 for t in tasks if t.state == "queued" and t.assignee is None)
        reserved = sum(1 for t in tasks if t.state == "queued" and t.assignee is not None)
        in_progress = sum(1 for t in tasks if t.state == "in_progress")
        waiting = sum(1 for t in tasks if t.state == "waiting")
        return unassigned, reserved, in_progress, waiting, len(tasks)

    def grouped(tasks: list[TaskFacts], key) -> dict[Any, list]:
        groups: dict[Any, list] = defaultdict(list)
        for t in tasks:
            groups[key(t)].append(t)
        return groups

    by_week: Counter = Counter(week_of(t.completed_at, f.tz) for t in done)
    return {
        "open_summary": [open_counts(open_tasks)] if open_tasks else [(0, 0, 0, 0, 0)],
        "open_by_queue": sorted(
            ((q, *open_counts(ts)) for q, ts in grouped(open_tasks, lambda t: t.queue).items()),
            key=lambda r: _none_last(r[0]),
        ),
        "open_by_agent": sorted(
            ((a, *open_counts(ts)) for a, ts in grouped(open_tasks, lambda t: t.assignee).items()),
            key=lambda r: (r[0] is None, r[0] or 0),
        ),
        "done_summary": [(len(done),)],
        "done_by_queue": sorted(
            ((q, len(ts)) for q, ts in grouped(done, lambda t: t.queue).items()),
            key=lambda r: _none_last(r[0]),
        ),
        "done_by_agent": sorted(
            ((a, len(ts)) for a, ts in grouped(done, lambda t: t.assignee).items()),
            key=lambda r: (r[0] is None, r[0] or 0),
        ),
        "done_by_week": sorted(by_week.items()),
    }


def differences(
    report: Any, replayed: dict[str, list[tuple]], *, seconds: float = 0.001
) -> list[str]:
    """Where the served report and the recomputation disagree (empty: they agree).

    Counts, dates and keys must be equal; other numbers may differ by one part in 10⁹
    (floating-point sums in another order), durations also by `seconds`: business time
    is summed interval by interval on one side and read from the clock's row on the
    other, and events store consumed time rounded to the millisecond."""
    problems = []
    for name, rows in replayed.items():
        table = report.tables[name]
        kinds = [c.kind for c in table.columns if c.compare]
        served = table.comparable()
        if len(served) != len(rows):
            problems.append(f"{name}: {len(served)} rows served, {len(rows)} replayed")
        for i, (a, b) in enumerate(zip(served, rows, strict=False)):
            if len(a) != len(b) or not all(
                _same(x, y, kind, seconds) for x, y, kind in zip(a, b, kinds, strict=False)
            ):
                problems.append(f"{name}[{i}]: served {a!r} != replayed {b!r}")
    return problems


def _same(x: Any, y: Any, kind: str, tolerance: float) -> bool:
    if isinstance(x, float) or isinstance(y, float):
        if x is None or y is None:
            return False
        allowed = tolerance if kind in ("hours", "days") else 0.0
        return abs(x - y) <= max(allowed, 1e-9 * max(abs(x), abs(y)))
    return x == y


def replay_cohorts(f: Filters, now: datetime, config: Config) -> dict[str, list[tuple]]:
    from analytics.metrics.cohorts import checkpoints, focus

    playbook, number, keys = _milestones(f, config)
    f = f.but(playbook=playbook)
    days = checkpoints(f.window_days)
    followed = focus([(k, k) for k in keys], config.first_value(playbook, number))
    weeks: dict[Any, list[CaseFacts]] = defaultdict(list)
    for case in Scope("cohorts", f, config).cases:
        if f.in_range(case.opened_at):
            weeks[week_of(case.opened_at, f.tz)].append(case)

    def reached_within(case: CaseFacts, key: str) -> float | None:
        """Seconds from the opening to the milestone, if it was passed."""
        task = next((t for t in case.tasks.values() if t.step_key == key), None)
        if task is None or task.state not in ("done", "skipped"):
            return None
        return (task.completed_at - case.opened_at).total_seconds()

    by_milestone, by_day = [], []
    for week in sorted(weeks) if keys else []:
        cases = weeks[week]
        youngest = max(c.opened_at for c in cases)

        def shared(key: str, day: int, cases: list = cases, youngest: datetime = youngest) -> Any:
            if youngest + timedelta(days=day) > now:
                return None
            times = [reached_within(c, key) for c in cases]
            return share(sum(1 for t in times if t is not None and t <= day * 86400), len(cases))

        by_milestone.append((week, len(cases), *(shared(k, f.window_days) for k in keys)))
        by_day.append((week, len(cases), *(shared(keys[followed], d) for d in days)))
    return {"by_milestone": by_milestone, "by_day": by_day}


def replay_health(f: Filters, now: datetime, config: Config) -> dict[str, list[tuple]]:
    from analytics.metrics.health import STATUSES, sort_key

    per_status: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
    per_segment: dict[str, dict[int, list[int]]] = defaultdict(
        lambda: defaultdict(lambda: [0, 0, 0])
    )
    listed = []
    for case in Scope("health", f, config).cases:
        if not case.is_open:
            continue
        by_key = {t.step_key: t for t in case.tasks.values()}
        finished = {k for k, t in by_key.items() if t.state in ("done", "skipped")}
        expected, done, overdue = 0, 0, []
        for key, within in config.expected.get((case.playbook, case.version), {}).items():
            due = case.opened_at + within
            if due > now:
                continue
            expected += 1
            if key in finished:
                done += 1
            else:
                overdue.append((due, key))
        last_progress = max([case.opened_at, *(by_key[k].completed_at for k in finished)])
        if case.state == "on_hold":
            rank = 2
        elif last_progress < now - f.stall:
            rank = 0
        else:
            rank = 1 if overdue else 3
        first_overdue, worst = min(overdue) if overdue else (None, None)
        segment = (
            f"{case.playbook} v{case.version}"
            if f.by == "version"
            else case.segmentation.get(f.by, "")
        )
        for counts in (per_status[rank], per_segment[segment][rank]):
            counts[0] += 1
            counts[1] += expected
            counts[2] += done
        row = (
            case.id,
            case.playbook,
            case.version,
            case.opened_at,
            (now - case.opened_at).total_seconds(),
            expected,
            done,
            worst,
            (now - first_overdue).total_seconds() if first_overdue else None,
            last_progress,
            STATUSES[rank],
        )
        listed.append((sort_key(rank, first_overdue, last_progress, case.id), row))
    total = sum(c[0] for c in per_status.values())
    summary = []
    for rank, status in enumerate(STATUSES):
        n, expected, done = per_status.get(rank, (0, 0, 0))
        summary.append((status, n, share(n, total), expected, done, share(done, expected)))
    expected = sum(r[3] for r in summary)
    done = sum(r[4] for r in summary)
    summary.append(("all", total, share(total, total), expected, done, share(done, expected)))
    breakdown = []
    for segment in sorted(per_segment):
        counts = [per_segment[segment].get(rank, (0, 0, 0)) for rank in range(len(STATUSES))]
        expected = sum(c[1] for c in counts)
        done = sum(c[2] for c in counts)
        breakdown.append(
            (segment, sum(c[0] for c in counts), *(c[0] for c in counts), expected, done,
             share(done, expected))
        )  # fmt: skip
    return {
        "summary": summary,
        "cases": [row for _, row in sorted(listed, key=lambda r: r[0])],
        "breakdown": breakdown,
    }


REPLAYS = {
    "sla": replay_sla,
    "funnel": replay_funnel,
    "first_value": replay_first_value,
    "automation": replay_automation,
    "workload": replay_workload,
    "cohorts": replay_cohorts,
    "health": replay_health,
}


def replay(
    key: str, f: Filters, *, now: datetime, config: Config | None = None
) -> dict[str, list[tuple]]:
    """Report `key` recomputed from the raw events: {table name: comparable rows}."""
    return REPLAYS[key](f, now, config or Config())


__all__ = ["SCOPES", "Config", "differences", "fold", "replay"]

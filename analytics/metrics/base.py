"""What every report shares: the filters, the result shapes and the SQL helpers.

Filters (each report says which apply to it):

- **date range** `start`…`end`: whole calendar days in `settings.TIME_ZONE`, both ends
  included. Default: the last 28 days, ending today. Each report says which instant
  of a fact falls in the range (a clock's verdict, a case's opening, a completion).
- **playbook** (key) and **version** (number): the playbook version the case is pinned to.
- **plan, region, channel**: the account's current attributes. (Every change of an
  account records an event with its new segmentation, so "current" is also the
  segmentation of the account's latest event.)
- **queue** (key): the queue a task is in now, or was in when it finished.
- **agent** (user id): the person a task is with now (claimed or reserved), or was
  with when it finished.

Durations are wall-clock unless a report says "business time" (SLA clocks, counted
in their policy's calendar). Medians and 90th percentiles are *discrete*
(`percentile_disc`): an observed value, the smallest with at least that share of the
values at or below it, so a recomputation elsewhere gives exactly the same number.
Weeks start on Monday in `settings.TIME_ZONE`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection

DEFAULT_DAYS = 28
SEGMENT_FIELDS = ("plan", "region", "channel")
BREAKDOWNS = ("plan", "segment", "region", "channel", "version")
LIST_LIMIT = 100  # rows of a case list shown on the page; CSV has them all


@dataclass(frozen=True)
class Filters:
    start: date
    end: date
    playbook: str = ""
    version: int | None = None
    plan: str = ""
    region: str = ""
    channel: str = ""
    queue: str = ""
    agent: int | None = None
    # Funnel and time to first value (see `analytics.metrics.funnel`).
    window_days: int = 30
    stall_days: int = 7
    by: str = "plan"

    @classmethod
    def default(cls, today: date | None = None, **values: Any) -> Filters:
        today = today or local_today()
        return cls(start=today - timedelta(days=DEFAULT_DAYS - 1), end=today, **values)

    def but(self, **changes: Any) -> Filters:
        return replace(self, **changes)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(settings.TIME_ZONE)

    @property
    def since(self) -> datetime:
        """First instant of the range."""
        return datetime.combine(self.start, time(0), tzinfo=self.tz)

    @property
    def until(self) -> datetime:
        """First instant after the range."""
        return datetime.combine(self.end + timedelta(days=1), time(0), tzinfo=self.tz)

    @property
    def window(self) -> timedelta:
        return timedelta(days=self.window_days)

    @property
    def stall(self) -> timedelta:
        return timedelta(days=self.stall_days)

    def in_range(self, moment: datetime | None) -> bool:
        return moment is not None and self.since <= moment < self.until

    def segment_values(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in SEGMENT_FIELDS if getattr(self, name)}


def local_today() -> date:
    from onboarding import clock

    return clock.now().astimezone(ZoneInfo(settings.TIME_ZONE)).date()


def week_of(moment: datetime, tz: ZoneInfo) -> date:
    """The Monday of the week `moment` falls in, in `tz`."""
    day = moment.astimezone(tz).date()
    return day - timedelta(days=day.weekday())


def percentile(values: Sequence[float], p: float) -> float | None:
    """`percentile_disc(p)`: the smallest value with at least `p` of them at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(p * len(ordered)) - 1, 0)]


def share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


# --- result shapes ---------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    # text · int · pct (a fraction) · hours (seconds shown as hours) · days (seconds shown
    # as days) · datetime · date · case (a case id, linked) · status (a health status,
    # shown as a badge)
    kind: str = "text"
    # False: a label for people (a name next to an id), not part of the metric.
    compare: bool = True


@dataclass
class Table:
    name: str
    title: str
    columns: list[Column]
    rows: list[tuple[Any, ...]]
    note: str = ""
    total: int | None = None  # rows before the page's limit (lists)

    def index(self, key: str) -> int:
        return next(i for i, c in enumerate(self.columns) if c.key == key)

    def column(self, key: str) -> list[Any]:
        i = self.index(key)
        return [row[i] for row in self.rows]

    def comparable(self) -> list[tuple[Any, ...]]:
        """The rows restricted to the metric's columns (what reconciliation checks)."""
        keep = [i for i, c in enumerate(self.columns) if c.compare]
        return [tuple(row[i] for i in keep) for row in self.rows]

    def as_dicts(self) -> list[dict[str, Any]]:
        keys = [c.key for c in self.columns]
        return [dict(zip(keys, row, strict=True)) for row in self.rows]


@dataclass
class Report:
    key: str
    title: str
    filters: Filters
    tables: dict[str, Table] = field(default_factory=dict)
    # What the report ignores of the filters, said on the page.
    ignores: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def add(self, table: Table) -> Table:
        self.tables[table.name] = table
        return table


# --- SQL --------------------------------------------------------------------------------


def fetch(sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def case_conditions(
    f: Filters, *, case: str = "c", account: str = "a", with_version: bool = True
) -> tuple[list[str], dict[str, Any], bool]:
    """WHERE conditions on the case and its account; True if the account is needed."""
    conds: list[str] = []
    params: dict[str, Any] = {}
    if f.playbook:
        conds.append(
            f"{case}.playbook_id = (SELECT id FROM onboarding_playbook WHERE key = %(f_playbook)s)"
        )
        params["f_playbook"] = f.playbook
        if f.version is not None and with_version:
            conds.append(
                f"{case}.playbook_version_id = (SELECT v.id FROM onboarding_playbookversion v "
                "JOIN onboarding_playbook p ON p.id = v.playbook_id "
                "WHERE p.key = %(f_playbook)s AND v.number = %(f_version)s)"
            )
            params["f_version"] = f.version
    for name, value in f.segment_values().items():
        conds.append(f"{account}.{name} = %(f_{name})s")
        params[f"f_{name}"] = value
    return conds, params, bool(f.segment_values())


def case_filter_join(f: Filters, case_id: str) -> tuple[str, list[str], dict[str, Any]]:
    """A join and conditions keeping the rows whose case (`case_id`, an SQL expression)
    matches the case filters; nothing when none is set.

    The case and its account are looked up per row (a LATERAL subquery with LIMIT, so
    the planner cannot flatten it): one index probe each, where a hash join would read
    every case and every account of the segment, however old."""
    conds, params, _ = case_conditions(f, case="cf", account="cf")
    if not conds:
        return "", [], {}
    join = (
        "CROSS JOIN LATERAL (SELECT c.playbook_id, c.playbook_version_id, a.plan, a.segment, "
        "a.region, a.channel FROM onboarding_case c "
        "JOIN onboarding_account a ON a.id = c.account_id "
        f"WHERE c.id = {case_id} LIMIT 1) cf"
    )
    return join, conds, params


def matching_cases(f: Filters, rows: str) -> tuple[str, str, dict[str, Any]]:
    """For a query over many rows of few cases (`rows`: a CTE with a case_id column):
    a CTE `ok` of its cases that match the case filters, each case looked up once, and
    the join keeping the rows of those; empty strings when no case filter is set.
    Returns (cte, join, params); the CTE named `rows` must be MATERIALIZED then."""
    conds, params, _ = case_conditions(f, case="cf", account="cf")
    if not conds:
        return "", "", {}
    cte = (
        f"ok AS (SELECT x.case_id FROM (SELECT DISTINCT case_id FROM {rows}) x "
        "CROSS JOIN LATERAL (SELECT c.playbook_id, c.playbook_version_id, a.plan, "
        "a.segment, a.region, a.channel FROM onboarding_case c "
        "JOIN onboarding_account a ON a.id = c.account_id "
        f"WHERE c.id = x.case_id LIMIT 1) cf WHERE {where(conds)}),"
    )
    return cte, f"JOIN ok ON ok.case_id = {rows}.case_id", params


# The account of a case `c`, looked up per case (as above): `a.plan`, `a.segment`…
ACCOUNT_OF_CASE = (
    "CROSS JOIN LATERAL (SELECT a.plan, a.segment, a.region, a.channel "
    "FROM onboarding_account a WHERE a.id = c.account_id LIMIT 1) a"
)


def task_conditions(f: Filters, *, task: str = "t") -> tuple[list[str], dict[str, Any]]:
    conds: list[str] = []
    params: dict[str, Any] = {}
    if f.queue:
        conds.append(f"{task}.queue_id = (SELECT id FROM onboarding_queue WHERE key = %(f_queue)s)")
        params["f_queue"] = f.queue
    if f.agent is not None:
        conds.append(f"{task}.assignee_id = %(f_agent)s")
        params["f_agent"] = f.agent
    return conds, params


def where(conds: Iterable[str]) -> str:
    conds = list(conds)
    return " AND ".join(conds) if conds else "TRUE"


def seconds(value: Any) -> float | None:
    """EXTRACT(EPOCH …) comes back as Decimal; reports carry float seconds."""
    return None if value is None else float(value)

"""Manager metrics: one definition per metric, next to the SQL that computes it.

Layers: raw events (`analytics.Event`, immutable) → enriched facts (the `Task` rows
with their timestamps and outcomes, `SlaTimer`, `Case`, `Account`, the context log)
→ these metrics. Each report family is one module whose docstring is the definition
of its metrics (what counts, which clock, which window); `base` holds what they
share (filters, percentiles, weeks). The admin pages (`analytics.views`) and the API
call `run()`; nothing else computes these numbers.

`analytics.metrics.replay` recomputes every report from the raw events alone, with
its own simple code (no SQL shared): the reconciliation tests and the benchmark
check that both agree.

Every report runs a fixed number of aggregate queries whatever the data size, and
reads only the facts of its date range (or the open work) through indexes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db import connection, transaction

from analytics.metrics import automation, cohorts, first_value, funnel, health, sla, workload
from analytics.metrics.base import LIST_LIMIT, Filters, Report


@dataclass(frozen=True)
class ReportSpec:
    key: str
    title: str
    module: object
    compute: Callable[..., Report]

    @property
    def definition(self) -> str:
        return (self.module.__doc__ or "").strip()


def _sla(f: Filters, now: datetime, limit: int | None) -> Report:
    return sla.sla_compliance(f, now=now, limit=limit)


def _funnel(f: Filters, now: datetime, limit: int | None) -> Report:
    return funnel.funnel(f, now=now)


def _first_value(f: Filters, now: datetime, limit: int | None) -> Report:
    return first_value.time_to_first_value(f, now=now)


def _cohorts(f: Filters, now: datetime, limit: int | None) -> Report:
    return cohorts.cohorts(f, now=now)


def _automation(f: Filters, now: datetime, limit: int | None) -> Report:
    return automation.automation(f)


def _workload(f: Filters, now: datetime, limit: int | None) -> Report:
    return workload.workload(f)


def _health(f: Filters, now: datetime, limit: int | None) -> Report:
    return health.health(f, now=now, limit=limit)


def available() -> bool:
    """The reports are PostgreSQL SQL (grouping sets, percentiles): on the embedded
    SQLite demo the pages, the API and the alerts say so instead of running them."""
    return connection.vendor == "postgresql"


REPORTS: dict[str, ReportSpec] = {
    spec.key: spec
    for spec in (
        ReportSpec(sla.KEY, sla.TITLE, sla, _sla),
        ReportSpec(funnel.KEY, funnel.TITLE, funnel, _funnel),
        ReportSpec(first_value.KEY, first_value.TITLE, first_value, _first_value),
        ReportSpec(cohorts.KEY, cohorts.TITLE, cohorts, _cohorts),
        ReportSpec(automation.KEY, automation.TITLE, automation, _automation),
        ReportSpec(workload.KEY, workload.TITLE, workload, _workload),
        ReportSpec(health.KEY, health.TITLE, health, _health),
    )
}


# The page's default date range where a report needs another than base.DEFAULT_DAYS.
DEFAULT_RANGE_DAYS = {cohorts.KEY: cohorts.DEFAULT_DAYS}


def default_filters(key: str, today: date | None = None, **values: object) -> Filters:
    """The filters a report page opens with."""
    f = Filters.default(today, **values)
    days = DEFAULT_RANGE_DAYS.get(key)
    return f.but(start=f.end - timedelta(days=days - 1)) if days else f


def run(key: str, filters: Filters, *, now: datetime, limit: int | None = LIST_LIMIT) -> Report:
    """The report `key` for `filters` as of `now` (lists cut at `limit` rows; None: all)."""
    with transaction.atomic(), connection.cursor() as cursor:
        # Aggregates over tens of thousands of rows: compiling them (JIT) costs more than
        # it saves, and their sorts and hashes should stay in memory.
        cursor.execute("SET LOCAL jit = off")
        cursor.execute("SET LOCAL work_mem = '64MB'")
        return REPORTS[key].compute(filters, now, limit)


__all__ = ["REPORTS", "Filters", "Report", "ReportSpec", "default_filters", "run"]

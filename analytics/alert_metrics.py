"""What an alert rule measures, and the cases behind an alert.

Metrics (each is one number from one report of `analytics.metrics`, for the rule's
scope, over the *period*: the `window_days` calendar days ending today, or `lag_days`
before today; rates in %, durations in hours):

- **milestone_conversion** — the funnel's *of cohort* share for the milestone
  `step_key` (blank: the playbook's last milestone): cases opened in the period that
  passed every milestone up to it within `conversion_days` of their opening, over the
  cases opened in the period. Sample: the cohort. Young cases count as not reached
  yet: give the rule a lag (or a long window) so cohorts had time to convert.
  Cases behind it: the cohort's cases that have not reached the milestone.
- **sla_compliance** — the SLA report's *% met*: met / (met + breached) of the step
  clocks with a verdict in the period; `step_key` restricts it to one step, `queue`
  and `agent` to the clocks of that queue's / person's steps. Sample: the clocks with
  a verdict. Cases behind it: those of the breached clocks, newest first.
- **first_value_median** — the median time from opening to first value of the cases
  opened in the period that reached it (within `conversion_days`). Sample: the cases
  that reached it. Cases behind it: those slower than the threshold (or, for a
  baseline rule, than the baseline median), slowest first.
- **milestone_time_median** — the funnel's *median time from previous* for the
  milestone `step_key`: from reaching the previous milestone (or the opening, for the
  first) to reaching this one, over the cohort's cases that reached it. Sample: those
  cases. Cases behind it: those slower than the threshold / baseline, slowest first.

The cases behind an alert are looked up once, when it fires (a snapshot kept on the
alert, the first `CASE_CAP` of them and their count): evaluations that only confirm
a breach read the one report they need.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import Count, F, Q, QuerySet

from analytics.metrics import run
from analytics.metrics.base import Filters
from analytics.models import AlertRule
from onboarding.models import Case, Task

Metric = AlertRule.Metric
CASE_CAP = 50  # case ids kept on an alert
HOUR = 3600.0
REPORT_OF = {
    Metric.MILESTONE_CONVERSION: "funnel",
    Metric.SLA_COMPLIANCE: "sla",
    Metric.FIRST_VALUE_MEDIAN: "first_value",
    Metric.MILESTONE_TIME_MEDIAN: "funnel",
}


# --- measuring ----------------------------------------------------------------------------


@dataclass
class Measure:
    """One value of the metric for one period (None: no data)."""

    value: float | None
    sample: int


@dataclass
class Reading:
    start: date
    end: date
    current: Measure
    baseline: Measure | None = None

    def breached(self, rule: AlertRule) -> bool | None:
        """True or False, or None when there is nothing to judge."""
        value = self.current.value
        if value is None:
            return None
        below = rule.direction == AlertRule.Direction.BELOW
        if rule.kind == AlertRule.Kind.THRESHOLD:
            return value < rule.threshold if below else value > rule.threshold
        base = self.baseline.value if self.baseline else None
        if not base:  # no baseline, or zero: a relative change means nothing
            return None
        change = (value - base) / base * 100
        epsilon = 1e-9  # hours from seconds: 10 % should not come out as 9.999999 %
        return (
            -change >= rule.change_pct - epsilon if below else change >= rule.change_pct - epsilon
        )

    @property
    def baseline_value(self) -> float | None:
        return self.baseline.value if self.baseline else None


def period(rule: AlertRule, now: datetime) -> tuple[date, date]:
    end = local_today_at(now) - timedelta(days=rule.lag_days)
    return end - timedelta(days=rule.window_days - 1), end


def local_today_at(now: datetime) -> date:
    return now.astimezone(ZoneInfo(settings.TIME_ZONE)).date()


def filters_for(rule: AlertRule, start: date, end: date) -> Filters:
    return Filters(
        start=start,
        end=end,
        playbook=rule.playbook.key if rule.playbook_id else "",
        version=rule.version,
        plan=rule.plan,
        region=rule.region,
        channel=rule.channel,
        queue=rule.queue.key if rule.queue_id else "",
        agent=rule.agent_id,
        window_days=rule.conversion_days,
    )


def measure(rule: AlertRule, f: Filters, now: datetime) -> Measure:
    """The rule's metric for the filters `f` (see the module docstring)."""
    report = run(REPORT_OF[rule.metric], f, now=now, limit=CASE_CAP)
    tables = report.tables
    if rule.metric == Metric.SLA_COMPLIANCE:
        if rule.step_key:
            rows = [r for r in tables["by_step"].as_dicts() if r["step_key"] == rule.step_key]
            row = rows[0] if rows else {"met": 0, "breached": 0, "pct_met": None}
        else:
            row = tables["summary"].as_dicts()[0]
        pct = row["pct_met"]
        return Measure(None if pct is None else pct * 100, row["met"] + row["breached"])
    if rule.metric == Metric.FIRST_VALUE_MEDIAN:
        row = tables["summary"].as_dicts()[0]
        p50 = row["p50"]
        return Measure(None if p50 is None else p50 / HOUR, row["reached"] or 0)
    stages = tables["stages"].as_dicts()
    cohort = tables["summary"].rows[0][0]
    stage = _stage(stages, rule.step_key)
    if stage is None:  # the milestone is not in this version (any more)
        return Measure(None, 0)
    if rule.metric == Metric.MILESTONE_CONVERSION:
        overall = stage["overall"]
        return Measure(None if overall is None else overall * 100, cohort)
    p50 = stage["p50"]
    return Measure(None if p50 is None else p50 / HOUR, stage["reached"])


def _stage(stages: list[dict[str, Any]], step_key: str) -> dict[str, Any] | None:
    if not step_key:
        return stages[-1] if stages else None
    return next((s for s in stages if s["step_key"] == step_key), None)


def read(rule: AlertRule, now: datetime) -> Reading:
    """The current period's value and, for a baseline rule, the baseline's."""
    start, end = period(rule, now)
    current = _judged(rule, measure(rule, filters_for(rule, start, end), now))
    reading = Reading(start, end, current)
    if rule.kind == AlertRule.Kind.BASELINE:
        span = timedelta(days=rule.window_days * rule.baseline_windows)
        before = start - timedelta(days=1)
        f = filters_for(rule, start - span, before)
        reading.baseline = _judged(rule, measure(rule, f, now))
    return reading


def _judged(rule: AlertRule, m: Measure) -> Measure:
    """Too small a sample is no data."""
    if m.sample < rule.min_sample:
        m.value = None
    return m


# --- the cases behind an alert --------------------------------------------------------------


def cohort(rule: AlertRule, f: Filters) -> QuerySet[Case]:
    """The cases opened in the period, in the rule's scope (the funnel's cohort)."""
    cases = Case.objects.filter(opened_at__gte=f.since, opened_at__lt=f.until)
    if rule.playbook_id:
        cases = cases.filter(playbook_id=rule.playbook_id)
        if rule.version is not None:
            cases = cases.filter(playbook_version__number=rule.version)
    for name, value in f.segment_values().items():
        cases = cases.filter(**{f"account__{name}": value})
    return cases


def _milestone_keys(rule: AlertRule, f: Filters) -> list[str]:
    from analytics.metrics.funnel import milestones

    keys = [key for key, _ in milestones(f)[3]]
    if not keys:
        return []
    step_key = rule.step_key or keys[-1]
    return keys[: keys.index(step_key) + 1] if step_key in keys else []


def cases_behind(rule: AlertRule, reading: Reading, now: datetime) -> tuple[list[int], int]:
    """(the first `CASE_CAP` case ids, how many in all) behind a breach."""
    f = filters_for(rule, reading.start, reading.end)
    if rule.metric == Metric.SLA_COMPLIANCE:  # every breach of the period: only on firing
        breached = run("sla", f, now=now, limit=None).tables["breached"].as_dicts()
        keep = [
            r["case_id"] for r in breached if r["step_key"] == rule.step_key or not rule.step_key
        ]
        cases = list(dict.fromkeys(keep))
        return cases[:CASE_CAP], len(cases)
    window = f.window
    reference = rule.threshold if rule.kind == AlertRule.Kind.THRESHOLD else reading.baseline_value
    if rule.metric == Metric.MILESTONE_CONVERSION:
        keys = _milestone_keys(rule, f)
        passed = Q(
            tasks__step_key__in=keys,
            tasks__state__in=("done", "skipped"),
            tasks__completed_at__lte=F("opened_at") + window,
        )
        stuck = (
            cohort(rule, f)
            .annotate(passed=Count("tasks__step_key", filter=passed, distinct=True))
            .filter(passed__lt=len(keys))
            .order_by("opened_at", "id")
        )
        return list(stuck.values_list("id", flat=True)[:CASE_CAP]), stuck.count()
    slow: dict[int, timedelta] = {}
    limit = timedelta(hours=reference or 0)
    if rule.metric == Metric.FIRST_VALUE_MEDIAN:
        # The case's first-value step is the first by position (as the report has it).
        tasks = (
            Task.objects.filter(case__in=cohort(rule, f), step__is_first_value=True)
            .order_by("case_id", "step__position", "step_id")
            .values_list("case_id", "case__opened_at", "state", "completed_at")
        )
        seen: set[int] = set()
        for case_id, opened_at, state, done_at in tasks:
            if case_id in seen:
                continue
            seen.add(case_id)
            took = done_at - opened_at if state == "done" and done_at else None
            if took is not None and limit < took <= window:
                slow[case_id] = took
    else:
        keys = _milestone_keys(rule, f)
        done: dict[int, dict[str, datetime]] = {}
        opened: dict[int, datetime] = {}
        for case_id, opened_at, key, done_at in Task.objects.filter(
            case__in=cohort(rule, f),
            step_key__in=keys,
            state__in=("done", "skipped"),
            completed_at__lte=F("case__opened_at") + window,
        ).values_list("case_id", "case__opened_at", "step_key", "completed_at"):
            opened[case_id] = opened_at
            times = done.setdefault(case_id, {})
            times[key] = max(done_at, times.get(key, done_at))
        for case_id, times in done.items():
            if keys and len(times) == len(keys):
                previous = max([opened[case_id], *(times[k] for k in keys[:-1])])
                reached = max(previous, times[keys[-1]])
                if reached - previous > limit:
                    slow[case_id] = reached - previous
    ordered = sorted(slow, key=lambda c: (-slow[c].total_seconds(), c))
    return ordered[:CASE_CAP], len(ordered)

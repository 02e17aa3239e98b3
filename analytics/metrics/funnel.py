"""Milestone funnel of one playbook: where do accounts stall?

Definitions
-----------
- **Cohort**: the playbook's cases opened in the date range (and matching the
  playbook version, plan, region and channel filters).
- **Milestones**: the steps flagged *milestone* in the selected version, or in the
  playbook's latest published version when no version is selected, in position
  order, matched across versions by step key (a case on a version without one of
  them cannot pass it).
- **Conversion window** `window_days` (default 30): a milestone counts only if it was
  passed within that many days of the case opening.
- **Passed**: the milestone's step is *done*, or *skipped* (a manager decided it does
  not apply; shown as "of which skipped"), within the window. A milestone step that
  was reopened is not passed until it is finished again.
- **Reached stage i**: milestones 1…i all passed. The moment a case reaches stage i is
  the latest of its opening and the completions of milestones 1…i (parallel branches
  may finish out of order).
- **Time between milestones**: from reaching stage i-1 (stage 0 is the opening) to
  reaching stage i, wall-clock, median and 90th percentile over the cases that
  reached stage i.
- Cases that reached stage i-1 but not i are exactly one of:
  - **dropped**: the case ended (completed or cancelled) or its window elapsed;
  - **stalled**: still open and within its window, but no step of the case finished
    for more than `stall_days` (default 7) days (counting from the opening);
  - **in progress**: still open and within its window, and moving.
  **SLA overdue** counts those in progress or stalled that have SLA work overdue now
  (a step or case clock breached and not yet stopped, or running past its due
  instant): a subset, shown separately.
- **Conversion** at stage i: reached i / reached i-1 (stage 1: / cohort);
  **overall**: reached i / cohort.
- **Breakdown** by one segment (`by`: plan, segment, region, channel or version):
  the cohort and the cases reaching each stage, per value.

Filters: date range, playbook (required), version, plan, region, channel. Queue and
agent do not apply (a case is not in one queue).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from analytics.metrics.base import (
    ACCOUNT_OF_CASE,
    Column,
    Filters,
    Report,
    Table,
    case_conditions,
    fetch,
    share,
    where,
)

KEY = "funnel"
TITLE = "Milestone funnel"
IGNORES = ("queue", "agent")

_MILESTONES = """
WITH pb AS (
  SELECT id, key, name FROM onboarding_playbook
  WHERE key = coalesce(nullif(%(playbook)s, ''),
                       (SELECT key FROM onboarding_playbook ORDER BY name, id LIMIT 1))
), ver AS (
  SELECT v.id, v.number FROM onboarding_playbookversion v JOIN pb ON pb.id = v.playbook_id
  WHERE (%(version)s::int IS NOT NULL AND v.number = %(version)s::int)
     OR (%(version)s::int IS NULL AND v.state = 'published')
  ORDER BY v.number DESC LIMIT 1
)
SELECT pb.key, pb.name, ver.number, s.key, s.name
FROM pb LEFT JOIN ver ON TRUE
LEFT JOIN onboarding_step s ON s.version_id = ver.id AND s.is_milestone
ORDER BY s.position, s.id
"""

SEGMENT_SQL = {
    "plan": "a.plan",
    "segment": "a.segment",
    "region": "a.region",
    "channel": "a.channel",
    "version": "pv.number::text",
}


def milestones(f: Filters) -> tuple[str, str, int | None, list[tuple[str, str]]]:
    """(playbook key, name, version number, [(step key, step name)]): one query."""
    rows = fetch(_MILESTONES, {"playbook": f.playbook, "version": f.version})
    if not rows:
        return f.playbook, f.playbook, f.version, []
    key, name, number = rows[0][:3]
    return key, name, number, [(r[3], r[4]) for r in rows if r[3] is not None]


def cohort_sql(f: Filters, *, segment: str | None = None) -> tuple[str, dict[str, Any]]:
    """The cohort's cases (id, opened_at, open, seg) as a SELECT."""
    conds, params, _ = case_conditions(f)
    seg = SEGMENT_SQL.get(segment or "", "NULL::text")
    sql = f"""
      SELECT c.id, c.opened_at, c.opened_at + %(window)s AS deadline,
             c.state IN ('active', 'on_hold') AS open, {seg} AS seg
      FROM onboarding_case c {ACCOUNT_OF_CASE}
      JOIN onboarding_playbookversion pv ON pv.id = c.playbook_version_id
      WHERE c.opened_at >= %(since)s AND c.opened_at < %(until)s AND {where(conds)}"""
    return sql, params


def _funnel_sql(n: int, cohort: str) -> str:
    # Per case, bit i of `passed` / `skipped` says milestone i was passed within the
    # window / skipped; d<i> is when milestone i was finished. Few aggregates: this
    # runs over every task of every case of the cohort.
    done_at = [
        f"max(tk.completed_at) FILTER (WHERE tk.i = {i} AND tk.finished) AS d{i}"
        for i in range(1, n + 1)
    ]
    stage = "CASE " + " ".join(
        f"WHEN pc.passed & {1 << i} = 0 THEN {i - 1}" for i in range(1, n + 1)
    )
    stage += f" ELSE {n} END"
    # reached_at[k + 1]: when stage k was reached (k = 0: the opening).
    reached = ", ".join(
        ["pc.opened_at"]
        + [
            f"greatest(pc.opened_at, {', '.join(f'pc.d{j}' for j in range(1, i + 1))})"
            for i in range(1, n + 1)
        ]
    )
    return f"""
WITH cohort AS ({cohort}),
pc AS (  -- per case, over its own tasks (an index-only probe per case)
  SELECT co.id, co.opened_at, co.open, co.seg, x.*
  FROM cohort co CROSS JOIN LATERAL (
    SELECT greatest(co.opened_at, max(tk.completed_at)
             FILTER (WHERE tk.finished)) AS last_progress,
           coalesce(bit_or(CASE WHEN tk.finished AND tk.completed_at <= co.deadline
                                THEN 1 << tk.i ELSE 0 END), 0) AS passed,
           coalesce(bit_or(CASE WHEN tk.state = 'skipped' THEN 1 << tk.i ELSE 0 END), 0)
             AS skipped,
           {", ".join(done_at)}
    FROM (
      SELECT coalesce(array_position(%(keys)s::text[], t.step_key::text), 0) AS i,
             t.state, t.state IN ('done', 'skipped') AS finished, t.completed_at
      FROM onboarding_task t WHERE t.case_id = co.id
    ) tk
  ) x
),
late AS (  -- cases with SLA work overdue now (few: an index holds the open breaches)
  SELECT case_id FROM onboarding_slatimer WHERE state = 'breached' AND stopped_at IS NULL
  UNION
  SELECT case_id FROM onboarding_slatimer WHERE state = 'running' AND due_at <= %(now)s
),
pcs AS MATERIALIZED (
  SELECT pc.seg, {stage} AS stage,
         ARRAY[{reached}] AS reached_at, pc.skipped,
         NOT pc.open OR %(now)s >= pc.opened_at + %(window)s AS closed,
         pc.last_progress < %(now)s - %(stall)s AS idle,
         late.case_id IS NOT NULL AS late
  FROM pc LEFT JOIN late ON late.case_id = pc.id
)
-- how many cases stopped at each stage, and how (the counts per stage follow)
SELECT 'cases', seg, stage, closed, idle, late, count(*), NULL::float8, NULL::float8
FROM pcs GROUP BY seg, stage, closed, idle, late
UNION ALL
-- per stage reached: skipped milestones and the time it took from the previous one
SELECT 'stage', NULL, st.i, NULL, NULL, NULL,
  count(*) FILTER (WHERE pcs.skipped & (1 << st.i) <> 0),
  percentile_disc(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM
    pcs.reached_at[st.i + 1] - pcs.reached_at[st.i]))::float8,
  percentile_disc(0.9) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM
    pcs.reached_at[st.i + 1] - pcs.reached_at[st.i]))::float8
FROM pcs CROSS JOIN LATERAL generate_series(1, pcs.stage) AS st(i)
GROUP BY st.i
"""


def funnel(f: Filters, *, now: datetime) -> Report:
    key, name, number, steps = milestones(f)
    f = f.but(playbook=key)
    report = Report(KEY, TITLE, f, ignores=IGNORES)
    report.extra.update(playbook_name=name, version=number, milestones=steps, now=now)
    n = len(steps)
    per_stage: dict[int, tuple] = {}
    by_segment: dict[str, dict[int, int]] = {}
    cohort_by_segment: dict[str, int] = {}
    cohort_size = 0
    if n:
        cohort, params = cohort_sql(f, segment=f.by)
        params.update(
            since=f.since,
            until=f.until,
            now=now,
            window=f.window,
            stall=f.stall,
            keys=[k for k, _ in steps],
        )
        per_stage_times: dict[int, tuple] = {}
        histogram = []
        for part, seg, stage, closed, idle, late, count, p50, p90 in fetch(
            _funnel_sql(n, cohort), params
        ):
            if part == "stage":
                per_stage_times[stage] = (count, p50, p90)
            else:
                histogram.append((seg or "", stage, closed, idle, late, count))
        cohort_size = sum(h[-1] for h in histogram)
        for i in range(1, n + 1):
            waiting = [h for h in histogram if h[1] == i - 1]
            moving = [h for h in waiting if not h[2]]
            skipped, p50, p90 = per_stage_times.get(i, (0, None, None))
            per_stage[i] = (
                sum(h[-1] for h in histogram if h[1] >= i),
                skipped,
                sum(h[-1] for h in moving if not h[3]),
                sum(h[-1] for h in moving if h[3]),
                sum(h[-1] for h in waiting if h[2]),
                sum(h[-1] for h in moving if h[4]),
                p50,
                p90,
            )
        for seg, stage, _closed, _idle, _late, count in histogram:
            cohort_by_segment[seg] = cohort_by_segment.get(seg, 0) + count
            reached = by_segment.setdefault(seg, {})
            for i in range(1, stage + 1):
                reached[i] = reached.get(i, 0) + count
    previous = cohort_size
    stages = []
    for i, (step_key, step_name) in enumerate(steps, 1):
        reached, skipped, prog, stalled, dropped, late, p50, p90 = per_stage.get(
            i, (0, 0, 0, 0, 0, 0, None, None)
        )
        stages.append(
            (
                i,
                step_key,
                step_name,
                reached,
                skipped,
                prog,
                stalled,
                dropped,
                late,
                share(reached, previous),
                share(reached, cohort_size),
                p50,
                p90,
            )
        )
        previous = reached
    report.add(
        Table(
            "summary",
            "Cohort",
            [Column("cohort", "Cases opened in the range", "int")],
            [(cohort_size,)],
        )
    )
    report.add(
        Table(
            "stages",
            "Milestones",
            [
                Column("stage", "#", "int"),
                Column("step_key", "Milestone"),
                Column("step_name", "Name", compare=False),
                Column("reached", "Reached", "int"),
                Column("skipped", "of which skipped", "int"),
                Column("in_progress", "In progress", "int"),
                Column("stalled", "Stalled", "int"),
                Column("dropped", "Dropped", "int"),
                Column("breached", "SLA overdue", "int"),
                Column("conversion", "Conversion", "pct"),
                Column("overall", "Of cohort", "pct"),
                Column("p50", "Median time from previous", "days"),
                Column("p90", "p90 time from previous", "days"),
            ],
            stages,
            note=(
                f"Reached within {f.window_days} days of opening. Stalled: no step finished "
                f"for more than {f.stall_days} days. In progress, stalled and dropped count "
                "the cases that reached the previous stage but not this one."
            ),
        )
    )
    columns = [
        Column("segment", f.by.title() if f.by else "Segment"),
        Column("cohort", "Cases", "int"),
    ]
    columns += [Column(f"reached_{i}", k, "int") for i, (k, _) in enumerate(steps, 1)]
    columns.append(Column("conversion", "Reached the last", "pct"))
    breakdown = []
    for seg in sorted(cohort_by_segment):
        counts = [by_segment[seg].get(i, 0) for i in range(1, n + 1)]
        last = counts[-1] if counts else 0
        breakdown.append(
            (seg, cohort_by_segment[seg], *counts, share(last, cohort_by_segment[seg]))
        )
    report.add(Table("breakdown", f"By {f.by}", columns, breakdown))
    return report

"""Account onboarding health: is each open onboarding on track, behind or stuck?

Definitions
-----------
- **Cases**: the onboardings open now (active or on hold), whatever the date range
  (like the open work of the workload report), matching the playbook, version, plan,
  region and channel filters. One row per case: an account onboarding on two
  playbooks has two.
- **Expected steps**: the steps of the case's pinned playbook version that have an
  expected duration (`expected_within`). A step's **expected instant** is the case's
  opening plus that duration, wall-clock (holds, nights and weekends do not move it);
  it is **expected by now** once that instant has passed.
- **Done**: the step's task is done, or skipped (a manager decided it does not
  apply). A step reopened since is not done until it is finished again.
- **Overdue**: expected by now and not done. The case's **most overdue step** is the
  overdue step with the earliest expected instant (ties: by step key), and **overdue
  by** is how long ago that instant was.
- **Last progress**: the latest finish (done or skipped) of a step of the case, or its
  opening if none has finished (as "stalled" in the funnel). Reopening a completed
  case is not progress: one reopened long after its last step finished is stuck until
  a step finishes again.
- **Status**, the first that applies:
  1. **stuck**: active, and no step finished for more than `stall_days` (default 7):
     nothing moves, whatever the expectations say;
  2. **behind**: active, and at least one step overdue;
  3. **on hold**: held by a manager (a deliberate pause, not a stall): counted apart,
     its pace still shown, since its expected instants keep passing meanwhile;
  4. **on track**: the rest, including cases whose steps have no expected duration.
- **Pace**: steps done of those expected by now, over the cases counted (empty when
  none is expected yet).
- **Cases** list: worst first — stuck, behind, on hold, on track; within a status the
  most overdue first, then the longest without progress, then the case id.
- **Breakdown** by one segment (`by`: plan, segment, region, channel, or version as
  "playbook vN"): the cases of each status and the pace, per value.

Filters: playbook, version, plan, region, channel, `stall_days`, `by`. The date range,
queue and agent do not apply (open cases now; a case is not in one queue).
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

KEY = "health"
TITLE = "Account health"
IGNORES = ("start", "end", "queue", "agent")

# Worst first: the order of the summary and of the cases list.
STATUSES = ("stuck", "behind", "on_hold", "on_track")
STATUS_LABELS = {
    "stuck": "Stuck",
    "behind": "Behind",
    "on_hold": "On hold",
    "on_track": "On track",
    "all": "All",
}

SEGMENT_SQL = {
    "plan": "a.plan",
    "segment": "a.segment",
    "region": "a.region",
    "channel": "a.channel",
    "version": "p.key || ' v' || pv.number",
}

# One statement: the open cases once (MATERIALIZED), their tasks through the covering
# index of each case's tasks, then the aggregates and the worst cases of the list.
_SQL = """
WITH exp AS MATERIALIZED (  -- the expectations: a few rows per playbook version
  SELECT s.version_id, s.key, s.expected_within FROM onboarding_step s
  WHERE s.expected_within IS NOT NULL
),
oc AS MATERIALIZED (
  SELECT c.id, c.account_id, c.opened_at, c.state, c.playbook_id, c.playbook_version_id,
         {seg} AS seg
  FROM onboarding_case c {account}
  JOIN onboarding_playbookversion pv ON pv.id = c.playbook_version_id
  JOIN onboarding_playbook p ON p.id = c.playbook_id
  WHERE c.state IN ('active', 'on_hold') AND {where}
),
tk AS (
  SELECT t.case_id, t.step_key, t.state IN ('done', 'skipped') AS finished, t.completed_at,
         oc.opened_at + exp.expected_within AS due
  FROM oc JOIN onboarding_task t ON t.case_id = oc.id
  LEFT JOIN exp ON exp.version_id = oc.playbook_version_id AND exp.key = t.step_key
),
pc AS (
  SELECT tk.case_id,
         max(tk.completed_at) FILTER (WHERE tk.finished) AS last_done,
         count(*) FILTER (WHERE tk.due <= %(now)s) AS expected,
         count(*) FILTER (WHERE tk.due <= %(now)s AND tk.finished) AS done,
         min(tk.due) FILTER (WHERE tk.due <= %(now)s AND NOT tk.finished) AS first_overdue,
         (array_agg(tk.step_key::text ORDER BY tk.due, tk.step_key)
            FILTER (WHERE tk.due <= %(now)s AND NOT tk.finished))[1] AS worst_step
  FROM tk GROUP BY tk.case_id
),
pcs AS MATERIALIZED (
  SELECT oc.id, oc.account_id, oc.opened_at, oc.playbook_id, oc.playbook_version_id, oc.seg,
         greatest(oc.opened_at, pc.last_done) AS last_progress,
         coalesce(pc.expected, 0) AS expected, coalesce(pc.done, 0) AS done,
         pc.first_overdue, pc.worst_step,
         CASE WHEN oc.state = 'on_hold' THEN 2
              WHEN greatest(oc.opened_at, pc.last_done) < %(now)s - %(stall)s THEN 0
              WHEN pc.first_overdue IS NOT NULL THEN 1
              ELSE 3 END AS rank
  FROM oc LEFT JOIN pc ON pc.case_id = oc.id
)
SELECT 'agg', GROUPING(pcs.seg), pcs.seg, pcs.rank, count(*), sum(pcs.expected)::bigint,
       sum(pcs.done)::bigint, NULL::bigint, NULL::text, NULL::text, NULL::text, NULL::int,
       NULL::timestamptz, NULL::timestamptz, NULL::text, NULL::timestamptz
FROM pcs GROUP BY GROUPING SETS ((pcs.rank), (pcs.seg, pcs.rank))
UNION ALL
SELECT 'case', NULL, NULL, w.rank, NULL, w.expected, w.done, w.id, a.name, a.external_id,
       p.key, pv.number, w.opened_at, w.first_overdue, w.worst_step, w.last_progress
FROM (
  SELECT * FROM pcs
  ORDER BY pcs.rank, pcs.first_overdue NULLS LAST, pcs.last_progress, pcs.id
  LIMIT %(limit)s
) w
JOIN onboarding_account a ON a.id = w.account_id
JOIN onboarding_playbook p ON p.id = w.playbook_id
JOIN onboarding_playbookversion pv ON pv.id = w.playbook_version_id
"""


def sort_key(rank: int, first_overdue: datetime | None, last_progress: datetime, case_id: int):
    """Worst first: by status, the most overdue, the longest without progress, the id."""
    return (rank, first_overdue is None, first_overdue or last_progress, last_progress, case_id)


def health(f: Filters, *, now: datetime, limit: int | None) -> Report:
    report = Report(KEY, TITLE, f, ignores=IGNORES)
    report.extra.update(now=now)
    conds, params, _ = case_conditions(f)
    params.update(now=now, stall=f.stall, limit=limit)
    sql = _SQL.format(
        seg=SEGMENT_SQL.get(f.by, "NULL::text"), account=ACCOUNT_OF_CASE, where=where(conds)
    )
    per_status: dict[int, tuple[int, int, int]] = {}
    per_segment: dict[str, dict[int, tuple[int, int, int]]] = {}
    cases: list[tuple[Any, ...]] = []
    for part, g_seg, seg, rank, n, expected, done, *case in fetch(sql, params):
        if part == "agg":
            if g_seg:
                per_status[rank] = (n, expected, done)
            else:
                per_segment.setdefault(seg or "", {})[rank] = (n, expected, done)
            continue
        case_id, name, external_id, playbook, version, opened_at, first_overdue, worst, last = case
        cases.append(
            (
                sort_key(rank, first_overdue, last, case_id),
                (
                    case_id,
                    name,
                    external_id,
                    playbook,
                    version,
                    opened_at,
                    (now - opened_at).total_seconds(),
                    expected,
                    done,
                    worst,
                    (now - first_overdue).total_seconds() if first_overdue else None,
                    last,
                    STATUSES[rank],
                ),
            )
        )
    total = sum(n for n, _e, _d in per_status.values())
    report.add(summary_table(per_status, total))
    report.add(
        Table(
            "cases",
            "Open cases, worst first",
            CASE_COLUMNS,
            [row for _, row in sorted(cases, key=lambda c: c[0])],
            note=f"Stuck: no step finished for more than {f.stall_days} days.",
            total=total,
        )
    )
    report.add(breakdown_table(f, per_segment))
    return report


CASE_COLUMNS = [
    Column("case_id", "Case", "case"),
    Column("account", "Account", compare=False),
    Column("external_id", "External id", compare=False),
    Column("playbook", "Playbook"),
    Column("version", "Version", "int"),
    Column("opened_at", "Opened", "datetime"),
    Column("open_for", "Open for", "days"),
    Column("expected", "Expected by now", "int"),
    Column("done", "Done of them", "int"),
    Column("worst_step", "Most overdue step"),
    Column("overdue_by", "Overdue by", "days"),
    Column("last_progress", "Last progress", "datetime"),
    Column("status", "Status", "status"),
]


def summary_table(per_status: dict[int, tuple[int, int, int]], total: int) -> Table:
    """A row per status, worst first, and one for all the cases."""
    rows = []
    for rank, status in enumerate(STATUSES):
        n, expected, done = per_status.get(rank, (0, 0, 0))
        rows.append((status, n, share(n, total), expected, done, share(done, expected)))
    expected = sum(r[3] for r in rows)
    done = sum(r[4] for r in rows)
    rows.append(("all", total, share(total, total), expected, done, share(done, expected)))
    return Table(
        "summary",
        "Open cases by status",
        [
            Column("status", "Status", "status"),
            Column("cases", "Cases", "int"),
            Column("share", "Share", "pct"),
            Column("expected", "Steps expected by now", "int"),
            Column("done", "Done of them", "int"),
            Column("pace", "Pace", "pct"),
        ],
        rows,
        note="Open now, whatever the date range.",
    )


def breakdown_table(f: Filters, per_segment: dict[str, dict[int, tuple[int, int, int]]]) -> Table:
    rows = []
    for seg in sorted(per_segment):
        counts = [per_segment[seg].get(rank, (0, 0, 0)) for rank in range(len(STATUSES))]
        expected = sum(c[1] for c in counts)
        done = sum(c[2] for c in counts)
        rows.append(
            (
                seg,
                sum(c[0] for c in counts),
                *(c[0] for c in counts),
                expected,
                done,
                share(done, expected),
            )
        )
    return Table(
        "breakdown",
        f"By {f.by}",
        [
            Column("segment", f.by.title() if f.by else "Segment"),
            Column("cases", "Cases", "int"),
            *(Column(s, STATUS_LABELS[s], "int") for s in STATUSES),
            Column("expected", "Steps expected by now", "int"),
            Column("done", "Done of them", "int"),
            Column("pace", "Pace", "pct"),
        ],
        rows,
    )

"""Time to first value: how long from opening until the customer gets value?

Definitions
-----------
- **First value**: the step flagged *first value* in the case's pinned playbook
  version (the first by position if several are). Cases on versions without one are
  not counted.
- **Cohort**: cases opened in the date range (playbook, version, plan, region and
  channel filters apply); a **weekly cohort** is the cases opened in one week.
- **Reached**: the first-value step is *done* (skipped does not count: the customer
  got no value from it) within the conversion window `window_days` (default 30, the
  funnel's) of the opening; a step reopened since does not count until done again.
- **Time to first value**: its completion minus the case's opening, wall-clock.
- **In progress**: not reached, case still open and still within its window;
  the rest of the not-reached cases ran out of time or ended without it.
- **Distribution**: the reached cases of the whole range by time to first value, in
  day buckets (0-1, 1-2, 2-3, 3-5, 5-7, 7-14, 14-21, 21-30, … up to the window).
- **Trend**: per weekly cohort, cases, reached, in progress, share reached
  (reached / cases), median and 90th percentile time to first value of the reached.
  The last weeks' shares keep rising while their cases are in progress.

Filters: date range, playbook, version, plan, region, channel; queue and agent do
not apply.
"""

from __future__ import annotations

from datetime import datetime

from analytics.metrics.base import (
    ACCOUNT_OF_CASE,
    Column,
    Filters,
    Report,
    Table,
    case_conditions,
    fetch,
    seconds,
    share,
    where,
)

KEY = "first_value"
TITLE = "Time to first value"
IGNORES = ("queue", "agent")
DAY = 86400
BUCKET_DAYS = (0, 1, 2, 3, 5, 7, 14, 21, 30, 45, 60, 90, 120, 180, 270, 365)


def bucket_edges(window_days: int) -> list[int]:
    """Lower edges in days; the last bucket runs to the end of the window."""
    return [d for d in BUCKET_DAYS if d < window_days] or [0]


def bucket_label(i: int, edges: list[int], window_days: int) -> str:
    low = edges[i]
    high = edges[i + 1] if i + 1 < len(edges) else window_days
    return f"{low}-{high} days"


_SQL = """
WITH fvs AS (
  SELECT DISTINCT ON (version_id) version_id, key
  FROM onboarding_step WHERE is_first_value ORDER BY version_id, position, id
), cohort AS (
  SELECT c.opened_at,
         c.state IN ('active', 'on_hold') AS open,
         fv.state = 'done' AND fv.completed_at <= c.opened_at + %(window)s AS reached,
         EXTRACT(EPOCH FROM fv.completed_at - c.opened_at) AS ttfv,
         date_trunc('week', c.opened_at AT TIME ZONE %(tz)s)::date AS week
  FROM onboarding_case c
  JOIN fvs ON fvs.version_id = c.playbook_version_id
  LEFT JOIN onboarding_task fv ON fv.case_id = c.id AND fv.step_key = fvs.key
  {account}
  WHERE c.opened_at >= %(since)s AND c.opened_at < %(until)s AND {where}
)
SELECT GROUPING(week) AS g_week, GROUPING(b.bucket) AS g_bucket, week, b.bucket,
  count(*),
  count(*) FILTER (WHERE reached),
  count(*) FILTER (WHERE NOT reached AND open AND %(now)s < opened_at + %(window)s),
  percentile_disc(0.5) WITHIN GROUP (ORDER BY ttfv) FILTER (WHERE reached),
  percentile_disc(0.9) WITHIN GROUP (ORDER BY ttfv) FILTER (WHERE reached)
FROM cohort
CROSS JOIN LATERAL (
  SELECT CASE WHEN reached THEN width_bucket(ttfv, %(edges)s::numeric[]) END AS bucket
) b
GROUP BY GROUPING SETS ((week), (b.bucket), ())
"""


def time_to_first_value(f: Filters, *, now: datetime) -> Report:
    report = Report(KEY, TITLE, f, ignores=IGNORES)
    conds, params, needs_account = case_conditions(f)
    edges = bucket_edges(f.window_days)
    params.update(
        since=f.since,
        until=f.until,
        now=now,
        window=f.window,
        tz=str(f.tz),
        edges=[e * DAY for e in edges],
    )
    account = ACCOUNT_OF_CASE if needs_account else ""
    rows = fetch(_SQL.format(account=account, where=where(conds)), params)
    trend, buckets, summary = [], {}, []
    for g_week, g_bucket, week, bucket, cases, reached, in_progress, p50, p90 in rows:
        if not g_week:
            trend.append(
                (
                    week,
                    cases,
                    reached,
                    in_progress,
                    share(reached, cases),
                    seconds(p50),
                    seconds(p90),
                )
            )
        elif not g_bucket:
            if bucket is not None:
                buckets[bucket] = reached
        else:
            summary.append(
                (cases, reached, in_progress, share(reached, cases), seconds(p50), seconds(p90))
            )
    counts = [
        Column("cases", "Cases", "int"),
        Column("reached", "Reached", "int"),
        Column("in_progress", "In progress", "int"),
        Column("share", "Share reached", "pct"),
        Column("p50", "Median", "days"),
        Column("p90", "p90", "days"),
    ]
    report.add(
        Table(
            "summary",
            "Cohort",
            counts,
            summary or [(0, 0, 0, None, None, None)],
            note=f"Reached within {f.window_days} days of opening.",
        )
    )
    report.add(
        Table(
            "distribution",
            "Distribution",
            [Column("bucket", "Time to first value"), Column("cases", "Cases", "int")],
            [
                (bucket_label(i, edges, f.window_days), buckets.get(i + 1, 0))
                for i in range(len(edges))
            ],
            note="Reached cases of the whole range.",
        )
    )
    report.add(
        Table(
            "trend",
            "By weekly cohort",
            [Column("week", "Opened in the week of", "date"), *counts],
            sorted(trend),
        )
    )
    return report

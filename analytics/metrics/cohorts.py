"""Weekly cohorts: of the cases opened in a week, what share reached each milestone by
day N?

Definitions
-----------
- **Cohort**: the playbook's cases opened in one week (Monday, `settings.TIME_ZONE`)
  of the date range; playbook, version, plan, region and channel filters apply. The
  playbook and its milestones are chosen as in the funnel (`analytics.metrics.funnel`).
- **Reached milestone M by day N**: M's step is done, or skipped (it does not apply),
  at most N days after the case opened; a step reopened since does not count until it
  is finished again. Unlike the funnel, milestones are counted one by one, not in
  order.
- **By day N** (`window_days`, the conversion window, default 30): one column per
  milestone. **By day** 1, 3, 7, 14 and 30 (and N if longer): one column per day for
  the first-value milestone (the last milestone if the playbook has none).
- A share is only shown when it is final: when every case of the cohort is at least
  N days old (the youngest opened N days before now). Until then the cell is empty,
  since cases still on their way would read as not having reached it.

Filters: date range (default: the last 8 weeks), playbook (the first one if none),
version, plan, region, channel.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from analytics.metrics.base import (
    Column,
    Filters,
    Report,
    Table,
    fetch,
    share,
)
from analytics.metrics.funnel import cohort_sql, milestones

KEY = "cohorts"
TITLE = "Cohorts"
IGNORES = ("queue", "agent")
DAYS = (1, 3, 7, 14, 30)
DEFAULT_DAYS = 56  # the page opens on 8 weeks: the older of them have final shares


def checkpoints(window_days: int) -> list[int]:
    return sorted({*DAYS, window_days})


def focus(steps: list[tuple[str, str]], first_value: str | None) -> int:
    """Index (0-based) of the milestone the by-day table follows."""
    keys = [key for key, _ in steps]
    return keys.index(first_value) if first_value in keys else len(keys) - 1


_FIRST_VALUE = """
SELECT s.key FROM onboarding_step s
JOIN onboarding_playbookversion v ON v.id = s.version_id
JOIN onboarding_playbook p ON p.id = v.playbook_id
WHERE p.key = %(playbook)s AND v.number = %(version)s AND s.is_first_value
ORDER BY s.position, s.id LIMIT 1
"""


def _sql(n: int, cohort: str, focus_index: int, days: list[int]) -> str:
    done_at = [
        f"min(EXTRACT(EPOCH FROM tk.completed_at - co.opened_at)) "
        f"FILTER (WHERE tk.i = {i} AND tk.finished) AS d{i}"
        for i in range(1, n + 1)
    ]
    by_window = [
        f"count(*) FILTER (WHERE pc.d{i} <= %(window_s)s) AS m{i}" for i in range(1, n + 1)
    ]
    f = focus_index + 1
    by_day = [f"count(*) FILTER (WHERE pc.d{f} <= {d * 86400}) AS day{d}" for d in days]
    return f"""
WITH cohort AS ({cohort}),
pc AS (
  SELECT date_trunc('week', co.opened_at AT TIME ZONE %(tz)s)::date AS week, co.opened_at, x.*
  FROM cohort co CROSS JOIN LATERAL (
    SELECT {", ".join(done_at)}
    FROM (
      SELECT coalesce(array_position(%(keys)s::text[], t.step_key::text), 0) AS i,
             t.state IN ('done', 'skipped') AS finished, t.completed_at
      FROM onboarding_task t WHERE t.case_id = co.id
    ) tk
  ) x
)
SELECT pc.week, count(*), max(pc.opened_at), {", ".join(by_window + by_day)}
FROM pc GROUP BY pc.week ORDER BY pc.week
"""


def cohorts(f: Filters, *, now: datetime) -> Report:
    key, name, number, steps = milestones(f)
    f = f.but(playbook=key)
    report = Report(KEY, TITLE, f, ignores=IGNORES)
    days = checkpoints(f.window_days)
    n = len(steps)
    first_value = fetch(_FIRST_VALUE, {"playbook": key, "version": number}) if n else []
    followed = focus(steps, first_value[0][0] if first_value else None) if n else 0
    report.extra.update(
        playbook_name=name,
        version=number,
        milestones=steps,
        followed=steps[followed] if n else None,
        days=days,
        now=now,
    )
    rows: list[tuple[Any, ...]] = []
    if n:
        cohort, params = cohort_sql(f)
        params.update(
            since=f.since,
            until=f.until,
            window=f.window,
            window_s=f.window_days * 86400,
            tz=str(f.tz),
            keys=[k for k, _ in steps],
        )
        rows = fetch(_sql(n, cohort, followed, days), params)

    def final(youngest: datetime, day: int) -> bool:
        return youngest + timedelta(days=day) <= now

    by_milestone, by_day = [], []
    for week, cases, youngest, *counts in rows:
        reached, per_day = counts[:n], counts[n:]
        done = final(youngest, f.window_days)
        by_milestone.append((week, cases, *(share(c, cases) if done else None for c in reached)))
        by_day.append(
            (
                week,
                cases,
                *(
                    share(c, cases) if final(youngest, d) else None
                    for d, c in zip(days, per_day, strict=True)
                ),
            )
        )
    report.add(
        Table(
            "by_milestone",
            f"Share that reached each milestone by day {f.window_days}",
            [
                Column("week", "Opened in the week of", "date"),
                Column("cases", "Cases", "int"),
                *(Column(f"m_{k}", k, "pct") for k, _ in steps),
            ],
            by_milestone,
            note="Empty until every case of the week is that old.",
        )
    )
    followed_key = steps[followed][0] if n else ""
    report.add(
        Table(
            "by_day",
            f"Share that reached {followed_key or 'the milestone'} by day",
            [
                Column("week", "Opened in the week of", "date"),
                Column("cases", "Cases", "int"),
                *(Column(f"day_{d}", f"Day {d}", "pct") for d in days),
            ],
            by_day,
            note="Empty until every case of the week is that old.",
        )
    )
    return report

"""Workload: how much human work is open, and how much gets done, per queue and agent.

Definitions
-----------
- **Human work**: steps sitting in a queue: human steps, and automated or signal
  steps escalated to people.
- **Open** (now, whatever the date range): human work *queued* (unassigned, or
  reserved for one agent), *in progress* (claimed) or *waiting* on the customer;
  steps of cases on hold included. Per queue and per agent (the person it is
  reserved for or claimed by).
- **Throughput**: human work *done* with its completion in the date range, per queue
  (where it was done), per agent (who had it) and per week. A step reopened since
  counts when done again.

Filters: all (playbook, version, plan, region and channel through the step's case).
"""

from __future__ import annotations

from analytics.metrics.base import (
    Column,
    Filters,
    Report,
    Table,
    case_filter_join,
    fetch,
    matching_cases,
    task_conditions,
    where,
)

KEY = "workload"
TITLE = "Workload"

_OPEN = """
WITH g AS (
  SELECT GROUPING(t.queue_id) AS g_queue, GROUPING(t.assignee_id) AS g_agent,
         t.queue_id, t.assignee_id,
         count(*) FILTER (WHERE t.state = 'queued' AND t.assignee_id IS NULL) AS unassigned,
         count(*) FILTER (WHERE t.state = 'queued' AND t.assignee_id IS NOT NULL) AS reserved,
         count(*) FILTER (WHERE t.state = 'in_progress') AS in_progress,
         count(*) FILTER (WHERE t.state = 'waiting') AS waiting
  FROM onboarding_task t {joins}
  WHERE t.state IN ('queued', 'in_progress', 'waiting') AND t.queue_id IS NOT NULL
    AND {where}
  GROUP BY GROUPING SETS ((t.queue_id), (t.assignee_id), ())
)
SELECT g.*, q.key, q.name, u.username, trim(u.first_name || ' ' || u.last_name)
FROM g LEFT JOIN onboarding_queue q ON q.id = g.queue_id
LEFT JOIN auth_user u ON u.id = g.assignee_id
"""

_DONE = """
WITH t AS {materialized} (
  SELECT t.case_id, t.queue_id, t.assignee_id,
         date_trunc('week', t.completed_at AT TIME ZONE %(tz)s)::date AS week
  FROM onboarding_task t
  WHERE t.state = 'done' AND t.queue_id IS NOT NULL
    AND t.completed_at >= %(since)s AND t.completed_at < %(until)s AND {task_where}
), {ok_cte}
g AS (
  SELECT GROUPING(t.queue_id) AS g_queue, GROUPING(t.assignee_id) AS g_agent,
         GROUPING(t.week) AS g_week, t.queue_id, t.assignee_id, t.week, count(*) AS done
  FROM t {ok_join}
  GROUP BY GROUPING SETS ((t.queue_id), (t.assignee_id), (t.week), ())
)
SELECT g.*, q.key, q.name, u.username, trim(u.first_name || ' ' || u.last_name)
FROM g LEFT JOIN onboarding_queue q ON q.id = g.queue_id
LEFT JOIN auth_user u ON u.id = g.assignee_id
"""


def _name(username: str | None, full: str | None) -> str:
    return (full or "").strip() or username or ""


def _by_key(rows: list[tuple]) -> list[tuple]:
    return sorted(rows, key=lambda r: (r[0] is None, r[0] if r[0] is not None else ""))


def workload(f: Filters) -> Report:
    report = Report(KEY, TITLE, f)
    joins, conds, params = case_filter_join(f, "t.case_id")
    tconds, tparams = task_conditions(f)
    ok_cte, ok_join, ok_params = matching_cases(f, "t")
    params.update(tparams, since=f.since, until=f.until, tz=str(f.tz))
    sql_where = where(conds + tconds)

    open_by_queue, open_by_agent, open_total = [], [], []
    for g_queue, g_agent, _qid, agent_id, *counts, qkey, qname, username, full in fetch(
        _OPEN.format(joins=joins, where=sql_where), params
    ):
        total = sum(counts)
        if not g_queue:
            open_by_queue.append((qkey, qname, *counts, total))
        elif not g_agent:
            open_by_agent.append(
                (agent_id, _name(username, full) or "(nobody yet)", *counts, total)
            )
        else:
            open_total.append((*counts, total))
    open_columns = [
        Column("unassigned", "Queued", "int"),
        Column("reserved", "Reserved", "int"),
        Column("in_progress", "In progress", "int"),
        Column("waiting", "With customer", "int"),
        Column("open", "Open", "int"),
    ]
    report.add(
        Table(
            "open_summary",
            "Open now",
            open_columns,
            open_total or [(0, 0, 0, 0, 0)],
            note="Not limited to the date range.",
        )
    )
    report.add(
        Table(
            "open_by_queue",
            "Open by queue",
            [Column("queue", "Queue"), Column("queue_name", "Name", compare=False), *open_columns],
            _by_key(open_by_queue),
        )
    )
    report.add(
        Table(
            "open_by_agent",
            "Open by agent",
            [
                Column("agent_id", "Agent id", "int"),
                Column("agent", "Agent", compare=False),
                *open_columns,
            ],
            sorted(open_by_agent, key=lambda r: (r[0] is None, r[0] or 0)),
        )
    )

    done_by_queue, done_by_agent, done_by_week, done_total = [], [], [], []
    for g_queue, g_agent, g_week, _qid, agent_id, week, done, qkey, qname, username, full in fetch(
        _DONE.format(
            materialized="MATERIALIZED" if ok_cte else "",
            ok_cte=ok_cte,
            ok_join=ok_join,
            task_where=where(tconds),
        ),
        {**params, **ok_params},
    ):
        if not g_queue:
            done_by_queue.append((qkey, qname, done))
        elif not g_agent:
            done_by_agent.append((agent_id, _name(username, full) or "(nobody)", done))
        elif not g_week:
            done_by_week.append((week, done))
        else:
            done_total.append((done,))
    done = Column("done", "Done", "int")
    report.add(Table("done_summary", "Done in the range", [done], done_total or [(0,)]))
    report.add(
        Table(
            "done_by_queue",
            "Throughput by queue",
            [Column("queue", "Queue"), Column("queue_name", "Name", compare=False), done],
            _by_key(done_by_queue),
        )
    )
    report.add(
        Table(
            "done_by_agent",
            "Throughput by agent",
            [Column("agent_id", "Agent id", "int"), Column("agent", "Agent", compare=False), done],
            sorted(done_by_agent, key=lambda r: (r[0] is None, r[0] or 0)),
        )
    )
    report.add(
        Table(
            "done_by_week",
            "Throughput by week",
            [Column("week", "Week of", "date"), done],
            sorted(done_by_week),
        )
    )
    return report

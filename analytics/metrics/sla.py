"""SLA compliance: are steps done within their targets, in business time?

Definitions
-----------
- **Clock**: an SLA timer on a step (`SlaTimer`, kind `task`). A step gets one when
  it goes live and its step (or its queue) has a policy; a reopened step gets a new
  one. Case clocks (time to live) are not part of this report.
- **Status** follows the product's one definition (`onboarding.sla_status`): a clock
  is *breached* once the sweep recorded it, and already while it runs past its due
  instant (the sweep records it a little later); *at risk* while it runs, not yet
  due, past its warning instant; *met* when its step was done in time.
- **Verdict**: met or breached (the breach stands even if the work is done later).
  Clocks cancelled (step skipped, case cancelled, step reopened), paused, or running
  before their due instant have no verdict and are not counted.
- **Verdict time**: when it was met (the step was done), when the breach was recorded,
  or the due instant of a clock running past it. The date range selects clocks by
  verdict time; the week of a verdict is its Monday.
- **% met** = met / (met + breached), per step, per queue, per agent (the task's
  queue and assignee, i.e. where and with whom the step finished or sits now), per
  week, and overall.
- **Business time used** (average of the met clocks): the business seconds the clock
  counted against its target, in its policy's calendar, excluding paused time
  (waiting on the customer, case on hold, as the policy says).
- **Breached list**: breached clocks with their verdict time in the range, newest
  first; *work open* means the step is still not finished.
- **At-risk list** (now, whatever the range): clocks at risk, soonest due first;
  *warned at* is when the sweep recorded the warning (empty: not swept yet).
- **Whose time** (per step): for clocks that stopped in the range with a verdict, the
  business time of the whole clock split by who it was waiting on: *us* (a person:
  queued or in progress), *automation* (scheduled or running), *customer* (waiting on
  the customer, or the case on hold). Paused time is included here: it is where the
  time went, not what counted against the target.

Filters: all (queue and agent filter the clock's task).
"""

from __future__ import annotations

from datetime import datetime

from analytics.metrics.base import (
    LIST_LIMIT,
    Column,
    Filters,
    Report,
    Table,
    case_filter_join,
    fetch,
    matching_cases,
    share,
    task_conditions,
    where,
)

KEY = "sla"
TITLE = "SLA compliance"


def _joins(f: Filters) -> tuple[str, list[str], dict]:
    join, conds, params = case_filter_join(f, "s.case_id")
    tconds, tparams = task_conditions(f)
    joins = f"JOIN onboarding_task t ON t.id = s.task_id {join}"
    return joins, conds + tconds, {**params, **tparams}


# One pass over the clocks with a verdict in the range or stopped in it: joined once to
# their task, aggregated finely (step, queue, agent, week) by hashing, then rolled up.
_ONE_PASS = """
WITH s AS {materialized} (
  SELECT s.task_id, s.case_id, s.state, s.consumed_seconds, s.attribution,
         {verdict_at} AS at,
         s.state IN ('met', 'breached')
           AND s.stopped_at >= %(since)s AND s.stopped_at < %(until)s AS stopped
  FROM onboarding_slatimer s
  WHERE s.kind = 'task' AND ({verdict_in_range} OR {stopped_in_range})
), {ok_cte}
j AS (
  SELECT t.step_key, t.queue_id, t.assignee_id, s.consumed_seconds, s.attribution, s.stopped,
         s.at >= %(since)s AND s.at < %(until)s AS verdict,
         s.state = 'met' AS met, s.at
  FROM s {ok_join} JOIN onboarding_task t ON t.id = s.task_id
  WHERE {task_where}
), fine AS (
  SELECT step_key, queue_id, assignee_id,
         date_trunc('week', at AT TIME ZONE %(tz)s)::date AS week,
         count(*) FILTER (WHERE verdict AND met) AS met,
         count(*) FILTER (WHERE verdict AND NOT met) AS breached,
         sum(consumed_seconds) FILTER (WHERE verdict AND met) AS used,
         count(*) FILTER (WHERE stopped) AS stopped,
         sum((attribution->>'internal')::float8) FILTER (WHERE stopped) AS internal,
         sum((attribution->>'automation')::float8) FILTER (WHERE stopped) AS automation,
         sum((attribution->>'customer')::float8) FILTER (WHERE stopped) AS customer
  FROM j GROUP BY 1, 2, 3, 4
), g AS (
  SELECT GROUPING(step_key) AS g_step, GROUPING(queue_id) AS g_queue,
         GROUPING(assignee_id) AS g_agent, GROUPING(week) AS g_week,
         step_key, queue_id, assignee_id, week,
         coalesce(sum(met), 0)::int AS met,
         coalesce(sum(breached), 0)::int AS breached, sum(used) AS used,
         coalesce(sum(stopped), 0)::int AS stopped,
         coalesce(sum(internal), 0), coalesce(sum(automation), 0), coalesce(sum(customer), 0)
  FROM fine
  GROUP BY GROUPING SETS ((step_key), (queue_id), (assignee_id), (week), ())
)
SELECT g.*, q.key, q.name, u.username, trim(u.first_name || ' ' || u.last_name)
FROM g
LEFT JOIN onboarding_queue q ON q.id = g.queue_id
LEFT JOIN auth_user u ON u.id = g.assignee_id
"""
STOPPED_IN_RANGE = """(s.state IN ('met', 'breached')
  AND s.stopped_at >= %(since)s AND s.stopped_at < %(until)s)"""

# The verdict time of a clock with a verdict, and the clocks with one in the range.
VERDICT_AT = (
    "CASE s.state WHEN 'met' THEN s.stopped_at WHEN 'breached' THEN s.breached_at ELSE s.due_at END"
)
BREACHED_IN_RANGE = """(
  (s.state = 'breached' AND s.breached_at >= %(since)s AND s.breached_at < %(until)s)
  OR (s.state = 'running' AND s.due_at <= %(now)s
      AND s.due_at >= %(since)s AND s.due_at < %(until)s))"""
VERDICT_IN_RANGE = f"""(
  (s.state = 'met' AND s.stopped_at >= %(since)s AND s.stopped_at < %(until)s)
  OR {BREACHED_IN_RANGE})"""
AT_RISK = """(s.state = 'running' AND s.due_at > %(now)s
  AND (s.warned_at IS NOT NULL OR s.warn_at <= %(now)s))"""

# A list: the page's first rows in order (found before anything is joined to them for
# display), and how many there are in all.
_LIST = """
WITH matching AS (
  SELECT s.id, s.case_id, s.task_id, {when} AS at, {extra} AS extra
  FROM onboarding_slatimer s {joins}
  WHERE s.kind = 'task' AND {condition} AND {where}
), top AS (
  SELECT * FROM matching ORDER BY {order_inner} LIMIT %(limit)s
)
SELECT top.case_id, t.step_key, q.key, t.assignee_id, top.at, top.extra, acc.name,
       u.username, (SELECT count(*) FROM matching)
FROM top
JOIN onboarding_task t ON t.id = top.task_id
JOIN onboarding_case lc ON lc.id = top.case_id
JOIN onboarding_account acc ON acc.id = lc.account_id
LEFT JOIN onboarding_queue q ON q.id = t.queue_id
LEFT JOIN auth_user u ON u.id = t.assignee_id
ORDER BY {order_outer}
"""


def _list_sql(*, order: str, **parts: str) -> str:
    return _LIST.format(order_inner=order.format(p=""), order_outer=order.format(p="top."), **parts)


def _name(username: str | None, full: str | None) -> str:
    return (full or "").strip() or username or ""


def sla_compliance(f: Filters, *, now: datetime, limit: int | None = LIST_LIMIT) -> Report:
    report = Report(KEY, TITLE, f)
    joins, conds, params = _joins(f)
    params.update(since=f.since, until=f.until, tz=str(f.tz), now=now, limit=limit)
    ok_cte, ok_join, ok_params = matching_cases(f, "s")
    tconds, tparams = task_conditions(f)
    params.update({**ok_params, **tparams})
    sql = _ONE_PASS.format(
        materialized="MATERIALIZED" if ok_cte else "",
        ok_cte=ok_cte,
        ok_join=ok_join,
        task_where=where(tconds),
        verdict_at=VERDICT_AT,
        verdict_in_range=VERDICT_IN_RANGE,
        stopped_in_range=STOPPED_IN_RANGE,
    )

    def pct(met: int, breached: int) -> float | None:
        return share(met, met + breached)

    counts = [
        Column("met", "Met", "int"),
        Column("breached", "Breached", "int"),
        Column("pct_met", "% met", "pct"),
    ]
    by_step, by_queue, by_agent, by_week, overall, whose = [], [], [], [], [], []
    for row in fetch(sql, params):
        g_step, g_queue, g_agent, g_week, step_key, _queue_id, agent_id, week = row[:8]
        met, breached, used, stopped, internal, auto, cust = row[8:15]
        queue_key, queue_name, username, full = row[15:]
        tail = (met, breached, pct(met, breached))
        if not g_step and stopped:
            total = internal + auto + cust
            whose.append((step_key, stopped, internal, auto, cust, share(cust, total)))
        overall_row = g_step and g_queue and g_agent and g_week
        if met + breached == 0 and not overall_row:
            continue  # only clocks stopped in the range, their verdict before it
        if not g_step:
            by_step.append((step_key, *tail, share(used or 0.0, met)))
        elif not g_queue:
            by_queue.append((queue_key, queue_name or "(no queue)", *tail))
        elif not g_agent:
            by_agent.append((agent_id, _name(username, full) or "(unassigned)", *tail))
        elif not g_week:
            by_week.append((week, *tail))
        elif overall_row:
            overall.append(tail)
    report.add(
        Table(
            "summary",
            "Overall",
            counts,
            overall or [(0, 0, None)],
            note="Clocks with a verdict in the range.",
        )
    )
    report.add(
        Table(
            "by_step",
            "By step",
            [
                Column("step_key", "Step"),
                *counts,
                Column("mean_used", "Average business time used (met)", "hours"),
            ],
            sorted(by_step),
        )
    )
    report.add(
        Table(
            "by_queue",
            "By queue",
            [Column("queue", "Queue"), Column("queue_name", "Name", compare=False), *counts],
            sorted(by_queue, key=lambda r: (r[0] is None, r[0] or "")),
        )
    )
    report.add(
        Table(
            "by_agent",
            "By agent",
            [
                Column("agent_id", "Agent id", "int"),
                Column("agent", "Agent", compare=False),
                *counts,
            ],
            sorted(by_agent, key=lambda r: (r[0] is None, r[0] or 0)),
            note="The person the step finished with (or is with now).",
        )
    )
    report.add(
        Table("by_week", "By week", [Column("week", "Week of", "date"), *counts], sorted(by_week))
    )
    report.add(
        Table(
            "whose_time",
            "Whose time: waiting on us vs on the customer (business hours)",
            [
                Column("step_key", "Step"),
                Column("clocks", "Clocks", "int"),
                Column("internal", "On us (people)", "hours"),
                Column("automation", "On us (automation)", "hours"),
                Column("customer", "On the customer", "hours"),
                Column("customer_share", "Customer share", "pct"),
            ],
            sorted(whose),
            note="Clocks that stopped in the range with a verdict; paused time included.",
        )
    )

    list_columns = [
        Column("case_id", "Case", "case"),
        Column("step_key", "Step"),
        Column("queue", "Queue"),
        Column("agent_id", "Agent id", "int"),
    ]
    breached = fetch(
        _list_sql(
            joins=joins,
            where=where(conds),
            when="coalesce(s.breached_at, s.due_at)",
            extra="s.stopped_at IS NULL",
            condition=BREACHED_IN_RANGE,
            order="{p}at DESC, {p}case_id, {p}task_id, {p}id",
        ),
        params,
    )
    report.add(
        Table(
            "breached",
            "Breached",
            [
                *list_columns,
                Column("breached_at", "Breached at", "datetime"),
                Column("work_open", "Work still open"),
                Column("account", "Account", compare=False),
                Column("agent", "Agent", compare=False),
            ],
            [r[:-1] for r in breached],
            total=breached[0][-1] if breached else 0,
            note="Newest first (a running clock past due: its due instant).",
        )
    )
    at_risk = fetch(
        _list_sql(
            joins=joins,
            where=where(conds),
            when="s.due_at",
            extra="s.warned_at",
            condition=AT_RISK,
            order="{p}at, {p}case_id, {p}task_id, {p}id",
        ),
        params,
    )
    report.add(
        Table(
            "at_risk",
            "At risk now",
            [
                *list_columns,
                Column("due_at", "Breaches at", "datetime"),
                Column("warned_at", "Warned at", "datetime"),
                Column("account", "Account", compare=False),
                Column("agent", "Agent", compare=False),
            ],
            [r[:-1] for r in at_risk],
            total=at_risk[0][-1] if at_risk else 0,
            note="Running past their warning instant, not yet due; soonest due first. "
            "Not limited to the date range.",
        )
    )
    report.extra["now"] = now
    return report


__all__ = ["KEY", "TITLE", "sla_compliance"]

"""Automation versus people: how much does automation carry?

Definitions
-----------
- **Automated steps finished**: steps of kind *automated* that are done, with their
  completion in the date range (a step reopened since counts when done again).
- **Without escalation**: done by automation alone; **human-assisted**: escalated to
  a person (its attempts ran out, a lease expired, or someone escalated it) before it
  was done. **Human-assist rate** = human-assisted / finished, per step and overall.
  **First-attempt** = done by automation on its first attempt.
- **Failures**: failed automated attempts recorded in the date range (each failed
  attempt leaves one error in the case's context log: the handler's error, or a
  lease that expired), by reason (the error type), with the number of distinct
  steps (tasks) they hit and the latest message as an example.
- **Handoffs per case**: for cases opened in the date range, how many times their
  steps were handed off to another queue or agent (all hand-offs, reopened steps
  included), as a distribution and an average.

Filters: date range, playbook, version, plan, region, channel. Queue and agent do
not apply (automation is not in a queue until a person takes it over).
"""

from __future__ import annotations

from analytics.metrics.base import (
    ACCOUNT_OF_CASE,
    Column,
    Filters,
    Report,
    Table,
    case_conditions,
    case_filter_join,
    fetch,
    matching_cases,
    share,
    where,
)

KEY = "automation"
TITLE = "Automation"
IGNORES = ("queue", "agent")
TOP_REASONS = 10

_FINISHED = """
WITH t AS {materialized} (
  SELECT t.case_id, t.step_key, t.escalated, t.attempts FROM onboarding_task t
  WHERE t.kind = 'automated' AND t.state = 'done'
    AND t.completed_at >= %(since)s AND t.completed_at < %(until)s
), {ok_cte}
done AS (SELECT t.* FROM t {ok_join})
SELECT GROUPING(step_key), step_key, count(*),
       count(*) FILTER (WHERE NOT escalated),
       count(*) FILTER (WHERE escalated),
       count(*) FILTER (WHERE NOT escalated AND attempts = 1),
       sum(attempts)
FROM done
GROUP BY GROUPING SETS ((step_key), ())
"""

_FAILURES = """
SELECT GROUPING(t.step_key), e.properties->>'error_type' AS reason, t.step_key,
       count(*), count(DISTINCT e.task_id),
       (array_agg(e.body ORDER BY e.created_at DESC, e.id DESC))[1]
FROM onboarding_contextentry e
JOIN onboarding_task t ON t.id = e.task_id {joins}
WHERE e.kind = 'error' AND e.created_at >= %(since)s AND e.created_at < %(until)s
  AND {where}
GROUP BY GROUPING SETS ((e.properties->>'error_type'), (e.properties->>'error_type', t.step_key))
"""

# The cohort first (filters applied per case), then only its tasks with a hand-off.
_HANDOFFS = """
WITH cases AS MATERIALIZED (
  SELECT c.id FROM onboarding_case c {account}
  WHERE c.opened_at >= %(since)s AND c.opened_at < %(until)s AND {where}
), h AS (
  SELECT t.case_id, sum(t.handoff_count) AS n
  FROM cases JOIN onboarding_task t ON t.case_id = cases.id
  WHERE t.handoff_count > 0
  GROUP BY t.case_id
)
SELECT n, count(*) FROM h GROUP BY n
UNION ALL
SELECT 0, (SELECT count(*) FROM cases) - (SELECT count(*) FROM h)
"""


def automation(f: Filters) -> Report:
    report = Report(KEY, TITLE, f, ignores=IGNORES)
    joins, conds, params = case_filter_join(f, "t.case_id")
    params.update(since=f.since, until=f.until)
    ok_cte, ok_join, ok_params = matching_cases(f, "t")

    counts = [
        Column("finished", "Finished", "int"),
        Column("alone", "Without escalation", "int"),
        Column("assisted", "Human-assisted", "int"),
        Column("first_attempt", "First attempt", "int"),
        Column("alone_share", "Automation alone", "pct"),
        Column("assist_rate", "Human-assist rate", "pct"),
        Column("attempts_per_step", "Attempts per step", "ratio"),
    ]

    def tail(n: int, alone: int, assisted: int, first: int, attempts: int | None) -> tuple:
        return (
            n,
            alone,
            assisted,
            first,
            share(alone, n),
            share(assisted, n),
            share(attempts or 0, n),
        )

    by_step, summary = [], []
    for grouped, step_key, *values in fetch(
        _FINISHED.format(
            materialized="MATERIALIZED" if ok_cte else "", ok_cte=ok_cte, ok_join=ok_join
        ),
        {**params, **ok_params},
    ):
        if grouped:
            summary.append(tail(*values))
        else:
            by_step.append((step_key, *tail(*values)))
    report.add(
        Table(
            "summary",
            "Overall",
            counts,
            summary or [tail(0, 0, 0, 0, 0)],
            note="Automated steps done in the range.",
        )
    )
    report.add(Table("by_step", "By step", [Column("step_key", "Step"), *counts], sorted(by_step)))

    reasons, by_step_reason = [], []
    for grouped, reason, step_key, attempts, tasks, example in fetch(
        _FAILURES.format(joins=joins, where=where(conds)), params
    ):
        if grouped:
            reasons.append((reason or "", attempts, tasks, example))
        else:
            by_step_reason.append((step_key, reason or "", attempts, tasks))
    reasons.sort(key=lambda r: (-r[1], r[0]))
    report.add(
        Table(
            "failures",
            "Top failure reasons",
            [
                Column("reason", "Reason"),
                Column("attempts", "Failed attempts", "int"),
                Column("tasks", "Steps hit", "int"),
                Column("example", "Latest message", compare=False),
            ],
            reasons[:TOP_REASONS],
            total=len(reasons),
            note="Failed attempts recorded in the range.",
        )
    )
    report.add(
        Table(
            "failures_by_step",
            "Failures by step",
            [
                Column("step_key", "Step"),
                Column("reason", "Reason"),
                Column("attempts", "Failed attempts", "int"),
                Column("tasks", "Steps hit", "int"),
            ],
            sorted(by_step_reason, key=lambda r: (r[0], -r[2], r[1])),
        )
    )

    case_conds, case_params, needs_account = case_conditions(f)
    account = ACCOUNT_OF_CASE if needs_account else ""
    distribution = fetch(
        _HANDOFFS.format(account=account, where=where(case_conds)), {**params, **case_params}
    )
    distribution = [(n, count) for n, count in distribution if count]
    cases = sum(count for _, count in distribution)
    handoffs = sum(n * count for n, count in distribution)
    grouped_counts: dict[str, int] = {"0": 0, "1": 0, "2": 0, "3 or more": 0}
    for n, count in distribution:
        grouped_counts["3 or more" if n >= 3 else str(n)] += count
    report.add(
        Table(
            "handoffs",
            "Handoffs per case",
            [
                Column("cases", "Cases opened", "int"),
                Column("handoffs", "Handoffs", "int"),
                Column("per_case", "Per case", "ratio"),
                Column("with_handoff", "Cases with a handoff", "pct"),
            ],
            [(cases, handoffs, share(handoffs, cases), share(cases - grouped_counts["0"], cases))],
        )
    )
    report.add(
        Table(
            "handoff_distribution",
            "Cases by number of handoffs",
            [Column("handoffs", "Handoffs"), Column("cases", "Cases", "int")],
            list(grouped_counts.items()),
        )
    )
    return report

#!/usr/bin/env python
"""Manager reports at a million cases, against the same numbers recomputed from raw events.

    python bench/reports.py                    # 1,000,000 cases over 730 days (once), then time
    python bench/reports.py --cases 20000      # development size
    python bench/reports.py --rebuild          # drop the database and generate again
    python bench/reports.py --no-replay        # only the reports (and the raw-scan floor)
    python bench/reports.py --smoke            # CI: 2,000 cases, one round

Generates N cases of an 8-step playbook (two automated steps, four human, two signal;
~8 tasks, ~7.7 SLA clocks and ~42 events per case) with set-based SQL: INSERT … SELECT
over generate_series, chunk by chunk, with a progress bar. Every case's history is a
list of transitions the write path could have made (activations, claims, hand-offs,
waits on the customer, failed and exhausted automation attempts, escalations, signals,
SLA warnings and breaches at their instants, cancellations of stuck cases); the task,
case, clock and context-log rows *and* the events are derived from that one list, so
the facts and the events tell the same story. Five of the steps have an expected
duration (`EXPECTED_WITHIN`), which the account health report measures the pace against.

Then, for each report and two filter sets (the page's defaults: the last 28 days; and
one segment filter), it times:
  * the report as the page computes it (`analytics.metrics.run`: aggregate SQL over the
    facts), median of --rounds runs;
  * the same numbers recomputed from the raw events (`analytics.metrics.replay`: reads
    the events of the cases concerned and folds them in Python), once, and checks the
    two agree;
  * the floor of any raw-event recomputation: one SQL pass counting the events it has
    to read (no folding at all).
Targets (issue 6): every report < 1 s; at least 10x faster than the raw-event recomputation.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.transitions import (  # noqa: E402  (shared with the other benchmarks)
    ensure_database,
    migrate,
    setup_django,
)

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/onboarding_bench_reports"
RESULTS_DIR = Path(__file__).resolve().parent / "results"
TARGET_SECONDS = 1.0
TARGET_RATIO = 10.0
CHUNK = 20_000  # cases per generation statement batch
PLAYBOOK = "bench-onboarding"
BENCH = "bench"

# The playbook: (key, kind, queue, policy, milestone, first value), linear.
STEPS = [
    ("provision", "automated", None, "bench-automation", True, False),
    ("welcome", "automated", None, "bench-automation", False, False),
    ("kickoff", "human", "bench-specialists", "bench-human", True, False),
    ("setup", "human", "bench-technical", "bench-human", False, False),
    ("connect", "signal", None, "bench-signal", True, False),
    ("first_report", "signal", None, "bench-signal", True, True),
    ("training", "human", "bench-specialists", "bench-human", False, False),
    ("handover", "human", "bench-specialists", "bench-human", True, False),
]
# The health report's pace: how long after the opening these steps are expected done.
EXPECTED_WITHIN = {
    "provision": dt.timedelta(days=1),
    "kickoff": dt.timedelta(days=3),
    "connect": dt.timedelta(days=8),
    "first_report": dt.timedelta(days=12),
    "handover": dt.timedelta(days=21),
}
QUEUES = ["bench-specialists", "bench-technical", "bench-exceptions"]
# (key, target seconds, warn %): 24/7 clocks that only notify, as the write path keeps them.
POLICIES = [
    ("bench-automation", 1800, 80),
    ("bench-human", 2 * 86400, 75),
    ("bench-signal", 7 * 86400, 70),
]
AGENTS = {  # username → queues
    **{f"bench-agent-{n}": ["bench-specialists"] for n in range(1, 5)},
    **{f"bench-agent-{n}": ["bench-specialists", "bench-technical"] for n in range(5, 7)},
    **{f"bench-agent-{n}": ["bench-technical"] for n in range(7, 10)},
    **{f"bench-agent-{n}": ["bench-exceptions"] for n in range(10, 12)},
}
PLANS = ["free", "starter", "growth", "enterprise"]
SEGMENTS = ["smb", "mid-market", "enterprise"]
REGIONS = ["na", "emea", "apac", "latam"]
CHANNELS = ["self-serve", "sales", "partner", "referral"]
SEGMENT_FILTER = {"plan": "enterprise"}  # the segment-filtered run
TABLES = [
    "analytics_event",
    "onboarding_contextentry",
    "onboarding_slatimer",
    "onboarding_task",
    "onboarding_case",
    "onboarding_account",
]


# --- configuration through the services ----------------------------------------------


@dataclass
class Setup:
    steps: dict[int, list[int]]  # version number → step ids by position
    step_keys: list[str]
    queues: dict[str, int]
    members: dict[str, list[int]]  # queue key → user ids
    policies: dict[str, int]
    v2_at: dt.datetime


def configure(now: dt.datetime, days: int) -> Setup:
    """Queues, agents, 24/7 SLA policies and the playbook (v1, and v2 published at 60 % of
    the span), made through the services and the ORM; idempotent."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group, Permission

    from onboarding import clock, services
    from onboarding.actors import WORK_PERM, Actor
    from onboarding.models import Playbook, PlaybookVersion, Queue, SlaPolicy, Step

    system = Actor.system(BENCH, source=BENCH)
    queues = {
        key: Queue.objects.get_or_create(
            key=key, defaults={"name": key.title(), "is_exceptions": key.endswith("exceptions")}
        )[0]
        for key in QUEUES
    }
    policies = {
        key: SlaPolicy.objects.get_or_create(
            key=key,
            version=1,
            defaults={
                "name": key,
                "target": dt.timedelta(seconds=target),
                "warn_percent": warn,
                "on_breach": SlaPolicy.OnBreach.NOTIFY,
            },
        )[0]
        for key, target, warn in POLICIES
    }
    group, _ = Group.objects.get_or_create(name="Bench agents")
    app, codename = WORK_PERM.split(".")
    group.permissions.add(Permission.objects.get(content_type__app_label=app, codename=codename))
    members: dict[str, list[int]] = {key: [] for key in QUEUES}
    user_model = get_user_model()
    for username, keys in AGENTS.items():
        user, created = user_model.objects.get_or_create(
            username=username, defaults={"is_staff": True, "first_name": username.title()}
        )
        if created:
            user.set_unusable_password()
            user.save()
        user.groups.add(group)
        for key in keys:
            queues[key].members.add(user)
            members[key].append(user.pk)

    start = now - dt.timedelta(days=days + 1)
    v2_at = now - dt.timedelta(days=round(days * 0.4))
    playbook = Playbook.objects.filter(key=PLAYBOOK).first()
    if playbook is None:
        with clock.travel_to(start):
            playbook = services.playbook_create(key=PLAYBOOK, name="Bench onboarding", actor=system)
            version = playbook.versions.get()
            for key, kind, queue, policy, milestone, first_value in STEPS:
                services.playbook_version_add_step(
                    version=version,
                    actor=system,
                    key=key,
                    name=key.replace("_", " ").title(),
                    kind=kind,
                    queue=queues[queue] if queue else None,
                    handler=key if kind == "automated" else "",
                    signal_name=key.title() if kind == "signal" else "",
                    is_milestone=milestone,
                    is_first_value=first_value,
                    sla_policy=policies[policy],
                    expected_within=EXPECTED_WITHIN.get(key),
                )
            services.playbook_version_publish(version=version, actor=system)
        with clock.travel_to(v2_at):
            draft = services.playbook_draft_new_version(
                playbook=playbook, actor=system, changelog="Same steps, new wording."
            )
            services.playbook_version_publish(version=draft, actor=system)
    # A database generated before steps had expected durations: give its (published,
    # so frozen) steps theirs with a plain UPDATE. Bench configuration only; the product
    # changes expectations by drafting a new version.
    for key, within in EXPECTED_WITHIN.items():
        Step.objects.filter(version__playbook=playbook, key=key, expected_within=None).update(
            expected_within=within
        )
    steps: dict[int, list[int]] = {}
    for version in PlaybookVersion.objects.filter(playbook=playbook):
        steps[version.number] = list(
            version.steps.order_by("position", "id").values_list("id", flat=True)
        )
        if version.number == 2:
            v2_at = version.published_at
    return Setup(
        steps=steps,
        step_keys=[s[0] for s in STEPS],
        queues={k: q.pk for k, q in queues.items()},
        members=members,
        policies={k: p.pk for k, p in policies.items()},
        v2_at=v2_at,
    )


# --- the generator: one list of transitions per case, facts and events from it ----------

U_FUNCTION = """
CREATE OR REPLACE FUNCTION bench_u(a bigint, b int) RETURNS float8
IMMUTABLE PARALLEL SAFE LANGUAGE sql AS
$$ SELECT ((hashint8(a * 1031 + b) & 2147483647)::float8 + 0.5) / 2147483648.0 $$
"""


def _pick(queue: str, u: str) -> str:
    """SQL: one member of the queue whose id `queue` evaluates to, chosen by `u`."""
    return (
        f"CASE {queue} WHEN %(specialists)s THEN "
        f"(%(members_specialists)s::bigint[])[1 + floor({u} * %(n_specialists)s)::int] "
        f"WHEN %(technical)s THEN "
        f"(%(members_technical)s::bigint[])[1 + floor({u} * %(n_technical)s)::int] "
        f"ELSE (%(members_exceptions)s::bigint[])[1 + floor({u} * %(n_exceptions)s)::int] END"
    )


# Cases of the chunk: when, who, on which version, and whether cancelled early.
CASES = """
CREATE TEMP TABLE bc ON COMMIT DROP AS
SELECT g AS id,
       %(now)s - ((%(n)s - g + 0.5) / %(n)s * %(days)s * 86400) * interval '1 second' AS opened_at,
       (%(plans)s::text[])[1 + floor(bench_u(g, 1) * 4)::int] AS plan,
       (%(segments)s::text[])[1 + floor(bench_u(g, 2) * 3)::int] AS segment,
       (%(regions)s::text[])[1 + floor(bench_u(g, 3) * 4)::int] AS region,
       (%(channels)s::text[])[1 + floor(bench_u(g, 4) * 4)::int] AS channel,
       CASE WHEN bench_u(g, 5) < 0.03 THEN (1 + bench_u(g, 6) * 19) * 86400 END AS early_cancel
FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) AS g;
ALTER TABLE bc ADD COLUMN version int, ADD COLUMN seg jsonb;
UPDATE bc SET version = CASE WHEN opened_at >= %(v2_at)s THEN 2 ELSE 1 END,
              seg = jsonb_build_object('plan', plan, 'segment', segment, 'region', region,
                                       'channel', channel);
"""

# One row per task: its step, its random path and how long each phase takes (seconds).
TASKS = """
CREATE TEMP TABLE bt ON COMMIT DROP AS
WITH d AS (
  SELECT c.id AS case_id, c.opened_at, c.version, c.early_cancel, k,
         (c.id - 1) * 8 + k AS id,
         (%(kinds)s::text[])[k] AS kind, (%(keys)s::text[])[k] AS step_key,
         CASE c.version WHEN 1 THEN (%(steps_v1)s::bigint[])[k]
                        ELSE (%(steps_v2)s::bigint[])[k] END AS step_id,
         (%(step_queues)s::bigint[])[k] AS queue_id,
         (%(step_queue_keys)s::text[])[k] AS queue_key,
         (%(policies)s::bigint[])[k] AS policy_id,
         (%(policy_keys)s::text[])[k] AS policy_key,
         (%(targets)s::float8[])[k] AS target,
         (%(warns)s::float8[])[k] AS warn,
         bench_u((c.id - 1) * 8 + k, 11) AS u1, bench_u((c.id - 1) * 8 + k, 12) AS u2,
         bench_u((c.id - 1) * 8 + k, 13) AS u3, bench_u((c.id - 1) * 8 + k, 14) AS u4,
         bench_u((c.id - 1) * 8 + k, 15) AS u5, bench_u((c.id - 1) * 8 + k, 16) AS u6,
         bench_u((c.id - 1) * 8 + k, 17) AS u7, bench_u((c.id - 1) * 8 + k, 18) AS u8
  FROM bc c CROSS JOIN generate_series(1, 8) AS k
), p AS (
  SELECT d.*,
    -- automated: wait to start, run, fail once (6 %%) or three times (1.5 %%: escalated)
    10 + u1 * 50 AS s1, 5 + u2 * 115 AS run, 30 + u4 * 60 AS backoff,
    u3 < 0.06 AS fails, u3 < 0.015 AS exhausted,
    1800 + u5 * 25200 AS exc_wait, 1800 + u6 * 9000 AS fix,
    (%(errors)s::text[])[1 + floor(u7 * 3)::int] AS error_type,
    -- human: queued, worked; a hand-off (8 %%) and a wait on the customer (15 %%)
    least(-ln(u1) * 6 * 3600, 10 * 86400) AS queued, 900 + u2 * 20000 AS work,
    u3 < 0.08 AS handed_off, 600 + u8 * 3600 AS before_handoff,
    least(-ln(u4) * 3 * 3600, 5 * 86400) AS queued_again,
    u5 < 0.15 AS waits, 7200 + u6 * 250000 AS wait, u7 AS wait_after,
    -- signal: the customer acts after a while, or never (6 %%)
    -ln(u1) * (%(signal_hours)s::float8[])[k] * 3600 AS signal_after, u2 < 0.06 AS never
  FROM d
), o AS (
  SELECT p.*,
    -- when the person who finishes it claimed it (after the hand-off, if any)
    queued + CASE WHEN handed_off THEN before_handoff + queued_again ELSE 0 END AS last_claim,
    CASE kind
      WHEN 'automated' THEN
        CASE WHEN exhausted THEN s1 + 3 * run + 3 * backoff + exc_wait + fix
             WHEN fails THEN s1 + 2 * run + backoff
             ELSE s1 + run END
      WHEN 'human' THEN
        queued + CASE WHEN handed_off THEN before_handoff + queued_again ELSE 0 END
               + work + CASE WHEN waits THEN wait ELSE 0 END
      ELSE CASE WHEN never THEN 1e9 ELSE signal_after END
    END AS duration
  FROM p
)
SELECT o.*,
  o.opened_at + coalesce(sum(o.duration) OVER w, 0) * interval '1 second' AS activated,
  {pick_queue} AS claimer,
  CASE o.queue_id WHEN %(specialists)s THEN %(technical)s ELSE %(specialists)s END
    AS other_queue_id,
  CASE o.queue_id WHEN %(specialists)s THEN %(technical_key)s ELSE %(specialists_key)s END
    AS other_queue_key,
  {pick_other} AS claimer2,
  {pick_exceptions} AS fixer
FROM o
WINDOW w AS (PARTITION BY o.case_id ORDER BY o.k ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING);
""".format(
    pick_queue=_pick("o.queue_id", "o.u6"),
    pick_other=_pick(
        "CASE o.queue_id WHEN %(specialists)s THEN %(technical)s ELSE %(specialists)s END",
        "bench_u(o.id, 19)",
    ),
    pick_exceptions=_pick("%(exceptions)s", "bench_u(o.id, 20)"),
)

# When each case stops: a signal that never comes leaves the case stuck until someone
# cancels it 30-60 days later; 3 %% are cancelled early; the rest complete with step 8.
STOPS = """
CREATE TEMP TABLE bx ON COMMIT DROP AS
SELECT c.id, c.opened_at, c.version, c.seg, s.completes,
       least(c.opened_at + c.early_cancel * interval '1 second',
             s.stuck_at + (30 + bench_u(c.id, 7) * 30) * interval '1 day') AS cancel_at
FROM bc c JOIN (
  SELECT case_id,
         max(activated + duration * interval '1 second') FILTER (WHERE k = 8) AS completes,
         min(activated) FILTER (WHERE kind = 'signal' AND never) AS stuck_at
  FROM bt GROUP BY case_id
) s ON s.case_id = c.id;
ALTER TABLE bx ADD COLUMN cancelled bool, ADD COLUMN completed bool, ADD COLUMN cut timestamptz;
UPDATE bx SET cancelled = coalesce(cancel_at < %(now)s AND cancel_at < completes, false);
UPDATE bx SET completed = NOT cancelled AND completes <= %(now)s,
              cut = CASE WHEN cancelled THEN cancel_at ELSE %(now)s END;
"""

TRANSITIONS_TABLE = """
CREATE TEMP TABLE btr (
  task_id bigint, case_id bigint, k int, seq numeric, at timestamptz, name text,
  from_state text, to_state text, transition text, props jsonb, actor_type text,
  actor_id text, queue_after bigint, assignee_after bigint, error_after text
) ON COMMIT DROP;
"""

_TRANSITIONS = """
INSERT INTO btr
SELECT t.id, t.case_id, t.k, v.seq, t.activated + v.after * interval '1 second', v.name,
       v.fs, v.ts, v.tr, v.props, v.atype, v.aid, v.q, v.a, v.err
FROM bt t JOIN bx x ON x.id = t.case_id
CROSS JOIN LATERAL (VALUES {rows}
) AS v(seq, after, name, fs, ts, tr, props, atype, aid, q, a, err, present)
WHERE t.kind = '{kind}' AND v.present
  AND t.activated + v.after * interval '1 second' <= x.cut;
"""


def _row(seq, after, name, fs, ts, tr, props, atype, aid, queue, assignee, error, present):
    return (
        f"({seq}, ({after})::float8, '{name}', '{fs}', '{ts}', '{tr}', ({props})::jsonb, "
        f"'{atype}', ({aid})::text, ({queue})::bigint, ({assignee})::bigint, ({error})::text, "
        f"{present})"
    )


def _obj(**values: str) -> str:
    """SQL jsonb_build_object of SQL expressions."""
    return "jsonb_build_object(" + ", ".join(f"'{k}', {v}" for k, v in values.items()) + ")"


_E1, _E2, _E3 = (f"t.error_type || ': attempt {n} failed'" for n in (1, 2, 3))
_BOT = ("system", "'automation'")  # (actor type, actor id SQL) of the worker
_FLOW = ("system", "'workflow'")
_NO_ONE = ("NULL", "NULL")  # queue and assignee after: none
_EXC = ("%(exceptions)s", "t.fixer")
_RAN = "t.s1 + t.run"
_RAN2 = "t.s1 + 2 * t.run + t.backoff"
_RAN3 = "t.s1 + 3 * t.run + 3 * t.backoff"
_AUTOMATED = [
    _row(1, "0", "Step Activated", "pending", "scheduled", "schedule",
         _obj(kind="'automated'"), *_FLOW, *_NO_ONE, "''", "TRUE"),
    _row(2, "t.s1", "Step Started", "scheduled", "running", "start", _obj(attempt="1"),
         *_BOT, *_NO_ONE, "''", "TRUE"),
    _row(3, _RAN, "Step Completed", "running", "done", "succeed",
         _obj(completed_by="'automation'", attempt="1"), *_BOT, *_NO_ONE, "''", "NOT t.fails"),
    _row(3, _RAN, "Step Failed", "running", "scheduled", "fail",
         _obj(attempt="1", error_type="t.error_type"), *_BOT, *_NO_ONE, _E1, "t.fails"),
    _row(4, f"{_RAN} + t.backoff", "Step Started", "scheduled", "running", "start",
         _obj(attempt="2"), *_BOT, *_NO_ONE, _E1, "t.fails"),
    _row(5, _RAN2, "Step Completed", "running", "done", "succeed",
         _obj(completed_by="'automation'", attempt="2"), *_BOT, *_NO_ONE, "''",
         "t.fails AND NOT t.exhausted"),
    _row(5, _RAN2, "Step Failed", "running", "scheduled", "fail",
         _obj(attempt="2", error_type="t.error_type"), *_BOT, *_NO_ONE, _E2, "t.exhausted"),
    _row(6, f"{_RAN2} + 2 * t.backoff", "Step Started", "scheduled", "running", "start",
         _obj(attempt="3"), *_BOT, *_NO_ONE, _E2, "t.exhausted"),
    _row(7, _RAN3, "Step Escalated", "running", "queued", "escalate",
         _obj(to_queue="%(exceptions_key)s::text", cause="'attempts_exhausted'",
              error_type="t.error_type"),
         *_BOT, "%(exceptions)s", "NULL", _E3, "t.exhausted"),
    _row(8, f"{_RAN3} + t.exc_wait", "Step Claimed", "queued", "in_progress", "claim", "'{}'",
         "agent", "t.fixer", *_EXC, _E3, "t.exhausted"),
    _row(9, "t.duration", "Step Completed", "in_progress", "done", "complete",
         _obj(completed_by="'human'"), "agent", "t.fixer", *_EXC, _E3, "t.exhausted"),
]  # fmt: skip
_LAST_QUEUE = "CASE WHEN t.handed_off THEN t.other_queue_id ELSE t.queue_id END"
_WORKER = "CASE WHEN t.handed_off THEN t.claimer2 ELSE t.claimer END"
_WAIT_AT = "t.last_claim + t.wait_after * t.work"
_HUMAN = [
    _row(1, "0", "Step Activated", "pending", "queued", "enqueue",
         _obj(kind="'human'", queue="t.queue_key"), *_FLOW, "t.queue_id", "NULL", "''", "TRUE"),
    _row(2, "t.queued", "Step Claimed", "queued", "in_progress", "claim", "'{}'", "agent",
         "t.claimer", "t.queue_id", "t.claimer", "''", "TRUE"),
    _row(3, "t.queued + t.before_handoff", "Step Handed Off", "in_progress", "queued", "hand_off",
         _obj(from_queue="t.queue_key", to_queue="t.other_queue_key", to_assignee_id="NULL"),
         "agent", "t.claimer", "t.other_queue_id", "NULL", "''", "t.handed_off"),
    _row(4, "t.last_claim", "Step Claimed", "queued", "in_progress", "claim", "'{}'", "agent",
         "t.claimer2", "t.other_queue_id", "t.claimer2", "''", "t.handed_off"),
    _row(5, _WAIT_AT, "Step Awaiting Customer", "in_progress", "waiting", "wait_on_customer",
         "'{}'", "agent", _WORKER, _LAST_QUEUE, _WORKER, "''", "t.waits"),
    _row(6, f"{_WAIT_AT} + t.wait", "Step Resumed", "waiting", "in_progress", "resume", "'{}'",
         "agent", _WORKER, _LAST_QUEUE, _WORKER, "''", "t.waits"),
    _row(7, "t.duration", "Step Completed", "in_progress", "done", "complete",
         _obj(completed_by="'human'"), "agent", _WORKER, _LAST_QUEUE, _WORKER, "''", "TRUE"),
]  # fmt: skip
_SIGNAL = [
    _row(1, "0", "Step Activated", "pending", "waiting", "await_signal", _obj(kind="'signal'"),
         *_FLOW, *_NO_ONE, "''", "TRUE"),
    _row(2, "t.signal_after", "Step Completed", "waiting", "done", "complete_by_signal",
         _obj(completed_by="'signal'"), "system", "'product'", *_NO_ONE, "''", "NOT t.never"),
]  # fmt: skip
TRANSITIONS = "".join(
    _TRANSITIONS.format(kind=kind, rows=",\n  ".join(rows))
    for kind, rows in (("automated", _AUTOMATED), ("human", _HUMAN), ("signal", _SIGNAL))
)

# A cancelled case cancels every task not yet final, pending ones included.
_LAST = "(SELECT DISTINCT ON (task_id) * FROM btr ORDER BY task_id, seq DESC)"
CANCELLATIONS = f"""
INSERT INTO btr
SELECT t.id, t.case_id, t.k, 90, x.cut, 'Step Cancelled', coalesce(l.to_state, 'pending'),
       'cancelled', 'cancel', '{{"reason": "case cancelled"}}'::jsonb, 'system', 'workflow',
       CASE WHEN l.task_id IS NULL THEN t.queue_id ELSE l.queue_after END, l.assignee_after,
       coalesce(l.error_after, '')
FROM bt t JOIN bx x ON x.id = t.case_id
LEFT JOIN {_LAST} l ON l.task_id = t.id
WHERE x.cancelled AND coalesce(l.to_state, 'pending') NOT IN ('done', 'skipped', 'cancelled');
"""

# The SLA clock of every task that went live (all eight steps have a policy).
_CATEGORY = (
    "CASE WHEN {s} IN ('scheduled', 'running') THEN 'automation' "
    "WHEN {s} = 'waiting' THEN 'customer' ELSE 'internal' END"
)
CLOCKS = f"""
CREATE TEMP TABLE btm ON COMMIT DROP AS
SELECT t.id AS task_id, t.case_id, t.k, t.policy_id, t.policy_key, t.target,
       t.activated AS started_at,
       t.activated + t.target * interval '1 second' AS due_at,
       t.activated + t.target * t.warn / 100 * interval '1 second' AS warn_at,
       d.at AS done_at, x.cancelled, x.cut, l.at AS last_at, l.to_state AS last_state
FROM bt t JOIN bx x ON x.id = t.case_id
LEFT JOIN btr d ON d.task_id = t.id AND d.to_state = 'done'
LEFT JOIN {_LAST} l ON l.task_id = t.id
WHERE t.activated <= x.cut;
ALTER TABLE btm ADD COLUMN stopped_at timestamptz, ADD COLUMN state text,
  ADD COLUMN breached_at timestamptz, ADD COLUMN warned_at timestamptz,
  ADD COLUMN segment_at timestamptz;
UPDATE btm SET stopped_at = coalesce(done_at, CASE WHEN cancelled THEN cut END);
UPDATE btm SET state = CASE
    WHEN done_at IS NOT NULL AND done_at < due_at THEN 'met'
    WHEN due_at <= coalesce(stopped_at, %(now)s) THEN 'breached'
    WHEN stopped_at IS NOT NULL THEN 'cancelled'
    ELSE 'running' END;
UPDATE btm SET breached_at = CASE WHEN state = 'breached' THEN due_at END,
  warned_at = CASE WHEN warn_at <= %(now)s AND (stopped_at IS NULL OR warn_at < stopped_at)
                   THEN warn_at END;
-- The open interval starts at the last transition (or the breach, which closes one).
UPDATE btm SET segment_at = coalesce(stopped_at, greatest(last_at, breached_at));
CREATE TEMP TABLE bat ON COMMIT DROP AS
SELECT m.task_id,
  coalesce(sum(s.seconds) FILTER (WHERE s.category = 'internal'), 0) AS internal,
  coalesce(sum(s.seconds) FILTER (WHERE s.category = 'automation'), 0) AS automation,
  coalesce(sum(s.seconds) FILTER (WHERE s.category = 'customer'), 0) AS customer
FROM btm m JOIN (
  SELECT r.task_id, {_CATEGORY.format(s="r.to_state")} AS category, r.at,
         lead(r.at) OVER (PARTITION BY r.task_id ORDER BY r.seq) AS next_at
  FROM btr r
) s0 ON s0.task_id = m.task_id
CROSS JOIN LATERAL (
  SELECT s0.category, greatest(EXTRACT(EPOCH FROM
    least(coalesce(s0.next_at, m.segment_at), m.segment_at) - s0.at), 0)::float8 AS seconds
) s
GROUP BY m.task_id;
"""

ACCOUNTS = """
INSERT INTO onboarding_account (id, external_id, name, plan, segment, region, channel,
                                properties, created_at, updated_at)
SELECT c.id, 'bench-' || c.id, 'Bench account ' || c.id, c.plan, c.segment, c.region,
       c.channel, '{}'::jsonb, c.opened_at - interval '1 minute',
       c.opened_at - interval '1 minute'
FROM bc c;
"""

FACTS = f"""
INSERT INTO onboarding_case (id, account_id, playbook_id, playbook_version_id, state, opened_at,
                             completed_at, cancelled_at, updated_at, hold_reason, cancel_reason,
                             reopen_count)
SELECT x.id, x.id, %(playbook)s, (%(versions)s::bigint[])[x.version],
       CASE WHEN x.cancelled THEN 'cancelled' WHEN x.completed THEN 'completed' ELSE 'active' END,
       x.opened_at, CASE WHEN x.completed THEN x.completes END,
       CASE WHEN x.cancelled THEN x.cut END,
       CASE WHEN x.cancelled THEN x.cut WHEN x.completed THEN x.completes ELSE x.opened_at END,
       '', CASE WHEN x.cancelled THEN 'stuck' ELSE '' END, 0
FROM bx x;

INSERT INTO onboarding_task (id, case_id, step_id, step_key, kind, required, max_attempts, state,
  queue_id, assignee_id, priority, attempts, handoff_count, escalated, last_error, skip_reason,
  not_before, lease_expires_at, dispatched_at, sla_due_at, sla_policy_id, created_at,
  activated_at, started_at, completed_at, updated_at)
SELECT t.id, t.case_id, t.step_id, t.step_key, t.kind, TRUE, 3, coalesce(l.to_state, 'pending'),
       CASE WHEN l.task_id IS NULL THEN t.queue_id ELSE l.queue_after END, l.assignee_after, 0,
       coalesce(a.attempts, 0), coalesce(a.handoffs, 0), coalesce(a.escalated, FALSE),
       coalesce(l.error_after, ''), '',
       CASE WHEN t.kind = 'automated' AND l.task_id IS NOT NULL THEN l.at END,
       CASE WHEN l.to_state = 'running' THEN l.at + interval '5 minutes' END,
       CASE WHEN t.kind = 'automated' AND l.task_id IS NOT NULL THEN l.at END,
       CASE WHEN m.state = 'running' THEN m.due_at END,
       m.policy_id, t.opened_at, a.activated_at, a.started_at,
       CASE WHEN l.to_state IN ('done', 'cancelled') THEN l.at END,
       coalesce(l.at, t.opened_at)
FROM bt t
LEFT JOIN {_LAST} l ON l.task_id = t.id
LEFT JOIN (
  SELECT task_id, count(*) FILTER (WHERE name = 'Step Started') AS attempts,
         count(*) FILTER (WHERE name = 'Step Handed Off') AS handoffs,
         bool_or(name = 'Step Escalated') AS escalated,
         min(at) FILTER (WHERE name = 'Step Activated') AS activated_at,
         min(at) FILTER (WHERE name IN ('Step Started', 'Step Claimed')) AS started_at
  FROM btr GROUP BY task_id
) a ON a.task_id = t.id
LEFT JOIN btm m ON m.task_id = t.id;

INSERT INTO onboarding_slatimer (id, kind, case_id, task_id, policy_id, state, started_at, due_at,
  warn_at, warned_at, breached_at, stopped_at, consumed_seconds, segment_started_at,
  segment_category, attribution)
SELECT m.task_id, 'task', m.case_id, m.task_id, m.policy_id, m.state, m.started_at, m.due_at,
       m.warn_at, m.warned_at, m.breached_at, m.stopped_at,
       EXTRACT(EPOCH FROM m.segment_at - m.started_at)::float8, m.segment_at,
       {_CATEGORY.format(s="m.last_state")},
       jsonb_build_object('internal', a.internal, 'automation', a.automation,
                          'customer', a.customer)
FROM btm m JOIN bat a ON a.task_id = m.task_id;

INSERT INTO onboarding_contextentry (case_id, task_id, kind, body, author_id, actor_type,
                                     actor_id, properties, created_at)
SELECT r.case_id, r.task_id,
       CASE r.name WHEN 'Step Handed Off' THEN 'handoff' WHEN 'Step Awaiting Customer'
                   THEN 'note' ELSE 'error' END,
       CASE r.name WHEN 'Step Handed Off' THEN 'Needs the other team.'
                   WHEN 'Step Awaiting Customer' THEN 'Waiting for the customer.'
                   ELSE r.error_after END,
       CASE WHEN r.actor_type = 'agent' THEN r.actor_id::bigint END, r.actor_type, r.actor_id,
       CASE r.name
         WHEN 'Step Handed Off' THEN r.props - 'transition'
         WHEN 'Step Awaiting Customer' THEN '{{}}'::jsonb
         ELSE jsonb_build_object('attempt', coalesce((r.props->>'attempt')::int, 3),
                                 'error_type', r.props->>'error_type') END,
       r.at
FROM btr r
WHERE r.name IN ('Step Failed', 'Step Escalated', 'Step Handed Off', 'Step Awaiting Customer');
"""

_ISO = """to_char({t} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')"""
EVENTS = f"""
INSERT INTO analytics_event (uuid, name, schema_version, occurred_at, recorded_at, account_id,
  case_id, task_id, step_key, playbook_key, playbook_version, actor_type, actor_id, source,
  segmentation, properties)
SELECT gen_random_uuid(), e.name, 1, e.at, e.at, x.id, e.case_id, e.task_id, e.step_key,
       %(playbook_key)s, CASE WHEN e.case_id IS NULL THEN NULL ELSE x.version END,
       e.atype, e.aid, 'bench', x.seg, e.props
FROM (
  SELECT c.id AS account_id, NULL::bigint AS case_id, NULL::bigint AS task_id,
         c.opened_at - interval '1 minute' AS at, -1 AS grp, 0 AS k, 0::numeric AS seq,
         'Account Created' AS name, '' AS step_key, 'system' AS atype, 'bench' AS aid,
         jsonb_build_object('external_id', 'bench-' || c.id) AS props
  FROM bc c
  UNION ALL
  SELECT x.id, x.id, NULL, x.opened_at, 0, 0, 0, 'Case Opened', '', 'system', 'bench',
         jsonb_build_object('task_count', 8)
  FROM bx x
  UNION ALL
  SELECT x.id, x.id, NULL, x.completes, 2, 0, 0, 'Case Completed', '', 'system', 'workflow',
         jsonb_build_object('transition', 'complete', 'from_state', 'active',
                            'to_state', 'completed', 'duration_seconds',
                            EXTRACT(EPOCH FROM x.completes - x.opened_at)::float8)
  FROM bx x WHERE x.completed
  UNION ALL
  SELECT x.id, x.id, NULL, x.cut, 0, 0, 1, 'Case Cancelled', '', 'api', 'bench-crm',
         jsonb_build_object('transition', 'cancel', 'from_state', 'active',
                            'to_state', 'cancelled', 'reason', 'stuck')
  FROM bx x WHERE x.cancelled
  UNION ALL
  SELECT r.case_id, r.case_id, r.task_id, r.at, 1, r.k, r.seq, r.name, (%(keys)s::text[])[r.k],
         r.actor_type, r.actor_id,
         r.props || jsonb_build_object('transition', r.transition, 'from_state', r.from_state,
                                       'to_state', r.to_state)
  FROM btr r
  UNION ALL
  SELECT m.case_id, m.case_id, m.task_id, m.started_at, 1, m.k, 1.5, 'SLA Started',
         (%(keys)s::text[])[m.k], 'system', 'workflow',
         jsonb_build_object('policy', m.policy_key, 'policy_version', 1, 'kind', 'task',
                            'target_seconds', m.target, 'due_at', {_ISO.format(t="m.due_at")})
  FROM btm m
  UNION ALL
  SELECT m.case_id, m.case_id, m.task_id, m.warned_at, 1, m.k, 50, 'SLA Warning',
         (%(keys)s::text[])[m.k], 'system', 'sweeper',
         jsonb_build_object('policy', m.policy_key, 'target_seconds', m.target,
           'consumed_seconds', round(EXTRACT(EPOCH FROM m.warned_at - m.started_at), 3)::float8)
  FROM btm m WHERE m.warned_at IS NOT NULL
  UNION ALL
  SELECT m.case_id, m.case_id, m.task_id, m.breached_at, 1, m.k, 51, 'SLA Breached',
         (%(keys)s::text[])[m.k], 'system', 'sweeper',
         jsonb_build_object('transition', 'breach', 'from_state', 'running',
                            'to_state', 'breached', 'policy', m.policy_key,
                            'target_seconds', m.target)
  FROM btm m WHERE m.breached_at IS NOT NULL
  UNION ALL
  SELECT m.case_id, m.case_id, m.task_id, m.stopped_at, 1, m.k, 95, 'SLA Met',
         (%(keys)s::text[])[m.k], 'system', 'sla',
         jsonb_build_object('transition', 'meet', 'from_state', 'running', 'to_state', 'met',
           'consumed_seconds', round(EXTRACT(EPOCH FROM m.stopped_at - m.started_at), 3)::float8,
           'target_seconds', m.target)
  FROM btm m WHERE m.state = 'met'
  UNION ALL
  SELECT m.case_id, m.case_id, m.task_id, m.stopped_at, 1, m.k, 89, 'SLA Cancelled',
         (%(keys)s::text[])[m.k], 'system', 'sla',
         jsonb_build_object('transition', 'cancel', 'from_state', 'running',
                            'to_state', 'cancelled', 'reason', 'case cancelled')
  FROM btm m WHERE m.state = 'cancelled'
) e JOIN bx x ON x.id = e.account_id
ORDER BY e.account_id, e.at, e.grp, e.k, e.seq;
"""


# --- loading ------------------------------------------------------------------------------

META = "CREATE TABLE IF NOT EXISTS bench_meta (key text PRIMARY KEY, value jsonb NOT NULL)"


def admin(url: str, *statements: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def read_meta(url: str) -> dict[str, Any]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(META)
        return dict(conn.execute("SELECT key, value FROM bench_meta").fetchall())


def write_meta(url: str, **values: Any) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(META)
        for key, value in values.items():
            conn.execute(
                "INSERT INTO bench_meta VALUES (%s, %s) ON CONFLICT (key) DO UPDATE "
                "SET value = excluded.value",
                (key, json.dumps(value, default=str)),
            )


def strip_indexes(url: str) -> list[str]:
    """Drop the loaded tables' secondary indexes and constraints (keeping primary keys);
    return the DDL that puts them back. Building an index once over the loaded rows is
    far cheaper than maintaining it row by row (the events' random uuids above all)."""
    import psycopg

    restore: list[str] = []
    with psycopg.connect(url, autocommit=True) as conn:
        for table in TABLES:
            constraints = conn.execute(
                "SELECT conname, pg_get_constraintdef(oid), contype FROM pg_constraint "
                "WHERE conrelid = %s::regclass AND contype IN ('u', 'f', 'c')",
                (table,),
            ).fetchall()
            owned = {name for name, _, kind in constraints if kind == "u"}
            indexes = conn.execute(
                "SELECT i.indexname, i.indexdef FROM pg_indexes i "
                "WHERE i.tablename = %s AND i.indexname NOT IN ("
                "  SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass "
                "  AND contype = 'p')",
                (table, table),
            ).fetchall()
            for name, definition in indexes:
                if name in owned:
                    continue
                conn.execute(f'DROP INDEX "{name}"')
                restore.append(definition)
            for name, definition, kind in constraints:
                if kind == "c":
                    continue  # checks cost nothing to keep
                conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
                restore.append(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
    # unique constraints first (foreign keys may need them), then the rest
    return sorted(restore, key=lambda ddl: ("FOREIGN KEY" in ddl, ddl))


def restore_indexes(url: str, restore: list[str]) -> None:
    from tqdm import tqdm

    for ddl in tqdm(restore, desc="rebuilding indexes and constraints", unit="index"):
        admin(url, "SET maintenance_work_mem = '512MB'; " + ddl)


def chunk_params(setup: Setup, now: dt.datetime, n: int, days: int) -> dict[str, Any]:
    from onboarding.models import Playbook

    queues = setup.queues
    members = setup.members
    playbook = Playbook.objects.get(key=PLAYBOOK)
    versions = dict(playbook.versions.values_list("number", "id"))
    targets = {key: seconds for key, seconds, _ in POLICIES}
    warns = {key: warn for key, _, warn in POLICIES}
    return {
        "now": now,
        "n": n,
        "days": days,
        "v2_at": setup.v2_at,
        "plans": PLANS,
        "segments": SEGMENTS,
        "regions": REGIONS,
        "channels": CHANNELS,
        "kinds": [s[1] for s in STEPS],
        "keys": [s[0] for s in STEPS],
        "steps_v1": setup.steps[1],
        "steps_v2": setup.steps[2],
        "step_queues": [queues[s[2]] if s[2] else None for s in STEPS],
        "step_queue_keys": [s[2] for s in STEPS],
        "policies": [setup.policies[s[3]] for s in STEPS],
        "policy_keys": [s[3] for s in STEPS],
        "targets": [float(targets[s[3]]) for s in STEPS],
        "warns": [float(warns[s[3]]) for s in STEPS],
        "signal_hours": [36.0 if s[0] == "connect" else 60.0 for s in STEPS],
        "errors": ["TimeoutError", "HTTPError", "QuotaExceeded"],
        "specialists": queues["bench-specialists"],
        "technical": queues["bench-technical"],
        "exceptions": queues["bench-exceptions"],
        "specialists_key": "bench-specialists",
        "technical_key": "bench-technical",
        "exceptions_key": "bench-exceptions",
        "members_specialists": members["bench-specialists"],
        "members_technical": members["bench-technical"],
        "members_exceptions": members["bench-exceptions"],
        "n_specialists": len(members["bench-specialists"]),
        "n_technical": len(members["bench-technical"]),
        "n_exceptions": len(members["bench-exceptions"]),
        "playbook": playbook.pk,
        "playbook_key": PLAYBOOK,
        "versions": [versions[1], versions[2]],
    }


def generate(url: str, setup: Setup, *, n: int, days: int, now: dt.datetime) -> float:
    """Load n cases and everything they imply; returns the seconds it took."""
    import psycopg
    from tqdm import tqdm

    t0 = time.perf_counter()
    write_meta(url, state="loading")  # an interrupted load is rebuilt from scratch
    restore = strip_indexes(url)
    params = chunk_params(setup, now, n, days)
    steps = [CASES, TASKS, STOPS, TRANSITIONS_TABLE, TRANSITIONS, CANCELLATIONS, CLOCKS,
             ACCOUNTS, FACTS, EVENTS]  # fmt: skip
    with psycopg.connect(url) as conn, tqdm(total=n, desc="generating cases", unit="case") as bar:
        conn.execute(U_FUNCTION)
        conn.commit()
        for lo in range(1, n + 1, CHUNK):
            hi = min(lo + CHUNK - 1, n)
            with conn.transaction():
                for block in steps:
                    for sql in re.split(r";\s*\n", block):
                        if sql.strip():
                            conn.execute(sql, {**params, "lo": lo, "hi": hi})
            bar.update(hi - lo + 1)
    admin(
        url,
        *(
            f"SELECT setval(pg_get_serial_sequence('{t}', 'id'), "
            f"(SELECT coalesce(max(id), 1) FROM {t}))"
            for t in TABLES
        ),
    )
    restore_indexes(url, restore)
    print("VACUUM (ANALYZE)…")
    admin(url, *(f"VACUUM (ANALYZE) {t}" for t in TABLES))
    seconds = time.perf_counter() - t0
    write_meta(url, cases=n, days=days, now=now.isoformat(), state="ready", restore=[],
               load_seconds=round(seconds, 1))  # fmt: skip
    return seconds


# --- timing -------------------------------------------------------------------------------


def _floor_sql(key: str) -> str:
    """One SQL pass over the raw events the recomputation of `key` needs to read,
    touching the JSON it folds: what any raw-event recomputation pays at least."""
    from analytics.metrics.replay import CASE_EVENTS, OPEN_CASES, SCOPES

    def names(values: tuple[str, ...]) -> str:
        return ", ".join(f"'{n}'" for n in values)

    parts = []
    for scope in SCOPES[key]:
        if scope == "open":
            parts.append(OPEN_CASES.replace("%s", f"ARRAY[{names(CASE_EVENTS)}]"))
            continue
        event_names, windowed = scope
        window = " AND occurred_at >= %(since)s AND occurred_at < %(until)s" if windowed else ""
        parts.append(
            f"SELECT case_id FROM analytics_event WHERE name IN ({names(event_names)}){window}"
        )
    return (
        "SELECT count(*), count(e.properties->>'to_state'), count(e.segmentation->>'plan') "
        f"FROM analytics_event e WHERE e.case_id IN ({' UNION '.join(parts)})"
    )


def time_report(key: str, filters: Any, now: dt.datetime, rounds: int, *, replay: bool,
                config: Any) -> dict[str, Any]:  # fmt: skip
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from analytics.metrics import run
    from analytics.metrics.replay import differences
    from analytics.metrics.replay import replay as recompute

    run(key, filters, now=now)  # warm the caches the page would find warm
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        run(key, filters, now=now)
        times.append(time.perf_counter() - t0)
    with CaptureQueriesContext(connection) as queries:
        run(key, filters, now=now)
    result: dict[str, Any] = {
        "report_s": statistics.median(times),
        "report_all_s": [round(t, 4) for t in times],
        "queries": len(queries),
    }
    t0 = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(_floor_sql(key), {"since": filters.since, "until": filters.until})
        result["floor_events"] = cursor.fetchone()[0]
    result["floor_s"] = time.perf_counter() - t0
    if replay:
        full = run(key, filters, now=now, limit=None)
        t0 = time.perf_counter()
        replayed = recompute(key, filters, now=now, config=config)
        result["replay_s"] = time.perf_counter() - t0
        problems = differences(full, replayed)
        result["agree"] = not problems
        result["problems"] = problems[:5]
    return result


def explain(key: str, filters: Any, now: dt.datetime) -> list[str]:
    """EXPLAIN (ANALYZE, BUFFERS) of each statement the report runs."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from analytics.metrics import run

    with CaptureQueriesContext(connection) as queries:
        run(key, filters, now=now)
    plans = []
    from django.db import transaction

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL jit = off")
        cursor.execute("SET LOCAL work_mem = '64MB'")
        for query in queries.captured_queries:
            if query["sql"].lstrip().upper().startswith(("SELECT", "WITH")):
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + query["sql"])
                plans.append("\n".join(row[0] for row in cursor.fetchall()))
    return plans


def load_averages() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def table_sizes(url: str) -> dict[str, Any]:
    import psycopg

    with psycopg.connect(url) as conn:
        return {
            table: conn.execute(
                "SELECT reltuples::bigint, pg_size_pretty(pg_total_relation_size(oid)) "
                "FROM pg_class WHERE oid = %s::regclass",
                (table,),
            ).fetchone()
            for table in TABLES
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=730, help="span the cases open over")
    parser.add_argument("--rounds", type=int, default=3, help="timed runs per report")
    parser.add_argument("--rebuild", action="store_true", help="drop and generate again")
    parser.add_argument("--no-replay", action="store_true", help="skip the recomputation")
    parser.add_argument("--reports", default="", help="comma-separated subset")
    parser.add_argument("--explain", action="store_true", help="print the query plans")
    parser.add_argument("--smoke", action="store_true", help="CI: 2,000 cases, 1 round")
    parser.add_argument("--generate-only", action="store_true", help="load, do not time")
    args = parser.parse_args()
    if args.smoke:
        args.cases, args.rounds = 2000, 1
    url = os.environ.get("BENCH_REPORTS_DATABASE_URL", DEFAULT_URL)
    before = load_averages()
    print(f"load averages before: {before} (1, 5, 15 min) on {os.cpu_count()} CPUs")

    created = ensure_database(url, rebuild=args.rebuild)
    meta = read_meta(url)
    fresh = meta.get("state") == "ready" and meta.get("cases") == args.cases
    fresh = fresh and meta.get("days") == args.days
    if not fresh and not created:
        # another size, or a load that did not finish: start from an empty database
        print(f"database holds {meta.get('cases')} cases ({meta.get('state')}): rebuilding")
        ensure_database(url, rebuild=True)
    setup_django(url)
    migrate()
    from onboarding import clock

    if fresh:
        now = dt.datetime.fromisoformat(meta["now"])
        setup = configure(now, args.days)
        load_s = None
    else:
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        setup = configure(now, args.days)
        load_s = generate(url, setup, n=args.cases, days=args.days, now=now)
        print(f"generated {args.cases:,} cases in {load_s:.0f} s")
    sizes = table_sizes(url)
    for table, (rows, size) in sizes.items():
        print(f"  {table:26} {rows:>12,} rows  {size:>9}")
    if args.generate_only:
        return

    from analytics.metrics import REPORTS, default_filters
    from analytics.metrics.replay import Config

    today = now.date()
    keys = [k for k in REPORTS if not args.reports or k in args.reports.split(",")]
    config = Config()
    results: list[dict[str, Any]] = []
    at_start = load_averages()
    print(f"load averages before timing: {at_start}")
    with clock.travel_to(now):
        for key in keys:
            filter_sets = {
                "defaults": default_filters(key, today),
                "plan=enterprise": default_filters(key, today, **SEGMENT_FILTER),
            }
            for label, filters in filter_sets.items():
                result = time_report(
                    key, filters, now, args.rounds, replay=not args.no_replay, config=config
                )
                result.update(report=key, filters=label)
                results.append(result)
                print(_line(result), flush=True)
                if args.explain:
                    for plan in explain(key, filters, now):
                        print(plan, "\n")
    after = load_averages()
    print()
    print(_table(results))
    print(f"\nload averages: before {before}, before timing {at_start}, after {after}")
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"reports-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
    out.write_text(
        json.dumps(
            {
                "cases": args.cases,
                "days": args.days,
                "now": now.isoformat(),
                "load_seconds": load_s,
                "sizes": sizes,
                "load_averages": {"before": before, "timing": at_start, "after": after},
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "results": results,
            },
            indent=2,
            default=str,
        )
    )
    print(f"results: {out.relative_to(ROOT)}")


def _line(r: dict[str, Any]) -> str:
    replay = f" replay {r['replay_s']:.2f}s agree={r['agree']}" if "replay_s" in r else ""
    return (
        f"{r['report']:12} {r['filters']:16} report {r['report_s'] * 1000:7.1f} ms "
        f"({r['queries']} queries) floor {r['floor_s']:.2f}s{replay}"
    )


def _table(results: list[dict[str, Any]]) -> str:
    head = (
        f"{'report':12} {'filters':16} {'report ms':>9} {'< 1 s':>5} {'replay s':>9} "
        f"{'speed-up':>8} {'>= 10x':>6} {'agree':>5} {'raw scan s':>10} {'vs scan':>7}"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        ms = r["report_s"] * 1000
        replay = r.get("replay_s")
        ratio = replay / r["report_s"] if replay else None
        lines.append(
            f"{r['report']:12} {r['filters']:16} {ms:9.1f} "
            f"{'yes' if r['report_s'] < TARGET_SECONDS else 'NO':>5} "
            f"{replay if replay is not None else float('nan'):9.2f} "
            f"{ratio if ratio else float('nan'):7.0f}x "
            f"{('yes' if ratio and ratio >= TARGET_RATIO else 'NO') if ratio else '-':>6} "
            f"{r.get('agree', '-')!s:>5} {r['floor_s']:10.2f} "
            f"{r['floor_s'] / r['report_s']:6.1f}x"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()

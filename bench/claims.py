#!/usr/bin/env python
"""Claim next: claims per second of N concurrent claimers on one queue, versus raw psycopg.

    python bench/claims.py [--claimers 4,16] [--tasks 50000] [--seconds 10] [--rounds 2]
    python bench/claims.py --smoke          # CI: 2000 tasks, 2 s, claimers 2,4, 1 round
    python bench/claims.py --profile 5      # + stage timers and cProfile of one claimer

One queue holds `--tasks` queued tasks (one per case, one case per account), some with
an SLA due time and some with a priority, so the claim order is not the id order. N
processes, each an agent of the queue, claim in a loop for `--seconds`:

* service: `task_claim_next(queue_id, actor)`: the queue lookup and permission check,
  the `SKIP LOCKED` candidate select over the `task_claim_order` partial index, then
  `_claim` through `apply_transition` (lock task+case, check, one
  `WITH moved AS (UPDATE …) INSERT event` statement), COMMIT;
* raw: one psycopg connection per process, autocommit off, per claim: the same
  candidate select `… FOR NO KEY UPDATE OF c, t SKIP LOCKED` (also reading what the
  event needs), a guarded UPDATE of the task, an INSERT of its "Step Claimed" event,
  COMMIT.

Both kinds run in the same invocation on the same rows, reset to all-queued before
every phase. After every phase: claims counted == tasks in progress, each claimed task
assigned to the agent that claimed it, one "Step Claimed" event per claim, and the
number of double claims (a task claimed twice: by the workers' lists of claimed ids
and by its events), which must be 0. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import datetime as dt
import io
import json
import multiprocessing as mp
import os
import platform
import pstats
import re
import resource
import statistics
import sys
import threading
import time
import traceback
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Shared with the other benchmarks: database creation, Django setup, wire tracing,
# the set-based template copy.
from bench.sweep import _dollars, _insert_select, admin, code_version  # noqa: E402
from bench.transitions import (  # noqa: E402
    WireTrace,
    _short,
    db_name,
    describe_binding,
    ensure_database,
    migrate,
    setup_django,
    statement_binding,
)

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/onboarding_bench_claims"
RESULTS_DIR = Path(__file__).resolve().parent / "results"
# Bench clean-up deletes its own events: lift analytics 0006's append-only guard for the
# transaction (the product's only other deleter is the retention purge).
PURGE_EVENTS = "SET LOCAL analytics.event_purge = 'on'"

TARGET_RATIO = 0.5  # service claims/s ÷ raw claims/s, at least
GATED_CLAIMERS = 16  # the target is at 16 claimers; other counts are reported

KEY = "bench-claims"  # queue and playbook key
ACCOUNT_PREFIX = "bench-claims-"
TEMPLATE_EXTERNAL_ID = "bench-claims-template"
AGENT_PREFIX = "bench-claimer-"
GROUP = "Bench claimers"
ID_BASE = 10_000_000  # bench rows: account g → case g → task g, all id ID_BASE + g
CHUNK = 50_000
CLAIMED_EVENT = "Step Claimed"
QUEUED, IN_PROGRESS = "queued", "in_progress"
SEGMENTS = [
    ("pro", "smb", "eu", "self-serve"),
    ("enterprise", "enterprise", "us", "sales"),
    ("starter", "startup", "apac", "partner"),
]


# --- fixture ------------------------------------------------------------------------


def base_fixture(n_agents: int) -> dict[str, Any]:
    """Queue, agents (group with `work_tasks`, members of the queue), published one-step
    human playbook in that queue; through the services where there is one. Idempotent."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group, Permission

    from onboarding.actors import WORK_PERM, Actor
    from onboarding.models import Playbook, Queue
    from onboarding.services import (
        playbook_create,
        playbook_version_add_step,
        playbook_version_publish,
    )

    system = Actor.system("bench", source="bench")
    queue, _ = Queue.objects.get_or_create(key=KEY, defaults={"name": "Bench claims queue"})
    if queue.default_sla_policy_id is not None:
        raise SystemExit(f"queue {KEY} has a default SLA policy; rerun with --rebuild")
    group, _ = Group.objects.get_or_create(name=GROUP)
    app_label, codename = WORK_PERM.split(".")
    group.permissions.add(
        Permission.objects.get(content_type__app_label=app_label, codename=codename)
    )
    user_model = get_user_model()
    agent_ids = []
    for n in range(n_agents):
        user, created = user_model.objects.get_or_create(
            username=f"{AGENT_PREFIX}{n:02d}",
            defaults={"email": f"{AGENT_PREFIX}{n:02d}@example.invalid"},
        )
        if created:
            user.set_unusable_password()
            user.save()
        user.groups.add(group)
        queue.members.add(user)
        agent_ids.append(user.pk)

    playbook = Playbook.objects.filter(key=KEY).first()
    if playbook is None:
        playbook = playbook_create(key=KEY, name="Bench claims playbook", actor=system)
    version = playbook.versions.order_by("-number").first()
    if version.state == version.State.DRAFT:
        if not version.steps.exists():
            # No SLA policy: a claim follows no clock, like the raw baseline (the
            # tasks still get SLA due times, for the claim order; see load_fixture).
            playbook_version_add_step(
                version=version,
                actor=system,
                key="review",
                name="Review the account",
                kind="human",
                queue=queue,
            )
        version = playbook_version_publish(version=version, actor=system)
    step = version.steps.get()
    if step.sla_policy_id is not None:
        raise SystemExit(f"playbook {KEY} has an SLA policy; rerun with --rebuild")
    return {
        "queue_id": queue.pk,
        "playbook_id": playbook.pk,
        "playbook_key": playbook.key,
        "version_id": version.pk,
        "version_number": version.number,
        "agent_ids": agent_ids,
    }


def fixture_state(url: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(url) as conn:
        q = conn.execute
        counts = {
            table: q(f"SELECT count(*) FROM {table} WHERE id > %s", (ID_BASE,)).fetchone()[0]
            for table in ("onboarding_account", "onboarding_case", "onboarding_task")
        }
        counts["other_tasks"] = q(
            "SELECT count(*) FROM onboarding_task WHERE id <= %s", (ID_BASE,)
        ).fetchone()[0]
        counts["max_id"] = (
            q(
                "SELECT coalesce(max(id), %s) FROM onboarding_task WHERE id > %s",
                (ID_BASE, ID_BASE),
            ).fetchone()[0]
            - ID_BASE
        )
    return counts


def _template(base: dict[str, Any]) -> dict[str, int]:
    """One account + case through the services: its task activates, queued in the bench
    queue, giving one valid row per table to copy."""
    from onboarding.actors import Actor
    from onboarding.models import Account, Playbook, Task
    from onboarding.services import account_upsert, case_open

    system = Actor.system("bench", source="bench")
    stale = Account.objects.filter(external_id=TEMPLATE_EXTERNAL_ID).first()
    if stale is not None:
        _drop_template(stale.pk)
    plan, segment, region, channel = SEGMENTS[0]
    account, _ = account_upsert(
        external_id=TEMPLATE_EXTERNAL_ID,
        actor=system,
        name="Bench claims template",
        plan=plan,
        segment=segment,
        region=region,
        channel=channel,
        properties={"seats": 10},
    )
    case = case_open(
        account=account, playbook=Playbook.objects.get(pk=base["playbook_id"]), actor=system
    )
    task = Task.objects.get(case=case)
    if task.state != QUEUED or task.queue_id != base["queue_id"] or task.sla_policy_id:
        raise RuntimeError(
            f"template: task {task.state} in queue {task.queue_id}, policy {task.sla_policy_id}"
        )
    return {"account": account.pk, "case": case.pk, "task": task.pk}


def _drop_template(account_id: int) -> None:
    from django.db import connection, transaction

    from analytics.models import Event
    from onboarding.models import Account, Case

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(PURGE_EVENTS)  # bench clean-up: lift the append-only guard
        cases = list(Case.objects.filter(account_id=account_id).values_list("pk", flat=True))
        Event.objects.filter(account_id=account_id).delete()
        Event.objects.filter(case_id__in=cases).delete()
        Case.objects.filter(pk__in=cases).delete()  # cascades to its task
        Account.objects.filter(pk=account_id).delete()


def load_fixture(url: str, base: dict[str, Any], size: int) -> dict[str, Any]:
    """Make the queue hold exactly `size` bench tasks (reused when it does already).

    Set-based: INSERT … SELECT generate_series copying a template made through the
    services (column lists from the models' _meta). A quarter of the tasks get an SLA
    due time within two days, one in five a priority, and every task an activation
    time in the last week, all scrambled against the ids.
    """
    from django.db import connection, transaction

    from onboarding.models import Account, Case, Task

    state = fixture_state(url)
    have = state["onboarding_task"]
    consistent = (
        state["onboarding_account"] == state["onboarding_case"] == have
        and state["max_id"] == have
        and state["other_tasks"] == 0
    )
    info: dict[str, Any] = {"tasks": size, "reused": consistent and have == size, "loaded": 0}
    if info["reused"]:
        return info
    t0 = time.perf_counter()
    print(f"fixture: loading {size:,} queued tasks (had {have:,})")
    connection.close()
    admin(
        url,
        "TRUNCATE onboarding_task, onboarding_case, onboarding_account, analytics_event CASCADE",
    )
    tmpl = _template(base)
    n = "(g + %(id_base)s)"
    ago = "%(now)s - ((g * 104729) %% 604800) * interval '1 second'"
    seg = {
        col: f"(ARRAY[{', '.join(repr(s[i]) for s in SEGMENTS)}])[1 + g %% {len(SEGMENTS)}]"
        for i, col in enumerate(("plan", "segment", "region", "channel"))
    }
    statements = [
        (
            _insert_select(
                Account,
                {
                    "id": n,
                    "external_id": f"'{ACCOUNT_PREFIX}' || lpad(g::text, 7, '0')",
                    "name": "'Bench claims account ' || g",
                    **seg,
                    "properties": "jsonb_build_object('seats', 10 + g %% 90)",
                    "created_at": ago,
                    "updated_at": ago,
                },
            ),
            tmpl["account"],
        ),
        (
            _insert_select(Case, {"id": n, "account_id": n, "opened_at": ago, "updated_at": ago}),
            tmpl["case"],
        ),
        (
            _insert_select(
                Task,
                {
                    "id": n,
                    "case_id": n,
                    "created_at": ago,
                    "activated_at": ago,
                    "updated_at": ago,
                    "priority": "CASE WHEN g %% 20 = 0 THEN 2 WHEN g %% 5 = 0 THEN 1 ELSE 0 END",
                    "sla_due_at": "CASE WHEN g %% 4 = 0 THEN %(now)s + "
                    "((g * 7919) %% 172800) * interval '1 second' END",
                },
            ),
            tmpl["task"],
        ),
    ]
    now = dt.datetime.now(dt.UTC)
    for lo in range(1, size + 1, CHUNK):
        hi = min(lo + CHUNK - 1, size)
        with transaction.atomic(), connection.cursor() as cur:
            for sql, tmpl_id in statements:
                cur.execute(
                    sql, {"lo": lo, "hi": hi, "tmpl": tmpl_id, "id_base": ID_BASE, "now": now}
                )
    _drop_template(tmpl["account"])
    connection.close()
    admin(
        url,
        *(
            f"VACUUM (ANALYZE) {t}"
            for t in ("onboarding_account", "onboarding_case", "onboarding_task")
        ),
        "VACUUM (ANALYZE) analytics_event",
    )
    info["loaded"] = size
    info["load_seconds"] = time.perf_counter() - t0
    print(f"fixture: {size:,} tasks loaded in {info['load_seconds']:.1f}s")
    state = fixture_state(url)
    if state["onboarding_task"] != size or state["other_tasks"]:
        raise SystemExit(f"fixture is inconsistent after loading: {state}")
    return info


def reset(url: str) -> None:
    """Every bench task back to queued and unassigned, no claim events; VACUUM, CHECKPOINT."""
    import psycopg

    with psycopg.connect(url) as conn:
        conn.execute(
            """UPDATE onboarding_task
                  SET state = 'queued', assignee_id = NULL, started_at = NULL,
                      updated_at = activated_at
                WHERE id > %s AND (state <> 'queued' OR assignee_id IS NOT NULL
                      OR started_at IS NOT NULL)""",
            (ID_BASE,),
        )
        conn.execute(PURGE_EVENTS)  # bench reset: lift the append-only guard
        conn.execute("DELETE FROM analytics_event WHERE name = %s", (CLAIMED_EVENT,))
        conn.commit()
    admin(url, "VACUUM (ANALYZE) onboarding_task", "VACUUM (ANALYZE) analytics_event", "CHECKPOINT")


# --- the two claimers -----------------------------------------------------------------


class ServiceClaimer:
    """The product: `task_claim_next`, with one Actor per process (as one worker holds)."""

    def __init__(self, user_id: int, ctx: dict[str, Any]) -> None:
        from django.contrib.auth import get_user_model

        from onboarding.actors import Actor
        from onboarding.errors import Conflict
        from onboarding.services import tasks

        self.actor = Actor.for_user(get_user_model().objects.get(pk=user_id), source="bench")
        self.queue_id = ctx["queue_id"]
        self.tasks = tasks  # looked up per call, so the profiler's stage timers see it
        self.conflict = Conflict
        self.conflicts = 0

    def claim(self) -> int | None:
        try:
            task = self.tasks.task_claim_next(queue_id=self.queue_id, actor=self.actor)
        except self.conflict:  # nothing written; counted and reported
            self.conflicts += 1
            return 0
        return None if task is None else task.pk

    def backend_pid(self) -> int:
        from django.db import connection

        return connection.connection.info.backend_pid

    def close(self) -> None:
        from django.db import connections

        connections.close_all()


RAW_SELECT_SQL = """
SELECT t.id, t.case_id, t.step_key, c.account_id, a.plan, a.segment, a.region, a.channel
  FROM onboarding_task t
  JOIN onboarding_case c ON c.id = t.case_id
  JOIN onboarding_account a ON a.id = c.account_id
 WHERE t.queue_id = %s AND t.state = 'queued' AND c.state = 'active'
   AND (t.assignee_id IS NULL OR t.assignee_id = %s)
 ORDER BY t.sla_due_at ASC NULLS LAST, t.priority DESC, t.activated_at ASC
 LIMIT 1
   FOR NO KEY UPDATE OF c, t SKIP LOCKED
"""
RAW_UPDATE_SQL = """
UPDATE onboarding_task
   SET state = 'in_progress', assignee_id = %s, started_at = coalesce(started_at, %s),
       updated_at = %s
 WHERE id = %s AND state = 'queued'
"""
RAW_INSERT_SQL = """
INSERT INTO analytics_event (
    uuid, name, schema_version, occurred_at, recorded_at, account_id, case_id, task_id,
    step_key, playbook_key, playbook_version, actor_type, actor_id, source,
    segmentation, properties
) VALUES (%s, 'Step Claimed', 1, %s, %s, %s, %s, %s, %s, %s, %s, 'agent', %s, 'bench', %s, %s)
"""
# One line each: the libpq trace prints statements verbatim, one message per line.
RAW_SELECT_SQL, RAW_UPDATE_SQL, RAW_INSERT_SQL = (
    " ".join(q.split()) for q in (RAW_SELECT_SQL, RAW_UPDATE_SQL, RAW_INSERT_SQL)
)
CLAIM_PROPERTIES = {"transition": "claim", "from_state": QUEUED, "to_state": IN_PROGRESS}


class RawClaimer:
    """Plain psycopg 3, autocommit off: SKIP LOCKED select, update, event insert, COMMIT."""

    def __init__(self, user_id: int, ctx: dict[str, Any]) -> None:
        import psycopg
        from psycopg.types.json import Jsonb

        options = f"-c lock_timeout={ctx['lock_timeout_ms']}" if ctx["lock_timeout_ms"] else ""
        self.conn = psycopg.connect(ctx["url"], options=options)  # psycopg's defaults
        self.cur = self.conn.cursor()
        self.user_id = user_id
        self.actor_id = str(user_id)
        self.queue_id = ctx["queue_id"]
        # Constant for the one published version, as the service's per-process cache.
        self.playbook = (ctx["playbook_key"], ctx["version_number"])
        self.jsonb = Jsonb
        self.conflicts = 0

    def claim(self) -> int | None:
        conn, cur = self.conn, self.cur
        row = cur.execute(RAW_SELECT_SQL, (self.queue_id, self.user_id)).fetchone()
        if row is None:
            conn.rollback()
            return None
        task_id, case_id, step_key, account_id, plan, segment, region, channel = row
        now = dt.datetime.now(dt.UTC)
        cur.execute(RAW_UPDATE_SQL, (self.user_id, now, now, task_id))
        if cur.rowcount != 1:
            conn.rollback()
            raise RuntimeError(f"raw: task {task_id} changed underneath its lock")
        cur.execute(
            RAW_INSERT_SQL,
            (
                uuid.uuid4(),
                now,
                now,
                account_id,
                case_id,
                task_id,
                step_key,
                *self.playbook,
                self.actor_id,
                self.jsonb(
                    {"plan": plan, "segment": segment, "region": region, "channel": channel}
                ),
                self.jsonb(CLAIM_PROPERTIES),
            ),
        )
        conn.commit()
        return task_id

    def backend_pid(self) -> int:
        return self.conn.info.backend_pid

    def close(self) -> None:
        self.conn.close()


def make_claimer(kind: str, user_id: int, ctx: dict[str, Any]) -> ServiceClaimer | RawClaimer:
    return RawClaimer(user_id, ctx) if kind == "raw" else ServiceClaimer(user_id, ctx)


def machine_cpu_seconds() -> float | None:
    """Busy CPU seconds of the whole machine so far (Linux /proc/stat), or None."""
    try:
        with open("/proc/stat") as fh:
            fields = [int(x) for x in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process so far (Linux /proc), or None."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rusage_delta(before: Any, after: Any) -> dict[str, float]:
    """User and system CPU seconds and context switches of this process in between."""
    return {
        "cpu_user": after.ru_utime - before.ru_utime,
        "cpu_sys": after.ru_stime - before.ru_stime,
        "voluntary_switches": after.ru_nvcsw - before.ru_nvcsw,
        "involuntary_switches": after.ru_nivcsw - before.ru_nivcsw,
    }


# --- phases ---------------------------------------------------------------------------


def worker(kind: str, user_id: int, ctx: dict[str, Any], barrier: Any, results: Any) -> None:
    try:
        if kind != "raw":
            from django.apps import apps

            if not apps.ready:  # spawned: a fresh interpreter, like a real worker process
                setup_django(ctx["url"])
        claimer = make_claimer(kind, user_id, ctx)
        warm: list[int] = []
        # Connection, actor caches, per-process caches, prepared statements.
        for _ in range(ctx["warmup"]):
            task_id = claimer.claim()
            if task_id is None:
                break
            if task_id:
                warm.append(task_id)
        conflicts_before = claimer.conflicts
        backend = claimer.backend_pid()  # its PostgreSQL backend, on this machine
        barrier.wait(timeout=600)
        usage0 = resource.getrusage(resource.RUSAGE_SELF)
        server0 = process_cpu_seconds(backend)
        cpu0 = time.process_time()
        start_wall = time.time()
        start = time.perf_counter()
        deadline = start + ctx["seconds"]
        ids: list[int] = []
        emptied = False
        while True:
            task_id = claimer.claim()
            if task_id is None:  # nothing claimable left (or all of it held by others)
                emptied = True
                break
            if task_id:
                ids.append(task_id)
            if time.perf_counter() >= deadline:
                break
        elapsed = time.perf_counter() - start
        server1 = process_cpu_seconds(backend)
        results.put(
            {
                "user_id": user_id,
                "count": len(ids),
                "ids": ids,
                "warm_ids": warm,
                "start": start_wall,
                "end": start_wall + elapsed,
                "elapsed": elapsed,
                "cpu": time.process_time() - cpu0,
                "server_cpu": None if None in (server0, server1) else server1 - server0,
                **rusage_delta(usage0, resource.getrusage(resource.RUSAGE_SELF)),
                "emptied": emptied,
                "conflicts": claimer.conflicts - conflicts_before,
            }
        )
        claimer.close()
    except BaseException:
        results.put({"error": traceback.format_exc()})
        barrier.abort()


def run_phase(kind: str, claimers: int, ctx: dict[str, Any]) -> dict[str, Any]:
    """Reset, start `claimers` processes (one agent each) together, verify the result."""
    from django.db import connections

    reset(ctx["url"])
    autovacuums = autovacuum_count(ctx["url"])
    connections.close_all()  # no inherited sockets in forked children
    mpctx = mp.get_context(ctx["start_method"])
    barrier = mpctx.Barrier(claimers + 1)
    results = mpctx.Queue()
    procs = [
        mpctx.Process(
            target=worker, args=(kind, ctx["agent_ids"][i], ctx, barrier, results), daemon=True
        )
        for i in range(claimers)
    ]
    for p in procs:
        p.start()
    with contextlib.suppress(threading.BrokenBarrierError):  # a worker's traceback is queued
        barrier.wait(timeout=600)
    machine0 = machine_cpu_seconds()
    out = [results.get(timeout=ctx["seconds"] + 600) for _ in procs]
    machine1 = machine_cpu_seconds()
    for p in procs:
        p.join(timeout=30)
    errors = [r["error"] for r in out if "error" in r]
    if errors:
        raise SystemExit(f"{kind} phase failed in a worker:\n{errors[0]}")
    count = sum(r["count"] for r in out)
    wall = max(r["end"] for r in out) - min(r["start"] for r in out)
    counts = sorted(r["count"] for r in out)
    head = head_select_cost(ctx["url"], ctx["queue_id"], ctx["agent_ids"][0])
    autovacuums = autovacuum_count(ctx["url"]) - autovacuums
    check = verify(ctx["url"], out)
    return {
        "kind": kind,
        "claimers": claimers,
        "claims": count,
        "warmup_claims": sum(len(r["warm_ids"]) for r in out),
        "wall_s": wall,
        "claims_per_s": count / wall if wall else 0.0,
        "per_process_claims_min_median_max": [counts[0], statistics.median(counts), counts[-1]],
        "queue_emptied": any(r["emptied"] for r in out),
        "conflicts": sum(r["conflicts"] for r in out),
        "client_cpu_ms_per_claim": 1000 * sum(r["cpu"] for r in out) / max(count, 1),
        # The claimers' own PostgreSQL backends: with the client, what a claim costs
        # whatever else runs on the machine (shared work such as WAL writing and
        # checkpoints is not in it).
        "server_cpu_ms_per_claim": (
            1000 * sum(r["server_cpu"] for r in out) / max(count, 1)
            if all(r["server_cpu"] is not None for r in out)
            else None
        ),
        "client_cpu_sys_share": sum(r["cpu_sys"] for r in out)
        / max(sum(r["cpu_user"] + r["cpu_sys"] for r in out), 1e-9),
        "client_switches_per_claim": {
            k: sum(r[k] for r in out) / max(count, 1)
            for k in ("voluntary_switches", "involuntary_switches")
        },
        # Everything on the machine (PostgreSQL, the claimers, anything else) while the
        # main process waited for the results: ~ the timed part plus the reporting.
        "machine_cpu_ms_per_claim": (
            1000 * (machine1 - machine0) / max(count, 1)
            if machine0 is not None and machine1 is not None
            else None
        ),
        "head_select_at_end": head,
        "autovacuums_of_tasks": autovacuums,
        "verified": check,
    }


def autovacuum_count(url: str) -> int:
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT autovacuum_count FROM pg_stat_user_tables WHERE relname = 'onboarding_task'"
        ).fetchone()[0]


def head_select_cost(url: str, queue_id: int, user_id: int) -> dict[str, float]:
    """The candidate select once, right after a phase (rolled back): what finding the head
    of the queue costs after the phase's claims left dead entries in front of it (until
    VACUUM removes them, or scans mark them dead)."""
    import psycopg

    with psycopg.connect(url) as conn:
        cur = psycopg.ClientCursor(conn)
        row = cur.execute(
            f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {RAW_SELECT_SQL}", (queue_id, user_id)
        ).fetchone()
        conn.rollback()
    plan = row[0][0]
    return {
        "execution_ms": plan["Execution Time"],
        "buffers": plan["Plan"].get("Shared Hit Blocks", 0)
        + plan["Plan"].get("Shared Read Blocks", 0),
    }


def verify(url: str, out: list[dict[str, Any]]) -> dict[str, Any]:
    """Every claim (timed and warm-up) is an in-progress task assigned to its claimer with
    one claim event; nothing else moved. Double claims: tasks claimed more than once,
    by the workers' own lists and by the events."""
    import psycopg

    ids: list[int] = []
    agents: list[int] = []
    for r in out:
        mine = r["warm_ids"] + r["ids"]
        ids += mine
        agents += [r["user_id"]] * len(mine)
    reported = {t for t, n in Counter(ids).items() if n > 1}
    with psycopg.connect(url) as conn:
        q = conn.execute
        in_progress = q(
            "SELECT count(*) FROM onboarding_task WHERE id > %s AND state = 'in_progress'",
            (ID_BASE,),
        ).fetchone()[0]
        other_states = q(
            "SELECT count(*) FROM onboarding_task WHERE id > %s AND state NOT IN "
            "('queued', 'in_progress')",
            (ID_BASE,),
        ).fetchone()[0]
        wrong_owner = q(
            "SELECT count(*) FROM (SELECT DISTINCT id, agent FROM unnest(%s::bigint[], "
            "%s::bigint[]) AS c(id, agent)) c JOIN onboarding_task t ON t.id = c.id "
            "WHERE t.state <> 'in_progress' OR t.assignee_id IS DISTINCT FROM c.agent",
            (ids, agents),
        ).fetchone()[0]
        events = q(
            "SELECT count(*) FROM analytics_event WHERE name = %s", (CLAIMED_EVENT,)
        ).fetchone()[0]
        by_events = {
            row[0]
            for row in q(
                "SELECT task_id FROM analytics_event WHERE name = %s "
                "GROUP BY task_id HAVING count(*) > 1",
                (CLAIMED_EVENT,),
            ).fetchall()
        }
    checks = {
        "claims_reported": len(ids),
        "tasks_in_progress": in_progress,
        "tasks_in_other_states": other_states,
        "claimed_tasks_not_owned_by_claimer": wrong_owner,
        "claim_events": events,
        "double_claims_reported": len(reported),
        "double_claims_by_events": len(by_events),
    }
    expected = {
        "tasks_in_progress": len(ids),
        "tasks_in_other_states": 0,
        "claimed_tasks_not_owned_by_claimer": 0,
        "claim_events": len(ids),
        "double_claims_reported": 0,
        "double_claims_by_events": 0,
    }
    bad = {k: [checks[k], v] for k, v in expected.items() if checks[k] != v}
    return {
        "ok": not bad,
        "double_claims": len(reported | by_events),
        "checks": checks,
        "mismatches": bad,
    }


# --- EXPLAIN and round trips -----------------------------------------------------------


def service_select_sql() -> str | None:
    """The service's claim-next select as it runs on PostgreSQL (None if it moved)."""
    from django.db import transaction

    from onboarding.services import tasks
    from onboarding.statements import CompiledQuery, skip_locked

    query = getattr(tasks, "_NEXT_IN_QUEUE", None)
    if isinstance(query, CompiledQuery):  # task+case+account, locked, SKIP LOCKED
        with transaction.atomic():  # Django compiles FOR UPDATE only in a transaction
            return query.sql()
    return " ".join(skip_locked(query, "c, t").split()) if query else None  # ids only


def explain_selects(url: str, queue_id: int, user_id: int) -> dict[str, Any]:
    """EXPLAIN (ANALYZE, BUFFERS) of both candidate selects on the full queue, in
    rolled-back transactions: the service's custom and generic plan (what a prepared
    statement may switch to), and the raw baseline's custom plan."""
    import psycopg

    out: dict[str, Any] = {}
    service_sql = service_select_sql()
    with psycopg.connect(url) as conn:
        cur = psycopg.ClientCursor(conn)

        def plan(label: str, sql: str, params: tuple[Any, ...]) -> None:
            rows = cur.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params).fetchall()
            conn.rollback()
            out[label] = [r[0] for r in rows]

        if service_sql:
            plan("service custom", service_sql, (queue_id, user_id))
            conn.execute("SET plan_cache_mode = force_generic_plan")
            conn.execute(f"PREPARE bench_next(bigint, bigint) AS {_dollars(service_sql)}")
            plan("service generic", "EXECUTE bench_next(%s, %s)", (queue_id, user_id))
            conn.execute("RESET plan_cache_mode")
        plan("raw custom", RAW_SELECT_SQL, (queue_id, user_id))
    return {
        label: {
            "plan": lines,
            "uses_task_claim_order": any("task_claim_order" in line for line in lines),
            "execution_ms": next(
                (float(m.group(1)) for x in lines if (m := re.search(r"Execution Time: (\S+)", x))),
                None,
            ),
        }
        for label, lines in out.items()
    }


class ClaimTrace(WireTrace):
    """WireTrace whose labels tell a `… SKIP LOCKED` select from a plain locking one
    (the claim-next select from `lock_task`'s)."""

    def _statements(self) -> list[str]:
        out: list[str] = []
        label = None

        def short(sql: str) -> str:
            return _short(sql) + (" … SKIP LOCKED" if "SKIP LOCKED" in sql else "")

        for line in self.lines:
            parts = line.split("\t")
            if len(parts) < 3:
                continue
            body = parts[3] if len(parts) > 3 else ""
            if parts[0] == "F":
                if parts[2] == "Query" and label is None:
                    label = short(body.strip().strip('"'))
                elif parts[2] == "Parse" and (m := self.PARSE.match(body)):
                    if m.group(1):
                        self.names[m.group(1)] = m.group(2)
                    label = label or short(m.group(2))
                elif parts[2] == "Bind" and label is None and (m := self.BIND.match(body)):
                    name = m.group(1)
                    label = short(self.names.get(name, f"EXECUTE {name}")) + " (prepared)"
            elif parts[2] == "ReadyForQuery":
                out.append(label or "?")
                label = None
        return out


def count_round_trips(ctx: dict[str, Any]) -> dict[str, Any]:
    """One claim of each kind, counted on the wire (libpq trace) and, for the service,
    by Django's CaptureQueriesContext. Warm: past the prepare threshold with a warm
    actor. Then (information only): a fresh Actor on a freshly loaded user."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from onboarding.actors import Actor

    reset(ctx["url"])
    user_id = ctx["agent_ids"][0]
    claimer = ServiceClaimer(user_id, ctx)
    connection.close()
    connection.ensure_connection()  # traced from its first statement: learns the names
    pgconn = connection.connection.pgconn
    names: dict[str, str] = {}

    def measure(actor: Actor) -> dict[str, Any]:
        claimer.actor = actor
        with CaptureQueriesContext(connection) as q, ClaimTrace(pgconn, names) as w:
            task_id = claimer.claim()
        if not task_id:
            raise RuntimeError("round trips: nothing was claimed")
        captured = [_short(x["sql"]) for x in q.captured_queries]
        return {
            "django_captured": len(captured),
            "django_statements": captured,
            "wire_round_trips": w.round_trips,
            "wire_statements": w.statements,
        }

    out: dict[str, Any] = {}
    warm = Actor.for_user(get_user_model().objects.get(pk=user_id), source="bench")
    claimer.actor = warm
    with ClaimTrace(pgconn, names):  # past prepare_threshold, as in the timed loop
        for _ in range(8):
            claimer.claim()
    out["service"] = measure(warm)
    # A new Actor on a freshly loaded user in this warm process (information only): a
    # worker or request that builds one per job pays the user's permission queries and
    # the queue-membership query on its first claim.
    cold_user = get_user_model().objects.get(pk=user_id)
    out["service, fresh actor (its first claim)"] = measure(
        Actor.for_user(cold_user, source="bench")
    )
    claimer.close()

    raw = RawClaimer(user_id, ctx)
    raw_names: dict[str, str] = {}
    with ClaimTrace(raw.conn.pgconn, raw_names):
        for _ in range(8):
            raw.claim()
    with ClaimTrace(raw.conn.pgconn, raw_names) as w:
        raw.claim()
    out["raw"] = {"wire_round_trips": w.round_trips, "wire_statements": w.statements}
    raw.close()
    return out


# --- profiling ------------------------------------------------------------------------


BUCKETS = [
    ("waiting on PostgreSQL (network + server)", ("psycopg/connection.py:wait", "wait_c")),
    ("psycopg (adapting, cursor machinery)", ("psycopg",)),
    ("django.db.models (querysets, SQL compiler)", ("django/db/models",)),
    ("django.db.backends / transaction", ("django/db/backends", "django/db/transaction")),
    ("django (other: auth, utils, …)", ("django/",)),
    ("django_fsm", ("django_fsm",)),
    ("analytics (catalog, recorder)", ("/analytics/",)),
    ("onboarding (services, rules, actor)", ("/onboarding/",)),
    ("uuid / json / datetime", ("uuid", "json", "datetime", "zoneinfo")),
]

SERVICES = "onboarding.services.tasks"
WRITE = "onboarding.services._write"
STAGES = [  # (label, depth, (module or class, attribute)); absent ones print as such
    ("task_claim_next: one claim", 0, (SERVICES, "task_claim_next")),
    ("Queue lookup: Queue.objects.filter(pk=…).first()", 1, ("QuerySet", "first")),
    ("Atomic.__enter__ (autocommit off; psycopg sends BEGIN next)", 1, ("Atomic", "__enter__")),
    (
        "claim-next select (CompiledQuery.first: task, case, account; SKIP LOCKED)",
        1,
        ("CompiledQuery", "first"),
    ),
    ("lock_task (SELECT … FOR NO KEY UPDATE, 4 tables)", 1, (SERVICES, "lock_task")),
    ("apply_transition", 1, (SERVICES, "apply_transition")),
    ("check_transition", 2, (WRITE, "check_transition")),
    ("_snapshot x2", 2, (WRITE, "_snapshot")),
    ("build_event", 2, (WRITE, "build_event")),
    ("update_if_state (WITH UPDATE … INSERT event)", 2, (WRITE, "update_if_state")),
    ("sla.on_task_transition", 2, ("onboarding.services.sla", "on_task_transition")),
    ("Atomic.__exit__ (COMMIT)", 1, ("Atomic", "__exit__")),
]


class StageTimer:
    """Inclusive wall time of named functions, patched where they are looked up (this
    process only, for the `with` block only); the outermost call of a label counts. SQL
    is timed per statement through Django's execute wrapper."""

    def __init__(self) -> None:
        self.totals: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self._undo: list[tuple[Any, str, Any]] = []
        self._depth: Counter[str] = Counter()

    def wrap(self, owner: Any, attr: str, label: str) -> None:
        original = vars(owner).get(attr)
        func = getattr(owner, attr) if not isinstance(owner, type) else original
        totals, calls, depth = self.totals, self.calls, self._depth

        def timed(*args: Any, **kwargs: Any) -> Any:
            depth[label] += 1
            start = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                depth[label] -= 1
                if not depth[label]:
                    totals[label] += time.perf_counter() - start
                    calls[label] += 1

        setattr(owner, attr, timed)
        self._undo.append((owner, attr, original))

    def sql(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            label = "sql: " + _short(sql)
            if "SKIP LOCKED" in sql:
                label = "sql: candidate SELECT … SKIP LOCKED"
            self.totals[label] += time.perf_counter() - start
            self.calls[label] += 1

    @contextlib.contextmanager
    def active(self) -> Any:
        from django.db import connection

        try:
            with connection.execute_wrapper(self.sql):
                yield
        finally:
            for owner, attr, original in reversed(self._undo):
                if original is None:
                    delattr(owner, attr)
                else:
                    setattr(owner, attr, original)
            self._undo.clear()


def _claim_for(claimer: ServiceClaimer, seconds: float) -> int:
    count = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        if claimer.claim() is None:
            break
        count += 1
    return count


def stage_breakdown(ctx: dict[str, Any], seconds: float) -> dict[str, Any]:
    """Where one claim's wall time goes in one claimer (this process, no contention)."""
    import importlib

    from django.db import connections, transaction
    from django.db.models.query import QuerySet

    from onboarding.statements import CompiledQuery

    reset(ctx["url"])
    claimer = ServiceClaimer(ctx["agent_ids"][0], ctx)
    _claim_for(claimer, 0.5)  # warm: caches, prepared statements
    connection = connections["default"]  # the real wrapper, not the proxy: patched below
    connection.ensure_connection()
    classes = {"QuerySet": QuerySet, "Atomic": transaction.Atomic, "CompiledQuery": CompiledQuery}
    timer = StageTimer()
    absent = set()
    for label, _depth, (owner, attr) in STAGES:
        target = classes.get(owner) or importlib.import_module(owner)
        if hasattr(target, attr):
            timer.wrap(target, attr, label)
        else:
            absent.add(label)
    timer.wrap(connection, "_commit", "COMMIT (connection._commit)")
    cpu0 = time.process_time()
    start = time.perf_counter()
    with timer.active():
        n = _claim_for(claimer, seconds) or 1
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    claimer.close()
    print(
        f"\nstage timers, one service claimer alone: {n} claims in {wall:.1f}s "
        f"({n / wall:.0f}/s with the timers on), client CPU {1000 * cpu / n:.3f} ms/claim"
    )
    print(f"  {'inclusive wall time per claim':<68}{'ms':>8}{'calls':>8}")
    rows: dict[str, dict[str, float]] = {}
    labels = [(label, depth) for label, depth, _ in STAGES]
    labels.append(("COMMIT (connection._commit)", 2))
    for label, depth in labels:
        if label in absent:
            print(f"  {'  ' * depth}{label:<{68 - 2 * depth}}  (not in this code)")
            continue
        ms, calls = 1000 * timer.totals[label] / n, timer.calls[label] / n
        rows[label] = {"ms_per_claim": ms, "calls_per_claim": calls}
        print(f"  {'  ' * depth}{label:<{68 - 2 * depth}}{ms:>8.3f}{calls:>8.2f}")
    print("  SQL execute through Django's cursor, per statement (psycopg + network + server):")
    for label in sorted(k for k in timer.totals if k.startswith("sql: ")):
        ms, calls = 1000 * timer.totals[label] / n, timer.calls[label] / n
        rows[label] = {"ms_per_claim": ms, "calls_per_claim": calls}
        print(f"    {label:<66}{ms:>8.3f}{calls:>8.2f}")
    return {"claims": n, "wall_s": wall, "client_cpu_ms_per_claim": 1000 * cpu / n, "stages": rows}


def profile_claims(ctx: dict[str, Any], seconds: float, top: int) -> dict[str, Any]:
    """cProfile one service claimer (this process) for `seconds`."""
    reset(ctx["url"])
    claimer = ServiceClaimer(ctx["agent_ids"][0], ctx)
    _claim_for(claimer, 0.5)
    profiler = cProfile.Profile()
    profiler.enable()
    n = _claim_for(claimer, seconds) or 1
    profiler.disable()
    claimer.close()
    stats = pstats.Stats(profiler)
    total = sum(v[2] for v in stats.stats.values())
    buckets: Counter[str] = Counter()
    for (filename, _line, func), (_cc, _nc, tt, _ct, _callers) in stats.stats.items():
        where = f"{filename}:{func}"
        for label, needles in BUCKETS:
            if any(x in where for x in needles):
                buckets[label] += tt
                break
        else:
            buckets["other (builtins, stdlib)"] += tt
    print(f"\ncProfile of one service claimer: {n} claims in {seconds:.1f}s (profiled)")
    print(f"{'own time by area':<52}{'ms/claim':>9}{'share':>8}")
    for label, tt in buckets.most_common():
        print(f"  {label:<50}{1000 * tt / n:>9.3f}{100 * tt / total:>7.1f}%")
    for sort in ("cumulative", "tottime"):
        buf = io.StringIO()
        pstats.Stats(profiler, stream=buf).strip_dirs().sort_stats(sort).print_stats(top)
        text = buf.getvalue()
        print(f"\ntop {top} by {sort}:")
        print(text[text.find("   ncalls") :].rstrip())
    return {"claims": n, "ms_per_claim_by_area": {k: 1000 * v / n for k, v in buckets.items()}}


# --- main -----------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--claimers", default="4,16", help="comma-separated claimer process counts")
    p.add_argument("--tasks", type=int, default=50_000, help="queued tasks in the queue")
    p.add_argument("--seconds", type=float, default=10.0, help="duration of each phase")
    p.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="phases per kind and claimer count, alternating which kind goes first "
        "(raw, service, service, raw, …); claims/s is the mean over rounds",
    )
    p.add_argument("--warmup", type=int, default=20, help="untimed claims per process")
    p.add_argument("--smoke", action="store_true", help="2000 tasks, 2 s, claimers 2,4, 1 round")
    p.add_argument("--rebuild", action="store_true", help="drop and rebuild the bench DB")
    p.add_argument(
        "--profile",
        type=float,
        default=0,
        metavar="SECONDS",
        help="afterwards, stage timers and cProfile of one service claimer, SECONDS each",
    )
    p.add_argument("--profile-top", type=int, default=25)
    p.add_argument(
        "--start-method",
        choices=["spawn", "fork", "forkserver"],
        default="spawn",
        help="how claimer processes start (spawn: fresh interpreters, like real workers)",
    )
    p.add_argument("--strict", action="store_true", help="exit 1 if the ratio misses its target")
    p.add_argument("--no-save", action="store_true", help="do not write bench/results/*.json")
    args = p.parse_args(argv)
    if args.smoke:
        args.tasks, args.seconds, args.claimers, args.rounds, args.warmup = 2000, 2.0, "2,4", 1, 5
    args.claimers = [int(x) for x in str(args.claimers).split(",") if x.strip()]
    if not args.claimers or min(args.claimers) < 1 or args.rounds < 1 or args.tasks < 1:
        p.error("--claimers, --rounds and --tasks must be positive")
    if args.tasks < 2 * args.warmup * max(args.claimers):
        p.error("--tasks must leave work after every claimer's warm-up")
    return args


def print_plans(plans: dict[str, Any]) -> None:
    for label, p in plans.items():
        index = "task_claim_order" if p["uses_task_claim_order"] else "NOT task_claim_order"
        print(f"  {label} plan ({index}, {p['execution_ms']} ms):")
        for line in p["plan"]:
            if "Planning" in line or "Execution" in line:
                continue
            print(f"    {line}")


def print_round_trips(round_trips: dict[str, Any]) -> None:
    print("\nround trips per claim (BEGIN and COMMIT included):")
    for name, r in round_trips.items():
        captured = r.get("django_captured")
        counted = (
            f"django {captured}, wire {r['wire_round_trips']}"
            if captured is not None
            else f"wire {r['wire_round_trips']}"
        )
        print(f"  {name:<38} {counted}")
        print(f"      {' · '.join(r['wire_statements'])}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    url = os.environ.get("BENCH_CLAIMS_DATABASE_URL", DEFAULT_URL)
    created = ensure_database(url, rebuild=args.rebuild)
    setup_django(url)
    migrate()

    import django
    import psycopg
    from django.conf import settings

    base = base_fixture(max(GATED_CLAIMERS, *args.claimers))
    fixture = load_fixture(url, base, args.tasks)
    if fixture["reused"]:
        print(f"fixture: reused ({args.tasks:,} tasks)")
    db_settings = settings.DATABASES["default"]
    opt = db_settings.get("OPTIONS", {}).get("options", "")
    lock_timeout_ms = int(opt.split("lock_timeout=")[1]) if "lock_timeout=" in opt else 0
    ctx = {
        "url": url,
        "seconds": args.seconds,
        "warmup": args.warmup,
        "lock_timeout_ms": lock_timeout_ms,
        "start_method": args.start_method,
        **base,
    }
    facts = {}
    with psycopg.connect(url) as conn:
        for name in ("server_version", "synchronous_commit", "fsync", "shared_buffers"):
            facts[name] = conn.execute(f"SHOW {name}").fetchone()[0]
    binding = statement_binding(db_settings)
    env = {
        "cpus": os.cpu_count(),
        "load_average_before": os.getloadavg(),
        "python": platform.python_version(),
        "django": django.get_version(),
        "psycopg": f"{psycopg.__version__} ({psycopg.pq.__impl__})",
        "debug": settings.DEBUG,
        "db_options": binding,
        "database": db_name(url),
        "code": code_version(),
        **facts,
    }
    print(
        f"PostgreSQL {facts['server_version'].split()[0]} (synchronous_commit="
        f"{facts['synchronous_commit']}, fsync={facts['fsync']}) · {env['cpus']} CPUs, load "
        f"{env['load_average_before'][0]:.2f} · Django {env['django']} DEBUG={settings.DEBUG}"
        f" · psycopg {env['psycopg']} · {args.tasks:,} queued tasks · {args.seconds:g}s per "
        f"phase, {args.rounds} round(s){' · new database' if created else ''}"
    )
    print(f"service DB OPTIONS (config/settings.py): {describe_binding(binding)}")
    code = env["code"]
    print(
        f"code: HEAD {code['commit'] or '?'}"
        + (
            f", {len(code['dirty'])} uncommitted change(s) under onboarding/ analytics/ config/"
            if code["dirty"]
            else ", clean"
        )
    )
    if env["load_average_before"][0] > 0.5 * (env["cpus"] or 1):
        print("note: the machine is busy; both kinds share the noise, see --rounds")

    reset(url)
    plans = explain_selects(url, base["queue_id"], base["agent_ids"][0])
    print("EXPLAIN (ANALYZE, BUFFERS) of the candidate selects on the full queue:")
    print_plans(plans)
    round_trips = count_round_trips(ctx)

    phases = []
    all_ok = True
    for n in args.claimers:
        for r in range(args.rounds):
            for kind in ("raw", "service") if r % 2 == 0 else ("service", "raw"):
                phase = run_phase(kind, n, ctx)
                phase["round"] = r + 1
                phases.append(phase)
                check = phase["verified"]
                all_ok &= check["ok"]
                lo, med, hi = phase["per_process_claims_min_median_max"]
                machine = phase["machine_cpu_ms_per_claim"]
                print(
                    f"  {n:>2} claimers  {kind:<7} {phase['claims_per_s']:>7.0f} claims/s "
                    f"({phase['claims']} in {phase['wall_s']:.2f}s; per process {lo}/{med:g}/{hi}"
                    f"{'; queue emptied' if phase['queue_emptied'] else ''}) · CPU ms/claim "
                    f"client {phase['client_cpu_ms_per_claim']:.3f} "
                    f"({100 * phase['client_cpu_sys_share']:.0f}% sys)"
                    + (
                        f", its backend {phase['server_cpu_ms_per_claim']:.3f}"
                        if phase["server_cpu_ms_per_claim"] is not None
                        else ""
                    )
                    + (f", machine {machine:.3f}" if machine is not None else "")
                    + f" · head select after {phase['head_select_at_end']['execution_ms']:.2f} ms"
                    f" / {phase['head_select_at_end']['buffers']} buffers"
                    + (
                        f" · autovacuum x{phase['autovacuums_of_tasks']}"
                        if phase["autovacuums_of_tasks"]
                        else ""
                    )
                    + f" · double claims {check['double_claims']}"
                    + (f" · conflicts {phase['conflicts']}" if phase["conflicts"] else "")
                    + (" · verified" if check["ok"] else f" · VERIFY FAILED {check['mismatches']}")
                )

    def mean(values: list[float]) -> float:
        return sum(values) / len(values) if values else 0.0

    rows = []
    for n in args.claimers:
        raw = [p for p in phases if p["kind"] == "raw" and p["claimers"] == n]
        svc = [p for p in phases if p["kind"] == "service" and p["claimers"] == n]
        raw_cps, svc_cps = (
            mean([p["claims_per_s"] for p in raw]),
            mean([p["claims_per_s"] for p in svc]),
        )
        ratio = svc_cps / raw_cps if raw_cps else 0.0
        doubles = sum(p["verified"]["double_claims"] for p in raw + svc)
        verified = all(p["verified"]["ok"] for p in raw + svc)
        machine = [p["machine_cpu_ms_per_claim"] for p in raw + svc]
        server = [p["server_cpu_ms_per_claim"] for p in raw + svc]
        own = (
            {
                kind: mean(
                    [p["client_cpu_ms_per_claim"] + p["server_cpu_ms_per_claim"] for p in ps]
                )
                for kind, ps in (("raw", raw), ("service", svc))
            }
            if None not in server
            else None
        )
        rows.append(
            {
                "claimers": n,
                "raw_claims_per_s": raw_cps,
                "service_claims_per_s": svc_cps,
                "ratio": ratio,
                "gated": n == GATED_CLAIMERS,
                "target": TARGET_RATIO,
                "pass_ratio": ratio >= TARGET_RATIO,
                "double_claims": doubles,
                "verified": verified,
                "raw_client_cpu_ms_per_claim": mean([p["client_cpu_ms_per_claim"] for p in raw]),
                "service_client_cpu_ms_per_claim": mean(
                    [p["client_cpu_ms_per_claim"] for p in svc]
                ),
                "raw_machine_cpu_ms_per_claim": (
                    mean([p["machine_cpu_ms_per_claim"] for p in raw])
                    if None not in machine
                    else None
                ),
                "service_machine_cpu_ms_per_claim": (
                    mean([p["machine_cpu_ms_per_claim"] for p in svc])
                    if None not in machine
                    else None
                ),
                # Claimer + its backend: the ratio a machine of their own, CPU-bound,
                # would give (the claims/s ratio also carries everything else running).
                "raw_own_cpu_ms_per_claim": own["raw"] if own else None,
                "service_own_cpu_ms_per_claim": own["service"] if own else None,
                "own_cpu_ratio": own["raw"] / own["service"] if own and own["service"] else None,
                "queue_emptied": any(p["queue_emptied"] for p in raw + svc),
            }
        )

    print(
        f"\nmeans over {args.rounds} round(s) of {args.seconds:g}s; target: service >= "
        f"{TARGET_RATIO}x raw at {GATED_CLAIMERS} claimers (other counts in parentheses)"
    )
    print(
        f"{'claimers':>8} {'raw claims/s':>12} {'service claims/s':>16} {'ratio':>7} "
        f"{'target':>8} {'double claims':>13}  result   CPU ms/claim client (raw / service)"
        f" · machine (raw / service)"
    )
    failed = False
    for r in rows:
        ok = r["pass_ratio"] and r["double_claims"] == 0 and r["verified"]
        if r["gated"]:
            target, verdict = f">={TARGET_RATIO:.2f}", "PASS" if ok else "FAIL"
            failed |= not r["pass_ratio"]
        else:
            target = f"({TARGET_RATIO:.2f})"
            verdict = "(pass)" if ok else ("FAIL" if not r["verified"] else "(miss)")
        raw_m, svc_m = r["raw_machine_cpu_ms_per_claim"], r["service_machine_cpu_ms_per_claim"]
        machine = f" · {raw_m:.3f} / {svc_m:.3f}" if raw_m is not None else ""
        print(
            f"{r['claimers']:>8} {r['raw_claims_per_s']:>12.0f} {r['service_claims_per_s']:>16.0f}"
            f" {r['ratio']:>6.2f}x {target:>8} {r['double_claims']:>13}  {verdict:<6}   "
            f"{r['raw_client_cpu_ms_per_claim']:.3f} / {r['service_client_cpu_ms_per_claim']:.3f}"
            f"{machine}{'  (queue emptied)' if r['queue_emptied'] else ''}"
        )
    if any(r["own_cpu_ratio"] is not None for r in rows):
        print(
            "CPU per claim of the claimers and their own backends (raw / service), and the "
            "ratio raw ÷ service:"
        )
        for r in rows:
            if r["own_cpu_ratio"] is not None:
                print(
                    f"{r['claimers']:>8}   {r['raw_own_cpu_ms_per_claim']:.3f} / "
                    f"{r['service_own_cpu_ms_per_claim']:.3f} ms  {r['own_cpu_ratio']:.2f}x"
                )
    if not all_ok:
        print("VERIFICATION FAILED: see the per-phase lines above")
    print_round_trips(round_trips)
    env["load_average_after"] = os.getloadavg()
    print(
        f"load average before {env['load_average_before'][0]:.2f}, after "
        f"{env['load_average_after'][0]:.2f}"
    )

    profile = None
    if args.profile:
        profile = {
            "stages": stage_breakdown(ctx, args.profile),
            "cprofile": profile_claims(ctx, args.profile, args.profile_top),
        }

    if not args.no_save:
        RESULTS_DIR.mkdir(exist_ok=True)
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = RESULTS_DIR / f"claims-{stamp}.json"
        payload = {
            "args": vars(args),
            "environment": env,
            "fixture": fixture,
            "target": {"ratio_min": TARGET_RATIO, "at_claimers": GATED_CLAIMERS},
            "results": rows,
            "phases": phases,
            "explain": plans,
            "round_trips": round_trips,
            "profile": profile,
        }
        path.write_text(json.dumps(payload, indent=2, default=str))
        print(f"\nresults written to {path.relative_to(ROOT)}")
    if not all_ok:
        return 1
    return 1 if (failed and args.strict) else 0


if __name__ == "__main__":
    sys.exit(main())

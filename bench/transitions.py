#!/usr/bin/env python
"""Transitions per second through the write path versus raw psycopg doing the same SQL.

    python bench/transitions.py [--seconds 10] [--processes 1,4] [--tasks 2000] [--rounds 2]
    python bench/transitions.py --smoke          # CI: 1 process, 1 second, 40 tasks
    python bench/transitions.py --profile 5      # + stage timers, EXPLAIN, cProfile
    DB_PREPARED_STATEMENTS=0 python bench/transitions.py   # what-if: nothing prepared

Each phase flips tasks `in_progress` <-> `waiting`, alternating the two transitions:

* write path: `task_wait_on_customer` / `task_resume` (lock case+task with the query
  compiled once per process, permission and condition checks, guarded UPDATE and
  catalog-validated event INSERT with cached SQL; the wait also inserts its reason as a
  context entry), with the application's DB OPTIONS (prepared statements on PostgreSQL
  unless DB_PREPARED_STATEMENTS=0);
* raw: one psycopg connection per process, autocommit off, per transaction: the
  locking SELECT of task+case (joined to what the event needs), a guarded UPDATE of
  the state, an INSERT of the event, COMMIT.

Both run in the same invocation against the same rows (one after the other), with
PostgreSQL's default durability. Round trips per transition are counted with
Django's `CaptureQueriesContext` and cross-checked on the wire (libpq trace).
See bench/README.md.
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
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections import Counter, deque
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/onboarding_bench"
RESULTS_DIR = Path(__file__).resolve().parent / "results"

TARGET_RATIO = {1: 0.5, 4: 0.35}  # write path / raw, from the issue
MAX_ROUND_TRIPS = 6

IN_PROGRESS, WAITING = "in_progress", "waiting"
WAIT, RESUME = "wait_on_customer", "resume"
EVENT_NAME = {WAIT: "Step Awaiting Customer", RESUME: "Step Resumed"}
TARGET_STATE = {WAIT: WAITING, RESUME: IN_PROGRESS}
SOURCE_STATE = {WAIT: IN_PROGRESS, RESUME: WAITING}

PLAYBOOK_KEY = "bench"
QUEUE_KEY = "bench"
AGENT_USERNAME = "bench-agent"
ACCOUNT_PREFIX = "bench-"
SEGMENTS = [
    {"plan": "pro", "segment": "smb", "region": "eu", "channel": "self-serve"},
    {"plan": "enterprise", "segment": "enterprise", "region": "us", "channel": "sales"},
    {"plan": "starter", "segment": "startup", "region": "apac", "channel": "partner"},
]


# --- database and Django ------------------------------------------------------------


def db_name(url: str) -> str:
    from psycopg.conninfo import conninfo_to_dict

    return str(conninfo_to_dict(url)["dbname"])


def admin_url(url: str) -> str:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    return make_conninfo(**{**conninfo_to_dict(url), "dbname": "postgres"})


def ensure_database(url: str, *, rebuild: bool) -> bool:
    """Create the bench database if missing (drop it first with `rebuild`). True if new."""
    import psycopg
    from psycopg import sql

    name = db_name(url)
    with psycopg.connect(admin_url(url), autocommit=True) as conn:
        if rebuild:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return not exists


def setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    # Measure the production configuration: DEBUG on wraps every cursor in Django's
    # query logger. CaptureQueriesContext turns that logging on where we count.
    os.environ.setdefault("DEBUG", "0")
    os.environ.setdefault("SECRET_KEY", "bench-only-not-a-secret")
    import django

    django.setup()


def migrate() -> None:
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def server_facts(url: str) -> dict[str, str]:
    import psycopg

    with psycopg.connect(url) as conn:
        facts = {
            name: conn.execute(f"SHOW {name}").fetchone()[0]
            for name in ("server_version", "synchronous_commit", "fsync", "wal_sync_method")
        }
    return facts


# --- fixture ------------------------------------------------------------------------


def build_fixture(n_tasks: int) -> tuple[int, list[int]]:
    """Queue, agent, published one-step human playbook, `n_tasks` claimed tasks.

    Everything goes through the services; idempotent, so a rerun only adds what is
    missing. Returns (agent user id, task ids), tasks all assigned to the agent and
    `in_progress` or `waiting`.
    """
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group, Permission

    from onboarding.actors import WORK_PERM, Actor
    from onboarding.models import Account, Case, Playbook, Queue, Task
    from onboarding.services import (
        account_upsert,
        case_open,
        playbook_create,
        playbook_version_add_step,
        playbook_version_publish,
        task_claim,
        task_wait_on_customer,
    )

    system = Actor.system("bench", source="bench")
    queue, _ = Queue.objects.get_or_create(key=QUEUE_KEY, defaults={"name": "Bench queue"})
    group, _ = Group.objects.get_or_create(name="Bench agents")
    app_label, codename = WORK_PERM.split(".")
    group.permissions.add(
        Permission.objects.get(content_type__app_label=app_label, codename=codename)
    )
    user_model = get_user_model()
    user, created = user_model.objects.get_or_create(
        username=AGENT_USERNAME, defaults={"email": "bench-agent@example.invalid"}
    )
    if created:
        user.set_unusable_password()
        user.save()
    user.groups.add(group)
    queue.members.add(user)

    playbook = Playbook.objects.filter(key=PLAYBOOK_KEY).first()
    if playbook is None:
        playbook = playbook_create(key=PLAYBOOK_KEY, name="Bench playbook", actor=system)
    version = playbook.versions.order_by("-number").first()
    if version.state == version.State.DRAFT:
        if not version.steps.exists():
            playbook_version_add_step(
                version=version,
                actor=system,
                key="review",
                name="Review the account",
                kind="human",
                queue=queue,
            )
        playbook_version_publish(version=version, actor=system)

    agent = Actor.for_user(user_model.objects.get(pk=user.pk), source="bench")
    have = set(
        Account.objects.filter(external_id__startswith=ACCOUNT_PREFIX).values_list(
            "external_id", flat=True
        )
    )
    with_case = set(
        Case.objects.filter(playbook=playbook).values_list("account__external_id", flat=True)
    )
    todo = [i for i in range(n_tasks) if f"{ACCOUNT_PREFIX}{i:06d}" not in with_case]
    if todo:
        print(f"fixture: creating {len(todo)} accounts + cases (through the services)…")
    t0 = time.perf_counter()
    for n, i in enumerate(todo, 1):
        external_id = f"{ACCOUNT_PREFIX}{i:06d}"
        if external_id in have:
            account = Account.objects.get(external_id=external_id)
        else:
            account, _ = account_upsert(
                external_id=external_id,
                actor=system,
                name=f"Bench account {i}",
                properties={"seats": 10 + i % 90},
                **SEGMENTS[i % len(SEGMENTS)],
            )
        case_open(account=account, playbook=playbook, actor=system)
        if n % 500 == 0:
            print(f"  {n}/{len(todo)} ({time.perf_counter() - t0:.0f}s)")

    queued = list(
        Task.objects.filter(case__playbook=playbook, state="queued")
        .order_by("id")
        .values_list("id", flat=True)
    )
    if queued:
        print(f"fixture: claiming {len(queued)} tasks as {AGENT_USERNAME}…")
    for n, task_id in enumerate(queued):
        task_claim(task_id=task_id, actor=agent)
        if n % 2:  # start with both states present so both transitions have work
            task_wait_on_customer(task_id=task_id, actor=agent, reason="bench fixture")

    ids = list(
        Task.objects.filter(
            case__playbook=playbook, assignee=user, state__in=[IN_PROGRESS, WAITING]
        )
        .order_by("id")
        .values_list("id", flat=True)[:n_tasks]
    )
    if len(ids) < n_tasks:
        raise SystemExit(
            f"fixture has only {len(ids)} usable tasks (wanted {n_tasks}); rerun with --rebuild"
        )
    return user.pk, ids


# --- the two workloads ----------------------------------------------------------------


class Flipper:
    """Alternates wait/resume over a set of tasks, whatever state each starts in."""

    def __init__(self, states: dict[int, str]) -> None:
        self.pools = {
            WAIT: deque(t for t, s in states.items() if s == IN_PROGRESS),
            RESUME: deque(t for t, s in states.items() if s == WAITING),
        }
        self.turn = WAIT if len(self.pools[WAIT]) >= len(self.pools[RESUME]) else RESUME
        self.done: Counter[str] = Counter()

    def next(self) -> tuple[str, int]:
        kind = self.turn
        if not self.pools[kind]:
            kind = RESUME if kind == WAIT else WAIT
        self.turn = RESUME if kind == WAIT else WAIT
        return kind, self.pools[kind].popleft()

    def finished(self, kind: str, task_id: int) -> None:
        self.pools[RESUME if kind == WAIT else WAIT].append(task_id)
        self.done[kind] += 1


class DjangoRunner:
    """The product's write path, with one Actor per process (as one request or job has)."""

    label = "write path"

    def __init__(self, user_id: int) -> None:
        from django.contrib.auth import get_user_model

        from onboarding.actors import Actor
        from onboarding.services import task_resume, task_wait_on_customer

        user = get_user_model().objects.get(pk=user_id)
        self.actor = Actor.for_user(user, source="bench")
        self._wait = task_wait_on_customer
        self._resume = task_resume

    def states(self, task_ids: list[int]) -> dict[int, str]:
        from onboarding.models import Task

        return dict(Task.objects.filter(pk__in=task_ids).values_list("id", "state"))

    def transition(self, kind: str, task_id: int) -> None:
        if kind == WAIT:
            self._wait(task_id=task_id, actor=self.actor, reason="bench")
        else:
            self._resume(task_id=task_id, actor=self.actor)

    def close(self) -> None:
        from django.db import connections

        connections.close_all()


LOCK_SQL = """
SELECT t.state, t.step_key, t.case_id, c.state, c.account_id,
       a.plan, a.segment, a.region, a.channel, p.key, v.number
  FROM onboarding_task t
  JOIN onboarding_case c ON c.id = t.case_id
  JOIN onboarding_account a ON a.id = c.account_id
  JOIN onboarding_playbookversion v ON v.id = c.playbook_version_id
  JOIN onboarding_playbook p ON p.id = v.playbook_id
 WHERE t.id = %s
   FOR NO KEY UPDATE OF c, t
"""
UPDATE_SQL = """
UPDATE onboarding_task SET state = %s, updated_at = %s WHERE id = %s AND state = %s
"""
INSERT_SQL = """
INSERT INTO analytics_event (
    uuid, name, schema_version, occurred_at, recorded_at, account_id, case_id, task_id,
    step_key, playbook_key, playbook_version, actor_type, actor_id, source,
    segmentation, properties
) VALUES (%s, %s, 1, %s, %s, %s, %s, %s, %s, %s, %s, 'agent', %s, 'bench', %s, %s)
RETURNING id
"""
# One line each: the libpq trace prints statements verbatim, one message per line.
LOCK_SQL, UPDATE_SQL, INSERT_SQL = (" ".join(q.split()) for q in (LOCK_SQL, UPDATE_SQL, INSERT_SQL))


class RawRunner:
    """Plain psycopg 3, autocommit off: lock, update, insert event, commit."""

    label = "raw psycopg"

    def __init__(self, url: str, agent_id: int, lock_timeout_ms: int) -> None:
        import psycopg
        from psycopg.types.json import Jsonb

        # Same session settings the application's connections get.
        self.conn = psycopg.connect(url, options=f"-c lock_timeout={lock_timeout_ms}")
        self.agent_id = str(agent_id)
        self.jsonb = Jsonb

    def states(self, task_ids: list[int]) -> dict[int, str]:
        rows = self.conn.execute(
            "SELECT id, state FROM onboarding_task WHERE id = ANY(%s)", (task_ids,)
        ).fetchall()
        self.conn.commit()
        return dict(rows)

    def transition(self, kind: str, task_id: int) -> None:
        conn = self.conn
        cur = conn.cursor()
        row = cur.execute(LOCK_SQL, (task_id,)).fetchone()
        state, step_key, case_id, case_state, account_id, *seg, pb_key, pb_number = row
        if state != SOURCE_STATE[kind] or case_state != "active":
            conn.rollback()
            raise RuntimeError(f"raw: task {task_id} is {state}, cannot {kind}")
        now = dt.datetime.now(dt.UTC)
        cur.execute(UPDATE_SQL, (TARGET_STATE[kind], now, task_id, state))
        if cur.rowcount != 1:
            conn.rollback()
            raise RuntimeError(f"raw: task {task_id} changed underneath")
        cur.execute(
            INSERT_SQL,
            (
                uuid.uuid4(),
                EVENT_NAME[kind],
                now,
                now,
                account_id,
                case_id,
                task_id,
                step_key,
                pb_key,
                pb_number,
                self.agent_id,
                self.jsonb(dict(zip(("plan", "segment", "region", "channel"), seg, strict=True))),
                self.jsonb(
                    {"transition": kind, "from_state": state, "to_state": TARGET_STATE[kind]}
                ),
            ),
        )
        cur.fetchone()
        conn.commit()

    def close(self) -> None:
        self.conn.close()


def statement_binding(db_settings: dict[str, Any]) -> dict[str, Any]:
    """The app's psycopg binding OPTIONS (config/settings.py: DB_PREPARED_STATEMENTS,
    DB_PREPARE_THRESHOLD); None where the setting is absent."""
    options = db_settings.get("OPTIONS", {})
    return {
        "server_side_binding": options.get("server_side_binding"),
        "prepare_threshold": options.get("prepare_threshold"),
    }


def describe_binding(binding: dict[str, Any]) -> str:
    text = ", ".join(f"{k}={v}" for k, v in binding.items())
    if binding["server_side_binding"] and binding["prepare_threshold"] is not None:
        n = binding["prepare_threshold"]
        return f"{text} (statements prepared after {n} executions per connection)"
    if binding["server_side_binding"]:
        return f"{text} (server-side binding; prepare_threshold=None: nothing prepared)"
    return f"{text} (client-side binding: nothing prepared, every statement planned)"


def make_runner(kind: str, ctx: dict[str, Any]) -> DjangoRunner | RawRunner:
    if kind == "raw":
        return RawRunner(ctx["url"], ctx["user_id"], ctx["lock_timeout_ms"])
    return DjangoRunner(ctx["user_id"])


def worker(
    kind: str,
    task_ids: list[int],
    ctx: dict[str, Any],
    barrier: Any,
    results: Any,
) -> None:
    try:
        from django.apps import apps

        if not apps.ready:  # spawned: a fresh interpreter, like a real worker process
            setup_django(ctx["url"])
        runner = make_runner(kind, ctx)
        flipper = Flipper(runner.states(task_ids))
        for _ in range(ctx["warmup"]):  # connection, caches, prepared statements
            k, t = flipper.next()
            runner.transition(k, t)
            flipper.finished(k, t)
        flipper.done.clear()
        barrier.wait(timeout=300)
        cpu0 = time.process_time()
        start = time.perf_counter()
        deadline = start + ctx["seconds"]
        count = 0
        while True:
            k, t = flipper.next()
            runner.transition(k, t)
            flipper.finished(k, t)
            count += 1
            now = time.perf_counter()
            if now >= deadline:
                break
        results.put(
            {
                "count": count,
                "elapsed": now - start,
                "cpu": time.process_time() - cpu0,
                "by_kind": dict(flipper.done),
            }
        )
        runner.close()
    except BaseException:
        results.put({"error": traceback.format_exc()})
        barrier.abort()


def run_phase(kind: str, processes: int, task_ids: list[int], ctx: dict[str, Any]) -> dict:
    """Fork `processes` workers on disjoint slices, start them together, sum their rates."""
    import psycopg
    from django.db import connections

    with psycopg.connect(ctx["url"], autocommit=True) as conn:
        conn.execute("CHECKPOINT")  # start each phase from the same WAL position state
    connections.close_all()  # no inherited sockets in forked children
    mpctx = mp.get_context(ctx["start_method"])
    barrier = mpctx.Barrier(processes + 1)
    results = mpctx.Queue()
    procs = [
        mpctx.Process(
            target=worker,
            args=(kind, task_ids[i::processes], ctx, barrier, results),
            daemon=True,
        )
        for i in range(processes)
    ]
    for p in procs:
        p.start()
    # A worker that fails before the start breaks the barrier; its traceback is queued.
    with contextlib.suppress(threading.BrokenBarrierError):
        barrier.wait(timeout=300)
    out = [results.get(timeout=ctx["seconds"] + 300) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    errors = [r["error"] for r in out if "error" in r]
    if errors:
        raise SystemExit(f"{kind} phase failed in a worker:\n{errors[0]}")
    count = sum(r["count"] for r in out)
    tps = sum(r["count"] / r["elapsed"] for r in out)
    by_kind: Counter[str] = Counter()
    for r in out:
        by_kind.update(r["by_kind"])
    return {
        "kind": kind,
        "processes": processes,
        "transitions": count,
        "tx_per_s": tps,
        "by_kind": dict(by_kind),
        "client_cpu_ms_per_tx": 1000 * sum(r["cpu"] for r in out) / max(count, 1),
        "wall_ms_per_tx_per_process": 1000 * sum(r["elapsed"] for r in out) / max(count, 1),
    }


# --- round trips ----------------------------------------------------------------------


class WireTrace:
    """Counts client/server round trips of one psycopg connection from its libpq trace.

    A round trip ends with the server's ReadyForQuery; the first frontend message of
    each exchange (`Query "BEGIN"`, `Parse …`, or `Bind` of a prepared statement)
    names what was sent. Pass the same `names` dict to traces of one connection so
    statements prepared earlier keep their labels.
    """

    PARSE = re.compile(r'^\s*"([^"]*)" "(.*)" \d+')
    BIND = re.compile(r'^\s*"[^"]*" "([^"]*)"')

    def __init__(self, pgconn: Any, names: dict[str, str] | None = None) -> None:
        self.pgconn = pgconn
        self.names = {} if names is None else names
        self.lines: list[str] = []

    def __enter__(self) -> WireTrace:
        from psycopg import pq

        self.file = tempfile.NamedTemporaryFile("w+", suffix=".trace")
        self.pgconn.trace(self.file.fileno())
        self.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        return self

    def __exit__(self, *exc: object) -> None:
        self.pgconn.untrace()  # flushes
        with open(self.file.name) as fh:
            self.lines = fh.read().splitlines()
        self.file.close()
        self.statements = self._statements()

    @property
    def round_trips(self) -> int:
        return sum(1 for line in self.lines if "\tReadyForQuery" in line)

    def _statements(self) -> list[str]:
        out: list[str] = []
        label = None
        for line in self.lines:
            parts = line.split("\t")
            if len(parts) < 3:
                continue
            body = parts[3] if len(parts) > 3 else ""
            if parts[0] == "F":
                if parts[2] == "Query" and label is None:
                    label = _short(body.strip().strip('"'))
                elif parts[2] == "Parse" and (m := self.PARSE.match(body)):
                    if m.group(1):
                        self.names[m.group(1)] = m.group(2)
                    label = label or _short(m.group(2))
                elif parts[2] == "Bind" and label is None and (m := self.BIND.match(body)):
                    name = m.group(1)
                    label = _short(self.names.get(name, f"EXECUTE {name}")) + " (prepared)"
            elif parts[2] == "ReadyForQuery":
                out.append(label or "?")
                label = None
        return out


def _short(sql: str) -> str:
    """`INSERT analytics_event`-style label of a statement."""
    words = sql.replace('"', " ").replace("(", " ").split()
    if not words:
        return "?"
    head = words[0].upper()
    upper = [w.upper() for w in words]
    marker = {"INSERT": "INTO", "DELETE": "FROM", "SELECT": "FROM"}.get(head, head)
    table = words[upper.index(marker) + 1] if marker in upper[:-1] else ""
    if head == "SELECT" and "FOR" in upper:
        table += " … FOR " + " ".join(upper[upper.index("FOR") + 1 :][:3])
    return f"{head} {table}".strip()


def count_round_trips(user_id: int, task_ids: list[int], ctx: dict[str, Any]) -> dict:
    """One transition of each kind, counted by Django and on the wire."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from onboarding.actors import WORK_PERM, Actor

    runner = DjangoRunner(user_id)
    flipper = Flipper(runner.states(task_ids[:50]))
    # A new connection, traced from its first statement on, so the names psycopg gives
    # the statements it prepares (prepare_threshold) are learnt and printed as SQL.
    connection.close()
    connection.ensure_connection()
    pgconn = connection.connection.pgconn
    names: dict[str, str] = {}

    def measure(kind: str, task_id: int, actor: Actor) -> dict:
        runner.actor = actor
        with CaptureQueriesContext(connection) as q, WireTrace(pgconn, names) as w:
            runner.transition(kind, task_id)
        captured = [_short(x["sql"]) for x in q.captured_queries]
        return {
            "django_captured": len(captured),
            "django_statements": captured,
            "wire_round_trips": w.round_trips,
            "wire_statements": w.statements,
        }

    def take(kind: str) -> int:
        pool = flipper.pools[kind]
        if not pool:  # make one: flip a task of the other kind with the warm actor
            other = RESUME if kind == WAIT else WAIT
            t = flipper.pools[other].popleft()
            runner.transition(other, t)
            flipper.finished(other, t)
        return pool.popleft()

    # Fresh actors on freshly loaded users (the request's auth middleware loads the
    # user; that query is not part of the transition and is not counted). A cold user
    # object costs ModelBackend's two permission queries (user, group); a request that
    # already checked a permission on it (the admin does, before any action) has them
    # cached on the user.
    out: dict[str, Any] = {}
    cold_user = get_user_model().objects.get(pk=user_id)
    t = take(WAIT)
    out["fresh actor, cold user (wait_on_customer)"] = measure(
        WAIT, t, Actor.for_user(cold_user, source="bench")
    )
    flipper.finished(WAIT, t)
    checked_user = get_user_model().objects.get(pk=user_id)
    checked_user.has_perm(WORK_PERM)  # what the request did before calling the service
    t = take(WAIT)
    out["fresh actor, perms checked (wait_on_customer)"] = measure(
        WAIT, t, Actor.for_user(checked_user, source="bench")
    )
    flipper.finished(WAIT, t)
    warm = Actor.for_user(get_user_model().objects.get(pk=user_id), source="bench")
    runner.actor = warm
    with WireTrace(pgconn, names):  # past prepare_threshold, as in the timed loop
        for _ in range(6):
            for k in (WAIT, RESUME):
                t = take(k)
                runner.transition(k, t)
                flipper.finished(k, t)
    for k in (WAIT, RESUME):
        t = take(k)
        out[k] = measure(k, t, warm)
        flipper.finished(k, t)

    raw = RawRunner(ctx["url"], user_id, ctx["lock_timeout_ms"])
    raw_flip = Flipper(raw.states(task_ids[:50]))
    raw_names: dict[str, str] = {}
    with WireTrace(raw.conn.pgconn, raw_names):  # learn the names of prepared statements
        for _ in range(12):  # past psycopg's prepare threshold, as in the timed loop
            k, t = raw_flip.next()
            raw.transition(k, t)
            raw_flip.finished(k, t)
    for k in (WAIT, RESUME):
        t = raw_flip.pools[k].popleft() if raw_flip.pools[k] else None
        if t is None:
            kk, t2 = raw_flip.next()
            raw.transition(kk, t2)
            raw_flip.finished(kk, t2)
            t = raw_flip.pools[k].popleft()
        with WireTrace(raw.conn.pgconn, raw_names) as w:
            raw.transition(k, t)
        raw_flip.finished(k, t)
        out[f"raw {k}"] = {"wire_round_trips": w.round_trips, "wire_statements": w.statements}
    raw.close()
    return out


# --- profiling ------------------------------------------------------------------------

BUCKETS = [
    ("waiting on PostgreSQL (network + server)", ("psycopg/connection.py:wait", "wait_c")),
    ("psycopg (adapting, cursor machinery)", ("psycopg",)),
    ("django.db.models (querysets, SQL compiler, save)", ("django/db/models",)),
    ("django.db.backends / transaction", ("django/db/backends", "django/db/transaction")),
    ("django (other: auth, utils, …)", ("django/",)),
    ("django_fsm", ("django_fsm",)),
    ("analytics (catalog, recorder)", ("/analytics/",)),
    ("onboarding (services, rules, actor)", ("/onboarding/",)),
    ("uuid / json / datetime", ("uuid", "json", "datetime", "zoneinfo")),
]


STAGES = [  # (key, label, depth) for the stage-timer report
    ("total", "one transition (wall)", 0),
    ("lock", "lock_task", 1),
    ("lock_first", "CompiledQuery.first: BEGIN + SELECT … FOR UPDATE → 6 objs", 2),
    ("apply", "apply_transition", 1),
    ("check", "check_transition: permission + conditions", 2),
    ("snapshot", "_snapshot before/after", 2),
    ("build_event", "build_event: catalog validation + segmentation", 2),
    ("update", "update_if_state → WITH moved AS (UPDATE task) INSERT event", 2),
    ("context", "add_context_entry (wait_on_customer only)", 1),
    ("context_insert", "insert_row → INSERT onboarding_contextentry", 2),
    ("commit", "COMMIT (WAL flush)", 1),
    ("-", "", 0),
    ("sql", "SQL execute: psycopg + network + server (BEGIN incl.)", 1),
    ("python", "Python outside SQL execute and COMMIT", 1),
    ("compile", "check: ORM SQL compilation (as_sql), expect 0 calls", 1),
    ("save", "check: Model.save(), expect 0 calls", 1),
]


class StageTimer:
    """Inclusive wall time spent in named parts of the write path (low overhead).

    Wraps module attributes and methods for the duration of a `with` block, in this
    process only; nothing outside bench/ is modified.
    """

    def __init__(self) -> None:
        self.totals: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self._undo: list[tuple[Any, str, Any]] = []
        self._depth: Counter[str] = Counter()

    def wrap(self, owner: Any, attr: str, label: str) -> None:
        own = vars(owner) if isinstance(owner, type) else getattr(owner, "__dict__", {})
        original = own.get(attr)  # None: inherited or a bound method, undone by delattr
        func = getattr(owner, attr)
        totals, calls, depth = self.totals, self.calls, self._depth

        def timed(*args: Any, **kwargs: Any) -> Any:
            depth[label] += 1
            start = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                depth[label] -= 1
                if not depth[label]:  # outermost call only (as_sql nests)
                    totals[label] += time.perf_counter() - start
                    calls[label] += 1

        setattr(owner, attr, timed)
        self._undo.append((owner, attr, original))

    def db_wrapper(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.totals["sql"] += time.perf_counter() - start
            self.calls["sql"] += 1

    def restore(self) -> None:
        for owner, attr, original in reversed(self._undo):
            if original is None:
                delattr(owner, attr)
            else:
                setattr(owner, attr, original)
        self._undo.clear()


def stage_breakdown(user_id: int, task_ids: list[int], seconds: float) -> dict:
    """Where one transition's wall time goes, measured without a profiler's distortion."""
    import django.db.models.sql.compiler as compiler
    from django.db import connections, models

    import onboarding.services._write as write
    import onboarding.services.tasks as tasks
    from onboarding.statements import CompiledQuery

    runner = DjangoRunner(user_id)
    flipper = Flipper(runner.states(task_ids))
    for _ in range(20):
        k, t = flipper.next()
        runner.transition(k, t)
        flipper.finished(k, t)
    connection = connections["default"]
    connection.ensure_connection()

    # Patched where the services look them up (module globals bound at import).
    timer = StageTimer()
    timer.wrap(tasks, "lock_task", "lock")
    timer.wrap(CompiledQuery, "first", "lock_first")
    timer.wrap(tasks, "apply_transition", "apply")
    timer.wrap(write, "check_transition", "check")
    timer.wrap(write, "_snapshot", "snapshot")
    timer.wrap(write, "update_if_state", "update")
    timer.wrap(write, "build_event", "build_event")
    timer.wrap(tasks, "add_context_entry", "context")
    timer.wrap(tasks, "insert_row", "context_insert")
    timer.wrap(connection, "_commit", "commit")
    # Checks: the write path should neither compile ORM SQL nor go through save().
    for cls in (
        compiler.SQLCompiler,
        compiler.SQLInsertCompiler,
        compiler.SQLUpdateCompiler,
        compiler.SQLDeleteCompiler,
        compiler.SQLAggregateCompiler,
    ):
        timer.wrap(cls, "as_sql", "compile")
    timer.wrap(models.Model, "save", "save")
    count = 0
    cpu0 = time.process_time()
    start = time.perf_counter()
    try:
        with connection.execute_wrapper(timer.db_wrapper):
            while time.perf_counter() - start < seconds:
                k, t = flipper.next()
                runner.transition(k, t)
                flipper.finished(k, t)
                count += 1
    finally:
        timer.restore()
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    runner.close()

    totals = dict(timer.totals)
    calls = dict(timer.calls)
    totals["total"], calls["total"] = wall, count
    totals["python"] = wall - totals.get("sql", 0) - totals.get("commit", 0)
    calls["python"] = count
    print(
        f"\nwrite path with stage timers: {count} transitions in {wall:.1f}s"
        f" ({count / wall:.0f} tx/s), client CPU {1000 * cpu / count:.3f} ms/tx"
    )
    print(f"  {'inclusive wall time per transition':<62}{'ms/tx':>8}{'calls/tx':>10}")
    for key, label, depth in STAGES:
        if key == "-":
            print(f"  {'across all stages:':<62}")
            continue
        indent = "  " * depth
        print(
            f"  {indent + label:<62}{1000 * totals.get(key, 0) / count:>8.3f}"
            f"{calls.get(key, 0) / count:>10.2f}"
        )
    for key, what in (("compile", "compiles ORM SQL"), ("save", "calls Model.save()")):
        if calls.get(key):
            print(f"  NOTE: the write path {what} {calls[key] / count:.2f}x per transition")
    return {
        "transitions": count,
        "wall_s": wall,
        "client_cpu_ms_per_tx": 1000 * cpu / count,
        "ms_per_tx": {label: 1000 * totals.get(key, 0) / count for key, label, _ in STAGES},
        "calls_per_tx": {label: calls.get(key, 0) / count for key, label, _ in STAGES},
    }


def _dollar_placeholders(sql: str) -> str:
    """Django's `%s` placeholders as PostgreSQL's `$1, $2, …` (for PREPARE)."""
    n = 0

    def sub(m: re.Match[str]) -> str:
        nonlocal n
        if m.group(0) == "%%":
            return "%"
        n += 1
        return f"${n}"

    return re.sub(r"%%|%s", sub, sql)


def explain_statements(user_id: int, task_ids: list[int], url: str, repeat: int = 7) -> dict:
    """Server-side planning vs execution time of each statement of one wait_on_customer.

    Captures the statements and parameters the write path sends, then runs each under
    EXPLAIN (ANALYZE) in transactions that are rolled back, two ways: planned on every
    execution (parameters inlined: what runs when nothing is prepared) and prepared,
    from the 6th execution on (what server_side_binding + prepare_threshold give once
    a connection is warm). The raw baseline's lock statement is measured the same
    way. Medians of `repeat` runs; UUID parameters (the event's) are fresh each run.
    """
    import statistics

    import psycopg
    from django.db import connection
    from psycopg import sql as pgsql

    runner = DjangoRunner(user_id)
    flipper = Flipper(runner.states(task_ids[:50]))
    for _ in range(4):  # warm the actor (no permission queries), leave work for a wait
        k, t = flipper.next()
        runner.transition(k, t)
        flipper.finished(k, t)
    while not flipper.pools[WAIT]:
        k, t = flipper.next()
        runner.transition(k, t)
        flipper.finished(k, t)
    task_id = flipper.pools[WAIT][0]
    sent: list[tuple[str, str, tuple[Any, ...]]] = []

    def capture(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        sent.append((_short(sql), sql, tuple(params or ())))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(capture):  # BEGIN/COMMIT do not pass through here
        runner.transition(WAIT, task_id)
    runner.transition(RESUME, task_id)  # put it back: the guarded UPDATE matches again
    runner.close()
    sent.append(("raw: " + _short(LOCK_SQL), LOCK_SQL, (task_id,)))

    def fresh(params: tuple[Any, ...]) -> list[Any]:
        return [uuid.uuid4() if isinstance(p, uuid.UUID) else p for p in params]

    def explain(conn: Any, statement: str) -> tuple[float, float]:
        row = conn.execute(f"EXPLAIN (ANALYZE, SUMMARY, FORMAT JSON) {statement}").fetchone()
        conn.rollback()  # undoes the statement and its row locks; PREPARE survives
        return row[0][0]["Planning Time"], row[0][0]["Execution Time"]

    def medians(runs: list[tuple[float, float]]) -> dict[str, float]:
        return {
            "planning_ms": statistics.median(r[0] for r in runs),
            "execution_ms": statistics.median(r[1] for r in runs),
        }

    out: dict[str, dict[str, dict[str, float]]] = {}
    print("\nserver time per statement of one wait_on_customer (EXPLAIN ANALYZE, median ms):")
    print(f"  {'':<46}{'planned each time':>20}{'prepared (6th run on)':>24}")
    print(f"  {'statement':<46}{'planning':>10}{'execution':>10}{'planning':>12}{'execution':>12}")
    with psycopg.connect(url) as conn:
        client = psycopg.ClientCursor(conn)
        for n, (label, sql, params) in enumerate(sent):
            planned = [explain(conn, client.mogrify(sql, fresh(params))) for _ in range(repeat)]
            conn.execute(f"PREPARE bench_{n} AS {_dollar_placeholders(sql)}")
            conn.commit()
            prepared = []
            for _ in range(repeat + 5):  # the first five are custom plans, as in psycopg
                args = ", ".join(pgsql.Literal(p).as_string(conn) for p in fresh(params))
                prepared.append(explain(conn, f"EXECUTE bench_{n}({args})"))
            out[label] = {"planned": medians(planned), "prepared": medians(prepared[5:])}
            a, b = out[label]["planned"], out[label]["prepared"]
            print(
                f"  {label:<46}{a['planning_ms']:>10.3f}{a['execution_ms']:>10.3f}"
                f"{b['planning_ms']:>12.3f}{b['execution_ms']:>12.3f}"
            )
    return out


def profile_write_path(user_id: int, task_ids: list[int], seconds: float, top: int) -> dict:
    """Run the write-path loop in this process under cProfile; print where time goes."""
    runner = DjangoRunner(user_id)
    flipper = Flipper(runner.states(task_ids))
    for _ in range(20):
        k, t = flipper.next()
        runner.transition(k, t)
        flipper.finished(k, t)
    profiler = cProfile.Profile()
    count = 0
    deadline = time.perf_counter() + seconds
    profiler.enable()
    while time.perf_counter() < deadline:
        k, t = flipper.next()
        runner.transition(k, t)
        flipper.finished(k, t)
        count += 1
    profiler.disable()
    runner.close()

    stats = pstats.Stats(profiler)
    total = sum(v[2] for v in stats.stats.values())  # sum of own time
    buckets: Counter[str] = Counter()
    for (filename, _line, func), (_cc, _nc, tt, _ct, _callers) in stats.stats.items():
        where = f"{filename}:{func}"
        for label, needles in BUCKETS:
            if any(n in where for n in needles):
                buckets[label] += tt
                break
        else:
            buckets["other (python builtins, stdlib)"] += tt

    print(f"\ncProfile of the write-path loop: {count} transitions in {seconds:.1f}s (profiled)")
    print(f"{'own time by area':<52}{'ms/tx':>8}{'share':>8}")
    for label, tt in buckets.most_common():
        print(f"  {label:<50}{1000 * tt / count:>8.3f}{100 * tt / total:>7.1f}%")
    for sort in ("cumulative", "tottime"):
        buf = io.StringIO()
        pstats.Stats(profiler, stream=buf).strip_dirs().sort_stats(sort).print_stats(top)
        text = buf.getvalue()
        print(f"\ntop {top} by {sort}:")
        print(text[text.find("   ncalls") :].rstrip())
    return {
        "transitions": count,
        "seconds": seconds,
        "ms_per_tx_by_area": {k: 1000 * v / count for k, v in buckets.items()},
    }


# --- main -----------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=10.0, help="duration of each phase")
    p.add_argument("--processes", default="1,4", help="comma-separated process counts")
    p.add_argument("--tasks", type=int, default=2000, help="tasks in the fixture")
    p.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="phases per kind and process count, alternating which kind goes first "
        "(raw, write path, write path, raw, …); tx/s is the mean over rounds",
    )
    p.add_argument("--warmup", type=int, default=50, help="untimed transitions per worker")
    p.add_argument("--smoke", action="store_true", help="1 process, 1 second, 40 tasks")
    p.add_argument("--rebuild", action="store_true", help="drop and rebuild the bench DB")
    p.add_argument(
        "--profile",
        type=float,
        default=0,
        metavar="SECONDS",
        help="afterwards, time the write path's stages and cProfile it for SECONDS each",
    )
    p.add_argument("--profile-top", type=int, default=30)
    p.add_argument(
        "--start-method",
        choices=["spawn", "fork", "forkserver"],
        default="spawn",
        help="how worker processes start (spawn: fresh interpreters, like real workers)",
    )
    p.add_argument("--strict", action="store_true", help="exit 1 if a ratio misses its target")
    p.add_argument("--no-save", action="store_true", help="do not write bench/results/*.json")
    args = p.parse_args(argv)
    if args.smoke:
        args.seconds, args.processes, args.tasks, args.warmup, args.rounds = 1.0, "1", 40, 10, 1
    args.processes = [int(x) for x in str(args.processes).split(",") if x.strip()]
    if not args.processes or min(args.processes) < 1 or args.rounds < 1:
        p.error("--processes and --rounds must be positive")
    if args.tasks < 8 * max(args.processes):
        p.error("--tasks must be at least 8 per process")
    return args


def print_round_trips(round_trips: dict[str, dict]) -> bool:
    """Print the counts; True if a warm transition exceeds the target."""
    print(f"\nround trips per transition (target <= {MAX_ROUND_TRIPS}, BEGIN and COMMIT included):")
    failed = False
    for name, r in round_trips.items():
        wire = r["wire_round_trips"]
        captured = r.get("django_captured")
        over = max(wire, captured or 0) > MAX_ROUND_TRIPS
        if name in (WAIT, RESUME):
            verdict = "FAIL" if over else "PASS"
            failed |= over
        else:
            verdict = "(over)" if over else ""
        counted = f"django {captured}, wire {wire}" if captured is not None else f"wire {wire}"
        print(f"  {name:<46} {counted:<18} {verdict:<6}")
        print(f"      {' · '.join(r['wire_statements'])}")
        wire_sql = [x.removesuffix(" (prepared)") for x in r["wire_statements"]]
        if captured is not None and r["django_statements"] != wire_sql:
            print(f"      (Django captured: {' · '.join(r['django_statements'])})")
    return failed


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
    created = ensure_database(url, rebuild=args.rebuild)
    setup_django(url)
    migrate()

    import django
    import psycopg
    from django.conf import settings

    t0 = time.perf_counter()
    user_id, task_ids = build_fixture(args.tasks)
    print(f"fixture ready: {len(task_ids)} tasks ({time.perf_counter() - t0:.1f}s)")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) onboarding_task")
        conn.execute("ANALYZE")

    db_settings = settings.DATABASES["default"]
    binding = statement_binding(db_settings)
    db_options = db_settings.get("OPTIONS", {}).get("options", "")
    lock_timeout_ms = (
        int(db_options.split("lock_timeout=")[1]) if "lock_timeout=" in db_options else 0
    )
    ctx = {
        "url": url,
        "user_id": user_id,
        "seconds": args.seconds,
        "warmup": args.warmup,
        "lock_timeout_ms": lock_timeout_ms,
        "start_method": args.start_method,
    }
    facts = server_facts(url)
    env = {
        "cpus": os.cpu_count(),
        "load_average_before": os.getloadavg(),
        "python": platform.python_version(),
        "django": django.get_version(),
        "psycopg": f"{psycopg.__version__} ({psycopg.pq.__impl__})",
        "debug": settings.DEBUG,
        "db_options": binding,
        "database": db_name(url),
        **facts,
    }
    print(
        f"\nPostgreSQL {facts['server_version'].split()[0]} (synchronous_commit="
        f"{facts['synchronous_commit']}, fsync={facts['fsync']}) · {env['cpus']} CPUs, load "
        f"{env['load_average_before'][0]:.2f} · Django {env['django']} DEBUG={settings.DEBUG}"
        f" · psycopg {env['psycopg']} · {args.seconds:g}s per phase, {args.rounds} round(s)"
        f"{' · new database' if created else ''}"
    )
    print(f"write path DB OPTIONS (config/settings.py): {describe_binding(binding)}")
    if env["load_average_before"][0] > 0.5 * (env["cpus"] or 1):
        print("note: the machine is busy; both kinds share the noise, see --rounds")

    round_trips = count_round_trips(user_id, task_ids, ctx)

    phases = []
    for n in args.processes:
        for r in range(args.rounds):
            for kind in ("raw", "django") if r % 2 == 0 else ("django", "raw"):
                phase = run_phase(kind, n, task_ids, ctx)
                phase["round"] = r + 1
                phases.append(phase)
                print(
                    f"  {n} proc  {'raw psycopg' if kind == 'raw' else 'write path':<11}"
                    f"{phase['tx_per_s']:>7.0f} tx/s  ({phase['transitions']} transitions,"
                    f" client CPU {phase['client_cpu_ms_per_tx']:.3f} ms/tx)"
                )

    def mean(values: list[float]) -> float:
        return sum(values) / len(values)

    rows = []
    failed = False
    for n in args.processes:
        raw = [p for p in phases if p["kind"] == "raw" and p["processes"] == n]
        dj = [p for p in phases if p["kind"] == "django" and p["processes"] == n]
        raw_tps, dj_tps = mean([p["tx_per_s"] for p in raw]), mean([p["tx_per_s"] for p in dj])
        ratio = dj_tps / raw_tps if raw_tps else 0.0
        target = TARGET_RATIO.get(n)
        ok = None if target is None else ratio >= target
        failed |= ok is False
        mix: Counter[str] = Counter()
        for p in dj:
            mix.update(p["by_kind"])
        rows.append(
            {
                "processes": n,
                "raw_tx_per_s": raw_tps,
                "write_path_tx_per_s": dj_tps,
                "ratio": ratio,
                "target": target,
                "pass": ok,
                "raw_client_cpu_ms_per_tx": mean([p["client_cpu_ms_per_tx"] for p in raw]),
                "write_path_client_cpu_ms_per_tx": mean([p["client_cpu_ms_per_tx"] for p in dj]),
                "write_path_mix": dict(mix),
            }
        )

    print(
        f"\n{'processes':>9} {'raw tx/s':>9} {'write path tx/s':>16} {'ratio':>7} {'target':>7}"
        f"  result   client CPU ms/tx (raw / write path)"
    )
    for r in rows:
        target = f">={r['target']:.2f}" if r["target"] is not None else "-"
        verdict = {True: "PASS", False: "FAIL", None: "-"}[r["pass"]]
        print(
            f"{r['processes']:>9} {r['raw_tx_per_s']:>9.0f} {r['write_path_tx_per_s']:>16.0f}"
            f" {r['ratio']:>6.2f}x {target:>7}  {verdict:<6}   "
            f"{r['raw_client_cpu_ms_per_tx']:.3f} / {r['write_path_client_cpu_ms_per_tx']:.3f}"
        )
    mix = rows[0]["write_path_mix"]
    print(f"write-path mix: {mix.get(WAIT, 0)} wait_on_customer / {mix.get(RESUME, 0)} resume")

    rt_failed = print_round_trips(round_trips)
    env["load_average_after"] = os.getloadavg()

    profile = None
    if args.profile:
        profile = {
            "stages": stage_breakdown(user_id, task_ids, args.profile),
            "server_time": explain_statements(user_id, task_ids, url),
            "cprofile": profile_write_path(user_id, task_ids, args.profile, args.profile_top),
        }

    if not args.no_save:
        RESULTS_DIR.mkdir(exist_ok=True)
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = RESULTS_DIR / f"transitions-{stamp}.json"
        payload = {
            "args": vars(args),
            "environment": env,
            "results": rows,
            "phases": phases,
            "round_trips": round_trips,
            "round_trip_target": MAX_ROUND_TRIPS,
            "profile": profile,
        }
        path.write_text(json.dumps(payload, indent=2, default=str))
        print(f"\nresults written to {path.relative_to(ROOT)}")
    if rt_failed:
        return 1
    return 1 if (failed and args.strict) else 0


if __name__ == "__main__":
    sys.exit(main())

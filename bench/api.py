#!/usr/bin/env python
"""API throughput under gunicorn on loopback, versus a trivial DRF endpoint served by
the same server in the same run.

    python bench/api.py [--seconds 10] [--rounds 2] [--clients 4] [--workers 2] [--threads 2]
    python bench/api.py --smoke          # CI: 1 s phases, 1 round, 20 cases (~20 s)

Three phases per round, each `--seconds` long, `--clients` client processes each on
one keep-alive connection, as fast as answers come:

* trivial: `GET /bench/trivial`, a DRF view that does only what every API request
  does (bearer token lookup, scope check, per-token throttle, JSON rendering). It is
  mounted by this script's URL conf (`BenchUrls`), never by `config.urls`;
* case detail: `GET /api/v1/cases/{id}` over the fixture's cases in turn (a case with
  two tasks, their SLA clocks and a context log of notes);
* signal batches: `POST /api/v1/signals/batch` with 100 new signals (fresh ids, for the
  fixture's accounts; a name no step waits for, so each is stored, de-duplicated by
  id and recorded as one "Signal Received" event).

It prints requests per second, latency percentiles, the case-detail ÷ trivial ratio
(target ≥ 0.5) and signals per second (target ≥ 1,000), and the load average before
and after. See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import multiprocessing as mp
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from functools import cached_property
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.transitions import (  # noqa: E402  (shared with the other benchmarks)
    db_name,
    ensure_database,
    migrate,
    server_facts,
    setup_django,
)

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/onboarding_bench_api"
RESULTS_DIR = Path(__file__).resolve().parent / "results"
TARGET_DETAIL_RATIO = 0.5
TARGET_SIGNALS_PER_SECOND = 1000
BATCH_SIZE = 100
KEY = "bench-api"  # playbook and queue key
ACCOUNT_PREFIX = "bench-api-"
TOKEN_NAME = "bench-api"
SIGNAL_NAME = "Bench Heartbeat"  # no step waits for it
NOTES_PER_CASE = 5
TRIVIAL_PATH = "/bench/trivial"


# --- the server -----------------------------------------------------------------------


class BenchUrls:
    """The bench server's ROOT_URLCONF: the project's URLs plus the trivial endpoint.

    Django accepts a module-like object here; this keeps the bench endpoint out of
    `config.urls` and out of every other server.
    """

    @cached_property
    def urlpatterns(self) -> list[Any]:
        from django.urls import include, path
        from rest_framework.request import Request
        from rest_framework.response import Response

        from api.views.base import ApiView

        class Trivial(ApiView):
            required_scopes = {"GET": "cases:read"}

            def get(self, request: Request) -> Response:
                return Response({"ok": True})

        return [path(TRIVIAL_PATH.lstrip("/"), Trivial.as_view()), path("", include("config.urls"))]


def application() -> Any:
    """The WSGI app gunicorn serves: `gunicorn 'bench.api:application()'`."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django
    from django.conf import settings

    django.setup()
    settings.ROOT_URLCONF = BenchUrls()
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """gunicorn on loopback, gthread workers (keep-alive), the bench database."""

    def __init__(self, url: str, workers: int, threads: int, log: Path) -> None:
        self.url, self.workers, self.threads, self.log = url, workers, threads, log
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def start(self, token: str) -> None:
        env = {
            **os.environ,
            "DATABASE_URL": self.url,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DEBUG": os.environ.get("DEBUG", "0"),
            "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-only-not-a-secret"),
            "ALLOWED_HOSTS": "127.0.0.1",
            "LOG_LEVEL": "WARNING",
        }
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(self.workers),
            "--worker-class",
            "gthread",
            "--threads",
            str(self.threads),
            "--keep-alive",
            "30",
            "--backlog",
            "256",
            "--log-level",
            "warning",
            "--chdir",
            str(ROOT),
            "bench.api:application()",
        ]
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=self.log.open("wb"), stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited; see {self.log}")
            try:
                status, _ = request(self.port, "GET", TRIVIAL_PATH, token)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer in 60 s; see {self.log}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()


def request(port: int, method: str, path: str, token: str, body: bytes | None = None) -> tuple:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=_headers(token))
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _headers(token: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {token}",
        "Accept": "application/json",
        "Content-Type": "application/json",
    }


# --- fixture ---------------------------------------------------------------------------


def build_fixture(n_cases: int) -> dict[str, Any]:
    """Accounts with one open case each (two human steps, SLA clocks, a few notes), and
    a token with the scopes the phases need and a rate no phase reaches."""
    from api.models import ApiToken
    from onboarding import services
    from onboarding.actors import Actor
    from onboarding.models import Account, Case, Playbook, Queue, SlaPolicy

    system = Actor.system("bench", source="bench")
    queue, _ = Queue.objects.get_or_create(key=KEY, defaults={"name": "Bench API"})
    playbook = Playbook.objects.filter(key=KEY).first()
    if playbook is None:
        policy, _ = SlaPolicy.objects.get_or_create(
            key=KEY,
            version=1,
            defaults={
                "name": "Bench API",
                "target": dt.timedelta(hours=4),
                "warn_percent": 75,
                "on_breach": SlaPolicy.OnBreach.NOTIFY,
            },
        )
        playbook = services.playbook_create(key=KEY, name="Bench API", actor=system)
        version = playbook.versions.get()
        for key in ("kickoff", "review"):
            services.playbook_version_add_step(
                version=version,
                actor=system,
                key=key,
                name=key.title(),
                kind="human",
                queue=queue,
                sla_policy=policy,
            )
        services.playbook_version_publish(version=version, actor=system)
    have = Case.objects.filter(playbook=playbook).count()
    started = time.monotonic()
    for n in range(have, n_cases):
        account, _ = services.account_upsert(
            external_id=f"{ACCOUNT_PREFIX}{n}",
            name=f"Bench API {n}",
            plan=("pro", "enterprise", "starter")[n % 3],
            segment="smb",
            region="eu",
            actor=system,
        )
        case = services.case_open(account=account, playbook=playbook, actor=system)
        for k in range(NOTES_PER_CASE):
            services.case_add_note(case_id=case.pk, actor=system, body=f"Bench note {k}")
        if (n + 1) % 50 == 0:
            print(f"  {n + 1}/{n_cases} cases ({time.monotonic() - started:.0f}s)", flush=True)
    ApiToken.objects.filter(name=TOKEN_NAME).delete()
    _, secret = ApiToken.issue(
        name=TOKEN_NAME, scopes=["cases:read", "signals:write"], throttle_rate="100000000/s"
    )
    case_ids = list(
        Case.objects.filter(playbook=playbook).order_by("id").values_list("id", flat=True)
    )[:n_cases]
    accounts = list(
        Account.objects.filter(external_id__startswith=ACCOUNT_PREFIX).values_list(
            "external_id", flat=True
        )
    )
    return {"token": secret, "case_ids": case_ids, "accounts": accounts}


# --- load ------------------------------------------------------------------------------


def _batch_body(accounts: list[str], rng_seed: int, n: int) -> bytes:
    signals = [
        {
            "signal_id": str(uuid.uuid4()),
            "name": SIGNAL_NAME,
            "account_external_id": accounts[(rng_seed + n * BATCH_SIZE + i) % len(accounts)],
            "properties": {"seq": i},
        }
        for i in range(BATCH_SIZE)
    ]
    return json.dumps({"signals": signals}).encode()


def client(phase: str, index: int, ctx: dict[str, Any], start_at: float, out: Any) -> None:
    """One client: one keep-alive connection, requests back to back until time is up."""
    port, token, seconds = ctx["port"], ctx["token"], ctx["seconds"]
    headers = _headers(token)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    latencies: list[float] = []
    errors, items, n = 0, 0, 0
    case_ids = ctx["case_ids"]
    while time.time() < start_at:
        time.sleep(0.001)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        body = None
        if phase == "trivial":
            method, path = "GET", TRIVIAL_PATH
        elif phase == "case detail":
            method = "GET"
            path = f"/api/v1/cases/{case_ids[(index * 7919 + n) % len(case_ids)]}"
        else:
            method, path = "POST", "/api/v1/signals/batch"
            body = _batch_body(ctx["accounts"], index * 104729, n)
        began = time.perf_counter()
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException):
            errors += 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            continue
        latencies.append(time.perf_counter() - began)
        n += 1
        if response.status != 200:
            errors += 1
        elif body is not None:
            items += json.loads(payload)["created"]
    conn.close()
    out.put({"requests": n, "errors": errors, "items": items, "latencies": latencies})


def run_phase(phase: str, ctx: dict[str, Any]) -> dict[str, Any]:
    out: Any = mp.Queue()
    start_at = time.time() + 0.5
    procs = [
        mp.Process(target=client, args=(phase, i, ctx, start_at, out))
        for i in range(ctx["clients"])
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=ctx["seconds"] + 120) for _ in procs]
    for p in procs:
        p.join(30)
    latencies = sorted(x for r in results for x in r["latencies"])
    requests = sum(r["requests"] for r in results)
    seconds = ctx["seconds"]

    def pct(q: float) -> float:
        return (
            latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else 0
        )

    return {
        "phase": phase,
        "requests": requests,
        "errors": sum(r["errors"] for r in results),
        "rps": requests / seconds,
        "items_per_s": sum(r["items"] for r in results) / seconds,
        "p50_ms": pct(0.50),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
    }


PHASES = ("trivial", "case detail", "signal batches")


def statements_per_request(fixture: dict[str, Any]) -> dict[str, int]:
    """SQL statements one request of each phase sends (warm, in this process, through
    Django's test client and the bench URL conf), transaction control included."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, override_settings

    client = Client(HTTP_AUTHORIZATION=f"Bearer {fixture['token']}")
    requests = {
        "trivial": lambda: client.get(TRIVIAL_PATH),
        "case detail": lambda: client.get(f"/api/v1/cases/{fixture['case_ids'][0]}"),
        "signal batch": lambda: client.post(
            "/api/v1/signals/batch",
            _batch_body(fixture["accounts"], 0, 0),
            content_type="application/json",
        ),
    }
    counts = {}
    with override_settings(ROOT_URLCONF=BenchUrls(), ALLOWED_HOSTS=["testserver"]):
        for name, send in requests.items():
            for _ in range(6):  # warm: caches, compiled statements, last-used stamp
                assert send().status_code == 200, name
            with CaptureQueriesContext(connection) as queries:
                assert send().status_code == 200, name
            counts[name] = len(queries.captured_queries)
    return counts


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# --- main ------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=10.0, help="duration of each phase")
    p.add_argument("--rounds", type=int, default=2, help="rounds of the three phases")
    p.add_argument("--clients", type=int, default=4, help="client processes (connections)")
    p.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    p.add_argument("--threads", type=int, default=2, help="threads per gunicorn worker")
    p.add_argument("--cases", type=int, default=200, help="cases in the fixture")
    p.add_argument("--smoke", action="store_true", help="1 s phases, 1 round, 20 cases")
    p.add_argument("--rebuild", action="store_true", help="drop and rebuild the bench DB")
    p.add_argument("--strict", action="store_true", help="exit 1 if a target is missed")
    p.add_argument("--no-save", action="store_true", help="do not write bench/results/*.json")
    args = p.parse_args(argv)
    if args.smoke:
        args.seconds, args.rounds, args.cases = 1.0, 1, 20
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    url = os.environ.get("BENCH_API_DATABASE_URL", DEFAULT_URL)
    created = ensure_database(url, rebuild=args.rebuild)
    setup_django(url)
    migrate()
    print(f"fixture: {args.cases} cases in {db_name(url)}{' (new database)' if created else ''}")
    fixture = build_fixture(args.cases)
    statements = statements_per_request(fixture)
    print(
        "SQL statements per request: "
        + ", ".join(f"{name} {n}" for name, n in statements.items())
        + f" (batch of {BATCH_SIZE})"
    )
    from django.db import connections

    connections.close_all()  # the server and clients have their own

    facts = server_facts(url)
    print(
        f"PostgreSQL {facts['server_version']} (synchronous_commit={facts['synchronous_commit']},"
        f" fsync={facts['fsync']}) · {os.cpu_count()} CPUs · Python {platform.python_version()}"
        f" · gunicorn gthread {args.workers} workers x {args.threads} threads · "
        f"{args.clients} clients · {args.seconds:g}s per phase · {args.rounds} round(s)"
    )
    load_before = load_average()
    print(f"load average before: {load_before}")
    server = Server(url, args.workers, args.threads, ROOT / "var" / "bench-api-gunicorn.log")
    (ROOT / "var").mkdir(exist_ok=True)
    ctx = {**fixture, "clients": args.clients, "seconds": args.seconds}
    rounds: list[list[dict[str, Any]]] = []
    try:
        server.start(fixture["token"])
        ctx["port"] = server.port
        warm = {**ctx, "seconds": min(2.0, args.seconds)}
        for phase in PHASES:  # imports, prepared statements, caches
            run_phase(phase, warm)
        for r in range(args.rounds):
            results = [run_phase(phase, ctx) for phase in PHASES]
            rounds.append(results)
            for res in results:
                extra = (
                    f" = {res['items_per_s']:7.0f} signals/s"
                    if res["phase"] == "signal batches"
                    else ""
                )
                print(
                    f"  round {r + 1}  {res['phase']:<15} {res['rps']:8.1f} req/s"
                    f"  p50 {res['p50_ms']:6.1f} ms  p95 {res['p95_ms']:6.1f} ms"
                    f"  errors {res['errors']}{extra}"
                )
    finally:
        server.stop()
    load_after = load_average()

    def mean(phase: str, key: str) -> float:
        return statistics.mean(
            res[key] for results in rounds for res in results if res["phase"] == phase
        )

    trivial, detail = mean("trivial", "rps"), mean("case detail", "rps")
    signals_per_s = mean("signal batches", "items_per_s")
    ratio = detail / trivial if trivial else 0.0
    errors = sum(res["errors"] for results in rounds for res in results)
    detail_ok = ratio >= TARGET_DETAIL_RATIO
    signals_ok = signals_per_s >= TARGET_SIGNALS_PER_SECOND
    print()
    print("measure                         value      target     result")
    print(
        f"trivial endpoint             {trivial:8.1f} req/s"
        f"\ncase detail                  {detail:8.1f} req/s"
        f"\ncase detail ÷ trivial        {ratio:8.2f}x     >= {TARGET_DETAIL_RATIO:.1f}x    "
        f"{'PASS' if detail_ok else 'FAIL'}"
        f"\nsignal batches of {BATCH_SIZE}        {mean('signal batches', 'rps'):8.1f} req/s"
        f"\nsignals ingested             {signals_per_s:8.0f} /s     >= "
        f"{TARGET_SIGNALS_PER_SECOND:,}      {'PASS' if signals_ok else 'FAIL'}"
        f"\nbatch ÷ trivial (requests)   {mean('signal batches', 'rps') / trivial:8.3f}x"
    )
    print(f"errors: {errors} · load average before {load_before}, after {load_after}")
    if not args.no_save:
        RESULTS_DIR.mkdir(exist_ok=True)
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = RESULTS_DIR / f"api-{stamp}.json"
        path.write_text(
            json.dumps(
                {
                    "args": vars(args),
                    "server": facts,
                    "load_before": load_before,
                    "load_after": load_after,
                    "statements_per_request": statements,
                    "rounds": rounds,
                    "ratio_case_detail_to_trivial": ratio,
                    "signals_per_second": signals_per_s,
                },
                indent=2,
            )
        )
        print(f"saved {path.relative_to(ROOT)}")
    if errors:
        print("FAIL: some requests failed; see the gunicorn log in var/bench-api-gunicorn.log")
        return 1
    return 1 if args.strict and not (detail_ok and signals_ok) else 0


if __name__ == "__main__":
    sys.exit(main())

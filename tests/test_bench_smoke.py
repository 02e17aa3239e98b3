"""The benchmarks still run: each `bench/*.py --smoke` end to end on a small data set.

They are scripts outside the product's import graph, so a refactor can break one
without any other test noticing (it happened to `bench/sweep.py`). Each runs in a
subprocess against its own scratch database (named after the test database, dropped
afterwards), never the benchmark's default one, which may hold a million cases.
The numbers are not checked here; that the run completes and prints its summary is.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent

# script → (its database URL variable, a line its summary always prints)
BENCHES = {
    "transitions": ("BENCH_DATABASE_URL", "tx/s"),
    "sweep": ("BENCH_SWEEP_DATABASE_URL", "rows/s"),
    "claims": ("BENCH_CLAIMS_DATABASE_URL", "double claims"),
    "api": ("BENCH_API_DATABASE_URL", "signals/s"),
    "reports": ("BENCH_REPORTS_DATABASE_URL", "speed-up"),
}


def _server() -> dict[str, str]:
    db = settings.DATABASES["default"]
    return {
        "host": db["HOST"] or "127.0.0.1",
        "port": str(db["PORT"] or 5432),
        "user": db["USER"] or "postgres",
        "base": db["NAME"],
    }


@pytest.fixture
def scratch_url():
    server = _server()
    made: list[str] = []

    def url(script: str) -> str:
        name = f"{server['base']}_benchsmoke_{script}"[:63]
        made.append(name)
        auth = server["user"] + (
            f":{settings.DATABASES['default']['PASSWORD']}"
            if settings.DATABASES["default"].get("PASSWORD")
            else ""
        )
        return f"postgres://{auth}@{server['host']}:{server['port']}/{name}"

    yield url
    admin = settings.DATABASES["default"]
    with psycopg.connect(
        host=server["host"],
        port=server["port"],
        user=server["user"],
        password=admin.get("PASSWORD") or None,
        dbname="postgres",
        autocommit=True,
    ) as conn:
        for name in made:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.mark.parametrize("script", sorted(BENCHES))
def test_the_benchmark_runs_end_to_end_on_a_small_data_set(script, scratch_url):
    variable, summary = BENCHES[script]
    env = {**os.environ, variable: scratch_url(script)}
    env.pop("DJANGO_SETTINGS_MODULE", None)  # the script sets up its own

    result = subprocess.run(
        [sys.executable, f"bench/{script}.py", "--smoke"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert summary in result.stdout, result.stdout[-3000:]

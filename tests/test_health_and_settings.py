"""Operator-facing promises: the health endpoint and strict env configuration."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from config.env import ConfigError, env_bool, env_int

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.django_db
def test_health_reports_database_and_broker(client, settings, tmp_path):
    response = client.get("/health/")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"] == {
        **body["checks"]["database"],
        "ok": True,
        "vendor": "postgresql",
    }
    assert body["checks"]["broker"]["ok"] is True


@pytest.mark.django_db
def test_health_is_503_when_the_broker_is_unreachable(client, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"

    response = client.get("/health/")

    assert response.status_code == 503
    assert response.json()["checks"]["broker"]["ok"] is False


def test_bad_boolean_env_value_is_refused(monkeypatch):
    monkeypatch.setenv("SOME_FLAG", "maybe")
    with pytest.raises(ConfigError):
        env_bool("SOME_FLAG", False)


def test_bad_integer_env_value_is_refused(monkeypatch):
    monkeypatch.setenv("SOME_INT", "ten")
    with pytest.raises(ConfigError):
        env_int("SOME_INT", 1)


def test_secrets_can_come_from_files(monkeypatch, tmp_path):
    secret = tmp_path / "flag"
    secret.write_text("yes\n")
    monkeypatch.setenv("SOME_FLAG_FILE", str(secret))
    assert env_bool("SOME_FLAG", False) is True


def test_secret_key_is_required_when_debug_is_off():
    env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    env.update(DEBUG="0", DJANGO_SETTINGS_MODULE="config.settings")
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


# --- backlog: is the background work keeping up? --------------------------------------


@pytest.mark.django_db
def test_health_says_no_background_work_is_late_on_a_quiet_system(client):
    body = client.get("/health/").json()

    assert set(body["backlog"]) == {
        "sla_sweep",
        "automation_leases",
        "automation_queue",
        "webhook_deliveries",
        "event_stream",
    }
    assert all(item["late"] is False for item in body["backlog"].values())
    assert body["late"] == []


@pytest.mark.django_db
def test_an_sla_clock_overdue_and_not_swept_shows_the_sweep_is_late_but_stays_200(
    client, queue, human_playbook, make_account, system
):
    from datetime import UTC, datetime, timedelta

    from onboarding import clock, services, sweeper
    from onboarding.models import SlaPolicy

    queue.default_sla_policy = SlaPolicy.objects.create(
        key="response", name="Response", target=timedelta(hours=8)
    )
    queue.save()
    opened = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)
    with clock.travel_to(opened):
        services.case_open(account=make_account(), playbook=human_playbook, actor=system)

    with clock.travel_to(opened + timedelta(hours=9)):  # due one hour ago, beat stopped
        response = client.get("/health/")
        sweeper.sweep()
        after_sweep = client.get("/health/").json()

    assert response.status_code == 200 and response.json()["status"] == "ok"
    assert response.json()["late"] == ["sla_sweep"]
    assert response.json()["backlog"]["sla_sweep"]["oldest_seconds"] == 3600.0
    assert after_sweep["late"] == []


@pytest.mark.django_db(transaction=True)
def test_a_long_writing_transaction_shows_as_event_stream_lag(client, monkeypatch):
    import time

    import psycopg
    from django.db import connection

    from config import health

    monkeypatch.setattr(health, "EVENT_STREAM_ALLOWED_SECONDS", 0.5)
    s = connection.settings_dict
    with psycopg.connect(
        dbname=s["NAME"], user=s["USER"], host=s["HOST"], port=s["PORT"] or 5432
    ) as other:
        other.execute("SELECT pg_current_xact_id()")  # a writer: it holds a transaction id
        time.sleep(1.0)
        body = client.get("/health/").json()
        other.rollback()

    assert body["backlog"]["event_stream"]["oldest_seconds"] >= 1.0
    assert "event_stream" in body["late"]
    assert client.get("/health/").json()["backlog"]["event_stream"]["late"] is False


# --- the shared cache (API throttle counters) -------------------------------------------


def _settings_value(expression: str, **env_vars: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", **env_vars}
    return subprocess.run(
        [
            sys.executable,
            "-c",
            f"import django; django.setup(); from django.conf import settings; print({expression})",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_throttle_counters_are_shared_through_redis_when_cache_url_is_set():
    result = _settings_value(
        "settings.CACHES['default']['BACKEND'], settings.CACHES['default'].get('LOCATION')",
        CACHE_URL="redis://127.0.0.1:6379/13",
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "django.core.cache.backends.redis.RedisCache",
        "redis://127.0.0.1:6379/13",
    ]


def test_a_cache_url_that_is_not_redis_is_refused_at_start():
    result = _settings_value("1", CACHE_URL="memcached://127.0.0.1:11211")

    assert result.returncode != 0
    assert "CACHE_URL must be a redis:// URL" in result.stderr

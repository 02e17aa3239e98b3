"""Health endpoint: is the database reachable, is the broker reachable, and is the
background work keeping up.

`status` (and 200/503) follows reachability only: a load balancer must not take the
web tier out because a worker is behind. `backlog` says how late each kind of
background work is (seconds past due of its oldest item, each read from the partial
index the worker itself uses) and lists the late ones under `late`, for monitoring.
"""

from __future__ import annotations

import time

from django.db import connection
from django.http import HttpRequest, JsonResponse


def _check_database() -> dict[str, object]:
    started = time.monotonic()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any failure means "not reachable"; report, don't raise
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    return {
        "ok": True,
        "vendor": connection.vendor,
        "ms": round((time.monotonic() - started) * 1000, 1),
    }


def _check_broker() -> dict[str, object]:
    from django.conf import settings

    from config.celery import app

    started = time.monotonic()
    url = settings.CELERY_BROKER_URL
    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS or {}
    if url.startswith("filesystem://"):
        # The embedded broker is a folder: reachable means it exists and is writable.
        import os

        folder = options.get("data_folder_in", "")
        if not (folder and os.path.isdir(folder) and os.access(folder, os.W_OK)):
            return {"ok": False, "error": f"broker folder {folder!r} is missing or read-only"}
    try:
        with app.connection_for_write(url) as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
            transport = conn.transport_cls
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    return {
        "ok": True,
        "transport": str(transport),
        "ms": round((time.monotonic() - started) * 1000, 1),
    }


# (name, what is late, SQL giving the oldest due instant, setting → allowed seconds)
_BACKLOG = [
    (
        "sla_sweep",
        "running SLA clocks past their due instant that no sweep has breached",
        "SELECT min(due_at) FROM onboarding_slatimer WHERE state = 'running' AND due_at <= %s",
        lambda s: 4 * s.SWEEP_INTERVAL_SECONDS + s.SWEEP_TIME_BUDGET_SECONDS,
    ),
    (
        "automation_leases",
        "automated attempts whose lease expired without the sweep failing them",
        "SELECT min(lease_expires_at) FROM onboarding_task "
        "WHERE state = 'running' AND lease_expires_at <= %s",
        lambda s: 4 * s.SWEEP_INTERVAL_SECONDS + s.SWEEP_TIME_BUDGET_SECONDS,
    ),
    (
        "automation_queue",
        "automated steps due that no worker has started",
        "SELECT min(t.not_before) FROM onboarding_task t JOIN onboarding_case c "
        "ON c.id = t.case_id WHERE t.state = 'scheduled' AND t.not_before <= %s "
        "AND c.state = 'active'",
        lambda s: 3 * s.AUTOMATION_REDISPATCH_SECONDS,
    ),
    (
        "webhook_deliveries",
        "webhook deliveries due that no worker has sent",
        "SELECT min(next_attempt_at) FROM api_webhookdelivery "
        "WHERE status = 'pending' AND next_attempt_at <= %s",
        lambda s: 3 * s.WEBHOOK_REDISPATCH_SECONDS,
    ),
]

# The export stream and webhooks serve events only below the oldest transaction still
# writing in this database: a long one holds them back (nothing is lost).
_OLDEST_WRITER = """
    SELECT extract(epoch FROM clock_timestamp() - min(xact_start)) FROM pg_stat_activity
    WHERE datname = current_database() AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()
"""
EVENT_STREAM_ALLOWED_SECONDS = 300


def _check_backlog() -> dict[str, object]:
    from django.conf import settings

    from onboarding import clock

    now = clock.now()
    items: dict[str, dict[str, object]] = {}
    try:
        with connection.cursor() as cursor:
            for name, about, sql, allowed in _BACKLOG:
                cursor.execute(sql, [now])
                oldest = cursor.fetchone()[0]
                age = (now - oldest).total_seconds() if oldest else 0.0
                items[name] = _lag(about, age, allowed(settings))
            if connection.vendor == "postgresql":
                cursor.execute(_OLDEST_WRITER)
                age = cursor.fetchone()[0]
                items["event_stream"] = _lag(
                    "the oldest transaction holding back the event export and webhooks",
                    float(age or 0),
                    EVENT_STREAM_ALLOWED_SECONDS,
                )
    except Exception as exc:  # reported, never raised: the reachability checks decide
        return {"error": f"{type(exc).__name__}: {exc}"[:300]}
    return items


def _lag(about: str, seconds: float, allowed: float) -> dict[str, object]:
    seconds = max(round(seconds, 1), 0.0)
    return {
        "about": about,
        "oldest_seconds": seconds,
        "allowed_seconds": allowed,
        "late": seconds > allowed,
    }


def health(request: HttpRequest) -> JsonResponse:
    checks = {"database": _check_database(), "broker": _check_broker()}
    healthy = all(check["ok"] for check in checks.values())
    backlog = _check_backlog() if checks["database"]["ok"] else {}
    late = sorted(k for k, v in backlog.items() if isinstance(v, dict) and v.get("late"))
    return JsonResponse(
        {
            "status": "ok" if healthy else "unavailable",
            "checks": checks,
            "backlog": backlog,
            "late": late,
        },
        status=200 if healthy else 503,
    )

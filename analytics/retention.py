"""Retention: raw events older than `EVENT_RETENTION_DAYS` are purged, in batches.

`analytics.purge_events` (beat, every `EVENT_RETENTION_PURGE_INTERVAL_SECONDS`) calls
`purge_expired_events()`. With `EVENT_RETENTION_DAYS = 0` (the default) nothing is
purged.

Which events: those *recorded* more than the window ago (`recorded_at`, indexed by
`event_recorded`). Not `occurred_at`: a producer may report a signal long after it
happened, and that event must still reach the export stream and the webhooks;
`recorded_at` is when it became readable there, so the window is what every reader
gets to read it. Readers of the export API (`GET /api/v1/events/`) must read within
the window: their cursors are theirs, unknown here, and an event purged before they
got to it is gone for them (the stream itself stays gap-free: it just starts later).

What is kept whatever its age:

- events an active webhook's relay has not passed yet: everything after the lowest
  stream position `(xact, id)` of the active webhooks (a disabled webhook does not
  hold retention back; enabled again, it resumes with what is left);
- events of a delivery still pending for an active webhook (being retried).

Facts and reports do not read raw events (`analytics.metrics` computes from tasks,
clocks, cases and accounts), so the reports and the case pages keep working; a case's
timeline simply shows fewer events. Only `analytics.metrics.replay` (the
reconciliation check) needs raw events, and skips cases opened before retention.

How: events are append-only (`Event.delete` and `EventQuerySet.update` refuse, and on
PostgreSQL a trigger refuses any UPDATE or DELETE unless `analytics.event_purge` is
on, see `purging_events`), and this module is the one sanctioned way to remove them:
plain SQL `DELETE`s, each of at most `batch_size` rows picked through the
`recorded_at` index, each its own statement (and, outside a transaction, its own
commit), so a backlog never holds one
huge transaction or its locks. No index is needed beyond `event_recorded` and the
primary key (EXPLAIN: an index range scan picks a batch, the pkey finds its rows;
about 50 ms per 10,000 events). Batches stop after `time_budget` seconds; the next run
continues (`more` in the result says there is more).

The same task also drops `Idempotency-Key` responses older than
`IDEMPOTENCY_KEY_TTL_HOURS` (default 24; 0 keeps them): a retry later than that runs
the create again.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone

from analytics.models import Event, StreamPosition, has_commit_order_column

log = logging.getLogger(__name__)

BATCH_SIZE = 10_000
TIME_BUDGET_SECONDS = 120.0


def relay_floor() -> StreamPosition | None:
    """The lowest stream position of the active webhooks (None: no active webhook).

    Positions only move forward, so a floor read once is safe for a whole run."""
    from api.models import WebhookSubscription

    row = (
        WebhookSubscription.objects.filter(is_active=True)
        .order_by("stream_xact", "stream_event_id")
        .values_list("stream_xact", "stream_event_id")
        .first()
    )
    return StreamPosition(*row) if row else None


def _event_batch_sql(floor: StreamPosition | None) -> tuple[str, dict[str, object]]:
    from api.models import WebhookDelivery, WebhookSubscription

    params: dict[str, object] = {}
    conditions = ["e.recorded_at < %(cutoff)s"]
    if floor is not None:
        if has_commit_order_column():
            conditions.append("(e.xact, e.id) <= (%(floor_xact)s::text::xid8, %(floor_id)s)")
            params["floor_xact"] = str(floor.xact)
        else:  # SQLite: the stream is id order
            conditions.append("e.id <= %(floor_id)s")
        params["floor_id"] = floor.id
    conditions.append(
        f"""NOT EXISTS (
            SELECT 1 FROM {WebhookDelivery._meta.db_table} d
            JOIN {WebhookSubscription._meta.db_table} s ON s.id = d.subscription_id
            WHERE d.event_id = e.id AND d.status = 'pending' AND s.is_active)"""
    )
    table = Event._meta.db_table
    picked = f"SELECT e.id FROM {table} e WHERE {' AND '.join(conditions)} LIMIT %(batch)s"
    return _delete_ids(table, picked), params


def _delete_ids(table: str, picked: str) -> str:
    """DELETE the rows whose ids `picked` (a SELECT) returns.

    On PostgreSQL the ids go through an array, so the rows are found by primary key:
    with `id IN (subquery)` the planner may hash-join and scan the whole table per batch.
    """
    if connection.vendor == "postgresql":
        return f"DELETE FROM {table} WHERE id = ANY(ARRAY({picked}))"
    return f"DELETE FROM {table} WHERE id IN ({picked})"


@contextlib.contextmanager
def purging_events() -> Iterator[None]:
    """Lift the database's append-only guard on `analytics_event` (analytics 0006) for
    this connection while the block runs. Only for the purge."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('analytics.event_purge', 'on', false)")
    try:
        yield
    finally:
        # In a failed transaction this cannot run, but the setting is rolled back with it.
        with contextlib.suppress(DatabaseError), connection.cursor() as cursor:
            cursor.execute("SELECT set_config('analytics.event_purge', '', false)")


def _delete_in_batches(
    sql: str, params: dict[str, object], batch_size: int, deadline: float
) -> tuple[int, int, bool]:
    """Run `sql` (a DELETE of at most %(batch)s rows) until a batch comes back short
    or the time is up. Returns (rows, statements, more left)."""
    deleted = statements = 0
    with connection.cursor() as cursor:
        while True:
            cursor.execute(sql, {**params, "batch": batch_size})
            statements += 1
            deleted += cursor.rowcount
            if cursor.rowcount < batch_size:
                return deleted, statements, False
            if time.monotonic() >= deadline:
                return deleted, statements, True


def purge_expired_events(
    *,
    now: datetime | None = None,
    batch_size: int = BATCH_SIZE,
    time_budget: float = TIME_BUDGET_SECONDS,
) -> dict[str, int]:
    """Purge what is past its retention; returns counts (for the task's log).

    `now` defaults to the wall clock, like `recorded_at` (not `onboarding.clock`).
    """
    now = now or timezone.now()
    deadline = time.monotonic() + time_budget
    result = {"events": 0, "event_batches": 0, "idempotency_keys": 0, "more": 0}

    days = settings.EVENT_RETENTION_DAYS
    if days > 0:
        sql, params = _event_batch_sql(relay_floor())
        params["cutoff"] = now - timedelta(days=days)
        with purging_events():
            result["events"], result["event_batches"], more = _delete_in_batches(
                sql, params, batch_size, deadline
            )
        result["more"] = int(more)

    hours = getattr(settings, "IDEMPOTENCY_KEY_TTL_HOURS", 24)
    if hours > 0 and not result["more"]:
        from api.models import IdempotencyKey

        table = IdempotencyKey._meta.db_table
        sql = _delete_ids(
            table, f"SELECT e.id FROM {table} e WHERE e.created_at < %(cutoff)s LIMIT %(batch)s"
        )
        params = {"cutoff": now - timedelta(hours=hours)}
        result["idempotency_keys"], _, more = _delete_in_batches(sql, params, batch_size, deadline)
        result["more"] = int(more)
    if result["events"] or result["idempotency_keys"]:
        log.info("retention purge: %s", result)
    return result

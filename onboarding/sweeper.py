"""The sweep: the database, not the broker, decides what is overdue.

Run by beat every `SWEEP_INTERVAL_SECONDS`. Each pass reads only due rows through
partial indexes, in batches locked with `FOR NO KEY UPDATE … SKIP LOCKED`, so several
sweepers split the work instead of doing it twice, and the cost follows the number of
due rows rather than the size of the tables.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction

from onboarding import clock
from onboarding.actors import Actor
from onboarding.automation import send_to_worker
from onboarding.errors import DomainError
from onboarding.models import Task
from onboarding.services import task_expire_lease
from onboarding.services._write import atomic_write

log = logging.getLogger(__name__)


@dataclass
class SweepReport:
    leases_expired: int = 0
    redispatched: int = 0
    skipped: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _locking(sql: str, of: str) -> str:
    # SQLite has no row locks (its writers are serialized); PostgreSQL skips rows
    # another sweeper or a service holds, never waiting on them.
    if connection.features.has_select_for_update_skip_locked:
        return f"{sql} FOR NO KEY UPDATE OF {of} SKIP LOCKED"
    return sql


_EXPIRED_LEASES = """
    SELECT t.id FROM onboarding_task t JOIN onboarding_case c ON c.id = t.case_id
    WHERE t.state = 'running' AND t.lease_expires_at < %s
    ORDER BY t.lease_expires_at LIMIT %s"""

_UNDELIVERED = """
    SELECT t.id FROM onboarding_task t JOIN onboarding_case c ON c.id = t.case_id
    WHERE t.state = 'scheduled' AND t.not_before <= %s AND c.state = 'active'
      AND (t.dispatched_at IS NULL OR t.dispatched_at <= %s)
    ORDER BY t.not_before LIMIT %s"""


def _ids(sql: str, params: list[object]) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()]


def expire_leases(now: datetime, batch_size: int, report: SweepReport) -> int:
    """Attempts whose worker never reported back are failed (and retried or escalated)."""
    actor = Actor.system("sweeper", source="sweeper")
    with atomic_write():
        ids = _ids(_locking(_EXPIRED_LEASES, "c, t"), [now, batch_size])
        for task_id in ids:
            try:
                with transaction.atomic():  # one bad row must not undo the batch
                    task_expire_lease(task_id=task_id, actor=actor)
                report.leases_expired += 1
            except DomainError as exc:
                report.skipped += 1
                log.info("lease of step %s not expired: %s", task_id, exc.message)
    return len(ids)


def redispatch(now: datetime, batch_size: int, report: SweepReport) -> int:
    """Due scheduled steps no worker has leased: ring the doorbell again."""
    grace = timedelta(seconds=settings.AUTOMATION_REDISPATCH_SECONDS)
    with atomic_write():
        ids = _ids(_locking(_UNDELIVERED, "t"), [now - grace, now - grace, batch_size])
        if ids:
            Task.objects.filter(pk__in=ids).update(dispatched_at=now)  # bookkeeping, not state
            for task_id in ids:
                transaction.on_commit(lambda task_id=task_id: send_to_worker(task_id))
    report.redispatched += len(ids)
    return len(ids)


def sweep(*, now: datetime | None = None, batch_size: int | None = None) -> SweepReport:
    """One pass over everything due; bounded in time so beat runs never pile up."""
    now = now or clock.now()
    batch_size = batch_size or settings.SWEEP_BATCH_SIZE
    deadline = time.monotonic() + settings.SWEEP_TIME_BUDGET_SECONDS
    report = SweepReport()
    for step in (expire_leases, redispatch):
        while step(now, batch_size, report) == batch_size and time.monotonic() < deadline:
            pass
    if report.leases_expired or report.redispatched:
        log.info("sweep: %s", report.as_dict())
    return report

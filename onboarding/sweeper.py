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
from onboarding.calendar import business_between
from onboarding.errors import DomainError
from onboarding.models import Queue, SlaTimer, Task
from onboarding.reminders import send_due_reminders
from onboarding.services import sla, task_expire_lease, task_release
from onboarding.services._write import atomic_write
from onboarding.statements import skip_locked

log = logging.getLogger(__name__)


@dataclass
class SweepReport:
    leases_expired: int = 0
    redispatched: int = 0
    warned: int = 0
    breached: int = 0
    reminders: int = 0
    claims_released: int = 0
    skipped: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


_EXPIRED_LEASES = """
    SELECT t.id FROM onboarding_task t JOIN onboarding_case c ON c.id = t.case_id
    WHERE t.state = 'running' AND t.lease_expires_at < %s
    ORDER BY t.lease_expires_at LIMIT %s"""

_UNDELIVERED = """
    SELECT t.id FROM onboarding_task t JOIN onboarding_case c ON c.id = t.case_id
    WHERE t.state = 'scheduled' AND t.not_before <= %s AND c.state = 'active'
      AND (t.dispatched_at IS NULL OR t.dispatched_at <= %s)
    ORDER BY t.not_before LIMIT %s"""


# Each matches one partial index (timer_warn_due / timer_breach_due) exactly.
_WARN_DUE = """
    SELECT t.id FROM onboarding_slatimer t JOIN onboarding_case c ON c.id = t.case_id
    WHERE t.state = 'running' AND t.warned_at IS NULL AND t.warn_at <= %s
    ORDER BY t.warn_at LIMIT %s"""

_BREACH_DUE = """
    SELECT t.id FROM onboarding_slatimer t JOIN onboarding_case c ON c.id = t.case_id
    WHERE t.state = 'running' AND t.due_at <= %s
    ORDER BY t.due_at LIMIT %s"""


def _ids(sql: str, params: list[object]) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()]


def expire_leases(now: datetime, batch_size: int, report: SweepReport) -> int:
    """Attempts whose worker never reported back are failed (and retried or escalated)."""
    actor = Actor.system("sweeper", source="sweeper")
    with atomic_write():
        ids = _ids(skip_locked(_EXPIRED_LEASES, "c, t"), [now, batch_size])
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
        ids = _ids(skip_locked(_UNDELIVERED, "t"), [now - grace, now - grace, batch_size])
        if ids:
            Task.objects.filter(pk__in=ids).update(dispatched_at=now)  # bookkeeping, not state
            for task_id in ids:
                transaction.on_commit(lambda task_id=task_id: send_to_worker(task_id))
    report.redispatched += len(ids)
    return len(ids)


def _fire(sql: str, now: datetime, batch_size: int, report: SweepReport) -> int:
    actor = Actor.system("sla", source="sweeper")
    with atomic_write():
        ids = _ids(skip_locked(sql, "c, t"), [now, batch_size])
        timers = sla.load_timers(ids)
        # Escalating a breach may lock its target queue (auto-assignment) until the
        # batch commits: take queues in one order, as the claim-timeout sweep does, so
        # two sweepers never wait on each other's queues.
        for timer_id in sorted(ids, key=lambda i: (_escalation_queue(timers[i]), i)):
            try:
                with transaction.atomic():  # one bad timer must not undo the batch
                    outcome = sla.breach_overdue(
                        timer_id, actor=actor, now=now, timer=timers[timer_id]
                    )
            except DomainError as exc:
                report.skipped += 1
                log.warning("timer %s not fired: %s", timer_id, exc.message)
                continue
            if outcome == "breached":
                report.breached += 1
            elif outcome == "warned":
                report.warned += 1
            else:
                report.skipped += 1
    return len(ids)


def _escalation_queue(timer: SlaTimer) -> int:
    """Where a breach of this timer would escalate to (0: the exceptions queue)."""
    task = timer.task
    return timer.policy.escalation_queue_id or (task.queue_id if task else None) or 0


def fire_warnings(now: datetime, batch_size: int, report: SweepReport) -> int:
    """Timers past their warning threshold: warn once (a breach due too is handled)."""
    return _fire(_WARN_DUE, now, batch_size, report)


def fire_breaches(now: datetime, batch_size: int, report: SweepReport) -> int:
    """Timers past their target: breach once and escalate as the policy says."""
    return _fire(_BREACH_DUE, now, batch_size, report)


# Wall-clock idleness is a necessary condition (business time never runs faster), so
# the index narrows the candidates and the calendar decides.
_IDLE_CLAIMS = """
    SELECT t.id FROM onboarding_task t
    JOIN onboarding_case c ON c.id = t.case_id
    JOIN onboarding_queue q ON q.id = t.queue_id
    WHERE t.state = 'in_progress' AND q.claim_timeout_minutes IS NOT NULL
      AND t.updated_at <= %s AND t.id > %s
    ORDER BY t.id LIMIT %s"""


def release_idle_claims(now: datetime, batch_size: int, report: SweepReport) -> int:
    """Claimed tasks idle past their queue's claim timeout go back to the queue."""
    actor = Actor.system("sweeper", source="sweeper")
    oldest_timeout = (
        Queue.objects.filter(claim_timeout_minutes__isnull=False)
        .order_by("claim_timeout_minutes")
        .values_list("claim_timeout_minutes", flat=True)
        .first()
    )
    if oldest_timeout is None:
        return 0
    cutoff = now - timedelta(minutes=oldest_timeout)
    seen = 0
    after = 0
    while True:
        with atomic_write():
            ids = _ids(skip_locked(_IDLE_CLAIMS, "c, t"), [cutoff, after, batch_size])
            tasks = Task.objects.select_related("queue__calendar").in_bulk(ids)
            # A release may auto-assign, which locks the queue until this batch commits:
            # taking queues in one order keeps two sweepers from waiting on each other.
            for task_id in sorted(ids, key=lambda i: (tasks[i].queue_id, i)):
                task = tasks[task_id]
                cal = task.queue.calendar.compile() if task.queue.calendar_id else None
                idle = (
                    business_between(task.updated_at, now, cal)
                    if cal
                    else (now - task.updated_at).total_seconds()
                )
                if idle < task.queue.claim_timeout_minutes * 60:
                    continue
                try:
                    with transaction.atomic():
                        task_release(task_id=task_id, actor=actor, reason="claim timed out")
                    report.claims_released += 1
                except DomainError as exc:
                    report.skipped += 1
                    log.info("claim on %s not released: %s", task_id, exc.message)
        seen += len(ids)
        if len(ids) < batch_size:
            return seen
        after = ids[-1]


def remind(now: datetime, batch_size: int, report: SweepReport) -> int:
    """Nudge customers about signal steps waiting on them (once per window)."""
    sent = send_due_reminders(now=now, batch_size=batch_size)
    report.reminders += sent
    return sent


def sweep(*, now: datetime | None = None, batch_size: int | None = None) -> SweepReport:
    """One pass over everything due; bounded in time so beat runs never pile up."""
    now = now or clock.now()
    batch_size = batch_size or settings.SWEEP_BATCH_SIZE
    deadline = time.monotonic() + settings.SWEEP_TIME_BUDGET_SECONDS
    report = SweepReport()
    for step in (expire_leases, redispatch, fire_warnings, fire_breaches, remind):
        while step(now, batch_size, report) == batch_size and time.monotonic() < deadline:
            pass
    release_idle_claims(now, batch_size, report)  # pages through by id itself
    if any(report.as_dict().values()):
        log.info("sweep: %s", report.as_dict())
    return report

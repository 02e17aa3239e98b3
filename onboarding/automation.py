"""Automated steps: a registry of handlers and the run loop a worker executes.

A run is three moves, never holding a database lock while the handler talks to the
outside world: lease (`scheduled → running`, committed), call the handler, record
the outcome in a second transaction. A handler gets an idempotency key (task id +
attempt) to pass on to the systems it calls, because an attempt may be repeated
after a worker crash.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import random
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

from django.db import transaction

from onboarding.actors import Actor
from onboarding.errors import DomainError

log = logging.getLogger(__name__)

Handler = Callable[..., Any]
HANDLERS: dict[str, Handler] = {}


class PermanentError(Exception):
    """Raised by a handler when retrying cannot help: the step escalates at once."""


def automated_step(key: str) -> Callable[[Handler], Handler]:
    """Register `fn(task, *, idempotency_key) -> str | None` as the handler for `key`."""

    def register(fn: Handler) -> Handler:
        if key in HANDLERS and HANDLERS[key] is not fn:
            raise ValueError(f"automation handler {key!r} registered twice")
        HANDLERS[key] = fn
        return fn

    return register


def retry_delay(
    attempt: int, *, base: float, cap: float, rng: random.Random | None = None
) -> float:
    """Exponential backoff with equal jitter: half the delay fixed, half random.

    Attempt 1 failed → base·[0.5, 1]; each further attempt doubles it, up to `cap`.
    The jitter spreads retries of many steps that failed together (an outage).
    """
    ceiling = min(cap, base * 2 ** max(attempt - 1, 0))
    return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)


# --- dispatch: the broker is a doorbell; the sweep rings again if it is lost --------

_dispatch_suppressed: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "dispatch_suppressed", default=False
)


@contextlib.contextmanager
def dispatch_suppressed() -> Iterator[None]:
    """For replays (the demo seeder) that drive automation themselves."""
    token = _dispatch_suppressed.set(True)
    try:
        yield
    finally:
        _dispatch_suppressed.reset(token)


def dispatch_on_commit(task_id: int, *, delay: timedelta | None = None) -> None:
    """Ask a worker to run the step once this transaction commits (never if it rolls back)."""
    if _dispatch_suppressed.get():
        return
    countdown = max(delay.total_seconds(), 0) if delay else 0
    transaction.on_commit(lambda: send_to_worker(task_id, countdown=countdown))


def send_to_worker(task_id: int, *, countdown: float = 0) -> bool:
    from onboarding.tasks import run_automated_step

    try:
        run_automated_step.apply_async((task_id,), countdown=countdown or None)
    except Exception:  # broker down: the step stays due and the sweep re-dispatches it
        log.warning("could not enqueue step %s; the sweep will retry", task_id, exc_info=True)
        return False
    return True


# --- the run loop -------------------------------------------------------------------


def run_step(task_id: int) -> str:
    """Run one attempt of an automated step. Safe to call twice for the same message."""
    from onboarding import services

    actor = Actor.system("automation", source="worker")
    try:
        task = services.task_start(task_id=task_id, actor=actor)
    except DomainError as exc:  # already moved, not due yet, case on hold, gone
        log.info("step %s not started: %s", task_id, exc.message)
        return "skipped"

    attempt = task.attempts
    handler = HANDLERS.get(task.step.handler)
    try:
        if handler is None:
            raise PermanentError(f"no automation handler registered for {task.step.handler!r}")
        result = handler(task, idempotency_key=f"{task.pk}:{attempt}")
    except Exception as exc:
        log.warning("step %s attempt %s failed: %s", task_id, attempt, exc)
        try:
            services.task_fail(
                task_id=task_id,
                actor=actor,
                error=str(exc) or type(exc).__name__,
                error_type=type(exc).__name__,
                attempt=attempt,
                permanent=isinstance(exc, PermanentError),
            )
        except DomainError as stale:  # the lease expired and someone else took over
            log.info("discarding outcome of step %s attempt %s: %s", task_id, attempt, stale)
            return "stale"
        return "failed"

    try:
        services.task_succeed(
            task_id=task_id, actor=actor, summary=str(result or ""), attempt=attempt
        )
    except DomainError as stale:
        log.info("discarding outcome of step %s attempt %s: %s", task_id, attempt, stale)
        return "stale"
    return "succeeded"

"""Reminders: nudge the customer while a signal step waits on them.

A step with `reminder_interval` set has windows 1…`max_reminders`; window n opens at
`activated_at + n * interval`. Each pass of the sweep sends, per waiting task, the
LATEST open window not yet sent — never a backlog: after an outage that kept the
sweep down for two intervals the customer gets one email (window 2), not two at
once; the skipped window is simply never sent.

De-duplication is the unique (task, kind, window) Reminder row: it is inserted in
the transaction that records "Reminder Sent", and the email goes out only after that
transaction commits. A second sender that gets as far as the insert fails on the
unique index, sends nothing and records nothing. Delivery is therefore at most once
per window: an email the mail relay refuses after the commit is logged, not retried
(its row says the window is done); the `Idempotency-Key` header lets a relay that
saw the message drop a repeat.

Candidates are read like the sweep reads due work: only waiting signal tasks of
active cases whose next window is open, in batches locked with
`FOR NO KEY UPDATE … SKIP LOCKED` (case, then task: the write path's lock order),
so concurrent sweepers split the work, and a signal completing the task meanwhile
either waits for the batch or makes the task no longer a candidate.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from functools import partial

from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.db.models import (
    DateTimeField,
    DurationField,
    ExpressionWrapper,
    F,
    OuterRef,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce

from analytics.recording import record
from onboarding import clock
from onboarding.actors import Actor
from onboarding.models import Reminder, StepKind, Task
from onboarding.models.cases import CaseState, TaskState
from onboarding.services._write import atomic_write

log = logging.getLogger(__name__)

KIND = "signal_nudge"
CHANNEL = "email"


def due_for_reminder(now: datetime) -> QuerySet[Task]:
    """Waiting signal tasks of active cases whose next unsent window has opened.

    Annotated with `next_window` (the first window not yet sent). The whole
    condition is in SQL, so tasks that got all their reminders, or are between
    windows, never fill a batch and starve the ones that are due.
    """
    last_sent = (
        Reminder.objects.filter(task=OuterRef("pk"), kind=KIND)
        .order_by("-window")
        .values("window")[:1]
    )
    return (
        Task.objects.filter(
            state=TaskState.WAITING,
            kind=StepKind.SIGNAL,
            case__state=CaseState.ACTIVE,
            activated_at__isnull=False,
            step__reminder_interval__gt=timedelta(0),
        )
        .annotate(next_window=Coalesce(Subquery(last_sent), Value(0)) + Value(1))
        .filter(next_window__lte=F("step__max_reminders"))
        .annotate(
            next_due_at=ExpressionWrapper(
                F("activated_at")
                + ExpressionWrapper(
                    F("step__reminder_interval") * F("next_window"),
                    output_field=DurationField(),
                ),
                output_field=DateTimeField(),
            )
        )
        .filter(next_due_at__lte=now)
    )


def latest_due_window(task: Task, now: datetime) -> int:
    """The highest window open at `now` (0: none), capped at the step's maximum."""
    step = task.step
    if not step.reminder_interval or task.activated_at is None or now < task.activated_at:
        return 0
    return min(step.max_reminders, (now - task.activated_at) // step.reminder_interval)


def send_due_reminders(*, now: datetime | None = None, batch_size: int = 200) -> int:
    """Send one batch of due reminders; returns how many were sent.

    Handles at most `batch_size` tasks, so a caller with a time budget (the sweep)
    calls again while it returns `batch_size`.
    """
    now = now or clock.now()
    actor = Actor.system("reminders", source="sweeper")
    sent = 0
    with atomic_write():
        tasks = list(
            due_for_reminder(now)
            .select_related("case__account", "step")
            .select_for_update(no_key=True, skip_locked=True, of=("case", "self"))
            .order_by("next_due_at", "id")[:batch_size]
        )
        for task in tasks:
            window = latest_due_window(task, now)
            if window < task.next_window:  # cannot happen unless the clock went back
                continue
            try:
                with transaction.atomic():  # savepoint: a lost race undoes only this insert
                    reminder = Reminder.objects.create(
                        task=task, kind=KIND, window=window, sent_at=now, channel=CHANNEL
                    )
            except IntegrityError:
                log.info("reminder %s for task %s already sent", window, task.pk)
                continue
            record(
                "Reminder Sent",
                actor=actor,
                task=task,
                properties={"kind": KIND, "window": window, "channel": CHANNEL},
                occurred_at=now,
            )
            transaction.on_commit(partial(_send, _email(task, reminder), task.pk))
            sent += 1
    return sent


def _email(task: Task, reminder: Reminder) -> EmailMessage:
    account = task.case.account
    recipient = (
        account.properties.get("contact_email") or f"owner+{account.external_id}@example.com"
    )
    step = task.step
    lines = [
        f"Hello {account.name},",
        "",
        f"Your onboarding is waiting for one step on your side: {step.name}.",
    ]
    if step.description:
        lines.append(step.description)
    lines += ["", "Once it is done, we carry on automatically."]
    return EmailMessage(
        subject=f"Reminder: {step.name}",
        body="\n".join(lines),
        to=[recipient],
        headers={"Idempotency-Key": f"reminder-{task.pk}-{reminder.window}"},
    )


def _send(message: EmailMessage, task_id: int) -> None:
    try:
        message.send()
    except Exception:  # the relay is down: the window stays sent (at most once)
        log.warning("could not send the reminder for task %s", task_id, exc_info=True)

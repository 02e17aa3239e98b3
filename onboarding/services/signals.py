"""Product signals: an integration reports that something happened for an account
("Data Source Connected"), and the steps waiting for it move on.

`signal_id` is the producer's id and the de-duplication key. The unique index on it
decides who applies a signal: the insert runs first, in a savepoint, so a second
delivery of the same id — sequential or concurrent — fails to insert (a concurrent
one waits on the index until the first commits), rolls back only its savepoint and
returns the stored row, changing nothing.

What a signal does, in the transaction that stores it:
- completes every waiting *signal* step of the account's open cases whose
  `signal_name` is the signal's name (through `task_complete_by_signal`, so each
  completion is the usual transition with its own "Step Completed" event, and the
  case advances);
- resumes every *human* task of those cases that waits on the customer
  (`waiting`) if its step names this signal. Opt-in on purpose: resuming every
  waiting human task on any product signal would let routine traffic ("User
  Logged In") bounce tasks an agent parked for a specific reason (a missing logo)
  back into work. A step that says which signal answers its question gets it;
- records one "Signal Received" event for the account. The signal's own
  properties are stored on the Signal row only: producers put emails and names in
  them, and events carry no PII.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from analytics.recording import record
from onboarding import clock
from onboarding.actors import Actor
from onboarding.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound
from onboarding.models import Account, ContextEntry, Signal, StepKind, Task
from onboarding.models.cases import OPEN_CASE_STATES, TaskState
from onboarding.services._write import atomic_write
from onboarding.services.tasks import add_context_entry, task_complete_by_signal, task_resume

log = logging.getLogger(__name__)

MAX_BATCH_SIZE = 500
_FIELDS = ("name", "account_external_id", "signal_id", "properties", "occurred_at")
_NAME_MAX = Signal._meta.get_field("name").max_length
_SIGNAL_ID_MAX = Signal._meta.get_field("signal_id").max_length


def _check_actor(actor: Actor) -> None:
    if not (actor.is_system or actor.is_integration or actor.is_manager):
        raise Forbidden(f"{actor} may not send product signals.")


def _clean(
    name: Any, account_external_id: Any, signal_id: Any, properties: Any, occurred_at: Any
) -> tuple[str, str, str, dict[str, Any], datetime | None]:
    """Validated, stripped input, or the InvalidInput naming the first bad field."""
    cleaned: list[str] = []
    for value, field, limit in (
        (name, "name", _NAME_MAX),
        (account_external_id, "account_external_id", None),
        (signal_id, "signal_id", _SIGNAL_ID_MAX),
    ):
        text = value.strip() if isinstance(value, str) else ""
        if not text:
            raise InvalidInput(f"A {field} is required.", field=field)
        if limit is not None and len(text) > limit:
            raise InvalidInput(f"{field} is longer than {limit} characters.", field=field)
        cleaned.append(text)
    if properties is None:
        properties = {}
    if not isinstance(properties, dict):
        raise InvalidInput("properties must be an object.", field="properties")
    try:
        json.dumps(properties)
    except (TypeError, ValueError):
        raise InvalidInput("properties must be plain JSON.", field="properties") from None
    if occurred_at is not None and (
        not isinstance(occurred_at, datetime) or timezone.is_naive(occurred_at)
    ):
        raise InvalidInput("occurred_at must be a time with a time zone.", field="occurred_at")
    return cleaned[0], cleaned[1], cleaned[2], properties, occurred_at


def signal_receive(
    *,
    name: str,
    account_external_id: str,
    signal_id: str,
    actor: Actor,
    properties: dict[str, Any] | None = None,
    occurred_at: datetime | None = None,
) -> tuple[Signal, bool]:
    """Store a product signal once and apply it. Returns (signal, created).

    A signal id seen before returns the stored signal with `created=False` and
    changes nothing; the same id reused for another name or account is a Conflict
    (a producer bug that would otherwise be silently swallowed).
    """
    _check_actor(actor)
    name, external_id, signal_id, properties, occurred_at = _clean(
        name, account_external_id, signal_id, properties, occurred_at
    )
    account = Account.objects.filter(external_id=external_id).first()
    if account is None:
        raise NotFound(f"Account {external_id!r} does not exist.", field="account_external_id")
    return _receive(
        account=account,
        name=name,
        signal_id=signal_id,
        properties=properties,
        occurred_at=occurred_at,
        actor=actor,
    )


def signals_receive_batch(
    *, signals: list[dict[str, Any]], actor: Actor
) -> list[tuple[Signal | None, bool, DomainError | None]]:
    """Receive many signals; each item is its own transaction and its own outcome.

    Returns one `(signal, created, error)` per item, in order: a bad item reports its
    DomainError and does not stop the others. The actor and the batch size are
    checked for the whole request (Forbidden / InvalidInput raised, nothing stored).
    Accounts and already-stored signal ids are resolved with one query each, so a
    replayed batch costs two queries rather than a failed insert per item.
    """
    _check_actor(actor)
    if not isinstance(signals, list):
        raise InvalidInput("signals must be a list.", field="signals")
    if len(signals) > MAX_BATCH_SIZE:
        raise InvalidInput(
            f"At most {MAX_BATCH_SIZE} signals per batch (got {len(signals)}).", field="signals"
        )

    results: list[tuple[Signal | None, bool, DomainError | None]] = [(None, False, None)] * len(
        signals
    )
    valid: dict[int, tuple[str, str, str, dict[str, Any], datetime | None]] = {}
    for i, item in enumerate(signals):
        try:
            if not isinstance(item, Mapping):
                raise InvalidInput("Each signal must be an object.")
            unknown = sorted(set(item) - set(_FIELDS))
            if unknown:
                raise InvalidInput(f"Unknown signal fields: {', '.join(unknown)}.")
            valid[i] = _clean(*(item.get(field) for field in _FIELDS))
        except DomainError as exc:
            results[i] = (None, False, exc)

    accounts = {
        a.external_id: a
        for a in Account.objects.filter(external_id__in={v[1] for v in valid.values()})
    }
    stored = {
        s.signal_id: s for s in Signal.objects.filter(signal_id__in={v[2] for v in valid.values()})
    }
    for i, (name, external_id, signal_id, properties, occurred_at) in valid.items():
        try:
            account = accounts.get(external_id)
            if account is None:
                raise NotFound(
                    f"Account {external_id!r} does not exist.", field="account_external_id"
                )
            existing = stored.get(signal_id)
            if existing is not None:
                results[i] = (_same_signal(existing, name=name, account=account), False, None)
                continue
            signal, created = _receive(
                account=account,
                name=name,
                signal_id=signal_id,
                properties=properties,
                occurred_at=occurred_at,
                actor=actor,
            )
            stored[signal_id] = signal  # the same id twice in one batch applies once
            results[i] = (signal, created, None)
        except DomainError as exc:
            results[i] = (None, False, exc)
    return results


def _same_signal(existing: Signal, *, name: str, account: Account) -> Signal:
    if existing.name != name or existing.account_id != account.pk:
        raise Conflict(
            f"Signal id {existing.signal_id!r} was already used for another signal.",
            field="signal_id",
            signal_id=existing.signal_id,
        )
    return existing


def _receive(
    *,
    account: Account,
    name: str,
    signal_id: str,
    properties: dict[str, Any],
    occurred_at: datetime | None,
    actor: Actor,
) -> tuple[Signal, bool]:
    with atomic_write():
        now = clock.now()
        try:
            with transaction.atomic():  # savepoint: a duplicate id undoes only this insert
                signal = Signal.objects.create(
                    signal_id=signal_id,
                    name=name,
                    account=account,
                    properties=properties,
                    occurred_at=occurred_at or now,
                    received_at=now,
                )
        except IntegrityError:
            log.info("signal %s was received before; not applied again", signal_id)
            existing = Signal.objects.filter(signal_id=signal_id).first()
            if existing is None:  # not our unique index (the account vanished meanwhile)
                raise Conflict(
                    "The signal could not be stored; try again.", signal_id=signal_id
                ) from None
            return _same_signal(existing, name=name, account=account), False

        completed = _apply(signal, actor)
        if completed:
            signal.completed_tasks = completed
            signal.save(update_fields=["completed_tasks"])
        record(
            "Signal Received",
            actor=actor,
            account=account,
            properties={"signal": name, "signal_id": signal_id, "completed_tasks": completed},
        )
    return signal, True


def _apply(signal: Signal, actor: Actor) -> int:
    """Move the tasks waiting for this signal; returns how many it completed.

    Each task goes through its own service (lock case → task, re-check, transition,
    event), nested as a savepoint: a task that moved since the query (escalated by
    its SLA, skipped by a manager) is left alone without undoing the others.
    Cases are taken in id order, so two signals for one account never deadlock.
    """
    waiting = (
        Task.objects.filter(
            case__account_id=signal.account_id,
            case__state__in=OPEN_CASE_STATES,
            state=TaskState.WAITING,
            kind__in=(StepKind.SIGNAL, StepKind.HUMAN),
            step__signal_name=signal.name,
        )
        .order_by("case_id", "id")
        .values_list("id", "kind")
    )
    completed = 0
    for task_id, kind in waiting:
        try:
            if kind == StepKind.SIGNAL:
                task_complete_by_signal(task_id=task_id, actor=actor, signal_name=signal.name)
                completed += 1
            else:
                with atomic_write():
                    task = task_resume(task_id=task_id, actor=actor)
                    add_context_entry(
                        task,
                        actor=actor,
                        kind=ContextEntry.Kind.SIGNAL,
                        body=f"Signal: {signal.name} — the customer did what this step waited for.",
                        signal_id=signal.signal_id,
                    )
        except DomainError:
            continue
    return completed

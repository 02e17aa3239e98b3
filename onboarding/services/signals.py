"""Product signals: an integration reports that something happened for an account
("Data Source Connected"), and the steps waiting for it move on.

`signal_id` is the producer's id and the de-duplication key. The unique index on it
decides who applies a signal: the insert runs first, so a second delivery of the same
id — sequential or concurrent — fails to insert (a concurrent one waits on the index
until the first commits) and returns the stored row, changing nothing. One signal
inserts in a savepoint and rolls back only that; a batch inserts its new signals in
one statement that skips the ids already taken (`signals_receive_batch`).

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
from typing import Any, NamedTuple

from django.db import DatabaseError, IntegrityError, connections, router, transaction
from django.utils import timezone

from analytics.models import Event
from analytics.recording import build_event, record, record_many
from onboarding import clock
from onboarding.actors import Actor
from onboarding.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound
from onboarding.models import Account, Case, ContextEntry, Signal, StepKind, Task
from onboarding.models.cases import OPEN_CASE_STATES, TaskState
from onboarding.services._write import atomic_write
from onboarding.services.tasks import add_context_entry, task_complete_by_signal, task_resume
from onboarding.statements import insert_rows

log = logging.getLogger(__name__)

MAX_BATCH_SIZE = 500
_FIELDS = ("name", "account_external_id", "signal_id", "properties", "occurred_at")
_NAME_MAX = Signal._meta.get_field("name").max_length
_SIGNAL_ID_MAX = Signal._meta.get_field("signal_id").max_length


def _check_actor(actor: Actor) -> None:
    if not (actor.is_system or actor.is_integration or actor.is_manager):
        raise Forbidden(f"{actor} may not send product signals.")


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


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
        if "\x00" in text:
            raise InvalidInput(f"{field} may not contain NUL characters.", field=field)
        cleaned.append(text)
    if properties is None:
        properties = {}
    if not isinstance(properties, dict):
        raise InvalidInput("properties must be an object.", field="properties")
    try:
        json.dumps(properties, allow_nan=False)
    except (TypeError, ValueError):
        raise InvalidInput("properties must be plain JSON.", field="properties") from None
    if _has_nul(properties):  # PostgreSQL's jsonb cannot store them
        raise InvalidInput("properties may not contain NUL characters.", field="properties")
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
    """Receive many signals: validate every item first, then store and apply the good
    ones in one transaction. Returns one `(signal, created, error)` per item, in order.

    The actor and the batch size are checked for the whole request (Forbidden /
    InvalidInput raised, nothing stored). Then each item is checked on its own (its
    fields, its account, a signal id already stored for another signal): a bad item
    reports its DomainError and is left out of the write, so it cannot undo the good
    ones. Accounts and already-stored signal ids are resolved with one query each, so a
    replayed batch costs two queries and no transaction.

    The new signals are written together (`_store_batch`): one INSERT, one query for
    the steps they may move, one INSERT of their "Signal Received" events, one commit,
    instead of a transaction per signal. Each signal still does exactly what
    `signal_receive` does, in request order. Should that transaction fail as a whole
    (a lock wait that timed out, an account deleted meanwhile), it is rolled back and
    the items are received again one transaction each, so one item's failure stays
    its own.
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
    new: dict[str, _NewSignal] = {}  # signal id → its first item in this batch
    repeats: list[tuple[int, str, Account]] = []  # later items with the same id
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
            elif signal_id in new:  # the same id twice in one batch applies once
                repeats.append((i, name, account))
            else:
                new[signal_id] = _NewSignal(i, account, name, signal_id, properties, occurred_at)
        except DomainError as exc:
            results[i] = (None, False, exc)
    if not new:
        return results

    try:
        outcomes = _store_batch(list(new.values()), actor)
    except (DatabaseError, Conflict) as exc:
        log.warning("signal batch rolled back (%s); receiving its items one by one", exc)
        outcomes = {}
        for item in new.values():
            try:
                outcomes[item.signal_id] = _receive(
                    account=item.account,
                    name=item.name,
                    signal_id=item.signal_id,
                    properties=item.properties,
                    occurred_at=item.occurred_at,
                    actor=actor,
                )
            except DomainError as error:
                outcomes[item.signal_id] = error
    for item in new.values():
        outcome = outcomes[item.signal_id]
        results[item.index] = (
            (None, False, outcome) if isinstance(outcome, DomainError) else (*outcome, None)
        )
    for i, name, account in repeats:
        signal_id = valid[i][2]
        first = outcomes[signal_id]
        try:
            holder = (
                Signal.objects.filter(signal_id=signal_id).first()
                if isinstance(first, DomainError)
                else first[0]
            )
            if holder is None:
                raise Conflict("The signal could not be stored; try again.", signal_id=signal_id)
            results[i] = (_same_signal(holder, name=name, account=account), False, None)
        except DomainError as exc:
            results[i] = (None, False, exc)
    return results


class _NewSignal(NamedTuple):
    """A batch item that passed every check and whose id is not stored yet."""

    index: int
    account: Account
    name: str
    signal_id: str
    properties: dict[str, Any]
    occurred_at: datetime | None


def _store_batch(
    items: list[_NewSignal], actor: Actor
) -> dict[str, tuple[Signal, bool] | DomainError]:
    """Store and apply `items` (distinct ids) in one transaction; the outcome per id.

    1. One INSERT … ON CONFLICT (signal_id) DO NOTHING RETURNING: the unique index still
       decides who applies a signal. A concurrent writer of the same id makes this
       statement wait for its commit, then the row is skipped here and reported as a
       duplicate (or a Conflict if that writer stored another signal under the id).
       Rows go in signal id order, so two batches with overlapping ids take the index
       entries in the same order and cannot deadlock on them.
    2. One query for the waiting steps the new signals may move. If there are any,
       their cases are locked in id order (one statement) and the query runs again.
       A signal with such steps applies them exactly as `signal_receive` does
       (`_move`: each task through its own service, one event per transition); since
       that can start steps waiting for a later signal of the batch, the query runs
       again after a signal moved something, so the batch means what the same
       signals sent one by one would.
    3. One INSERT of the "Signal Received" events, kept in the order one-by-one
       delivery would write them (pending ones go in before a signal moves steps).
    """
    outcomes: dict[str, tuple[Signal, bool] | DomainError] = {}
    with atomic_write():
        now = clock.now()
        rows = [
            Signal(
                signal_id=item.signal_id,
                name=item.name,
                account=item.account,
                properties=item.properties,
                occurred_at=item.occurred_at or now,
                received_at=now,
            )
            for item in items
        ]
        created = _insert_new(sorted(rows, key=lambda row: row.signal_id))
        lost = [item for item in items if item.signal_id not in created]
        if lost:  # stored by a concurrent writer since the batch looked
            holders = Signal.objects.filter(signal_id__in=[item.signal_id for item in lost])
            by_id = {signal.signal_id: signal for signal in holders}
            for item in lost:
                log.info("signal %s was received before; not applied again", item.signal_id)
                try:
                    holder = by_id.get(item.signal_id)
                    if holder is None:
                        raise Conflict(
                            "The signal could not be stored; try again.", signal_id=item.signal_id
                        )
                    outcomes[item.signal_id] = (
                        _same_signal(holder, name=item.name, account=item.account),
                        False,
                    )
                except DomainError as exc:
                    outcomes[item.signal_id] = exc
        fresh = [row for row in rows if row.signal_id in created]
        events: list[Event] = []
        waiting = _waiting_tasks(fresh)
        if waiting:
            # Lock every case the batch may move, in id order, before moving any: a
            # batch keeps its locks to the end, so two batches (or a batch and one
            # signal) taking cases in their own orders could deadlock. Then read the
            # waiting steps again: nobody else can move them now.
            _lock_cases({case_id for tasks in waiting.values() for _, _, case_id in tasks})
            waiting = _waiting_tasks(fresh)
        for k, signal in enumerate(fresh):
            tasks = waiting.get((signal.account_id, signal.name), [])
            completed = moved = 0
            if tasks:
                _insert_events(events)
                completed, moved = _move(signal, tasks, actor)
                if completed:
                    signal.completed_tasks = completed
                    Signal.objects.filter(pk=signal.pk).update(completed_tasks=completed)
                if moved:
                    waiting = _waiting_tasks(fresh[k + 1 :])
            events.append(
                build_event(
                    "Signal Received",
                    actor=actor,
                    account=signal.account,
                    properties={
                        "signal": signal.name,
                        "signal_id": signal.signal_id,
                        "completed_tasks": completed,
                    },
                )
            )
            outcomes[signal.signal_id] = (signal, True)
        _insert_events(events)
    return outcomes


def _insert_new(rows: list[Signal]) -> set[str]:
    """INSERT the rows, skipping ids already stored; set the pk of those inserted and
    return their signal ids."""
    key = connections[router.db_for_write(Signal)].ops.quote_name(
        Signal._meta.get_field("signal_id").column
    )
    inserted = dict(
        (signal_id, pk)
        for pk, signal_id in insert_rows(
            Signal, rows, f" ON CONFLICT ({key}) DO NOTHING", returning=("id", "signal_id")
        )
    )
    using = router.db_for_write(Signal)
    for row in rows:
        pk = inserted.get(row.signal_id)
        if pk is not None:
            row.pk = pk
            row._state.adding = False
            row._state.db = using
    return set(inserted)


def _insert_events(events: list[Event]) -> None:
    """Write the events built so far (`analytics.recording.build_event` built and
    checked them, as `record` would)."""
    if events:
        record_many(events)
        events.clear()


def _lock_cases(case_ids: set[int]) -> None:
    list(
        Case.objects.filter(pk__in=case_ids)
        .order_by("pk")
        .select_for_update(no_key=True)
        .values_list("pk", flat=True)
    )


def _waiting_tasks(signals: list[Signal]) -> dict[tuple[int, str], list[tuple[int, str, int]]]:
    """(account id, signal name) → the tasks a signal of that name would move now, as
    (task id, kind, case id), in the order `_apply` takes them."""
    if not signals:
        return {}
    waiting = (
        Task.objects.filter(
            case__account_id__in={s.account_id for s in signals},
            case__state__in=OPEN_CASE_STATES,
            state=TaskState.WAITING,
            kind__in=(StepKind.SIGNAL, StepKind.HUMAN),
            step__signal_name__in={s.name for s in signals},
        )
        .order_by("case_id", "id")
        .values_list("case__account_id", "step__signal_name", "id", "kind", "case_id")
    )
    found: dict[tuple[int, str], list[tuple[int, str, int]]] = {}
    for account_id, name, task_id, kind, case_id in waiting:
        found.setdefault((account_id, name), []).append((task_id, kind, case_id))
    return found


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
    """Move the tasks waiting for this signal; returns how many it completed."""
    waiting = _waiting_tasks([signal]).get((signal.account_id, signal.name), [])
    return _move(signal, waiting, actor)[0]


def _move(signal: Signal, waiting: list[tuple[int, str, int]], actor: Actor) -> tuple[int, int]:
    """Complete or resume these tasks for the signal: (completed, moved in all).

    Each task goes through its own service (lock case → task, re-check, transition,
    event), nested as a savepoint: a task that moved since the query (escalated by
    its SLA, skipped by a manager) is left alone without undoing the others.
    Cases are taken in id order, so two signals for one account never deadlock.
    """
    completed = moved = 0
    for task_id, kind, _ in waiting:
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
            moved += 1
        except DomainError:
            continue
    return completed, moved

"""The shape every transition service shares: lock, check, transition, save, one event.

Lock order is always case → task (one statement locks both, case first), so two
services touching the same case queue up instead of deadlocking.
"""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Callable, Iterator
from typing import Any

from django.db import OperationalError, models, transaction

from analytics.models import Event
from analytics.recording import build_event, build_playbook_event
from onboarding import clock, frozen
from onboarding.actors import Actor
from onboarding.errors import Conflict, Forbidden, InvalidInput, NotFound, TransitionNotAllowed
from onboarding.models import Case, PlaybookVersion, SlaTimer, Task
from onboarding.statements import CompiledQuery, update_if_state

# lock_not_available (lock_timeout), deadlock_detected, serialization_failure
_LOCK_SQLSTATES = {"55P03", "40P01", "40001"}


@contextlib.contextmanager
def atomic_write() -> Iterator[None]:
    """`transaction.atomic()` whose lock timeouts and deadlocks surface as `Conflict`."""
    try:
        with transaction.atomic():
            yield
    except OperationalError as exc:
        sqlstate = getattr(exc.__cause__, "sqlstate", None)
        if sqlstate in _LOCK_SQLSTATES or "database is locked" in str(exc):
            raise Conflict("Someone else is changing this right now; try again.") from exc
        raise


_LOCK_CASE = CompiledQuery(
    lambda: (
        Case.objects.select_related("account")
        .select_for_update(no_key=True, of=("self",))
        .filter(pk=0)
        .order_by()
    )
)


def lock_case(case_id: int) -> Case:
    """Lock one case (and load what its events need) for the rest of the transaction."""
    try:
        case = _LOCK_CASE.first(int(case_id))
    except (ValueError, TypeError):
        case = None
    if case is None:
        raise NotFound(f"Case {case_id} does not exist.")
    return case


def required_text(text: str, what: str) -> str:
    """The stripped text, or InvalidInput naming the field when it is blank."""
    text = (text or "").strip()
    if not text:
        raise InvalidInput(f"A {what} is required.", field=what)
    return text


# The hottest statement in the product: compiled once per process.
_LOCK_TASK = CompiledQuery(
    lambda: (
        Task.objects.select_related("case__account", "queue")
        # OF-list order is the order PostgreSQL takes the row locks in.
        .select_for_update(no_key=True, of=("case", "self"))
        .filter(pk=0)
        .order_by()  # the default ordering would join steps for nothing
    )
)


def lock_task(task_id: int) -> Task:
    """Lock a task and its case in one round trip, the case first."""
    try:
        task = _LOCK_TASK.first(int(task_id))
    except (ValueError, TypeError):
        task = None
    if task is None:
        raise NotFound(f"Task {task_id} does not exist.")
    task.step = frozen.step(task.step_id)  # immutable once published: no join, no query
    return task


def lock_version(version_id: int) -> PlaybookVersion:
    try:
        return (
            PlaybookVersion.objects.select_related("playbook")
            .select_for_update(no_key=True, of=("self",))
            .get(pk=version_id)
        )
    except (PlaybookVersion.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"Playbook version {version_id} does not exist.") from None


# Per model: its concrete fields, and one C-level getter of all their values (every
# transition snapshots its row twice to find what changed).
_SNAPSHOTS: dict[type[models.Model], tuple[tuple[models.Field, ...], Callable[[Any], Any]]] = {}


def _snapshot_fields(model: type[models.Model]) -> tuple[tuple[models.Field, ...], Callable]:
    cached = _SNAPSHOTS.get(model)
    if cached is None:
        fields = tuple(model._meta.concrete_fields)
        getter = operator.attrgetter(*(f.attname for f in fields))
        if len(fields) == 1:  # attrgetter of one name returns the value, not a tuple
            getter = lambda obj, one=getter: (one(obj),)  # noqa: E731
        cached = _SNAPSHOTS[model] = (fields, getter)
    return cached


def _snapshot(obj: models.Model) -> tuple[Any, ...]:
    """The values of `obj`'s concrete fields, in `_meta.concrete_fields` order."""
    return _snapshot_fields(type(obj))[1](obj)


def check_transition(obj: models.Model, name: str, *, actor: Actor) -> Any:
    """Raise the domain error that stops `actor` running transition `name` now."""
    method = getattr(obj, name)
    meta = method._django_fsm
    current = meta.field.get_state(obj)
    label = obj._meta.verbose_name
    transition = meta.get_transition(current) if meta.has_transition(current) else None
    if transition is None:
        raise TransitionNotAllowed(
            f"A {label} that is {current} cannot {name.replace('_', ' ')}.",
            transition=name,
            current_state=current,
        )
    # Deny by default: a transition that declares no permission is never allowed.
    if transition.permission is None or not transition.has_perm(obj, actor):
        raise Forbidden(
            f"{actor} may not {name.replace('_', ' ')} this {label}.",
            transition=name,
            current_state=current,
        )
    failed = [cond.__name__.strip("_") for cond in transition.conditions if not cond(obj)]
    if failed:
        raise TransitionNotAllowed(
            f"Cannot {name.replace('_', ' ')} this {label} now ({', '.join(failed)}).",
            transition=name,
            current_state=current,
            failed_conditions=failed,
        )
    return transition


def apply_transition(
    obj: Case | Task | PlaybookVersion | SlaTimer,
    name: str,
    *,
    actor: Actor,
    changes: dict[str, Any] | None = None,
    properties: dict[str, Any] | None = None,
) -> Event:
    """Run transition `name` on a locked row, save what changed, record its one event.

    Must run inside `atomic_write()` on a row fetched by a `lock_*` helper.
    """
    fields = _snapshot_fields(type(obj))[0]
    before = _snapshot(obj)
    transition = check_transition(obj, name, actor=actor)
    method = getattr(obj, name)
    field = method._django_fsm.field
    from_state = field.value_from_object(obj)
    method()
    if changes:
        for attr, value in changes.items():
            setattr(obj, attr, value)
    if hasattr(obj, "updated_at"):
        obj.updated_at = clock.now()
    after = _snapshot(obj)
    changed = [f for f, old, new in zip(fields, before, after, strict=True) if old != new]

    event_name = transition.custom["event"]
    props = {
        "transition": name,
        "from_state": from_state,
        "to_state": field.value_from_object(obj),
        **(properties or {}),
    }
    if isinstance(obj, Task):
        event = build_event(event_name, actor=actor, task=obj, properties=props)
    elif isinstance(obj, Case):
        event = build_event(event_name, actor=actor, case=obj, properties=props)
    elif isinstance(obj, SlaTimer):
        event = build_event(event_name, actor=actor, case=obj.case, task=obj.task, properties=props)
    else:
        event = build_playbook_event(event_name, actor=actor, version=obj, **props)

    # Guarded like ConcurrentTransitionMixin.save(): the row must still be in the
    # state read under the lock, else nothing is written and no event recorded.
    # On PostgreSQL the update and the event insert are one statement.
    if not update_if_state(
        obj, changed, state_field=field, expected_state=from_state, then_insert=event
    ):
        raise Conflict(
            f"This {obj._meta.verbose_name} changed while you were working on it.",
            transition=name,
        )
    obj._update_initial_state()  # later ORM saves of this instance guard on the new state
    # Clocks follow what they watch, in the same transaction.
    if isinstance(obj, Task):
        from onboarding.services import sla

        sla.on_task_transition(obj, before=from_state, actor=actor)
    elif isinstance(obj, Case):
        from onboarding.services import sla

        sla.on_case_transition(obj, actor=actor)
    return event

"""The one recorder. Nothing else writes Event rows.

It validates against the catalog, strips PII and fills the common properties from
objects the caller already holds (the write path loads case, account and playbook
in its lock query), so recording costs exactly one INSERT.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from analytics.catalog import get_spec
from analytics.models import Event
from onboarding import clock, frozen
from onboarding.statements import insert_row, insert_rows

if TYPE_CHECKING:
    from onboarding.actors import Actor
    from onboarding.models import Account, Case, Task


def build_event(
    name: str,
    *,
    actor: Actor,
    account: Account | None = None,
    case: Case | None = None,
    task: Task | None = None,
    properties: dict[str, Any] | None = None,
    occurred_at: datetime | None = None,
) -> Event:
    """Validate and assemble an event without saving it (see `record`)."""
    spec = get_spec(name)
    stored = spec.clean(properties or {})
    if task is not None and case is None:
        case = task.case
    if case is not None and account is None:
        account = case.account
    version = frozen.version_facts(case.playbook_version_id) if case is not None else None
    return _new_event(
        {
            "name": spec.name,
            "schema_version": spec.version,
            "occurred_at": occurred_at or clock.now(),
            "recorded_at": timezone.now(),
            "account": account,
            "case": case,
            "task": task,
            "step_key": task.step_key if task is not None else "",
            "playbook_key": version.playbook_key if version is not None else "",
            "playbook_version": version.number if version is not None else None,
            "actor_type": actor.type,
            "actor_id": actor.id,
            "source": actor.source,
            "segmentation": account.segmentation() if account is not None else {},
            "properties": stored,
        }
    )


@functools.cache
def _event_fields() -> tuple[tuple[Any, bool], ...]:
    return tuple((f, f.is_relation) for f in Event._meta.concrete_fields)


def _new_event(values: dict[str, Any]) -> Event:
    """`Event(**values)`, by the quicker positional path of `Model.__init__`.

    Keyword arguments make Django look every field up by name (an event is built on
    every transition); values in field order are assigned directly. Relations are
    given as objects, as keyword arguments would: the id goes in the row, the object
    in the instance's cache. Missing fields take their defaults.
    """
    args = []
    related = []
    for field, is_relation in _event_fields():
        if is_relation:
            obj = values.get(field.name)
            args.append(None if obj is None else getattr(obj, field.target_field.attname))
            related.append((field, obj))
        elif field.attname in values:
            args.append(values[field.attname])
        else:
            args.append(field.get_default())
    event = Event(*args)
    for field, obj in related:
        field.set_cached_value(event, obj)
    return event


def record(name: str, **kwargs: Any) -> Event:
    """Record one event; call inside the transaction that made it happen."""
    return insert_row(build_event(name, **kwargs))


def record_many(events: list[Event]) -> None:
    """Record events built by `build_event`, in order, with one INSERT (batches)."""
    if events:
        insert_rows(Event, events)


def build_playbook_event(name: str, *, actor: Actor, version: Any, **properties: Any) -> Event:
    """Events about a playbook version carry its key and number but no case."""
    event = build_event(name, actor=actor, properties=properties)
    event.playbook_key = version.playbook.key
    event.playbook_version = version.number
    return event


def record_playbook_event(name: str, *, actor: Actor, version: Any, **properties: Any) -> Event:
    return insert_row(build_playbook_event(name, actor=actor, version=version, **properties))

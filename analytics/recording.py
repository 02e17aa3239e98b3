"""The one recorder. Nothing else writes Event rows.

It validates against the catalog, strips PII and fills the common properties from
objects the caller already holds (the write path loads case, account and playbook
in its lock query), so recording costs exactly one INSERT.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from analytics.catalog import get_spec
from analytics.models import Event
from onboarding import clock, frozen
from onboarding.statements import insert_row

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
    return Event(
        name=spec.name,
        schema_version=spec.version,
        occurred_at=occurred_at or clock.now(),
        recorded_at=timezone.now(),
        account=account,
        case=case,
        task=task,
        step_key=task.step_key if task is not None else "",
        playbook_key=version.playbook_key if version is not None else "",
        playbook_version=version.number if version is not None else None,
        actor_type=actor.type,
        actor_id=actor.id,
        source=actor.source,
        segmentation=account.segmentation() if account is not None else {},
        properties=stored,
    )


def record(name: str, **kwargs: Any) -> Event:
    """Record one event; call inside the transaction that made it happen."""
    return insert_row(build_event(name, **kwargs))


def build_playbook_event(name: str, *, actor: Actor, version: Any, **properties: Any) -> Event:
    """Events about a playbook version carry its key and number but no case."""
    event = build_event(name, actor=actor, properties=properties)
    event.playbook_key = version.playbook.key
    event.playbook_version = version.number
    return event


def record_playbook_event(name: str, *, actor: Actor, version: Any, **properties: Any) -> Event:
    return insert_row(build_playbook_event(name, actor=actor, version=version, **properties))

"""Notes on a case's context log."""

from __future__ import annotations

from analytics.recording import record
from onboarding import clock
from onboarding.actors import Actor
from onboarding.errors import Forbidden, InvalidInput, NotFound
from onboarding.models import Case, ContextEntry
from onboarding.services._write import atomic_write


def can_see_case(case: Case, actor: Actor) -> bool:
    """Managers, integrations and the system see all; agents the cases in their queues."""
    if actor.is_system or actor.is_integration or actor.is_manager:
        return True
    if not actor.is_agent:
        return False
    return case.tasks.filter(queue_id__in=actor.queue_ids).exists() or (
        case.tasks.filter(assignee_id=actor.user.pk).exists()
    )


def case_add_note(
    *, case_id: int, actor: Actor, body: str, task_id: int | None = None
) -> ContextEntry:
    body = (body or "").strip()
    if not body:
        raise InvalidInput("A note needs some text.", field="body")
    with atomic_write():
        case = (
            Case.objects.select_related("account", "playbook_version__playbook")
            .filter(pk=case_id)
            .first()
        )
        if case is None:
            raise NotFound(f"Case {case_id} does not exist.")
        if not can_see_case(case, actor):
            raise Forbidden(f"{actor} may not add notes to this case.")
        task = None
        if task_id is not None:
            task = case.tasks.filter(pk=task_id).first()
            if task is None:
                raise InvalidInput(f"Task {task_id} is not part of case {case_id}.", field="task")
        entry = ContextEntry.objects.create(
            case=case,
            task=task,
            kind=ContextEntry.Kind.NOTE,
            body=body,
            author=actor.user,
            actor_type=actor.type,
            actor_id=actor.id,
            created_at=clock.now(),
        )
        record("Note Added", actor=actor, case=case, task=task, properties={"length": len(body)})
    return entry

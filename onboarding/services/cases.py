"""Case services: open, hold, resume, cancel, reopen. Completion is automatic."""

from __future__ import annotations

from django.db import IntegrityError

from analytics.recording import record
from onboarding import clock
from onboarding.actors import Actor
from onboarding.automation import dispatch_on_commit
from onboarding.errors import Conflict, Forbidden, InvalidInput, NotFound
from onboarding.models import Account, Case, Playbook, PlaybookVersion, Task
from onboarding.models.cases import NON_FINAL_TASK_STATES, OPEN_CASE_STATES
from onboarding.services import sla
from onboarding.services._write import apply_transition, atomic_write, lock_case, required_text
from onboarding.services.workflow import advance_case, workflow_actor


def case_open(
    *,
    account: Account,
    playbook: Playbook,
    actor: Actor,
    version: PlaybookVersion | None = None,
) -> Case:
    """Open a case on the playbook's latest published version (or `version`).

    Creates one task per step and activates those with no dependencies.
    """
    if not (actor.is_system or actor.is_integration or actor.is_manager):
        raise Forbidden(f"{actor} may not open onboarding cases.")
    try:
        with atomic_write():
            if version is None:
                version = playbook.latest_published()
                if version is None:
                    raise InvalidInput(
                        f"Playbook {playbook.key!r} has no published version.", field="playbook"
                    )
            elif version.playbook_id != playbook.pk or version.state != "published":
                raise InvalidInput(
                    "Cases start only on a published version of their playbook.", field="version"
                )
            version.playbook = playbook
            now = clock.now()
            case = Case(
                account=account,
                playbook=playbook,
                playbook_version=version,
                opened_at=now,
                updated_at=now,
            )
            case.save(force_insert=True)
            steps = list(version.steps.select_related("queue").order_by("position", "id"))
            tasks = Task.objects.bulk_create(
                Task(
                    case=case,
                    step=step,
                    step_key=step.key,
                    kind=step.kind,
                    required=step.required,
                    max_attempts=step.max_attempts,
                    queue=step.queue,
                    created_at=now,
                    updated_at=now,
                )
                for step in steps
            )
            record("Case Opened", actor=actor, case=case, properties={"task_count": len(tasks)})
            sla.on_case_opened(case, actor=actor)
            advance_case(case, cause=actor, tasks=tasks)
    except IntegrityError as exc:
        if "one_open_case_per_account_playbook" in str(exc):
            existing = Case.objects.filter(
                account=account, playbook=playbook, state__in=OPEN_CASE_STATES
            ).first()
            raise Conflict(
                f"{account.name} already has an open {playbook.name} case.",
                case_id=existing.pk if existing else None,
            ) from exc
        raise
    return case


def case_put_on_hold(*, case_id: int, actor: Actor, reason: str) -> Case:
    reason = required_text(reason, "reason")
    with atomic_write():
        case = lock_case(case_id)
        apply_transition(
            case,
            "put_on_hold",
            actor=actor,
            changes={"hold_reason": reason},
            properties={"reason": reason},
        )
    return case


def case_resume(*, case_id: int, actor: Actor) -> Case:
    with atomic_write():
        case = lock_case(case_id)
        apply_transition(case, "resume", actor=actor)
        # Automation that came due while the case was held runs now.
        for task_id in case.tasks.filter(state=Task.State.SCHEDULED).values_list("id", flat=True):
            dispatch_on_commit(task_id)
    return case


def case_cancel(*, case_id: int, actor: Actor, reason: str) -> Case:
    """Cancel the case and every task still open in it."""
    reason = required_text(reason, "reason")
    with atomic_write():
        case = lock_case(case_id)
        now = clock.now()
        apply_transition(
            case,
            "cancel",
            actor=actor,
            changes={"cancel_reason": reason, "cancelled_at": now},
            properties={"reason": reason},
        )
        system = workflow_actor(actor)
        for task in case.tasks.filter(state__in=NON_FINAL_TASK_STATES):
            task.case = case
            apply_transition(
                task,
                "cancel",
                actor=system,
                changes={"completed_at": now},
                properties={"reason": "case cancelled"},
            )
    return case


def case_reopen(*, case_id: int, actor: Actor, step_key: str, reason: str) -> Case:
    """Reopen a completed case by putting one of its finished steps back in play."""
    reason = required_text(reason, "reason")
    with atomic_write():
        case = lock_case(case_id)
        try:
            task = (
                case.tasks.select_related("queue")
                .select_for_update(no_key=True, of=("self",))
                .get(step_key=step_key)
            )
        except Task.DoesNotExist:
            raise NotFound(f"Case {case_id} has no step {step_key!r}.", field="step_key") from None
        task.case = case
        apply_transition(
            case,
            "reopen",
            actor=actor,
            properties={"reason": reason, "reopened_step": step_key},
        )
        apply_transition(task, "reopen", actor=actor, properties={"reason": reason})
        advance_case(case, cause=actor)
    return case

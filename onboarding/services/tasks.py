"""Task services: one per transition of the task state machine.

Each: lock case+task, check, transition, save, one event; then the workflow
engine advances the case when the task became final.
"""

from __future__ import annotations

from datetime import timedelta

from django.db.models import F, Q

from onboarding import clock, frozen
from onboarding.actors import Actor
from onboarding.automation import dispatch_on_commit, retry_delay
from onboarding.errors import Conflict, Forbidden, InvalidInput, NotFound
from onboarding.models import ContextEntry, Queue, Task
from onboarding.models.accounts import SEGMENTATION_FIELDS
from onboarding.models.cases import CaseState, TaskState
from onboarding.services._write import apply_transition, atomic_write, lock_task, required_text
from onboarding.services.assignment import active_queue_member, auto_assign
from onboarding.services.workflow import advance_case
from onboarding.statements import CompiledQuery, Literal, insert_row


def add_context_entry(
    task: Task, *, actor: Actor, kind: str, body: str, **properties: object
) -> ContextEntry:
    entry = ContextEntry(
        case_id=task.case_id,
        task=task,
        kind=kind,
        body=body,
        author=actor.user,
        actor_type=actor.type,
        actor_id=actor.id,
        properties=properties,
        created_at=clock.now(),
    )
    return insert_row(entry)


def _finish(task: Task, actor: Actor) -> Task:
    advance_case(task.case, cause=actor)
    return task


# --- automation ---------------------------------------------------------------------


def task_start(*, task_id: int, actor: Actor) -> Task:
    """Lease a due automated task: scheduled → running (attempt += 1) until the lease ends."""
    with atomic_write():
        task = lock_task(task_id)
        now = clock.now()
        apply_transition(
            task,
            "start",
            actor=actor,
            changes={
                "started_at": task.started_at or now,
                "lease_expires_at": now + timedelta(seconds=task.step.lease_seconds),
            },
            properties={"attempt": task.attempts + 1},
        )
    return task


def _check_attempt(task: Task, attempt: int | None) -> None:
    # A late outcome from a worker whose lease expired must not overwrite the
    # attempt that replaced it.
    if attempt is not None and (task.state != TaskState.RUNNING or task.attempts != attempt):
        raise Conflict(
            f"Attempt {attempt} of this step is no longer running.",
            current_state=task.state,
            current_attempt=task.attempts,
        )


def task_succeed(
    *, task_id: int, actor: Actor, summary: str = "", attempt: int | None = None
) -> Task:
    with atomic_write():
        task = lock_task(task_id)
        _check_attempt(task, attempt)
        apply_transition(
            task,
            "succeed",
            actor=actor,
            changes={"completed_at": clock.now()},
            properties={"completed_by": "automation", "attempt": task.attempts},
        )
        if summary:
            add_context_entry(
                task,
                actor=actor,
                kind=ContextEntry.Kind.AUTOMATION,
                body=summary,
                attempt=task.attempts,
            )
        return _finish(task, actor)


def task_fail(
    *,
    task_id: int,
    actor: Actor,
    error: str,
    error_type: str = "Error",
    attempt: int | None = None,
    permanent: bool = False,
) -> Task:
    """Record a failed attempt: retry with backoff while attempts remain, else escalate."""
    error = required_text(error, "error")
    with atomic_write():
        task = lock_task(task_id)
        _check_attempt(task, attempt)
        add_context_entry(
            task,
            actor=actor,
            kind=ContextEntry.Kind.ERROR,
            body=error,
            attempt=task.attempts,
            error_type=error_type,
        )
        if task.attempts < task.max_attempts and not permanent:
            _reschedule(task, actor, "fail", error=error, error_type=error_type)
        else:
            _escalate_automation(
                task, actor, cause="attempts_exhausted", error=error, error_type=error_type
            )
    return task


def task_expire_lease(*, task_id: int, actor: Actor) -> Task:
    """The worker running this attempt never reported back: count it as failed."""
    with atomic_write():
        task = lock_task(task_id)
        now = clock.now()
        if (
            task.state == TaskState.RUNNING
            and task.lease_expires_at
            and task.lease_expires_at > now
        ):
            raise Conflict("The lease on this step has not expired yet.", current_state=task.state)
        error = f"Attempt {task.attempts} lost: no result before its lease expired."
        if task.state == TaskState.RUNNING:
            add_context_entry(
                task,
                actor=actor,
                kind=ContextEntry.Kind.ERROR,
                body=error,
                attempt=task.attempts,
                error_type="LeaseExpired",
            )
        if task.state != TaskState.RUNNING or task.attempts < task.max_attempts:
            _reschedule(task, actor, "expire_lease", error=error)
        else:
            _escalate_automation(
                task, actor, cause="lease_expired", error=error, error_type="LeaseExpired"
            )
    return task


def _reschedule(
    task: Task, actor: Actor, transition: str, *, error: str, error_type: str | None = None
) -> None:
    step = task.step
    delay = timedelta(
        seconds=retry_delay(
            task.attempts, base=step.retry_backoff_seconds, cap=step.retry_backoff_max_seconds
        )
    )
    now = clock.now()
    properties: dict[str, object] = {"attempt": task.attempts}
    if error_type is not None:
        properties["error_type"] = error_type
    apply_transition(
        task,
        transition,
        actor=actor,
        changes={"last_error": error, "not_before": now + delay, "dispatched_at": now},
        properties=properties,
    )
    dispatch_on_commit(task.pk, delay=delay)


def _escalate_automation(
    task: Task, actor: Actor, *, cause: str, error: str, error_type: str
) -> None:
    exceptions = Queue.objects.filter(is_exceptions=True).first()
    apply_transition(
        task,
        "escalate",
        actor=actor,
        changes={"last_error": error, "queue": exceptions or task.queue, "not_before": None},
        properties={
            "to_queue": exceptions.key if exceptions else None,
            "cause": cause,
            "error_type": error_type,
        },
    )
    auto_assign(task, actor=actor)


# --- human work -----------------------------------------------------------------------


def task_claim(*, task_id: int, actor: Actor) -> Task:
    with atomic_write():
        return _claim(lock_task(task_id), actor)


def _claim(task: Task, actor: Actor) -> Task:
    apply_transition(
        task,
        "claim",
        actor=actor,
        changes={"assignee": actor.user, "started_at": task.started_at or clock.now()},
    )
    return task


# The head of a queue, locked: rides the task_claim_order index (SLA due soonest, then
# priority, then age); SKIP LOCKED, so two agents never get the same task and never
# wait on each other. It takes lock_task's locks (case, then task) and loads what the
# claim reads, so the claim needs no second select: the task whole (the row that
# moves, and what the service returns), its case's state (the transition's condition)
# and playbook version, its account's segmentation (both for the event). Parameters:
# queue id, then the claimer's user id. The states are written into the SQL: a
# prepared statement's generic plan with `state = $n` cannot use the partial index (a
# scan and sort of the whole queue instead).
_NEXT_IN_QUEUE = CompiledQuery(
    lambda: (
        Task.objects.select_related("case__account")
        .only(
            *(f.name for f in Task._meta.concrete_fields),
            "case__state",
            "case__playbook_version",
            "case__account",
            *(f"case__account__{name}" for name in SEGMENTATION_FIELDS),
        )
        .filter(
            queue_id=-1,
            state=Literal(TaskState.QUEUED),
            case__state=Literal(CaseState.ACTIVE),  # held cases are passed over
        )
        .filter(Q(assignee_id=None) | Q(assignee_id=-2))  # unreserved, or reserved for them
        .order_by(F("sla_due_at").asc(nulls_last=True), "-priority", "activated_at")
        .select_for_update(no_key=True, of=("case", "self"), skip_locked=True)[:1]
    ),
    placeholders=(-1, -2),
)


def task_claim_next(*, queue_id: int, actor: Actor) -> Task | None:
    """Claim the most urgent task of a queue (SLA due soonest, then priority, then age).

    Returns None when nothing is claimable. Tasks reserved for another agent by a
    hand-off, and tasks of held cases, are passed over. The claim itself still goes
    through the `claim` transition: permission, conditions, guarded write, one event.
    """
    try:
        queue_id = int(queue_id)
    except (TypeError, ValueError):
        raise NotFound(f"Queue {queue_id} does not exist.") from None
    # An agent's own queues are known (cached on the actor): no lookup on the hot path.
    if not (actor.is_agent and queue_id in actor.queue_ids):
        queue = Queue.objects.filter(pk=queue_id).first()
        if queue is None:
            raise NotFound(f"Queue {queue_id} does not exist.")
        if not actor.is_manager:
            raise Forbidden(f"{actor} does not work the {queue.name} queue.")
    user_id = actor.user.pk if actor.user is not None else None
    with atomic_write():
        task = _NEXT_IN_QUEUE.first(queue_id, user_id)
        if task is None:
            return None
        task.step = frozen.step(task.step_id)  # as lock_task: immutable, cached
        return _claim(task, actor)


def task_release(*, task_id: int, actor: Actor, reason: str = "") -> Task:
    with atomic_write():
        task = lock_task(task_id)
        props = {"reason": reason.strip()} if reason.strip() else {}
        released_by = task.assignee_id
        apply_transition(task, "release", actor=actor, properties=props)
        auto_assign(task, actor=actor, avoid_user_id=released_by)
    return task


def _queue_or_current(task: Task, queue_id: int | None) -> Queue | None:
    """The queue asked for (which must exist), else the task's own."""
    if queue_id is None:
        return task.queue
    queue = Queue.objects.filter(pk=queue_id).first()
    if queue is None:
        raise InvalidInput(f"Queue {queue_id} does not exist.", field="to_queue")
    return queue


def task_hand_off(
    *,
    task_id: int,
    actor: Actor,
    note: str,
    to_queue_id: int | None = None,
    to_assignee_id: int | None = None,
) -> Task:
    """Move a task to another queue and/or reserve it for an agent; the note is required."""
    note = required_text(note, "note")
    if to_queue_id is None and to_assignee_id is None:
        raise InvalidInput("Hand off to a queue, an agent, or both.", field="to_queue")
    with atomic_write():
        task = lock_task(task_id)
        target = _queue_or_current(task, to_queue_id)
        if target is None:
            raise InvalidInput("Choose the queue to hand the task to.", field="to_queue")
        assignee = None
        if to_assignee_id is not None:
            assignee = active_queue_member(target, to_assignee_id)
        handed_off_by = task.assignee_id
        from_queue = task.queue.key if task.queue_id else None
        apply_transition(
            task,
            "hand_off",
            actor=actor,
            changes={"queue": target, "assignee": assignee},
            properties={
                "from_queue": from_queue,
                "to_queue": target.key,
                "to_assignee_id": assignee.pk if assignee else None,
            },
        )
        add_context_entry(
            task,
            actor=actor,
            kind=ContextEntry.Kind.HANDOFF,
            body=note,
            from_queue=from_queue,
            to_queue=target.key,
            to_assignee_id=assignee.pk if assignee else None,
        )
        if assignee is None:  # to a queue, not to someone: the queue's rule may choose
            auto_assign(task, actor=actor, avoid_user_id=handed_off_by)
    return task


def task_escalate(
    *,
    task_id: int,
    actor: Actor,
    reason: str,
    to_queue_id: int | None = None,
    cause: str | None = None,
) -> Task:
    reason = required_text(reason, "reason")
    with atomic_write():
        task = lock_task(task_id)
        target = _queue_or_current(task, to_queue_id)
        target = target or Queue.objects.filter(is_exceptions=True).first()
        if target is None:
            raise InvalidInput("There is no queue to escalate this task to.", field="to_queue")
        escalated_by = task.assignee_id
        apply_transition(
            task,
            "escalate",
            actor=actor,
            changes={"queue": target, "priority": task.priority + 1},
            properties={
                "to_queue": target.key,
                "cause": cause or ("system" if actor.is_system else "agent"),
            },
        )
        add_context_entry(task, actor=actor, kind=ContextEntry.Kind.NOTE, body=reason)
        auto_assign(task, actor=actor, avoid_user_id=escalated_by)
    return task


def task_wait_on_customer(*, task_id: int, actor: Actor, reason: str) -> Task:
    reason = required_text(reason, "reason")
    with atomic_write():
        task = lock_task(task_id)
        apply_transition(task, "wait_on_customer", actor=actor)
        add_context_entry(task, actor=actor, kind=ContextEntry.Kind.NOTE, body=reason)
    return task


def task_resume(*, task_id: int, actor: Actor) -> Task:
    with atomic_write():
        task = lock_task(task_id)
        apply_transition(task, "resume", actor=actor)
    return task


def task_complete(*, task_id: int, actor: Actor, note: str = "") -> Task:
    with atomic_write():
        task = lock_task(task_id)
        apply_transition(
            task,
            "complete",
            actor=actor,
            changes={"completed_at": clock.now()},
            properties={"completed_by": "human"},
        )
        if note.strip():
            add_context_entry(task, actor=actor, kind=ContextEntry.Kind.NOTE, body=note.strip())
        return _finish(task, actor)


def task_complete_by_signal(*, task_id: int, actor: Actor, signal_name: str) -> Task:
    with atomic_write():
        task = lock_task(task_id)
        apply_transition(
            task,
            "complete_by_signal",
            actor=actor,
            changes={"completed_at": clock.now()},
            properties={"completed_by": "signal"},
        )
        add_context_entry(
            task, actor=actor, kind=ContextEntry.Kind.SIGNAL, body=f"Signal: {signal_name}"
        )
        return _finish(task, actor)


def task_skip(*, task_id: int, actor: Actor, reason: str) -> Task:
    reason = required_text(reason, "reason")
    with atomic_write():
        task = lock_task(task_id)
        apply_transition(
            task,
            "skip",
            actor=actor,
            changes={"skip_reason": reason, "completed_at": clock.now()},
            properties={"reason": reason},
        )
        return _finish(task, actor)

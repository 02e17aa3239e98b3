"""Assignment: reserving a queued task for one agent, by a manager or by the queue's rule.

A reserved task stays `queued` with its `assignee` set; only that agent (or a manager)
may claim it, and claim-next passes it over for everyone else. Queues whose
`assignment` is not manual reserve every task that arrives in them unassigned
(activation, release, hand-off without an agent, escalation) for one member:

- round robin: the next member by user id after the queue's `last_assigned_to`,
  wrapping around;
- least loaded: the member with the fewest open tasks (queued, in progress, waiting)
  reserved for or held by them, ties broken by user id.

Concurrent assignments in one queue are serialised by a lock on the queue row, taken
after the case and task locks (lock order: case → task → queue), and held to commit,
so the next assigner sees this one's choice.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db.models import Count, Q

from onboarding.actors import MANAGE_PERM, WORK_PERM, Actor
from onboarding.errors import InvalidInput
from onboarding.models import ContextEntry, Queue, Task
from onboarding.models.cases import TaskState
from onboarding.services._write import apply_transition, atomic_write, check_transition, lock_task

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

Assignment = Queue.Assignment

# What counts towards an agent's load.
OPEN_ASSIGNED_STATES = (TaskState.QUEUED, TaskState.IN_PROGRESS, TaskState.WAITING)


def active_queue_member(queue: Queue, user_id: int | None) -> AbstractBaseUser:
    """The active user `user_id` who works `queue` (same test as claiming), else InvalidInput."""
    user = None
    if user_id is not None:
        try:
            user = get_user_model().objects.filter(pk=int(user_id), is_active=True).first()
        except (TypeError, ValueError):
            user = None
    agent = Actor.for_user(user) if user is not None else None
    if agent is None or not (agent.is_agent and queue.pk in agent.queue_ids):
        raise InvalidInput("The agent must be an active member of the queue.", field="to_assignee")
    return user


def queue_member_ids(queue: Queue) -> list[int]:
    """Ids of the active users who may work `queue`, ascending (one query).

    Members directly or through a group, who hold the work or the manage permission
    (directly, through a group, or as superusers): exactly who may claim there.
    """
    User = get_user_model()
    perms = Permission.objects.filter(
        content_type__app_label="onboarding",
        codename__in=[WORK_PERM.split(".", 1)[1], MANAGE_PERM.split(".", 1)[1]],
    )
    in_queue = Q(pk__in=queue.members.values("pk")) | Q(
        pk__in=User.objects.filter(groups__onboarding_queues=queue).values("pk")
    )
    may_work = (
        Q(is_superuser=True)
        | Q(pk__in=User.objects.filter(user_permissions__in=perms).values("pk"))
        | Q(pk__in=User.objects.filter(groups__permissions__in=perms).values("pk"))
    )
    return list(
        User.objects.filter(in_queue, may_work, is_active=True)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def _round_robin(queue: Queue, candidates: list[int]) -> int:
    last = queue.last_assigned_to_id
    if last is not None:
        for user_id in candidates:
            if user_id > last:
                return user_id
    return candidates[0]


def _least_loaded(candidates: list[int]) -> int:
    load = dict(
        Task.objects.filter(assignee_id__in=candidates, state__in=OPEN_ASSIGNED_STATES)
        .order_by()
        .values("assignee_id")
        .annotate(n=Count("id"))
        .values_list("assignee_id", "n")
    )
    return min(candidates, key=lambda user_id: (load.get(user_id, 0), user_id))


def _lock_queue(queue_id: int) -> Queue:
    # NO KEY UPDATE: serialises assigners without blocking inserts of tasks that
    # reference the queue (they take KEY SHARE on it).
    return Queue.objects.select_for_update(no_key=True).get(pk=queue_id)


def auto_assign(task: Task, *, actor: Actor, avoid_user_id: int | None = None) -> int | None:
    """Reserve a task that just became queued and unassigned, if its queue assigns.

    Call inside the write transaction that queued the task, with the case and task
    locked. Returns the agent's id, or None (manual queue, already reserved, nobody
    to give it to). `avoid_user_id` (the agent who just let go of it) is passed over
    unless nobody else works the queue.
    """
    if (
        task.state != TaskState.QUEUED
        or task.assignee_id is not None
        or task.queue_id is None
        or task.queue.assignment == Assignment.MANUAL  # loaded with the task: no query
    ):
        return None
    queue = _lock_queue(task.queue_id)
    if queue.assignment == Assignment.MANUAL:  # changed since the task was read
        return None
    candidates = queue_member_ids(queue)
    if avoid_user_id is not None and len(candidates) > 1:
        candidates = [user_id for user_id in candidates if user_id != avoid_user_id]
    if not candidates:
        return None  # nobody works it: it waits to be claimed or reassigned
    if queue.assignment == Assignment.ROUND_ROBIN:
        chosen = _round_robin(queue, candidates)
    else:
        chosen = _least_loaded(candidates)
    task.queue = queue
    _assign(task, chosen, method=queue.assignment, actor=assignment_actor(actor))
    queue.last_assigned_to_id = chosen
    queue.save(update_fields=["last_assigned_to"])
    return chosen


def auto_assign_all(tasks: Iterable[Task], *, actor: Actor) -> None:
    """`auto_assign` each task, queue by queue in id order (one lock order across queues)."""
    for task in sorted(tasks, key=lambda t: (t.queue_id or 0, t.pk)):
        auto_assign(task, actor=actor)


def assignment_actor(cause: Actor) -> Actor:
    """Automatic assignment is the system's doing, traced to the source that caused it."""
    return Actor.system("assignment", source=cause.source)


def _assign(task: Task, user_id: int, *, method: str, actor: Actor) -> None:
    apply_transition(
        task,
        "assign",
        actor=actor,
        changes={"assignee_id": user_id},
        properties={
            "to_assignee_id": user_id,
            "from_assignee_id": task.assignee_id,
            "method": method,
            "queue": task.queue.key if task.queue_id else None,
        },
    )


def task_assign(*, task_id: int, actor: Actor, to_assignee_id: int, note: str = "") -> Task:
    """A manager reserves a queued or claimed task for an agent of its queue (reassign).

    The task goes (back) to `queued`, reserved for that agent, who claims it next. An
    optional note goes to the case's context log as a handoff note.
    """
    from onboarding.services.tasks import add_context_entry  # tasks imports this module

    note = (note or "").strip()
    with atomic_write():
        task = lock_task(task_id)
        check_transition(task, "assign", actor=actor)  # refuse outsiders before the input
        if task.queue_id is None:
            raise InvalidInput("The task waits in no queue.", field="to_assignee")
        assignee = active_queue_member(task.queue, to_assignee_id)
        if assignee.pk == task.assignee_id:
            raise InvalidInput("The task is already this agent's.", field="to_assignee")
        previous = task.assignee_id
        _assign(task, assignee.pk, method="manager", actor=actor)
        if note:
            add_context_entry(
                task,
                actor=actor,
                kind=ContextEntry.Kind.HANDOFF,
                body=note,
                from_assignee_id=previous,
                to_assignee_id=assignee.pk,
            )
    return task

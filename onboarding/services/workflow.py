"""The workflow engine: what happens to a case when one of its tasks ends.

Runs inside the caller's transaction while the case row is locked, so two tasks of
parallel branches finishing at once are serialized and the join sees both.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from onboarding import clock, frozen
from onboarding.actors import Actor
from onboarding.automation import dispatch_on_commit
from onboarding.models import Case, Step, StepKind, Task
from onboarding.models.cases import FINAL_TASK_STATES, SATISFIED_TASK_STATES, TaskState
from onboarding.services._write import apply_transition
from onboarding.services.assignment import auto_assign_all

_ACTIVATE = {
    StepKind.AUTOMATED: "schedule",
    StepKind.HUMAN: "enqueue",
    StepKind.SIGNAL: "await_signal",
}


def dependency_graph(version_id: int) -> dict[int, set[int]]:
    """step id → ids of the steps it waits for (one query)."""
    edges = Step.depends_on.through.objects.filter(from_step__version_id=version_id)
    graph: dict[int, set[int]] = defaultdict(set)
    for step_id, dep_id in edges.values_list("from_step_id", "to_step_id"):
        graph[step_id].add(dep_id)
    return graph


def workflow_actor(cause: Actor) -> Actor:
    """Consequences are the system's doing, traced to the source that caused them."""
    return Actor.system("workflow", source=cause.source)


def activate_task(task: Task, *, actor: Actor) -> None:
    now = clock.now()
    props = {"kind": task.kind}
    changes = {"activated_at": now}
    if task.queue_id is not None:
        props["queue"] = task.queue.key
    if task.kind == StepKind.AUTOMATED:
        changes.update(not_before=now, dispatched_at=now)
    apply_transition(
        task, _ACTIVATE[StepKind(task.kind)], actor=actor, changes=changes, properties=props
    )
    if task.kind == StepKind.AUTOMATED:
        dispatch_on_commit(task.pk)


def advance_case(case: Case, *, cause: Actor, tasks: Iterable[Task] | None = None) -> list[Task]:
    """Activate every pending task whose dependencies are met; complete the case when done.

    Returns the tasks activated (callers dispatch automation for them after commit).
    """
    if tasks is None:
        tasks = case.tasks.select_related("queue").order_by("step__position", "id")
    tasks = list(tasks)
    for task in tasks:
        task.case = case  # share the locked instance: events read it, no re-fetch
        task.step = frozen.step(task.step_id)
    actor = workflow_actor(cause)
    activated: list[Task] = []
    if case.state == Case.State.ACTIVE:
        graph = dependency_graph(case.playbook_version_id)
        state_by_step = {task.step_id: task.state for task in tasks}
        for task in tasks:
            if task.state != TaskState.PENDING:
                continue
            deps = graph.get(task.step_id, ())
            if all(state_by_step.get(dep) in SATISFIED_TASK_STATES for dep in deps):
                activate_task(task, actor=actor)
                activated.append(task)

        required_open = [t for t in tasks if t.required and t.state not in FINAL_TASK_STATES]
        if not required_open:
            for task in tasks:
                if task.state not in FINAL_TASK_STATES:  # optional leftovers
                    apply_transition(
                        task,
                        "cancel",
                        actor=actor,
                        changes={"completed_at": clock.now()},
                        properties={"reason": "case completed"},
                    )
            now = clock.now()
            apply_transition(
                case,
                "complete",
                actor=actor,
                changes={"completed_at": now},
                properties={"duration_seconds": (now - case.opened_at).total_seconds()},
            )
    # Human steps just queued in queues that assign: reserve each for an agent.
    auto_assign_all(activated, actor=cause)
    return activated

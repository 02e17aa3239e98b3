"""Who may perform a transition. Each `@transition` declares `permission=allow(...)`.

Deny by default: a transition without a permission is refused by the write path,
and a test fails if one is ever declared without it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from onboarding.actors import Actor

Rule = Callable[[Any, Actor], bool]


def allow(*rules: Rule) -> Rule:
    def check(instance: Any, actor: Actor) -> bool:
        return isinstance(actor, Actor) and any(rule(instance, actor) for rule in rules)

    check.rules = rules  # type: ignore[attr-defined]
    check.__name__ = " | ".join(rule.__name__ for rule in rules)
    return check


def system(instance: Any, actor: Actor) -> bool:
    """Automation: workers, the sweeper and the workflow engine itself."""
    return actor.is_system


def integration(instance: Any, actor: Actor) -> bool:
    """An API client acting with a token (scopes are checked at the API edge)."""
    return actor.is_integration


def manager(instance: Any, actor: Actor) -> bool:
    return actor.is_manager


def queue_member(task: Any, actor: Actor) -> bool:
    """An agent who works the queue the task waits in."""
    return actor.is_agent and task.queue_id is not None and task.queue_id in actor.queue_ids


def assignee(task: Any, actor: Actor) -> bool:
    """The agent the task is assigned to."""
    return (
        actor.is_agent
        and actor.user is not None
        and task.assignee_id is not None
        and task.assignee_id == actor.user.pk
    )


def queue_member_unreserved(task: Any, actor: Actor) -> bool:
    """A queue member, unless a handoff reserved the task for another agent."""
    return queue_member(task, actor) and (
        task.assignee_id is None or (actor.user is not None and task.assignee_id == actor.user.pk)
    )

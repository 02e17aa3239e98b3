"""`POST /cases/{id}/transitions/{name}` and `POST /tasks/{id}/transitions/{name}`.

One operation per transition, each with its own small input, calling its one
service. The service checks the state machine and the caller's permission: a
transition not allowed now is a 409 with `current_state`; one the caller may not run
is a 403. An unknown name is a 404.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from api import selectors
from api.auth import actor_for
from api.serializers import CaseDetailSerializer, TaskSerializer
from api.views.base import ID_SCHEMA, ApiView, validated
from api.views.cases import CASE_ID_PARAM, case_response
from onboarding import services
from onboarding.actors import Actor
from onboarding.errors import InvalidInput, NotFound
from onboarding.models import Queue


class NoInput(serializers.Serializer):
    pass


class ReasonIn(serializers.Serializer):
    reason = serializers.CharField(max_length=2000)


class OptionalReasonIn(serializers.Serializer):
    reason = serializers.CharField(max_length=2000, required=False, allow_blank=True)


class OptionalNoteIn(serializers.Serializer):
    note = serializers.CharField(max_length=10_000, required=False, allow_blank=True)


class ReopenIn(serializers.Serializer):
    step_key = serializers.SlugField(max_length=60, help_text="The finished step to redo.")
    reason = serializers.CharField(max_length=2000)


class QueueKeyField(serializers.SlugField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_length=60, required=False, help_text="A queue key.", **kwargs)


class HandOffIn(serializers.Serializer):
    note = serializers.CharField(max_length=10_000, help_text="Required on every hand-off.")
    to_queue = QueueKeyField()
    to_assignee = serializers.CharField(
        max_length=150, required=False, help_text="Username of an agent of the target queue."
    )


class EscalateIn(serializers.Serializer):
    reason = serializers.CharField(max_length=2000)
    to_queue = QueueKeyField()


def _queue_id(key: str | None) -> int | None:
    if key is None:
        return None
    queue_id = Queue.objects.filter(key=key).values_list("id", flat=True).first()
    if queue_id is None:
        raise InvalidInput(f"Queue {key!r} does not exist.", field="to_queue")
    return queue_id


def _user_id(username: str | None) -> int | None:
    if username is None:
        return None
    users = get_user_model().objects.filter(username=username, is_active=True)
    user_id = users.values_list("id", flat=True).first()
    if user_id is None:
        raise InvalidInput(f"No active user {username!r}.", field="to_assignee")
    return user_id


@dataclass(frozen=True)
class Transition:
    name: str
    summary: str
    input: type[serializers.Serializer]
    run: Callable[[int, Actor, dict[str, Any]], Any]


CASE_TRANSITIONS = (
    Transition(
        "put_on_hold",
        "Put an active case on hold",
        ReasonIn,
        lambda pk, actor, d: services.case_put_on_hold(case_id=pk, actor=actor, **d),
    ),
    Transition(
        "resume",
        "Resume a case on hold",
        NoInput,
        lambda pk, actor, d: services.case_resume(case_id=pk, actor=actor),
    ),
    Transition(
        "cancel",
        "Cancel a case and its open tasks",
        ReasonIn,
        lambda pk, actor, d: services.case_cancel(case_id=pk, actor=actor, **d),
    ),
    Transition(
        "reopen",
        "Reopen a completed case at one of its steps (managers)",
        ReopenIn,
        lambda pk, actor, d: services.case_reopen(case_id=pk, actor=actor, **d),
    ),
)

TASK_TRANSITIONS = (
    Transition(
        "claim",
        "Claim a queued task (agents of its queue, managers)",
        NoInput,
        lambda pk, actor, d: services.task_claim(task_id=pk, actor=actor),
    ),
    Transition(
        "release",
        "Put a claimed task back in its queue",
        OptionalReasonIn,
        lambda pk, actor, d: services.task_release(task_id=pk, actor=actor, **d),
    ),
    Transition(
        "hand_off",
        "Hand a task to another queue and/or agent, with a note",
        HandOffIn,
        lambda pk, actor, d: services.task_hand_off(
            task_id=pk,
            actor=actor,
            note=d["note"],
            to_queue_id=_queue_id(d.get("to_queue")),
            to_assignee_id=_user_id(d.get("to_assignee")),
        ),
    ),
    Transition(
        "escalate",
        "Escalate a task (priority up, another queue)",
        EscalateIn,
        lambda pk, actor, d: services.task_escalate(
            task_id=pk, actor=actor, reason=d["reason"], to_queue_id=_queue_id(d.get("to_queue"))
        ),
    ),
    Transition(
        "wait_on_customer",
        "Park a task in progress until the customer answers",
        ReasonIn,
        lambda pk, actor, d: services.task_wait_on_customer(task_id=pk, actor=actor, **d),
    ),
    Transition(
        "resume",
        "Resume a task that waits on the customer",
        NoInput,
        lambda pk, actor, d: services.task_resume(task_id=pk, actor=actor),
    ),
    Transition(
        "complete",
        "Complete a task in progress",
        OptionalNoteIn,
        lambda pk, actor, d: services.task_complete(task_id=pk, actor=actor, **d),
    ),
    Transition(
        "skip",
        "Skip a task (managers)",
        ReasonIn,
        lambda pk, actor, d: services.task_skip(task_id=pk, actor=actor, **d),
    ),
)

TASK_ID_PARAM = OpenApiParameter(
    "task_id", ID_SCHEMA, OpenApiParameter.PATH, description="The task id."
)


def task_response(task_id: int) -> Response:
    return Response(TaskSerializer(selectors.task_detail(task_id, actor=None)).data)


def case_transition_view(transition: Transition) -> type[ApiView]:
    class CaseTransitionView(ApiView):
        required_scopes = {"POST": "cases:write"}
        problem_statuses = (409,)

        @extend_schema(
            tags=["case transitions"],
            operation_id=f"case_{transition.name}",
            summary=transition.summary,
            parameters=[CASE_ID_PARAM],
            request=transition.input,
            responses={200: CaseDetailSerializer},
        )
        def post(self, request: Request, case_id: int) -> Response:
            data = validated(transition.input, request.data)
            transition.run(case_id, actor_for(request), data)
            return case_response(case_id)

    CaseTransitionView.__name__ = f"Case_{transition.name}"
    return CaseTransitionView


def task_transition_view(transition: Transition) -> type[ApiView]:
    class TaskTransitionView(ApiView):
        required_scopes = {"POST": "cases:write"}
        problem_statuses = (409,)

        @extend_schema(
            tags=["task transitions"],
            operation_id=f"task_{transition.name}",
            summary=transition.summary,
            parameters=[TASK_ID_PARAM],
            request=transition.input,
            responses={200: TaskSerializer},
        )
        def post(self, request: Request, task_id: int) -> Response:
            data = validated(transition.input, request.data)
            transition.run(task_id, actor_for(request), data)
            return task_response(task_id)

    TaskTransitionView.__name__ = f"Task_{transition.name}"
    return TaskTransitionView


class UnknownTransition(ApiView):
    """Any other name under …/transitions/: a 404 naming the ones that exist."""

    required_scopes = {"POST": "cases:write"}

    @extend_schema(exclude=True)
    def post(self, request: Request, name: str, **ids: int) -> Response:
        known = CASE_TRANSITIONS if "case_id" in ids else TASK_TRANSITIONS
        raise NotFound(
            f"Unknown transition {name!r}; known: {', '.join(t.name for t in known)}.",
            transition=name,
        )

"""Every transition of every state machine, performed through its service, writes
exactly one event with its catalog name; rolled back, it leaves neither.

Transitions are enumerated from django-fsm, so adding one without a scenario here
(and a catalog entry) fails this file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.apps import apps
from django.db import models, transaction
from django_fsm import FSMFieldMixin

from analytics.catalog import CATALOG
from analytics.models import Event
from onboarding import clock, services, sweeper
from onboarding.actors import Actor
from onboarding.models import Case, Playbook, PlaybookVersion, Queue, SlaPolicy, SlaTimer, Task
from tests.conftest import act, task_of

# Every model with a django-fsm field: a new state machine cannot be left out.
FSM_MODELS = tuple(
    model
    for model in apps.get_app_config("onboarding").get_models()
    if any(isinstance(f, FSMFieldMixin) for f in model._meta.concrete_fields)
)


def all_transitions(model: type[models.Model]) -> dict[str, Any]:
    """name → one django-fsm Transition (several sources share one method)."""
    return {t.name: t for t in model().get_all_state_transitions()}


@dataclass
class World:
    system: Actor
    manager: Actor
    agent: Actor
    queue: Queue
    other_queue: Queue
    playbooks: dict[str, Playbook]
    new_account: Callable[..., Any]

    def open(self, kind: str) -> Case:
        return services.case_open(
            account=self.new_account(), playbook=self.playbooks[kind], actor=self.system
        )


@pytest.fixture
def world(
    system, manager, agent_a, queue, other_queue, exceptions_queue, make_playbook, make_account
) -> World:
    playbooks = {
        "automated": make_playbook(
            "auto",
            [
                {
                    "key": "provision",
                    "name": "Provision",
                    "kind": "automated",
                    "handler": "provision_workspace",
                },
                {"key": "check", "name": "Check", "kind": "human", "queue": queue},
            ],
        ),
        "human": make_playbook(
            "human",
            [
                {"key": "kickoff", "name": "Kickoff", "kind": "human", "queue": queue},
                {"key": "review", "name": "Review", "kind": "human", "queue": queue},
            ],
        ),
        "signal": make_playbook(
            "signal",
            [
                {
                    "key": "connect",
                    "name": "Connect",
                    "kind": "signal",
                    "signal_name": "Data Source Connected",
                },
                {"key": "check", "name": "Check", "kind": "human", "queue": queue},
            ],
        ),
        "single": make_playbook(
            "single", [{"key": "only", "name": "Only", "kind": "human", "queue": queue}]
        ),
        "sla": make_playbook(
            "sla",
            [
                {
                    "key": "watched",
                    "name": "Watched",
                    "kind": "human",
                    "queue": queue,
                    "sla_policy": SlaPolicy.objects.create(
                        key="four-hours",
                        name="4h",
                        target=timedelta(hours=4),
                        pause_states=["waiting"],
                    ),
                },
                {"key": "next", "name": "Next", "kind": "human", "queue": queue},
            ],
        ),
    }
    return World(system, act(manager), act(agent_a), queue, other_queue, playbooks, make_account)


# Each scenario sets the stage and returns `perform`, which runs the transition
# through its service and returns the row that transitioned.
Scenario = Callable[[World], Callable[[], models.Model]]


def _claimed(w: World) -> Task:
    task = task_of(w.open("human"), "kickoff")
    return services.task_claim(task_id=task.pk, actor=w.agent)


def _started(w: World) -> Task:
    task = task_of(w.open("automated"), "provision")
    return services.task_start(task_id=task.pk, actor=w.system)


def _expire_lease(task: Task, w: World) -> Callable[[], Task]:
    def perform() -> Task:
        with clock.travel_to(task.lease_expires_at + timedelta(seconds=1)):
            return services.task_expire_lease(task_id=task.pk, actor=w.system)

    return perform


def _waiting(w: World) -> Task:
    task = _claimed(w)
    return services.task_wait_on_customer(task_id=task.pk, actor=w.agent, reason="asked for logo")


def _completed_case(w: World) -> Case:
    case = w.open("single")
    task = services.task_claim(task_id=task_of(case, "only").pk, actor=w.agent)
    services.task_complete(task_id=task.pk, actor=w.agent)
    return case


def _watched(w: World) -> Task:
    return task_of(w.open("sla"), "watched")


def _timer(task: Task) -> SlaTimer:
    return SlaTimer.objects.get(task=task)


def _breach_perform(w: World) -> Callable[[], SlaTimer]:
    task = _watched(w)

    def perform() -> SlaTimer:
        with clock.travel_to(_timer(task).due_at + timedelta(seconds=1)):
            sweeper.sweep()
        return _timer(task)

    return perform


def _draft(w: World) -> PlaybookVersion:
    return services.playbook_draft_new_version(playbook=w.playbooks["human"], actor=w.system)


SCENARIOS: dict[tuple[type[models.Model], str], Scenario] = {
    (Task, "schedule"): lambda w: lambda: task_of(w.open("automated"), "provision"),
    (Task, "enqueue"): lambda w: lambda: task_of(w.open("human"), "kickoff"),
    (Task, "await_signal"): lambda w: lambda: task_of(w.open("signal"), "connect"),
    (Task, "start"): lambda w: (
        lambda t: lambda: services.task_start(task_id=t.pk, actor=w.system)
    )(task_of(w.open("automated"), "provision")),
    (Task, "succeed"): lambda w: (
        lambda t: lambda: services.task_succeed(task_id=t.pk, actor=w.system, summary="ok")
    )(_started(w)),
    (Task, "fail"): lambda w: (
        lambda t: lambda: services.task_fail(task_id=t.pk, actor=w.system, error="HTTP 503")
    )(_started(w)),
    (Task, "expire_lease"): lambda w: _expire_lease(_started(w), w),
    (Task, "escalate"): lambda w: (
        lambda t: lambda: services.task_escalate(task_id=t.pk, actor=w.agent, reason="stuck")
    )(_claimed(w)),
    (Task, "claim"): lambda w: (lambda t: lambda: services.task_claim(task_id=t.pk, actor=w.agent))(
        task_of(w.open("human"), "kickoff")
    ),
    (Task, "release"): lambda w: (
        lambda t: lambda: services.task_release(task_id=t.pk, actor=w.agent)
    )(_claimed(w)),
    (Task, "hand_off"): lambda w: (
        lambda t: (
            lambda: services.task_hand_off(
                task_id=t.pk, actor=w.agent, note="needs SSO expert", to_queue_id=w.other_queue.pk
            )
        )
    )(_claimed(w)),
    (Task, "assign"): lambda w: (
        lambda t: (
            lambda: services.task_assign(
                task_id=t.pk, actor=w.manager, to_assignee_id=w.agent.user.pk, note="yours"
            )
        )
    )(task_of(w.open("human"), "kickoff")),
    (Task, "wait_on_customer"): lambda w: (
        lambda t: lambda: services.task_wait_on_customer(task_id=t.pk, actor=w.agent, reason="x")
    )(_claimed(w)),
    (Task, "resume"): lambda w: (
        lambda t: lambda: services.task_resume(task_id=t.pk, actor=w.agent)
    )(_waiting(w)),
    (Task, "complete"): lambda w: (
        lambda t: lambda: services.task_complete(task_id=t.pk, actor=w.agent, note="done")
    )(_claimed(w)),
    (Task, "complete_by_signal"): lambda w: (
        lambda t: (
            lambda: services.task_complete_by_signal(
                task_id=t.pk, actor=w.system, signal_name="Data Source Connected"
            )
        )
    )(task_of(w.open("signal"), "connect")),
    (Task, "skip"): lambda w: (
        lambda t: lambda: services.task_skip(task_id=t.pk, actor=w.manager, reason="not needed")
    )(task_of(w.open("human"), "kickoff")),
    (Task, "cancel"): lambda w: (
        lambda c: (
            lambda: (
                services.case_cancel(case_id=c.pk, actor=w.manager, reason="churned"),
                task_of(c, "kickoff"),
            )[1]
        )
    )(w.open("human")),
    (Task, "reopen"): lambda w: (
        lambda c: (
            lambda: (
                services.case_reopen(case_id=c.pk, actor=w.manager, step_key="only", reason="redo"),
                task_of(c, "only"),
            )[1]
        )
    )(_completed_case(w)),
    (Case, "put_on_hold"): lambda w: (
        lambda c: lambda: services.case_put_on_hold(case_id=c.pk, actor=w.manager, reason="PTO")
    )(w.open("human")),
    (Case, "resume"): lambda w: (
        lambda c: lambda: services.case_resume(case_id=c.pk, actor=w.manager)
    )(services.case_put_on_hold(case_id=w.open("human").pk, actor=w.manager, reason="PTO")),
    (Case, "cancel"): lambda w: (
        lambda c: lambda: services.case_cancel(case_id=c.pk, actor=w.manager, reason="churned")
    )(w.open("human")),
    (Case, "complete"): lambda w: (
        lambda t: lambda: services.task_complete(task_id=t.pk, actor=w.agent).case
    )(services.task_claim(task_id=task_of(w.open("single"), "only").pk, actor=w.agent)),
    (Case, "reopen"): lambda w: (
        lambda c: (
            lambda: services.case_reopen(
                case_id=c.pk, actor=w.manager, step_key="only", reason="customer came back"
            )
        )
    )(_completed_case(w)),
    (SlaTimer, "pause"): lambda w: (
        lambda t: (
            lambda: (
                services.task_wait_on_customer(task_id=t.pk, actor=w.agent, reason="x"),
                _timer(t),
            )[1]
        )
    )(services.task_claim(task_id=_watched(w).pk, actor=w.agent)),
    (SlaTimer, "resume"): lambda w: (
        lambda t: lambda: (services.task_resume(task_id=t.pk, actor=w.agent), _timer(t))[1]
    )(
        services.task_wait_on_customer(
            task_id=services.task_claim(task_id=_watched(w).pk, actor=w.agent).pk,
            actor=w.agent,
            reason="x",
        )
    ),
    (SlaTimer, "meet"): lambda w: (
        lambda t: lambda: (services.task_complete(task_id=t.pk, actor=w.agent), _timer(t))[1]
    )(services.task_claim(task_id=_watched(w).pk, actor=w.agent)),
    (SlaTimer, "breach"): _breach_perform,
    (SlaTimer, "cancel"): lambda w: (
        lambda t: (
            lambda: (
                services.task_skip(task_id=t.pk, actor=w.manager, reason="n/a"),
                _timer(t),
            )[1]
        )
    )(_watched(w)),
    (PlaybookVersion, "publish"): lambda w: (
        lambda v: lambda: services.playbook_version_publish(version=v, actor=w.manager)
    )(_draft(w)),
    (PlaybookVersion, "retire"): lambda w: (
        lambda v: lambda: services.playbook_version_retire(version=v, actor=w.manager)
    )(w.playbooks["human"].latest_published()),
}

ALL = [(model, name) for model in FSM_MODELS for name in all_transitions(model)]


def _ids(param: tuple[type[models.Model], str]) -> str:
    return f"{param[0].__name__}.{param[1]}"


PARAMS = [pytest.param(model, name, id=_ids((model, name))) for model, name in ALL]


def test_every_transition_has_a_scenario_a_permission_and_a_catalog_event() -> None:
    assert set(ALL) == set(SCENARIOS), "add a scenario for each new transition"
    for model, name in ALL:
        for transition in model().get_all_state_transitions():
            if transition.name != name:
                continue
            assert transition.permission is not None, f"{_ids((model, name))} declares no one"
            assert transition.custom.get("event") in CATALOG, f"{_ids((model, name))} event"


def _events_for(obj: models.Model, transition: str) -> list[Event]:
    lookup = {
        Task: {"task_id": obj.pk, "name__startswith": "Step"},
        Case: {"case_id": obj.pk, "task__isnull": True, "name__startswith": "Case"},
        SlaTimer: {"task_id": getattr(obj, "task_id", None), "name__startswith": "SLA"},
        PlaybookVersion: {
            "playbook_key": getattr(obj, "playbook", None) and obj.playbook.key,
            "playbook_version": getattr(obj, "number", None),
        },
    }[type(obj)]
    return list(Event.objects.filter(properties__transition=transition, **lookup))


@pytest.mark.django_db
@pytest.mark.parametrize(("model", "name"), PARAMS)
def test_transition_through_its_service_writes_exactly_one_event(world: World, model, name):
    transition = all_transitions(model)[name]
    perform = SCENARIOS[(model, name)](world)

    obj = perform()

    obj = type(obj).objects.get(pk=obj.pk)
    events = _events_for(obj, name)
    assert len(events) == 1
    event = events[0]
    assert event.name == transition.custom["event"]
    assert event.properties["to_state"] == transition.target
    sources = {t.source for t in obj.get_all_state_transitions() if t.name == name}
    assert event.properties["from_state"] in sources
    assert event.actor_type in {"system", "agent", "api"}


class Rollback(Exception):
    pass


def _state_snapshot() -> dict[str, Any]:
    return {
        "events": Event.objects.count(),
        "tasks": sorted(Task.objects.values_list("id", "state", "assignee_id", "queue_id")),
        "cases": sorted(Case.objects.values_list("id", "state")),
        "versions": sorted(PlaybookVersion.objects.values_list("id", "state")),
        "timers": sorted(SlaTimer.objects.values_list("id", "state")),
    }


@pytest.mark.django_db
@pytest.mark.parametrize(("model", "name"), PARAMS)
def test_transition_rolled_back_leaves_neither_state_nor_event(world: World, model, name):
    perform = SCENARIOS[(model, name)](world)
    before = _state_snapshot()

    with pytest.raises(Rollback), transaction.atomic():
        perform()
        raise Rollback

    assert _state_snapshot() == before

"""Illegal transitions, missing permissions and bad input are refused by the services
themselves and change nothing."""

from __future__ import annotations

import pytest

from analytics.models import Event
from onboarding import clock, services
from onboarding.actors import Actor
from onboarding.errors import Forbidden, InvalidInput, NotFound, TransitionNotAllowed
from onboarding.models import Case, Task
from tests.conftest import act, task_of

pytestmark = pytest.mark.django_db


def _unchanged(task: Task, events_before: int) -> None:
    fresh = Task.objects.get(pk=task.pk)
    assert fresh.state == task.state
    assert fresh.assignee_id == task.assignee_id
    assert Event.objects.count() == events_before


def test_completing_a_queued_task_is_not_allowed_and_changes_nothing(open_case, agent_a):
    task = task_of(open_case, "kickoff")
    before = Event.objects.count()

    with pytest.raises(TransitionNotAllowed) as refused:
        services.task_complete(task_id=task.pk, actor=act(agent_a))

    assert refused.value.details["current_state"] == "queued"
    assert refused.value.status == 409
    _unchanged(task, before)


def test_agent_outside_the_queue_cannot_claim(open_case, outsider):
    task = task_of(open_case, "kickoff")
    before = Event.objects.count()

    with pytest.raises(Forbidden):
        services.task_claim(task_id=task.pk, actor=act(outsider))

    _unchanged(task, before)


def test_user_without_any_role_cannot_claim(open_case, queue, django_user_model):
    nobody = django_user_model.objects.create_user("nobody")
    queue.members.add(nobody)  # membership alone grants nothing without the agent role
    task = task_of(open_case, "kickoff")

    with pytest.raises(Forbidden):
        services.task_claim(task_id=task.pk, actor=act(nobody))


def test_only_the_assignee_completes_a_claimed_task(open_case, agent_a, agent_b):
    task = services.task_claim(task_id=task_of(open_case, "kickoff").pk, actor=act(agent_a))
    before = Event.objects.count()

    with pytest.raises(Forbidden):
        services.task_complete(task_id=task.pk, actor=act(agent_b))

    _unchanged(task, before)


def test_a_task_handed_to_an_agent_is_reserved_for_them(open_case, agent_a, agent_b, queue):
    task = services.task_claim(task_id=task_of(open_case, "kickoff").pk, actor=act(agent_a))
    services.task_hand_off(
        task_id=task.pk, actor=act(agent_a), note="B knows them", to_assignee_id=agent_b.pk
    )

    with pytest.raises(Forbidden):
        services.task_claim(task_id=task.pk, actor=act(agent_a))
    claimed = services.task_claim(task_id=task.pk, actor=act(agent_b))

    assert claimed.assignee_id == agent_b.pk


def test_agents_cannot_put_cases_on_hold_managers_can(open_case, agent_a, manager):
    with pytest.raises(Forbidden):
        services.case_put_on_hold(case_id=open_case.pk, actor=act(agent_a), reason="x")

    services.case_put_on_hold(case_id=open_case.pk, actor=act(manager), reason="holiday")

    assert Case.objects.get(pk=open_case.pk).state == "on_hold"


def test_integration_cannot_run_system_only_transitions(open_case):
    task = task_of(open_case, "kickoff")

    with pytest.raises(Forbidden):
        services.task_skip(task_id=task.pk, actor=Actor.integration("tok_1"), reason="x")


def test_tasks_of_a_held_case_cannot_be_claimed(open_case, agent_a, manager):
    services.case_put_on_hold(case_id=open_case.pk, actor=act(manager), reason="legal review")
    task = task_of(open_case, "kickoff")

    with pytest.raises(TransitionNotAllowed) as refused:
        services.task_claim(task_id=task.pk, actor=act(agent_a))

    assert "case_is_active" in refused.value.details["failed_conditions"]


def test_hand_off_needs_a_note_and_loses_nothing(open_case, agent_a, other_queue):
    task = services.task_claim(task_id=task_of(open_case, "kickoff").pk, actor=act(agent_a))
    before = Event.objects.count()

    with pytest.raises(InvalidInput) as refused:
        services.task_hand_off(
            task_id=task.pk, actor=act(agent_a), note="   ", to_queue_id=other_queue.pk
        )

    assert refused.value.details["field"] == "note"
    _unchanged(task, before)


def test_hand_off_to_an_agent_outside_the_target_queue_is_refused(
    open_case, agent_a, outsider, queue
):
    task = services.task_claim(task_id=task_of(open_case, "kickoff").pk, actor=act(agent_a))

    with pytest.raises(InvalidInput):
        services.task_hand_off(
            task_id=task.pk, actor=act(agent_a), note="over to you", to_assignee_id=outsider.pk
        )


def test_unknown_ids_are_not_found(agent_a, system):
    with pytest.raises(NotFound):
        services.task_claim(task_id=999_999, actor=act(agent_a))
    with pytest.raises(NotFound):
        services.case_resume(case_id=999_999, actor=system)
    with pytest.raises(NotFound):
        services.task_claim(task_id="not-a-number", actor=act(agent_a))


def test_opening_a_second_open_case_for_the_same_playbook_is_a_conflict(
    open_case, human_playbook, system
):
    from onboarding.errors import Conflict

    cases_before = Case.objects.count()
    with pytest.raises(Conflict) as refused:
        services.case_open(account=open_case.account, playbook=human_playbook, actor=system)

    assert refused.value.details["case_id"] == open_case.pk
    assert Case.objects.count() == cases_before


def test_a_new_case_may_start_once_the_previous_one_ended(open_case, human_playbook, manager):
    services.case_cancel(case_id=open_case.pk, actor=act(manager), reason="restart")

    second = services.case_open(
        account=open_case.account, playbook=human_playbook, actor=act(manager)
    )

    assert second.pk != open_case.pk
    assert second.state == "active"


def test_agents_cannot_open_cases(human_playbook, make_account, agent_a):
    with pytest.raises(Forbidden):
        services.case_open(account=make_account(), playbook=human_playbook, actor=act(agent_a))


def test_failed_automation_escalates_to_exceptions_queue_when_attempts_run_out(
    make_playbook, make_account, system, exceptions_queue
):
    playbook = make_playbook(
        "flaky",
        [{"key": "crm", "name": "CRM", "kind": "automated", "handler": "crm", "max_attempts": 2}],
    )
    case = services.case_open(account=make_account(), playbook=playbook, actor=system)
    task = task_of(case, "crm")
    services.task_start(task_id=task.pk, actor=system)
    task = services.task_fail(task_id=task.pk, actor=system, error="HTTP 500 from CRM")
    with clock.travel_to(task.not_before):  # the retry waits out its backoff
        services.task_start(task_id=task.pk, actor=system)
        task = services.task_fail(task_id=task.pk, actor=system, error="HTTP 500 from CRM")

    task = Task.objects.get(pk=task.pk)
    assert task.state == "queued"
    assert task.escalated is True
    assert task.queue_id == exceptions_queue.pk
    assert task.last_error == "HTTP 500 from CRM"
    assert list(Event.objects.filter(task=task).values_list("name", flat=True).order_by("id")) == [
        "Step Activated",
        "Step Started",
        "Step Failed",
        "Step Started",
        "Step Escalated",
    ]
    assert task.context_entries.filter(kind="error").count() == 2

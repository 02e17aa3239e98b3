"""Races on real PostgreSQL row locks: threads on separate connections, joined with a
timeout so a deadlock fails the test instead of hanging it."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections

from analytics.models import Event
from onboarding import services
from onboarding.errors import Conflict
from onboarding.models import Case, Task
from tests.conftest import act, race, task_of

pytestmark = pytest.mark.django_db(transaction=True)


def test_postgresql_is_the_database_under_test():
    assert connection.vendor == "postgresql"


def test_two_agents_claiming_the_same_task_one_wins_one_gets_a_conflict(
    open_case, agent_a, agent_b
):
    task = task_of(open_case, "kickoff")

    results = race(
        lambda: services.task_claim(task_id=task.pk, actor=act(agent_a)),
        lambda: services.task_claim(task_id=task.pk, actor=act(agent_b)),
    )

    winners = [r for r in results if isinstance(r, Task)]
    losers = [r for r in results if isinstance(r, Conflict)]
    assert len(winners) == 1 and len(losers) == 1, results
    assert Task.objects.get(pk=task.pk).assignee_id == winners[0].assignee_id
    assert Event.objects.filter(task=task, name="Step Claimed").count() == 1


def test_many_threads_racing_one_transition_record_exactly_one_event(open_case, agent_a):
    task = services.task_claim(task_id=task_of(open_case, "kickoff").pk, actor=act(agent_a))

    results = race(
        *[lambda: services.task_complete(task_id=task.pk, actor=act(agent_a)) for _ in range(8)]
    )

    assert sum(isinstance(r, Task) for r in results) == 1
    assert all(isinstance(r, (Task, Conflict)) for r in results), results
    assert Event.objects.filter(task=task, name="Step Completed").count() == 1
    assert (
        Event.objects.filter(task=task_of(open_case, "review"), name="Step Activated").count() == 1
    )


@pytest.fixture
def fork(make_playbook, queue, make_account, system):
    """kickoff and training in parallel, joined by handover."""
    playbook = make_playbook(
        "fork",
        [
            {"key": "kickoff", "name": "Kickoff", "kind": "human", "queue": queue},
            {
                "key": "training",
                "name": "Training",
                "kind": "human",
                "queue": queue,
                "depends_on": [],
            },
            {
                "key": "handover",
                "name": "Handover",
                "kind": "human",
                "queue": queue,
                "depends_on": ["kickoff", "training"],
            },
        ],
    )
    return services.case_open(account=make_account(), playbook=playbook, actor=system)


def test_parallel_branches_finishing_at_once_activate_the_join_exactly_once(fork, agent_a, agent_b):
    kickoff = services.task_claim(task_id=task_of(fork, "kickoff").pk, actor=act(agent_a))
    training = services.task_claim(task_id=task_of(fork, "training").pk, actor=act(agent_b))

    results = race(
        lambda: services.task_complete(task_id=kickoff.pk, actor=act(agent_a)),
        lambda: services.task_complete(task_id=training.pk, actor=act(agent_b)),
    )

    assert all(isinstance(r, Task) for r in results), results
    handover = task_of(fork, "handover")
    assert handover.state == "queued"
    assert Event.objects.filter(task=handover, name="Step Activated").count() == 1


def test_hold_and_claim_racing_on_one_case_serialize(fork, agent_a, manager):
    task = task_of(fork, "kickoff")

    results = race(
        lambda: services.case_put_on_hold(case_id=fork.pk, actor=act(manager), reason="audit"),
        lambda: services.task_claim(task_id=task.pk, actor=act(agent_a)),
    )

    hold, claim = results
    assert isinstance(hold, Case), hold
    assert Case.objects.get(pk=fork.pk).state == "on_hold"
    task = Task.objects.get(pk=task.pk)
    if isinstance(claim, Task):  # claim went first: it happened while the case was active
        claimed_event = Event.objects.get(task=task, name="Step Claimed")
        hold_event = Event.objects.get(case=fork, name="Case Put On Hold")
        assert claimed_event.id < hold_event.id
        assert task.state == "in_progress"
    else:  # hold went first: the claim saw it and was refused
        assert isinstance(claim, Conflict), claim
        assert task.state == "queued"
        assert not Event.objects.filter(task=task, name="Step Claimed").exists()


def test_a_lock_held_too_long_becomes_a_conflict_not_a_database_error(open_case, agent_a):
    from django.db import transaction

    task = task_of(open_case, "kickoff")
    holding = threading.Event()
    release = threading.Event()

    def hold_the_case_lock() -> None:
        try:
            with transaction.atomic():
                Case.objects.select_for_update().get(pk=open_case.pk)
                holding.set()
                release.wait(10)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold_the_case_lock)
    holder.start()
    assert holding.wait(10)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '200ms'")
        with pytest.raises(Conflict):
            services.task_claim(task_id=task.pk, actor=act(agent_a))
    finally:
        release.set()
        holder.join(10)
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")
    assert Task.objects.get(pk=task.pk).state == "queued"

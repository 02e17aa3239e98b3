"""Assignment: queues that reserve each arriving task for one member, and managers who
reassign. A reserved task stays queued until its agent claims it."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Group
from django.db import connections

from analytics.models import Event
from onboarding import clock, services, sweeper
from onboarding.errors import Forbidden, InvalidInput, TransitionNotAllowed
from onboarding.models import ContextEntry, Queue, Task
from tests.conftest import QueueFactory, UserFactory, _agent, act, task_of

T0 = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)


@pytest.fixture
def open_in(make_playbook, make_account, system):
    """Open a one-step case whose human step waits in `queue`; return that task."""
    playbooks: dict[int, object] = {}

    def build(queue: Queue) -> Task:
        if queue.pk not in playbooks:
            playbooks[queue.pk] = make_playbook(
                f"assign-{queue.key}",
                [{"key": "work", "name": "Work", "kind": "human", "queue": queue}],
            )
        playbook = playbooks[queue.pk]
        case = services.case_open(account=make_account(), playbook=playbook, actor=system)
        return task_of(case, "work")

    return build


def assigning(queue: Queue, how: str) -> Queue:
    queue.assignment = how
    queue.save(update_fields=["assignment"])
    return queue


def fresh(task: Task) -> Task:
    return Task.objects.get(pk=task.pk)


def assigned_events(task: Task) -> list[Event]:
    return list(Event.objects.filter(task_id=task.pk, name="Step Assigned").order_by("id"))


# --- automatic assignment ------------------------------------------------------------------


@pytest.mark.django_db
def test_round_robin_spreads_tasks_across_members_in_order_and_wraps(
    open_in, queue, agent_a, agent_b
):
    assigning(queue, "round_robin")
    first, second = sorted([agent_a.pk, agent_b.pk])

    tasks = [open_in(queue) for _ in range(3)]

    assert [fresh(t).assignee_id for t in tasks] == [first, second, first]
    assert all(fresh(t).state == "queued" for t in tasks)  # reserved, not claimed
    event = assigned_events(tasks[1])[0]
    assert event.properties["method"] == "round_robin"
    assert event.properties["to_assignee_id"] == second
    assert event.properties["from_assignee_id"] is None
    assert event.properties["queue"] == queue.key
    assert (event.actor_type, event.actor_id) == ("system", "assignment")
    assert Queue.objects.get(pk=queue.pk).last_assigned_to_id == first


@pytest.mark.django_db
def test_least_loaded_picks_the_agent_with_fewest_open_tasks(open_in, queue, agent_a, agent_b):
    busy = [open_in(queue) for _ in range(2)]
    for task in busy:
        services.task_claim(task_id=task.pk, actor=act(agent_a))
    assigning(queue, "least_loaded")

    picks = [fresh(open_in(queue)).assignee_id for _ in range(3)]

    # b has 0 then 1 open task against a's 2; at 2 each the lower id wins the tie
    assert picks == [agent_b.pk, agent_b.pk, min(agent_a.pk, agent_b.pk)]
    assert (
        assigned_events(Task.objects.filter(assignee=agent_b).first())[0].properties["method"]
        == "least_loaded"
    )


@pytest.mark.django_db
def test_finished_work_does_not_count_towards_the_load(open_in, queue, agent_a, agent_b):
    done = open_in(queue)
    services.task_claim(task_id=done.pk, actor=act(agent_b))
    services.task_complete(task_id=done.pk, actor=act(agent_b))
    held = open_in(queue)
    services.task_claim(task_id=held.pk, actor=act(agent_a))
    assigning(queue, "least_loaded")

    assert fresh(open_in(queue)).assignee_id == agent_b.pk


@pytest.mark.django_db
def test_manual_queues_leave_tasks_for_agents_to_claim(open_in, queue, agent_a, agent_b):
    task = open_in(queue)

    assert fresh(task).assignee_id is None
    assert assigned_events(task) == []
    assert Queue.objects.get(pk=queue.pk).last_assigned_to_id is None


@pytest.mark.django_db
def test_a_queue_nobody_works_leaves_the_task_unassigned(open_in, exceptions_queue):
    assigning(exceptions_queue, "round_robin")

    task = open_in(exceptions_queue)

    assert (fresh(task).state, fresh(task).assignee_id) == ("queued", None)
    assert assigned_events(task) == []


@pytest.mark.django_db
def test_members_through_a_group_count_but_not_people_who_may_not_work(open_in, other_queue):
    assigning(other_queue, "round_robin")
    team = Group.objects.create(name="Technical team")
    other_queue.member_groups.add(team)
    via_group = _agent("via_group")
    via_group.groups.add(team)
    no_permission = UserFactory(username="no_permission")  # staff, but may not work tasks
    other_queue.members.add(no_permission)
    gone = _agent("gone", other_queue)
    gone.is_active = False
    gone.save(update_fields=["is_active"])

    picks = {fresh(open_in(other_queue)).assignee_id for _ in range(3)}

    assert picks == {via_group.pk}


@pytest.mark.django_db
def test_a_reserved_task_is_passed_over_by_another_agents_claim_next(
    open_in, queue, agent_a, agent_b
):
    assigning(queue, "round_robin")
    task = open_in(queue)
    owner, other = sorted([agent_a, agent_b], key=lambda u: u.pk)
    assert fresh(task).assignee_id == owner.pk

    assert services.task_claim_next(queue_id=queue.pk, actor=act(other)) is None
    with pytest.raises(Forbidden):
        services.task_claim(task_id=task.pk, actor=act(other))
    claimed = services.task_claim_next(queue_id=queue.pk, actor=act(owner))

    assert claimed.pk == task.pk
    assert (fresh(task).state, fresh(task).assignee_id) == ("in_progress", owner.pk)


@pytest.mark.django_db
def test_a_released_task_goes_to_the_next_member_not_back_to_the_releaser(
    open_in, queue, agent_a, agent_b
):
    assigning(queue, "round_robin")
    task = open_in(queue)
    owner, other = sorted([agent_a, agent_b], key=lambda u: u.pk)
    services.task_claim(task_id=task.pk, actor=act(owner))

    services.task_release(task_id=task.pk, actor=act(owner), reason="out sick")

    assert (fresh(task).state, fresh(task).assignee_id) == ("queued", other.pk)
    names = Event.objects.filter(task_id=task.pk).order_by("id").values_list("name", flat=True)
    assert list(names)[-2:] == ["Step Released", "Step Assigned"]


@pytest.mark.django_db
def test_a_sole_member_gets_back_what_they_released(open_in, exceptions_queue, manager):
    assigning(exceptions_queue, "least_loaded")
    only = _agent("only", exceptions_queue)
    task = open_in(exceptions_queue)
    services.task_claim(task_id=task.pk, actor=act(only))

    services.task_release(task_id=task.pk, actor=act(manager))

    assert fresh(task).assignee_id == only.pk
    assert len(assigned_events(task)) == 2


@pytest.mark.django_db
def test_an_idle_claim_released_by_the_sweep_is_reassigned(open_in, queue, agent_a, agent_b):
    assigning(queue, "round_robin")
    queue.claim_timeout_minutes = 30
    queue.save(update_fields=["claim_timeout_minutes"])
    with clock.travel_to(T0):
        task = open_in(queue)
        owner, other = sorted([agent_a, agent_b], key=lambda u: u.pk)
        services.task_claim(task_id=task.pk, actor=act(owner))

    with clock.travel_to(T0 + timedelta(minutes=31)):
        report = sweeper.sweep()

    assert report.claims_released == 1
    assert (fresh(task).state, fresh(task).assignee_id) == ("queued", other.pk)
    assert assigned_events(task)[-1].source == "sweeper"


@pytest.mark.django_db
def test_a_hand_off_to_an_assigning_queue_is_assigned_there(
    open_in, queue, other_queue, agent_a, agent_b, outsider
):
    assigning(other_queue, "round_robin")
    task = open_in(queue)
    services.task_claim(task_id=task.pk, actor=act(agent_a))

    services.task_hand_off(
        task_id=task.pk, actor=act(agent_a), note="needs SSO", to_queue_id=other_queue.pk
    )

    task = fresh(task)
    assert task.queue_id == other_queue.pk
    assert task.assignee_id == min(agent_b.pk, outsider.pk)  # other_queue's members
    assert assigned_events(task)[0].properties["queue"] == other_queue.key


@pytest.mark.django_db
def test_a_hand_off_to_a_named_agent_is_not_reassigned(open_in, queue, agent_a, agent_b):
    assigning(queue, "least_loaded")
    task = open_in(queue)
    holder = fresh(task).assignee
    services.task_claim(task_id=task.pk, actor=act(holder))
    before = len(assigned_events(task))

    services.task_hand_off(
        task_id=task.pk, actor=act(holder), note="you know them", to_assignee_id=holder.pk
    )

    assert fresh(task).assignee_id == holder.pk
    assert len(assigned_events(task)) == before


@pytest.mark.django_db
def test_an_escalated_task_is_assigned_in_the_queue_it_lands_in(
    open_in, queue, exceptions_queue, agent_a, agent_b
):
    assigning(exceptions_queue, "round_robin")
    exceptions_queue.members.add(agent_b)
    task = open_in(queue)
    services.task_claim(task_id=task.pk, actor=act(agent_a))

    services.task_escalate(
        task_id=task.pk, actor=act(agent_a), reason="stuck", to_queue_id=exceptions_queue.pk
    )

    task = fresh(task)
    assert (task.state, task.queue_id, task.escalated) == ("queued", exceptions_queue.pk, True)
    assert task.assignee_id == agent_b.pk


@pytest.mark.django_db
def test_an_escalation_within_the_queue_goes_to_someone_else(open_in, queue, agent_a, agent_b):
    assigning(queue, "least_loaded")
    task = open_in(queue)
    holder = fresh(task).assignee
    other = agent_b if holder.pk == agent_a.pk else agent_a
    services.task_claim(task_id=task.pk, actor=act(holder))

    services.task_escalate(task_id=task.pk, actor=act(holder), reason="beyond me")

    assert fresh(task).assignee_id == other.pk


# --- managers reassign ---------------------------------------------------------------------


@pytest.mark.django_db
def test_a_manager_reserves_a_queued_task_for_an_agent(
    open_in, queue, agent_a, agent_b, manager, django_capture_on_commit_callbacks
):
    task = open_in(queue)

    with django_capture_on_commit_callbacks() as callbacks:
        services.task_assign(
            task_id=task.pk, actor=act(manager), to_assignee_id=agent_b.pk, note="B knows them"
        )

    assert callbacks == []
    assert (fresh(task).state, fresh(task).assignee_id) == ("queued", agent_b.pk)
    [event] = assigned_events(task)
    assert event.properties == {
        "transition": "assign",
        "from_state": "queued",
        "to_state": "queued",
        "to_assignee_id": agent_b.pk,
        "from_assignee_id": None,
        "method": "manager",
        "queue": queue.key,
    }
    assert (event.actor_type, event.actor_id) == ("agent", str(manager.pk))
    note = ContextEntry.objects.get(task=task, kind=ContextEntry.Kind.HANDOFF)
    assert note.body == "B knows them"
    assert note.properties["to_assignee_id"] == agent_b.pk


@pytest.mark.django_db
def test_a_manager_takes_claimed_work_from_one_agent_and_gives_it_to_another(
    open_in, queue, agent_a, agent_b, manager
):
    task = open_in(queue)
    services.task_claim(task_id=task.pk, actor=act(agent_a))

    services.task_assign(task_id=task.pk, actor=act(manager), to_assignee_id=agent_b.pk)

    assert (fresh(task).state, fresh(task).assignee_id) == ("queued", agent_b.pk)
    [event] = assigned_events(task)
    assert event.properties["from_state"] == "in_progress"
    assert event.properties["from_assignee_id"] == agent_a.pk
    assert not ContextEntry.objects.filter(task=task, kind=ContextEntry.Kind.HANDOFF).exists()
    with pytest.raises(Forbidden):
        services.task_claim(task_id=task.pk, actor=act(agent_a))
    services.task_claim(task_id=task.pk, actor=act(agent_b))
    assert fresh(task).state == "in_progress"


@pytest.mark.django_db
def test_an_agent_may_not_reassign_and_nothing_changes(open_in, queue, agent_a, agent_b):
    task = open_in(queue)
    services.task_claim(task_id=task.pk, actor=act(agent_a))
    events = Event.objects.count()

    with pytest.raises(Forbidden):
        services.task_assign(task_id=task.pk, actor=act(agent_a), to_assignee_id=agent_b.pk)
    # refused before the input is even looked at
    with pytest.raises(Forbidden):
        services.task_assign(task_id=task.pk, actor=act(agent_a), to_assignee_id=999_999)

    assert (fresh(task).state, fresh(task).assignee_id) == ("in_progress", agent_a.pk)
    assert Event.objects.count() == events


@pytest.mark.django_db
def test_reassigning_to_someone_outside_the_queue_is_invalid_input(
    open_in, queue, agent_a, outsider, manager
):
    task = open_in(queue)
    events = Event.objects.count()

    for not_a_member in (outsider.pk, manager.pk, 999_999, "x"):
        with pytest.raises(InvalidInput) as refused:
            services.task_assign(task_id=task.pk, actor=act(manager), to_assignee_id=not_a_member)
        assert refused.value.details["field"] == "to_assignee"

    assert fresh(task).assignee_id is None
    assert Event.objects.count() == events


@pytest.mark.django_db
def test_reassigning_to_the_current_assignee_is_refused(open_in, queue, agent_a, manager):
    task = open_in(queue)
    services.task_assign(task_id=task.pk, actor=act(manager), to_assignee_id=agent_a.pk)

    with pytest.raises(InvalidInput):
        services.task_assign(task_id=task.pk, actor=act(manager), to_assignee_id=agent_a.pk)

    assert len(assigned_events(task)) == 1


@pytest.mark.django_db
def test_finished_work_cannot_be_reassigned(open_in, queue, agent_a, agent_b, manager):
    task = open_in(queue)
    services.task_claim(task_id=task.pk, actor=act(agent_a))
    services.task_complete(task_id=task.pk, actor=act(agent_a))

    with pytest.raises(TransitionNotAllowed):
        services.task_assign(task_id=task.pk, actor=act(manager), to_assignee_id=agent_b.pk)


# --- concurrency ---------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("how", ["round_robin", "least_loaded"])
def test_tasks_activated_at_once_are_each_assigned_once_and_evenly(
    how, make_playbook, make_account, system
):
    queue = assigning(QueueFactory(key=f"race-{how}"), how)
    agents = [_agent(f"{how}-agent{n}", queue) for n in range(4)]
    playbook = make_playbook(
        f"race-{how}", [{"key": "work", "name": "Work", "kind": "human", "queue": queue}]
    )
    accounts = [make_account() for _ in range(16)]
    opened: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(accounts))

    def open_case(account) -> None:
        try:
            barrier.wait()
            case = services.case_open(account=account, playbook=playbook, actor=system)
            opened.append(case.pk)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=open_case, args=(a,)) for a in accounts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert not any(t.is_alive() for t in threads), "assigners hung"
    assert errors == []
    tasks = Task.objects.filter(case_id__in=opened)
    assert tasks.count() == len(accounts)
    assert all(t.state == "queued" and t.assignee_id is not None for t in tasks)
    per_task = Counter(
        Event.objects.filter(name="Step Assigned", task__in=tasks).values_list("task_id", flat=True)
    )
    assert per_task == {t.pk: 1 for t in tasks}
    # serialised on the queue row: every choice saw the one before it
    load = Counter(tasks.values_list("assignee_id", flat=True))
    assert load == {agent.pk: len(accounts) // len(agents) for agent in agents}

"""Claim next: the most urgent task of a queue, never the same one to two agents."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connections

from analytics.models import Event
from onboarding import clock, services
from onboarding.errors import Forbidden, NotFound
from onboarding.models import SlaPolicy, SlaTimer, Task
from tests.conftest import _agent, act, task_of

T0 = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)


@pytest.fixture
def open_in(make_playbook, make_account, system, queue):
    """Open a one-step case in `queue`, optionally on an SLA policy, at a given time."""
    playbooks: dict[object, object] = {}

    def build(*, at: datetime = T0, sla: SlaPolicy | None = None):
        key = sla.pk if sla else None
        if key not in playbooks:
            playbooks[key] = make_playbook(
                f"claim-{key}",
                [
                    {
                        "key": "work",
                        "name": "Work",
                        "kind": "human",
                        "queue": queue,
                        "sla_policy": sla,
                    }
                ],
            )
        with clock.travel_to(at):
            case = services.case_open(account=make_account(), playbook=playbooks[key], actor=system)
        return task_of(case, "work")

    return build


def policy(hours: float) -> SlaPolicy:
    return SlaPolicy.objects.create(
        key=f"p{hours}", name=f"{hours}h", target=timedelta(hours=hours)
    )


@pytest.mark.django_db
def test_the_most_urgent_task_comes_first(open_in, queue, agent_a):
    old_no_sla = open_in(at=T0 - timedelta(days=3))
    due_late = open_in(sla=policy(48))
    due_soon = open_in(sla=policy(4))
    agent = act(agent_a)

    order = [services.task_claim_next(queue_id=queue.pk, actor=agent) for _ in range(3)]

    # SLA due soonest first, then the rest by age
    assert [t.pk for t in order] == [due_soon.pk, due_late.pk, old_no_sla.pk]
    assert services.task_claim_next(queue_id=queue.pk, actor=agent) is None


@pytest.mark.django_db
def test_priority_then_age_order_tasks_without_a_clock(open_in, queue, agent_a, manager):
    older = open_in(at=T0 - timedelta(hours=2))
    newer = open_in(at=T0)
    claimed = services.task_claim(task_id=newer.pk, actor=act(manager))
    services.task_release(task_id=claimed.pk, actor=act(manager))
    Task.objects.filter(pk=newer.pk).update(priority=2)

    first = services.task_claim_next(queue_id=queue.pk, actor=act(agent_a))

    assert first.pk == newer.pk
    assert services.task_claim_next(queue_id=queue.pk, actor=act(agent_a)).pk == older.pk


@pytest.mark.django_db
def test_reserved_and_held_work_is_passed_over(open_in, queue, agent_a, agent_b, manager):
    reserved = open_in(at=T0 - timedelta(hours=3))
    services.task_claim(task_id=reserved.pk, actor=act(agent_b))
    services.task_hand_off(
        task_id=reserved.pk, actor=act(agent_b), note="for B later", to_assignee_id=agent_b.pk
    )
    held = open_in(at=T0 - timedelta(hours=2))
    services.case_put_on_hold(case_id=held.case_id, actor=act(manager), reason="legal")
    free = open_in(at=T0)

    assert services.task_claim_next(queue_id=queue.pk, actor=act(agent_a)).pk == free.pk
    assert services.task_claim_next(queue_id=queue.pk, actor=act(agent_a)) is None
    assert services.task_claim_next(queue_id=queue.pk, actor=act(agent_b)).pk == reserved.pk


@pytest.mark.django_db
def test_only_members_and_managers_may_claim_from_a_queue(open_in, queue, outsider, manager):
    open_in()

    with pytest.raises(Forbidden):
        services.task_claim_next(queue_id=queue.pk, actor=act(outsider))
    with pytest.raises(NotFound):
        services.task_claim_next(queue_id=999_999, actor=act(manager))
    assert services.task_claim_next(queue_id=queue.pk, actor=act(manager)) is not None


@pytest.mark.django_db
def test_a_paused_clock_leaves_the_due_time_empty_until_it_runs_again(open_in, agent_a):
    sla = SlaPolicy.objects.create(
        key="p", name="p", target=timedelta(hours=4), pause_states=["waiting"]
    )
    task = open_in(sla=sla)
    assert Task.objects.get(pk=task.pk).sla_due_at == T0 + timedelta(hours=4)
    agent = act(agent_a)
    with clock.travel_to(T0 + timedelta(hours=1)):
        services.task_claim(task_id=task.pk, actor=agent)
        services.task_wait_on_customer(task_id=task.pk, actor=agent, reason="x")
    assert Task.objects.get(pk=task.pk).sla_due_at is None
    with clock.travel_to(T0 + timedelta(hours=2)):
        services.task_resume(task_id=task.pk, actor=agent)
    assert Task.objects.get(pk=task.pk).sla_due_at == T0 + timedelta(hours=5)


@pytest.mark.django_db
def test_the_claim_is_stored_with_its_one_event(open_in, queue, agent_a):
    task = open_in()
    agent = act(agent_a)

    with clock.travel_to(T0 + timedelta(minutes=5)):
        claimed = services.task_claim_next(queue_id=queue.pk, actor=agent)

    stored = Task.objects.select_related("case__account").get(pk=task.pk)
    assert (claimed.state, claimed.assignee_id) == ("in_progress", agent_a.pk)
    assert (stored.state, stored.assignee_id) == ("in_progress", agent_a.pk)
    assert stored.started_at == stored.updated_at == T0 + timedelta(minutes=5)
    (event,) = Event.objects.filter(task_id=task.pk, name="Step Claimed")
    assert (event.case_id, event.account_id, event.step_key) == (
        stored.case_id,
        stored.case.account_id,
        "work",
    )
    assert event.segmentation == stored.case.account.segmentation()
    assert (event.actor_type, event.actor_id) == ("agent", str(agent_a.pk))
    assert event.properties == {
        "transition": "claim",
        "from_state": "queued",
        "to_state": "in_progress",
    }


@pytest.mark.django_db
def test_claiming_next_moves_the_clock_along_like_any_claim(open_in, queue, agent_a):
    task = open_in(sla=policy(4))

    with clock.travel_to(T0 + timedelta(hours=1)):
        services.task_claim_next(queue_id=queue.pk, actor=act(agent_a))

    timer = SlaTimer.objects.get(task_id=task.pk)
    # The queued hour is accounted to us; the clock runs on, due as before.
    assert timer.state == "running"
    assert timer.segment_started_at == T0 + timedelta(hours=1)
    assert timer.attribution == {"internal": 3600.0}
    assert timer.consumed_seconds == 3600.0
    assert Task.objects.get(pk=task.pk).sla_due_at == T0 + timedelta(hours=4)


@pytest.mark.django_db
def test_a_paused_state_pauses_the_clock_when_claimed_next(open_in, queue, agent_a):
    sla = SlaPolicy.objects.create(
        key="p", name="p", target=timedelta(hours=4), pause_states=["in_progress"]
    )
    task = open_in(sla=sla)

    with clock.travel_to(T0 + timedelta(hours=1)):
        services.task_claim_next(queue_id=queue.pk, actor=act(agent_a))

    assert SlaTimer.objects.get(task_id=task.pk).state == "paused"
    assert Task.objects.get(pk=task.pk).sla_due_at is None


@pytest.mark.django_db(transaction=True)
def test_sixteen_agents_claiming_at_once_never_share_a_task_and_lose_none(open_in, queue):
    tasks = {open_in(at=T0 + timedelta(minutes=n)).pk for n in range(48)}
    agents = [act(_agent(f"claimer{n}", queue)) for n in range(16)]
    claimed: dict[str, list[int]] = {a.id: [] for a in agents}
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(agents))

    def work(agent) -> None:
        try:
            barrier.wait()
            while (task := services.task_claim_next(queue_id=queue.pk, actor=agent)) is not None:
                claimed[agent.id].append(task.pk)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(a,)) for a in agents]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert not any(t.is_alive() for t in threads), "claimers hung"
    assert errors == []
    every_claim = [pk for pks in claimed.values() for pk in pks]
    assert sorted(every_claim) == sorted(tasks)  # each exactly once, none lost
    assert Event.objects.filter(name="Step Claimed").count() == len(tasks)
    owners = dict(Task.objects.filter(pk__in=tasks).values_list("pk", "assignee__username"))
    by_agent = {User.objects.get(pk=int(a)).username: pks for a, pks in claimed.items()}
    assert all(owners[pk] == name for name, pks in by_agent.items() for pk in pks)

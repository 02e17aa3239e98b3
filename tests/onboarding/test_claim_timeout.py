"""A claimed task left idle past its queue's claim timeout goes back to the queue."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from analytics.models import Event
from onboarding import clock, services, sweeper
from onboarding.models import BusinessCalendar, Task
from tests.conftest import act, task_of

pytestmark = pytest.mark.django_db

FRIDAY_1650_BERLIN = datetime(2026, 11, 20, 15, 50, tzinfo=UTC)


@pytest.fixture
def claimed(open_case, agent_a):
    def claim(at: datetime) -> Task:
        with clock.travel_to(at):
            return services.task_claim(task_id=task_of(open_case, "kickoff").pk, actor=act(agent_a))

    return claim


def sweep_at(moment: datetime) -> sweeper.SweepReport:
    with clock.travel_to(moment):
        return sweeper.sweep()


def test_an_idle_claim_returns_to_the_queue_after_the_timeout(queue, claimed):
    queue.claim_timeout_minutes = 30
    queue.save()
    t0 = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)
    task = claimed(t0)

    assert sweep_at(t0 + timedelta(minutes=20)).claims_released == 0
    assert sweep_at(t0 + timedelta(minutes=31)).claims_released == 1

    task = Task.objects.get(pk=task.pk)
    assert (task.state, task.assignee_id) == ("queued", None)
    released = Event.objects.get(task=task, name="Step Released")
    assert released.properties["reason"] == "claim timed out"
    assert released.actor_type == "system"


def test_the_timeout_counts_business_minutes_of_the_queue_calendar(queue, claimed):
    queue.claim_timeout_minutes = 30
    queue.calendar = BusinessCalendar.objects.create(
        key="berlin",
        name="Berlin",
        tz="Europe/Berlin",
        week={d: ["09:00-17:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
    )
    queue.save()
    task = claimed(FRIDAY_1650_BERLIN)

    monday_0800_berlin = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)  # 10 business minutes
    assert sweep_at(monday_0800_berlin).claims_released == 0
    monday_0925_berlin = datetime(2026, 11, 23, 8, 25, tzinfo=UTC)  # 35 business minutes
    assert sweep_at(monday_0925_berlin).claims_released == 1
    assert Task.objects.get(pk=task.pk).state == "queued"


def test_queues_without_a_timeout_keep_their_claims(claimed):
    task = claimed(datetime(2026, 11, 16, 9, 0, tzinfo=UTC))

    assert sweep_at(datetime(2026, 12, 16, 9, 0, tzinfo=UTC)).claims_released == 0
    assert Task.objects.get(pk=task.pk).state == "in_progress"


def test_one_sweep_releases_a_batch_queue_by_queue(
    make_playbook, make_account, system, queue, other_queue, agent_b, monkeypatch
):
    """Releases may lock their queue (auto-assignment) until the batch commits: one order
    of queues across sweepers means two sweepers never wait on each other."""
    playbook = make_playbook(
        "two-queues",
        [
            {"key": "tech", "name": "Tech", "kind": "human", "queue": other_queue},
            {"key": "spec", "name": "Spec", "kind": "human", "queue": queue, "depends_on": []},
        ],
    )
    for q in (queue, other_queue):
        q.claim_timeout_minutes = 30
        q.save()
    t0 = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)
    with clock.travel_to(t0):
        for _ in range(3):  # ids alternate between the queues: tech, spec, tech, spec…
            case = services.case_open(account=make_account(), playbook=playbook, actor=system)
            for key in ("tech", "spec"):
                services.task_claim(task_id=task_of(case, key).pk, actor=act(agent_b))
    released = []
    real_release = sweeper.task_release
    monkeypatch.setattr(
        sweeper,
        "task_release",
        lambda *, task_id, **kw: released.append(task_id) or real_release(task_id=task_id, **kw),
    )

    assert sweep_at(t0 + timedelta(minutes=31)).claims_released == 6

    queues = list(Task.objects.filter(pk__in=released).values_list("pk", "queue_id"))
    order = [dict(queues)[pk] for pk in released]
    assert order == sorted(order) and len(set(order)) == 2

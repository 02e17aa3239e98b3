"""SLA timers: business-time clocks that pause on the customer, warn and breach once,
escalate, and record where the time went."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connections

from analytics.models import Event
from onboarding import clock, services, sweeper
from onboarding.models import BusinessCalendar, SlaPolicy, SlaTimer, Task
from onboarding.services import tasks as task_services
from tests.conftest import act, task_of

T0 = datetime(2026, 11, 16, 8, 0, tzinfo=UTC)  # a Monday, 09:00 in Berlin
H = 3600.0


@pytest.fixture
def office(db):
    return BusinessCalendar.objects.create(
        key="berlin-office",
        name="Berlin office",
        tz="Europe/Berlin",
        week={d: ["09:00-17:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
    )


@pytest.fixture
def policy(db, other_queue):
    """4 hours around the clock, paused while waiting on the customer."""
    return SlaPolicy.objects.create(
        key="kickoff",
        name="Kickoff within 4h",
        target=timedelta(hours=4),
        warn_percent=75,
        pause_states=["waiting"],
        escalation_queue=other_queue,
    )


@pytest.fixture
def watched(make_playbook, make_account, system, queue, policy):
    """Open a case whose kickoff step runs on `policy` (or another)."""

    playbooks: dict[int, object] = {}

    def open_case(at: datetime = T0, sla: SlaPolicy = policy):
        playbook = playbooks.get(sla.pk) or make_playbook(
            f"watched-{sla.pk}",
            [
                {
                    "key": "kickoff",
                    "name": "Kickoff",
                    "kind": "human",
                    "queue": queue,
                    "sla_policy": sla,
                },
                {"key": "review", "name": "Review", "kind": "human", "queue": queue},
            ],
        )
        playbooks[sla.pk] = playbook
        with clock.travel_to(at):
            return services.case_open(account=make_account(), playbook=playbook, actor=system)

    return open_case


def timer_of(task: Task) -> SlaTimer:
    return SlaTimer.objects.get(task=task)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def test_a_live_step_starts_its_clock_in_business_time(watched, office, policy):
    policy.calendar = office
    policy.save()
    friday_15h = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)  # 15:00 Berlin

    case = watched(at=friday_15h)

    timer = timer_of(task_of(case, "kickoff"))
    # 2 business hours on Friday, 2 on Monday; the warning at 3 of 4 hours
    assert timer.due_at == datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # Mon 11:00 Berlin
    assert timer.warn_at == datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    started = Event.objects.get(name="SLA Started", task=timer.task)
    assert started.properties["target_seconds"] == 4 * H
    assert started.properties["policy_version"] == 1


def test_waiting_on_the_customer_does_not_count_and_attribution_sums_to_the_total(watched, agent_a):
    agent = act(agent_a)
    task = task_of(watched(), "kickoff")
    with clock.travel_to(at(0.5)):
        services.task_claim(task_id=task.pk, actor=agent)
    with clock.travel_to(at(1)):
        services.task_wait_on_customer(task_id=task.pk, actor=agent, reason="needs logo")
    with clock.travel_to(at(5)):
        services.task_resume(task_id=task.pk, actor=agent)
    with clock.travel_to(at(6)):
        services.task_complete(task_id=task.pk, actor=agent)

    timer = timer_of(task)
    assert timer.state == "met"
    assert timer.consumed_seconds == pytest.approx(2 * H)
    assert timer.attribution == pytest.approx({"internal": 2 * H, "customer": 4 * H})
    assert sum(timer.attribution.values()) == pytest.approx((timer.stopped_at - T0).total_seconds())
    names = list(
        Event.objects.filter(name__startswith="SLA").order_by("id").values_list("name", flat=True)
    )
    assert names == ["SLA Started", "SLA Paused", "SLA Resumed", "SLA Met"]
    met = Event.objects.get(name="SLA Met")
    assert met.properties["consumed_seconds"] == pytest.approx(2 * H)


def test_a_pause_moves_the_deadline_by_the_paused_time(watched, agent_a):
    agent = act(agent_a)
    task = task_of(watched(), "kickoff")
    assert timer_of(task).due_at == at(4)
    with clock.travel_to(at(1)):
        services.task_claim(task_id=task.pk, actor=agent)
        services.task_wait_on_customer(task_id=task.pk, actor=agent, reason="x")
    with clock.travel_to(at(3)):
        services.task_resume(task_id=task.pk, actor=agent)

    assert timer_of(task).due_at == at(6)


def test_warning_and_breach_fire_exactly_once_and_the_breach_escalates(watched, other_queue):
    task = task_of(watched(), "kickoff")

    with clock.travel_to(at(3.5)):
        first = sweeper.sweep()
    with clock.travel_to(at(4.5)):
        second = sweeper.sweep()
        third = sweeper.sweep()

    assert (first.warned, first.breached) == (1, 0)
    assert (second.warned, second.breached) == (0, 1)
    assert (third.warned, third.breached) == (0, 0)
    assert Event.objects.filter(name="SLA Warning").count() == 1
    assert Event.objects.filter(name="SLA Breached").count() == 1
    task = Task.objects.get(pk=task.pk)
    assert (task.queue_id, task.escalated, task.priority) == (other_queue.pk, True, 1)
    escalated = Event.objects.get(task=task, name="Step Escalated")
    assert escalated.properties["cause"] == "sla"
    assert timer_of(task).state == "breached"


def test_a_breached_step_finished_later_keeps_its_verdict_and_final_numbers(watched, agent_b):
    task = task_of(watched(), "kickoff")
    with clock.travel_to(at(4.5)):
        sweeper.sweep()
    with clock.travel_to(at(5)):
        services.task_claim(task_id=task.pk, actor=act(agent_b))
    with clock.travel_to(at(6)):
        services.task_complete(task_id=task.pk, actor=act(agent_b))

    timer = timer_of(task)
    assert timer.state == "breached"
    assert timer.stopped_at == at(6)
    assert timer.consumed_seconds == pytest.approx(6 * H)
    assert not Event.objects.filter(name="SLA Met").exists()


def test_putting_the_case_on_hold_pauses_its_clocks(watched, manager):
    case = watched()
    with clock.travel_to(at(1)):
        services.case_put_on_hold(case_id=case.pk, actor=act(manager), reason="legal review")
    assert timer_of(task_of(case, "kickoff")).state == "paused"
    with clock.travel_to(at(4)):
        services.case_resume(case_id=case.pk, actor=act(manager))

    timer = timer_of(task_of(case, "kickoff"))
    assert timer.state == "running"
    assert timer.due_at == at(7)
    assert timer.attribution == pytest.approx({"internal": 1 * H, "customer": 3 * H})


def test_skipping_or_cancelling_stops_the_clock_without_a_verdict(watched, manager):
    case = watched()

    services.case_cancel(case_id=case.pk, actor=act(manager), reason="churned")

    timer = timer_of(task_of(case, "kickoff"))
    assert timer.state == "cancelled"
    assert Event.objects.filter(name="SLA Cancelled").count() == 1


def test_running_timers_keep_their_policy_version(watched, policy):
    task = task_of(watched(), "kickoff")
    SlaPolicy.objects.filter(pk=policy.pk).update(is_current=False)
    newer = SlaPolicy.objects.create(
        key="kickoff", version=2, name="Kickoff within 2h", target=timedelta(hours=2)
    )

    timer = timer_of(task)
    assert timer.policy_id == policy.pk != newer.pk
    assert timer.due_at == at(4)


def test_a_signal_step_without_its_signal_by_the_deadline_becomes_a_human_check_in(
    make_playbook, make_account, system, queue
):
    check_in = SlaPolicy.objects.create(
        key="connect",
        name="Connect within 2 days",
        target=timedelta(days=2),
        escalation_queue=queue,
    )
    playbook = make_playbook(
        "signals",
        [
            {
                "key": "connect",
                "name": "Connect data",
                "kind": "signal",
                "signal_name": "Data Source Connected",
                "sla_policy": check_in,
            },
        ],
    )
    with clock.travel_to(T0):
        case = services.case_open(account=make_account(), playbook=playbook, actor=system)

    with clock.travel_to(T0 + timedelta(days=2, minutes=1)):
        report = sweeper.sweep()

    task = task_of(case, "connect")
    assert report.breached == 1
    assert (task.state, task.queue_id, task.escalated) == ("queued", queue.pk, True)


def test_a_case_time_to_live_clock_runs_from_opening_to_completion(
    make_playbook, make_account, system, queue, agent_a
):
    ttl = SlaPolicy.objects.create(key="ttl", name="Live in 14 days", target=timedelta(days=14))
    playbook = make_playbook(
        "ttl", [{"key": "only", "name": "Only", "kind": "human", "queue": queue}], publish=False
    )
    version = playbook.versions.get()
    version.case_sla_policy = ttl
    version.save()
    services.playbook_version_publish(version=version, actor=system)
    with clock.travel_to(T0):
        case = services.case_open(account=make_account(), playbook=playbook, actor=system)
    task = task_of(case, "only")
    with clock.travel_to(at(10)):
        services.task_claim(task_id=task.pk, actor=act(agent_a))
        services.task_complete(task_id=task.pk, actor=act(agent_a))

    timer = SlaTimer.objects.get(case=case, kind="case")
    assert timer.state == "met"
    assert timer.consumed_seconds == pytest.approx(10 * H)


@pytest.mark.django_db(transaction=True)
def test_two_sweepers_warn_and_breach_each_timer_exactly_once(watched):
    for _ in range(12):
        watched()
    results: list[sweeper.SweepReport] = []
    barrier = threading.Barrier(2)

    def run() -> None:
        try:
            barrier.wait()
            with clock.travel_to(at(5)):
                results.append(sweeper.sweep(batch_size=3))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert not any(t.is_alive() for t in threads)
    assert Event.objects.filter(name="SLA Warning").count() == 12
    assert Event.objects.filter(name="SLA Breached").count() == 12
    assert sum(r.breached for r in results) == 12
    assert SlaTimer.objects.filter(state="breached").count() == 12


def test_one_sweep_escalates_its_breaches_queue_by_queue(
    watched, policy, queue, other_queue, monkeypatch
):
    """Escalating may lock the target queue (auto-assignment) until the batch commits:
    one order of queues across sweepers means two sweepers never wait on each other."""
    to_queue = SlaPolicy.objects.create(
        key="kickoff-home",
        name="Kickoff within 4h, escalated in place",
        target=timedelta(hours=4),
        escalation_queue=queue,
    )
    for hour in range(3):  # due instants alternate between the two target queues
        watched(at=at(hour), sla=policy)
        watched(at=at(hour + 0.5), sla=to_queue)
    escalated = []
    real_escalate = task_services.task_escalate
    monkeypatch.setattr(
        task_services,
        "task_escalate",
        lambda **kw: escalated.append(kw["to_queue_id"]) or real_escalate(**kw),
    )

    with clock.travel_to(at(8)):
        assert sweeper.sweep().breached == 6

    assert escalated == sorted(escalated) and set(escalated) == {queue.pk, other_queue.pk}

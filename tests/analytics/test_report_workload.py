"""Workload: open human work now, and throughput in the range, per queue and agent.

Kickoff → review, both in the specialists queue. On Monday 7 September (UTC):

    W0  kickoff done by agent B the week before the range
    W1  kickoff done by agent A; review claimed by A          → in progress
    W2  kickoff claimed by A, waiting on the customer          → with customer
    W3  kickoff untouched                                      → queued
    W4  kickoff claimed by B, handed off to the technical queue reserved for B → reserved
    W5  kickoff and review done by B
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from analytics.metrics import run
from analytics.metrics.base import Filters
from analytics.metrics.replay import differences, replay
from onboarding import clock, services
from tests.conftest import act, task_of

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 9, 7, 9, 0, tzinfo=UTC)
NOW = T0 + timedelta(hours=8)
RANGE = Filters(start=T0.date(), end=T0.date())


@pytest.fixture
def desk(human_playbook, make_account, system, queue, other_queue, agent_a, agent_b):
    a, b = act(agent_a), act(agent_b)
    minute = iter(range(1, 10_000))

    def step(service, *, moment=None, **kwargs):
        with clock.travel_to(moment or T0 + timedelta(minutes=next(minute))):
            return service(**kwargs)

    def open_case(moment=None, **account):
        return step(
            services.case_open,
            moment=moment,
            account=make_account(**account),
            playbook=human_playbook,
            actor=system,
        )

    def work(case, key, who, *, finish=True, moment=None):
        task = task_of(case, key).pk
        step(services.task_claim, task_id=task, actor=who, moment=moment)
        if finish:
            step(services.task_complete, task_id=task, actor=who, moment=moment)

    w0 = open_case(T0 - timedelta(days=7))
    work(w0, "kickoff", b, moment=T0 - timedelta(days=7))
    w1, w2, w3, w4, w5 = (open_case(plan="enterprise" if n == 5 else "growth") for n in range(1, 6))
    work(w1, "kickoff", a), work(w1, "review", a, finish=False)
    work(w2, "kickoff", a, finish=False)
    step(services.task_wait_on_customer, task_id=task_of(w2, "kickoff").pk, actor=a, reason="?")
    work(w4, "kickoff", b, finish=False)
    step(services.task_hand_off, task_id=task_of(w4, "kickoff").pk, actor=b, note="mine later",
         to_queue_id=other_queue.pk, to_assignee_id=agent_b.pk)  # fmt: skip
    work(w5, "kickoff", b), work(w5, "review", b)
    return {"W0": w0, "W1": w1, "W2": w2, "W3": w3, "W4": w4, "W5": w5}


def workload(filters: Filters = RANGE):
    return run("workload", filters, now=NOW).tables


def test_open_work_by_queue_and_agent(desk, agent_a, agent_b):
    tables = workload()

    # queued, reserved, in progress, with the customer, open
    assert tables["open_summary"].comparable() == [(2, 1, 1, 1, 5)]
    assert tables["open_by_queue"].comparable() == [
        ("specialists", 2, 0, 1, 1, 4),  # W0's review, W3; W1 in progress; W2 waiting
        ("technical", 0, 1, 0, 0, 1),  # W4, reserved for B
    ]
    assert tables["open_by_agent"].comparable() == [
        (agent_a.pk, 0, 0, 1, 1, 2),
        (agent_b.pk, 0, 1, 0, 0, 1),
        (None, 2, 0, 0, 0, 2),
    ]


def test_throughput_in_the_range_by_queue_agent_and_week(desk, agent_a, agent_b):
    tables = workload()

    assert tables["done_summary"].comparable() == [(3,)]  # W1 kickoff, W5 kickoff and review
    assert tables["done_by_queue"].comparable() == [("specialists", 3)]
    assert tables["done_by_agent"].comparable() == [(agent_a.pk, 1), (agent_b.pk, 2)]
    assert tables["done_by_week"].comparable() == [(date(2026, 9, 7), 3)]
    a_week = RANGE.but(start=T0.date() - timedelta(days=7))
    assert workload(a_week)["done_by_week"].comparable() == [
        (date(2026, 8, 31), 1),  # W0
        (date(2026, 9, 7), 3),
    ]


def test_filters_by_queue_agent_and_plan(desk, agent_b):
    assert workload(RANGE.but(queue="technical"))["open_summary"].comparable() == [(0, 1, 0, 0, 1)]
    assert workload(RANGE.but(agent=agent_b.pk))["done_summary"].comparable() == [(2,)]
    assert workload(RANGE.but(plan="enterprise"))["done_summary"].comparable() == [(2,)]


def test_the_same_numbers_come_back_from_the_raw_events(desk, agent_a):
    for filters in (RANGE, RANGE.but(queue="technical"), RANGE.but(agent=agent_a.pk)):
        report = run("workload", filters, now=NOW)
        assert differences(report, replay("workload", filters, now=NOW)) == []

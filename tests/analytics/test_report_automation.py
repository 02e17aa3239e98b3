"""Automation versus people, checked against four cases with known answers.

The playbook: provision (automated, 2 attempts) → welcome email (automated) → check
(human). All on Monday 7 September (UTC).

    X1  provision and welcome done on their first attempt; the check is handed off once
    X2  provision fails once (TimeoutError) and succeeds on attempt 2; welcome at once;
        the check is handed off twice
    X3  provision fails twice (QuotaExceeded): attempts exhausted, escalated to the
        exceptions queue, where an agent does it by hand; welcome's first worker never
        reports back (its lease expires) and attempt 2 succeeds
    X5  opened, nothing started yet
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from analytics.metrics import run
from analytics.metrics.base import Filters
from analytics.metrics.replay import differences, replay
from onboarding import clock, services
from tests.conftest import _agent, act, task_of

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 9, 7, 9, 0, tzinfo=UTC)
NOW = T0 + timedelta(days=1)
RANGE = Filters(start=T0.date(), end=T0.date())


@pytest.fixture
def cases(
    make_playbook, make_account, system, queue, other_queue, exceptions_queue, agent_a, agent_b
):
    playbook = make_playbook(
        "auto",
        [
            {"key": "provision", "name": "Provision", "kind": "automated",
             "handler": "provision_workspace", "max_attempts": 2},
            {"key": "welcome", "name": "Welcome", "kind": "automated",
             "handler": "send_welcome_email"},
            {"key": "check", "name": "Check", "kind": "human", "queue": queue},
        ],
    )  # fmt: skip
    robot = system
    fixer = act(_agent("fixer", exceptions_queue))
    a, b = act(agent_a), act(agent_b)
    minute = iter(range(1, 10_000))

    def step(service, **kwargs):
        with clock.travel_to(T0 + timedelta(minutes=next(minute))):
            return service(**kwargs)

    def run_ok(case, key):
        task = task_of(case, key).pk
        step(services.task_start, task_id=task, actor=robot)
        step(services.task_succeed, task_id=task, actor=robot)

    def fail(case, key, error_type):
        task = task_of(case, key).pk
        step(services.task_start, task_id=task, actor=robot)
        step(services.task_fail, task_id=task, actor=robot, error=f"{error_type}!",
             error_type=error_type)  # fmt: skip

    def hand_off(case, *, by, to):
        step(services.task_hand_off, task_id=task_of(case, "check").pk, actor=by,
             note="over to you", to_queue_id=to.pk)  # fmt: skip

    made = {
        name: step(services.case_open, account=make_account(), playbook=playbook, actor=system)
        for name in ("X1", "X2", "X3", "X5")
    }
    x1, x2, x3 = made["X1"], made["X2"], made["X3"]
    run_ok(x1, "provision"), run_ok(x1, "welcome")
    step(services.task_claim, task_id=task_of(x1, "check").pk, actor=a)
    hand_off(x1, by=a, to=other_queue)

    fail(x2, "provision", "TimeoutError"), run_ok(x2, "provision"), run_ok(x2, "welcome")
    step(services.task_claim, task_id=task_of(x2, "check").pk, actor=a)
    hand_off(x2, by=a, to=other_queue)
    step(services.task_claim, task_id=task_of(x2, "check").pk, actor=b)
    hand_off(x2, by=b, to=queue)

    fail(x3, "provision", "QuotaExceeded"), fail(x3, "provision", "QuotaExceeded")
    provision = task_of(x3, "provision")
    assert provision.escalated and provision.queue == exceptions_queue
    step(services.task_claim, task_id=provision.pk, actor=fixer)
    step(services.task_complete, task_id=provision.pk, actor=fixer, note="done by hand")
    welcome = task_of(x3, "welcome").pk
    step(services.task_start, task_id=welcome, actor=robot)
    with clock.travel_to(T0 + timedelta(hours=2)):  # long after the 5-minute lease
        services.task_expire_lease(task_id=welcome, actor=robot)
    with clock.travel_to(T0 + timedelta(hours=3)):
        services.task_start(task_id=welcome, actor=robot)
        services.task_succeed(task_id=welcome, actor=robot)
    return made


def automation(filters: Filters = RANGE):
    return run("automation", filters, now=NOW).tables


def test_share_of_automated_steps_done_without_escalation(cases):
    tables = automation()

    # finished, alone, human-assisted, first attempt, alone share, assist rate, attempts/step
    assert tables["summary"].comparable() == [(6, 5, 1, 3, 5 / 6, 1 / 6, 9 / 6)]
    assert tables["by_step"].comparable() == [
        ("provision", 3, 2, 1, 1, 2 / 3, 1 / 3, 5 / 3),
        ("welcome", 3, 3, 0, 2, 1.0, 0.0, 4 / 3),
    ]


def test_top_failure_reasons_count_every_failed_attempt(cases):
    tables = automation()

    assert tables["failures"].comparable() == [
        ("QuotaExceeded", 2, 1),  # the second one is where automation gave up
        ("LeaseExpired", 1, 1),
        ("TimeoutError", 1, 1),
    ]
    assert tables["failures"].rows[0][3] == "QuotaExceeded!"  # the latest message
    assert tables["failures_by_step"].comparable() == [
        ("provision", "QuotaExceeded", 2, 1),
        ("provision", "TimeoutError", 1, 1),
        ("welcome", "LeaseExpired", 1, 1),
    ]


def test_handoffs_per_case(cases):
    tables = automation()

    assert tables["handoffs"].comparable() == [(4, 3, 0.75, 0.5)]
    assert tables["handoff_distribution"].comparable() == [
        ("0", 2), ("1", 1), ("2", 1), ("3 or more", 0),
    ]  # fmt: skip


def test_steps_finished_outside_the_range_do_not_count(cases):
    next_day = RANGE.but(start=NOW.date(), end=NOW.date())

    assert automation(next_day)["summary"].comparable() == [(0, 0, 0, 0, None, None, None)]
    assert automation(next_day)["failures"].rows == []


def test_the_same_numbers_come_back_from_the_raw_events(cases):
    for filters in (RANGE, RANGE.but(plan="enterprise"), RANGE.but(playbook="auto")):
        report = run("automation", filters, now=NOW)
        assert differences(report, replay("automation", filters, now=NOW)) == []

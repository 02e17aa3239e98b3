"""Milestone funnel and time to first value, checked against ten journeys with known
answers.

The playbook: kickoff (human, milestone) → setup (human, a 2-day clock) → connect
(signal, milestone) → first report (signal, milestone, first value). Everything is
counted from T0 = Monday 7 September 09:00 UTC; "now" is T0 + 40 days, so the 30-day
conversion window of the cases opened on T0 has elapsed.

    case  opened  plan     what happened (days after its opening)
    1     T0      growth   kickoff 1, setup 2, connect 4, first report 5: done
    2     T0      growth   kickoff 2, setup 3, connect 10, first report 13: done
    3     T0      growth   kickoff 1, setup 2, then nothing              → dropped at connect
    4     T0      growth   kickoff 1, setup 1, connect 35: too late      → dropped at connect
    5     T0      starter  cancelled on day 3                            → dropped at kickoff
    6     now-5   starter  kickoff 1, setup 2, waiting for connect       → in progress
    7     now-20  starter  kickoff 2, setup never done                   → stalled, SLA overdue
    8     T0+1    starter  kickoff skipped after 2 h, setup 2, connect 3 → dropped at first report
    9     now-3   starter  kickoff after 1 h, setup never done           → in progress, overdue
    10    T0+2    starter  all done by day 6, then reopened on connect   → dropped at connect;
                           its first report stays done: first value in 6 days
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from analytics.metrics import run
from analytics.metrics.base import Filters
from analytics.metrics.replay import differences, replay
from onboarding import clock, services
from onboarding.models import SlaPolicy
from tests.conftest import act, task_of

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 9, 7, 9, 0, tzinfo=UTC)
NOW = T0 + timedelta(days=40)
D, H = 86400.0, 3600.0
RANGE = Filters(start=T0.date(), end=NOW.date(), playbook="journey")


@pytest.fixture
def journeys(make_playbook, make_account, system, queue, agent_a, manager):
    setup_clock = SlaPolicy.objects.create(
        key="setup", name="Setup in 2 days", target=timedelta(days=2), on_breach="notify"
    )
    playbook = make_playbook(
        "journey",
        [
            {"key": "kickoff", "name": "Kickoff", "kind": "human", "queue": queue,
             "is_milestone": True},
            {"key": "setup", "name": "Set-up", "kind": "human", "queue": queue,
             "sla_policy": setup_clock},
            {"key": "connect", "name": "Connect", "kind": "signal",
             "signal_name": "Data Source Connected", "is_milestone": True},
            {"key": "first_report", "name": "First report", "kind": "signal",
             "signal_name": "First Report Generated", "is_milestone": True,
             "is_first_value": True},
        ],
    )  # fmt: skip
    agent, boss = act(agent_a), act(manager)
    cases = {}

    def at(moment, service, **kwargs):
        with clock.travel_to(moment):
            return service(**kwargs)

    def human(n, key, days):
        task = task_of(cases[n], key).pk
        moment = cases[n].opened_at + timedelta(days=days)
        at(moment, services.task_claim, task_id=task, actor=agent)
        at(moment, services.task_complete, task_id=task, actor=agent)

    def signal(n, key, days):
        moment = cases[n].opened_at + timedelta(days=days)
        task = task_of(cases[n], key).pk
        at(moment, services.task_complete_by_signal, task_id=task, actor=system, signal_name=key)

    def open_case(n, moment, plan):
        cases[n] = at(
            moment,
            services.case_open,
            account=make_account(plan=plan),
            playbook=playbook,
            actor=system,
        )

    for n, moment, plan in [
        (1, T0, "growth"), (2, T0, "growth"), (3, T0, "growth"), (4, T0, "growth"),
        (5, T0, "starter"), (8, T0 + timedelta(days=1), "starter"),
        (10, T0 + timedelta(days=2), "starter"), (7, NOW - timedelta(days=20), "starter"),
        (6, NOW - timedelta(days=5), "starter"), (9, NOW - timedelta(days=3), "starter"),
    ]:  # fmt: skip
        open_case(n, moment, plan)
    human(1, "kickoff", 1), human(1, "setup", 2), signal(1, "connect", 4)
    signal(1, "first_report", 5)
    human(2, "kickoff", 2), human(2, "setup", 3), signal(2, "connect", 10)
    signal(2, "first_report", 13)
    human(3, "kickoff", 1), human(3, "setup", 2)
    human(4, "kickoff", 1), human(4, "setup", 1), signal(4, "connect", 35)
    at(T0 + timedelta(days=3), services.case_cancel, case_id=cases[5].pk, actor=boss,
       reason="churned")  # fmt: skip
    human(6, "kickoff", 1), human(6, "setup", 2)
    human(7, "kickoff", 2)
    skip_kickoff = {"task_id": task_of(cases[8], "kickoff").pk, "reason": "met at a conference"}
    at(cases[8].opened_at + timedelta(hours=2), services.task_skip, actor=boss, **skip_kickoff)
    human(8, "setup", 2), signal(8, "connect", 3)
    human(9, "kickoff", 1 / 24)
    human(10, "kickoff", 1), human(10, "setup", 2), signal(10, "connect", 4)
    signal(10, "first_report", 6)
    at(cases[10].opened_at + timedelta(days=8), services.case_reopen, case_id=cases[10].pk,
       actor=boss, step_key="connect", reason="connection broke")  # fmt: skip
    return cases


def funnel(filters: Filters = RANGE):
    return run("funnel", filters, now=NOW).tables


def test_the_funnel_counts_cases_reaching_each_milestone_in_order(journeys):
    tables = funnel()

    assert tables["summary"].rows == [(10,)]
    stages = [row[:4] for row in tables["stages"].comparable()]
    assert stages == [
        (1, "kickoff", 9, 1),  # all but the cancelled 5; 8's was skipped
        (2, "connect", 3, 0),  # 1, 2 and 8; 4 connected after its window, 10 was reopened
        (3, "first_report", 2, 0),  # 1 and 2
    ]


def test_cases_still_within_their_window_are_in_progress_or_stalled_not_dropped(journeys):
    by_stage = {row[1]: row[4:8] for row in funnel()["stages"].comparable()}

    # (in progress, stalled, dropped, SLA overdue) among those that reached the stage before
    assert by_stage["kickoff"] == (0, 0, 1, 0)  # 5 cancelled
    assert by_stage["connect"] == (2, 1, 3, 2)  # 6 and 9 moving, 7 stalled; 3, 4, 10 out
    assert by_stage["first_report"] == (0, 0, 1, 0)  # 8's window elapsed


def test_conversion_and_time_between_milestones(journeys):
    rows = funnel()["stages"].comparable()

    assert [(r[8], r[9]) for r in rows] == [(0.9, 0.9), (3 / 9, 0.3), (2 / 3, 0.2)]
    # opening → kickoff: 1 h, 2 h (skipped), five of 1 d, two of 2 d
    assert rows[0][10:] == (1 * D, 2 * D)
    # kickoff → connect: 3 d - 2 h (case 8), 3 d, 8 d
    assert rows[1][10:] == (3 * D, 8 * D)
    # connect → first report: 1 d, 3 d
    assert rows[2][10:] == (1 * D, 3 * D)


def test_the_breakdown_splits_the_cohort_by_one_segment(journeys):
    assert funnel()["breakdown"].comparable() == [
        ("growth", 4, 4, 2, 2, 0.5),
        ("starter", 6, 5, 1, 0, 0.0),
    ]


def test_the_window_and_the_stall_threshold_are_parameters(journeys):
    longer = funnel(RANGE.but(window_days=40))["stages"].comparable()
    assert longer[1][2] == 4  # case 4 connected on day 35
    patient = funnel(RANGE.but(stall_days=30))["stages"].comparable()
    assert patient[1][4:6] == (3, 0)  # 7 is no longer stalled


def test_filters_narrow_the_cohort(journeys):
    assert funnel(RANGE.but(plan="growth"))["summary"].rows == [(4,)]
    assert funnel(RANGE.but(start=date(2026, 10, 1)))["summary"].rows == [(2,)]  # 6 and 9


def first_value(filters: Filters = RANGE):
    return run("first_value", filters, now=NOW).tables


def test_time_to_first_value_is_measured_from_opening_to_the_first_value_milestone(journeys):
    summary = first_value()["summary"].comparable()

    # reached: 1 (5 d), 10 (6 d), 2 (13 d); in progress: 6, 7, 9
    assert summary == [(10, 3, 3, 0.3, 6 * D, 13 * D)]


def test_the_distribution_puts_each_reached_case_in_a_day_bucket(journeys):
    buckets = dict(first_value()["distribution"].comparable())

    assert buckets == {
        "0-1 days": 0, "1-2 days": 0, "2-3 days": 0, "3-5 days": 0, "5-7 days": 2,
        "7-14 days": 1, "14-21 days": 0, "21-30 days": 0,
    }  # fmt: skip


def test_the_trend_follows_weekly_cohorts(journeys):
    trend = first_value()["trend"].comparable()

    assert trend == [
        (date(2026, 9, 7), 7, 3, 0, 3 / 7, 6 * D, 13 * D),
        (date(2026, 9, 21), 1, 0, 1, 0.0, None, None),  # case 7, opened on a Sunday
        (date(2026, 10, 12), 2, 0, 2, 0.0, None, None),  # 6 and 9
    ]


def test_the_same_numbers_come_back_from_the_raw_events(journeys):
    for key in ("funnel", "first_value"):
        for filters in (RANGE, RANGE.but(plan="starter", by="plan"), RANGE.but(window_days=10)):
            report = run(key, filters, now=NOW)
            assert differences(report, replay(key, filters, now=NOW)) == [], (key, filters)

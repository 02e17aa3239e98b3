"""SLA compliance, checked against a week of kickoffs with known answers.

The kickoff clock: 4 business hours in a Berlin office (Mon-Fri 09:00-17:00), warning
at 75 %, paused while waiting on the customer, escalating to the technical queue on
a breach. "Now" is Monday 23 November 13:30 in Berlin.

    A  Mon 16 09:00 open · 09:30 claimed · 10:00-14:00 waits on the customer · 15:00 done
       → met, 2 h used; 2 h on us, 4 h on the customer
    F  Mon 16 09:00 open · 10:00 a manager skips it → no verdict
    G  Tue 17 09:00 open, claimed · 10:00 done (met) · case done · Wed 18 09:00 reopened
       on kickoff · 09:30 claimed · 10:00 done → met again: two verdicts, 1 h each
    H  Thu 19 09:00 open, claimed · 10:00-12:00 case on hold · 13:00 done
       → met, 2 h used; 2 h on us, 2 h on the customer (the hold)
    B  Fri 20 15:00 open, nobody takes it · due Mon 23 11:00 after the weekend: the sweep
       breaches it and escalates it to the technical queue · 11:30 claimed by agent B ·
       12:00 done → breached, 5 h on us
    C  Fri 20 16:00 open · Mon 23 09:10 claimed · 09:30 done → met, 1.5 h over the weekend
    E  Mon 23 09:00 open · due 13:00, not swept yet → breached (running past due)
    D  Mon 23 10:00 open · 3.5 of 4 h used → at risk
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from analytics.metrics import run
from analytics.metrics.base import Filters
from analytics.metrics.replay import differences, replay
from onboarding import clock, services, sweeper
from onboarding.models import BusinessCalendar, SlaPolicy, SlaTimer
from tests.conftest import act, task_of

pytestmark = pytest.mark.django_db

BERLIN = ZoneInfo("Europe/Berlin")
UTC = ZoneInfo("UTC")
H = 3600.0
WEEK_1, WEEK_2 = date(2026, 11, 16), date(2026, 11, 23)
RANGE = Filters(start=WEEK_1, end=WEEK_2)


def berlin(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=BERLIN)


NOW = berlin(23, 13, 30)


@pytest.fixture
def story(make_playbook, make_account, system, queue, other_queue, agent_a, agent_b, manager):
    office = BusinessCalendar.objects.create(
        key="berlin",
        name="Berlin",
        tz="Europe/Berlin",
        week={d: ["09:00-17:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
    )
    policy = SlaPolicy.objects.create(
        key="kickoff",
        name="Kickoff in 4 business hours",
        target=timedelta(hours=4),
        warn_percent=75,
        calendar=office,
        pause_states=["waiting"],
        escalation_queue=other_queue,
    )
    playbook = make_playbook(
        "kickoffs",
        [
            {"key": "kickoff", "name": "Kickoff", "kind": "human", "queue": queue,
             "sla_policy": policy, "is_milestone": True},
            {"key": "review", "name": "Review", "kind": "human", "queue": queue},
        ],
    )  # fmt: skip
    a, b, boss = act(agent_a), act(agent_b), act(manager)

    def at(moment: datetime, service, **kwargs):
        with clock.travel_to(moment):
            return service(**kwargs)

    def open_case(moment: datetime):
        return at(
            moment, services.case_open, account=make_account(), playbook=playbook, actor=system
        )

    def kickoff(case):
        return task_of(case, "kickoff").pk

    cases = {}
    cases["A"] = open_case(berlin(16, 9))
    cases["F"] = open_case(berlin(16, 9))
    at(berlin(16, 9, 30), services.task_claim, task_id=kickoff(cases["A"]), actor=a)
    at(berlin(16, 10), services.task_wait_on_customer, task_id=kickoff(cases["A"]), actor=a,
       reason="needs their logo")  # fmt: skip
    at(berlin(16, 10), services.task_skip, task_id=kickoff(cases["F"]), actor=boss, reason="n/a")
    at(berlin(16, 14), services.task_resume, task_id=kickoff(cases["A"]), actor=a)
    at(berlin(16, 15), services.task_complete, task_id=kickoff(cases["A"]), actor=a)

    cases["G"] = open_case(berlin(17, 9))
    at(berlin(17, 9), services.task_claim, task_id=kickoff(cases["G"]), actor=a)
    at(berlin(17, 10), services.task_complete, task_id=kickoff(cases["G"]), actor=a)
    review = task_of(cases["G"], "review").pk
    at(berlin(17, 10), services.task_claim, task_id=review, actor=a)
    at(berlin(17, 10, 30), services.task_complete, task_id=review, actor=a)
    at(berlin(18, 9), services.case_reopen, case_id=cases["G"].pk, actor=boss,
       step_key="kickoff", reason="the customer asked for a second kickoff")  # fmt: skip
    at(berlin(18, 9, 30), services.task_claim, task_id=kickoff(cases["G"]), actor=a)
    at(berlin(18, 10), services.task_complete, task_id=kickoff(cases["G"]), actor=a)

    cases["H"] = open_case(berlin(19, 9))
    at(berlin(19, 9), services.task_claim, task_id=kickoff(cases["H"]), actor=a)
    at(berlin(19, 10), services.case_put_on_hold, case_id=cases["H"].pk, actor=boss,
       reason="contract review")  # fmt: skip
    at(berlin(19, 12), services.case_resume, case_id=cases["H"].pk, actor=boss)
    at(berlin(19, 13), services.task_complete, task_id=kickoff(cases["H"]), actor=a)

    cases["B"] = open_case(berlin(20, 15))
    cases["C"] = open_case(berlin(20, 16))
    cases["E"] = open_case(berlin(23, 9))
    at(berlin(23, 9, 10), services.task_claim, task_id=kickoff(cases["C"]), actor=a)
    at(berlin(23, 9, 30), services.task_complete, task_id=kickoff(cases["C"]), actor=a)
    cases["D"] = open_case(berlin(23, 10))
    with clock.travel_to(berlin(23, 11)):
        sweeper.sweep()  # B: warned and breached at 11:00, escalated to the technical queue
    at(berlin(23, 11, 30), services.task_claim, task_id=kickoff(cases["B"]), actor=b)
    at(berlin(23, 12), services.task_complete, task_id=kickoff(cases["B"]), actor=b)
    return cases


def sla(filters: Filters = RANGE):
    return run("sla", filters, now=NOW, limit=None).tables


def test_verdicts_count_met_against_breached_in_business_time(story):
    tables = sla()

    assert tables["summary"].comparable() == [(5, 2, 5 / 7)]
    # business time used by the met clocks: 1, 1, 1.5, 2, 2 hours (1.5 on average)
    assert tables["by_step"].comparable() == [("kickoff", 5, 2, 5 / 7, 1.5 * H)]


def test_a_running_clock_past_due_is_breached_before_the_sweep_says_so(story):
    breached = sla()["breached"]

    e, b = story["E"], story["B"]
    assert breached.comparable() == [
        (e.pk, "kickoff", "specialists", None, berlin(23, 13), True),
        (b.pk, "kickoff", "technical", b.tasks.get(step_key="kickoff").assignee_id,
         berlin(23, 11), False),
    ]  # fmt: skip


def test_compliance_per_queue_agent_and_week(story, agent_a, agent_b):
    tables = sla()

    # B breached and finished in the technical queue, where the breach escalated it
    assert tables["by_queue"].comparable() == [
        ("specialists", 5, 1, 5 / 6),
        ("technical", 0, 1, 0.0),
    ]
    assert tables["by_agent"].comparable() == [
        (agent_a.pk, 5, 0, 1.0),
        (agent_b.pk, 0, 1, 0.0),
        (None, 0, 1, 0.0),  # E: nobody took it
    ]
    assert tables["by_week"].comparable() == [(WEEK_1, 4, 0, 1.0), (WEEK_2, 1, 2, 1 / 3)]


def test_a_skipped_step_has_no_verdict(story):
    assert SlaTimer.objects.get(task__case=story["F"]).state == "cancelled"
    met, breached = sla()["summary"].rows[0][:2]
    assert met + breached == 7  # A, G twice, H, C met; B, E breached; F not counted


def test_a_reopened_step_is_judged_again_on_its_new_clock(story):
    week_1 = sla(Filters(start=WEEK_1, end=WEEK_1 + timedelta(days=6)))

    assert week_1["summary"].comparable() == [(4, 0, 1.0)]  # A, G, G again, H


def test_whose_time_splits_on_us_from_on_the_customer(story):
    whose = sla()["whose_time"]

    # stopped with a verdict: A, B, C, G, G, H (E still runs)
    internal = (2 + 5 + 1.5 + 1 + 1 + 2) * H
    customer = (4 + 2) * H  # A waited on the customer, H's case was on hold
    assert whose.comparable() == [
        ("kickoff", 6, internal, 0.0, customer, customer / (internal + customer))
    ]


def test_the_at_risk_list_holds_clocks_past_their_warning_not_yet_due(story):
    at_risk = sla()["at_risk"]

    d = story["D"]
    assert at_risk.comparable() == [(d.pk, "kickoff", "specialists", None, berlin(23, 14), None)]
    # an hour earlier D had used 2.5 of its 4 hours (not yet at risk), E 3.5 of 4
    earlier = run("sla", RANGE, now=berlin(23, 12, 30)).tables["at_risk"]
    e = story["E"]
    assert earlier.comparable() == [(e.pk, "kickoff", "specialists", None, berlin(23, 13), None)]


def test_filters_by_queue_agent_and_segment(story, agent_b, make_account):
    assert sla(RANGE.but(queue="technical"))["summary"].comparable() == [(0, 1, 0.0)]
    assert sla(RANGE.but(agent=agent_b.pk))["by_step"].comparable() == [
        ("kickoff", 0, 1, 0.0, None)
    ]
    assert sla(RANGE.but(plan="enterprise"))["summary"].comparable() == [(0, 0, None)]
    assert sla(RANGE.but(plan="growth"))["summary"].comparable() == [(5, 2, 5 / 7)]


def test_lists_are_cut_for_the_page_and_whole_for_csv(story):
    page = run("sla", RANGE, now=NOW, limit=1).tables["breached"]

    assert len(page.rows) == 1 and page.total == 2


def test_the_same_numbers_come_back_from_the_raw_events(story):
    for now in (NOW, berlin(23, 12, 30)):
        for filters in (RANGE, RANGE.but(queue="technical"), RANGE.but(start=WEEK_2)):
            report = run("sla", filters, now=now, limit=None)
            assert differences(report, replay("sla", filters, now=now)) == []

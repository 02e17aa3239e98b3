"""Weekly cohorts, checked against the ten journeys of the milestone specs
(`test_report_milestones`): which share of each week's cases reached each milestone
by day N, shown only once every case of the week is that old."""

from __future__ import annotations

from datetime import date

import pytest

from analytics.metrics import run
from analytics.metrics.replay import differences, replay
from tests.analytics.test_report_milestones import NOW, RANGE, journeys  # noqa: F401

pytestmark = pytest.mark.django_db

WEEK_1, WEEK_3, WEEK_6 = date(2026, 9, 7), date(2026, 9, 21), date(2026, 10, 12)


def cohorts(filters=RANGE):
    return run("cohorts", filters, now=NOW).tables


def test_each_week_shows_the_share_that_reached_each_milestone_by_day_n(journeys):  # noqa: F811
    assert cohorts()["by_milestone"].comparable() == [
        # 1-5, 8 and 10; kickoff: all but the cancelled 5 (8's was skipped); connect: 1, 2
        # and 8 (4's came on day 35, 10's was reopened); first report: 1, 2 and 10
        (WEEK_1, 7, 6 / 7, 3 / 7, 3 / 7),
        (WEEK_3, 1, None, None, None),  # case 7 is 20 days old: not final at day 30
        (WEEK_6, 2, None, None, None),
    ]


def test_the_first_value_milestone_by_day(journeys):  # noqa: F811
    assert cohorts()["by_day"].comparable() == [
        # first reports on days 5 (case 1), 6 (case 10) and 13 (case 2)
        (WEEK_1, 7, 0.0, 0.0, 2 / 7, 3 / 7, 3 / 7),
        (WEEK_3, 1, 0.0, 0.0, 0.0, 0.0, None),
        (WEEK_6, 2, 0.0, 0.0, None, None, None),  # case 9 turned 3 days old just now
    ]


def test_a_longer_window_adds_its_day(journeys):  # noqa: F811
    tables = cohorts(RANGE.but(window_days=35))

    assert [c.label for c in tables["by_day"].columns][-2:] == ["Day 30", "Day 35"]
    # case 4 connected on day 35
    assert tables["by_milestone"].comparable()[0] == (WEEK_1, 7, 6 / 7, 4 / 7, 3 / 7)
    # by day 40 the youngest case of the first week (opened on the 9th) is not old enough
    assert cohorts(RANGE.but(window_days=40))["by_milestone"].comparable()[0][2:] == (
        None,
        None,
        None,
    )


def test_the_same_numbers_come_back_from_the_raw_events(journeys):  # noqa: F811
    for filters in (RANGE, RANGE.but(plan="growth"), RANGE.but(window_days=10)):
        report = run("cohorts", filters, now=NOW)
        assert differences(report, replay("cohorts", filters, now=NOW)) == [], filters

"""Holidays become calendar rows, once, and the arithmetic sees them."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.management import CommandError, call_command

from onboarding import calendar as bizcal
from onboarding.models import BusinessCalendar

pytestmark = pytest.mark.django_db


@pytest.fixture
def berlin():
    return BusinessCalendar.objects.create(
        key="berlin",
        name="Berlin",
        tz="Europe/Berlin",
        country="DE",
        subdivision="BE",
        week={d: ["09:00-17:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
    )


def test_holidays_are_added_once_and_close_the_day(berlin, capsys):
    call_command("seed_holidays", "berlin", years=[2026])
    count = berlin.days.count()
    call_command("seed_holidays", "berlin", years=[2026])

    assert berlin.days.count() == count > 8
    unity_day = berlin.days.get(date=dt.date(2026, 10, 3))
    assert unity_day.hours == [] and unity_day.source == "holidays"
    friday_before = dt.datetime(2026, 12, 24, 16, 0, tzinfo=dt.UTC)  # Christmas Eve, 17:00
    # Dec 25 and 26 are holidays; 1 business hour lands on Monday Dec 28
    assert bizcal.add_business(friday_before, 3600, berlin.compile()) == dt.datetime(
        2026, 12, 28, 9, 0, tzinfo=dt.UTC
    )
    assert "Added 0 holidays" in capsys.readouterr().out


def test_dry_run_changes_nothing(berlin):
    call_command("seed_holidays", "berlin", years=[2026], dry_run=True)
    assert berlin.days.count() == 0


def test_unknown_calendar_or_country_is_a_clear_error(berlin):
    with pytest.raises(CommandError, match="No calendar"):
        call_command("seed_holidays", "nope", years=[2026])
    BusinessCalendar.objects.filter(pk=berlin.pk).update(country="XX")
    with pytest.raises(CommandError, match="Unknown country"):
        call_command("seed_holidays", "berlin", years=[2026])

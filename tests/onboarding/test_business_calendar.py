"""Business-hours arithmetic: weekends, holidays, special days, split days, 24:00, DST.

Pure functions, no database. Dates used below: 2026-06-05 is a Friday; DST starts on
2026-03-08 (New York) and 2026-03-29 (Berlin), and ends on 2026-11-01 (New York) and
2026-10-25 (Berlin), all Sundays.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import pickle
import timeit
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from onboarding.calendar import (
    WEEKDAYS,
    BusinessCalendar,
    NoWorkingTime,
    add_business,
    always_open,
    business_between,
    business_duration,
    holiday_dates,
    parse_intervals,
)

H = 3600
MIN = 60
WORKDAYS = WEEKDAYS[:5]


def at(tz: str, text: str) -> datetime:
    """An aware datetime from local wall-clock text: at("Europe/London", "2026-06-05 16:00")."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz))


def calendar(
    tz: str = "Europe/London",
    hours: tuple[str, ...] = ("09:00-17:00",),
    days: tuple[str, ...] = WORKDAYS,
    **kwargs,
) -> BusinessCalendar:
    return BusinessCalendar.from_spec(tz=tz, week={day: hours for day in days}, **kwargs)


LONDON = "Europe/London"
NINE_TO_FIVE = calendar()
HOLIDAY_MONDAY = calendar(holidays={date(2026, 6, 8)})
SPLIT_DAY = calendar(hours=("09:00-12:00", "13:00-17:00"))
NIGHT_SHIFT = BusinessCalendar.from_spec(
    tz=LONDON,
    week={
        "mon": ["20:00-24:00"],
        "tue": ["00:00-02:00", "20:00-24:00"],
        "wed": ["00:00-02:00", "20:00-24:00"],
        "thu": ["00:00-02:00", "20:00-24:00"],
        "fri": ["00:00-02:00", "20:00-24:00"],
        "sat": ["00:00-02:00"],
    },
)
SHORT_MONDAY = calendar(special_days={date(2026, 6, 8): ["10:00-14:00"]})
CLOSED_MONDAY = calendar(special_days={date(2026, 6, 8): []})
OPEN_SATURDAY = calendar(special_days={date(2026, 6, 6): ["10:00-12:00"]})
WORKED_HOLIDAY = calendar(
    holidays={date(2026, 6, 8)}, special_days={date(2026, 6, 8): ["10:00-14:00"]}
)


# --- add_business: a table of vectors (London, BST, no DST change involved) ----------

ADD_VECTORS = [
    # (calendar, local start, seconds, expected local result)
    pytest.param(NINE_TO_FIVE, "2026-06-05 16:00", 8 * H, "2026-06-08 16:00", id="fri16+8h=mon16"),
    pytest.param(NINE_TO_FIVE, "2026-06-05 16:00", 2 * H, "2026-06-08 10:00", id="fri16+2h=mon10"),
    pytest.param(NINE_TO_FIVE, "2026-06-06 11:00", 1 * H, "2026-06-08 10:00", id="sat11+1h=mon10"),
    pytest.param(NINE_TO_FIVE, "2026-06-05 16:00", 40 * H, "2026-06-12 16:00", id="a-work-week"),
    pytest.param(NINE_TO_FIVE, "2026-06-08 08:00", 1, "2026-06-08 09:00:01", id="before-opening"),
    pytest.param(NINE_TO_FIVE, "2026-06-05 09:00", 8 * H, "2026-06-05 17:00", id="ends-at-close"),
    pytest.param(NINE_TO_FIVE, "2026-06-05 17:00", 0, "2026-06-05 17:00", id="zero-at-close"),
    pytest.param(NINE_TO_FIVE, "2026-06-06 11:00", 0, "2026-06-06 11:00", id="zero-on-weekend"),
    pytest.param(NINE_TO_FIVE, "2026-06-05 16:00", 1.5, "2026-06-05 16:00:01.5", id="float"),
    pytest.param(HOLIDAY_MONDAY, "2026-06-05 16:00", 8 * H, "2026-06-09 16:00", id="hol-fri16+8h"),
    pytest.param(HOLIDAY_MONDAY, "2026-06-05 16:00", 2 * H, "2026-06-09 10:00", id="hol-fri16+2h"),
    pytest.param(HOLIDAY_MONDAY, "2026-06-06 11:00", 1 * H, "2026-06-09 10:00", id="hol-sat11+1h"),
    pytest.param(SPLIT_DAY, "2026-06-08 11:30", 1 * H, "2026-06-08 13:30", id="split-lunch"),
    pytest.param(SPLIT_DAY, "2026-06-08 11:30", 30 * MIN, "2026-06-08 12:00", id="split-to-lunch"),
    pytest.param(SPLIT_DAY, "2026-06-08 12:30", 1 * H, "2026-06-08 14:00", id="split-in-lunch"),
    pytest.param(SPLIT_DAY, "2026-06-05 16:00", 5 * H, "2026-06-08 14:00", id="split-weekend"),
    pytest.param(NIGHT_SHIFT, "2026-06-08 23:00", 2 * H, "2026-06-09 01:00", id="night-midnight"),
    pytest.param(NIGHT_SHIFT, "2026-06-08 21:00", 5 * H, "2026-06-09 02:00", id="night-full"),
    pytest.param(NIGHT_SHIFT, "2026-06-12 23:30", 3 * H, "2026-06-15 20:30", id="night-weekend"),
    pytest.param(SHORT_MONDAY, "2026-06-05 16:00", 2 * H, "2026-06-08 11:00", id="short-mon"),
    pytest.param(SHORT_MONDAY, "2026-06-05 16:00", 8 * H, "2026-06-09 12:00", id="short-mon-8h"),
    pytest.param(CLOSED_MONDAY, "2026-06-05 16:00", 2 * H, "2026-06-09 10:00", id="closed-mon"),
    pytest.param(OPEN_SATURDAY, "2026-06-05 16:00", 2 * H, "2026-06-06 11:00", id="open-sat"),
    pytest.param(WORKED_HOLIDAY, "2026-06-05 16:00", 2 * H, "2026-06-08 11:00", id="special>hol"),
]


@pytest.mark.parametrize(("cal", "start", "seconds", "expected"), ADD_VECTORS)
def test_add_business_vectors(cal, start, seconds, expected):
    result = add_business(at(cal.tz, start), seconds, cal)

    assert result == at(cal.tz, expected)
    assert result.tzinfo is UTC
    assert business_between(at(cal.tz, start), result, cal) == seconds


def test_add_business_accepts_a_timedelta():
    start = at(LONDON, "2026-06-05 16:00")

    assert add_business(start, timedelta(hours=2), NINE_TO_FIVE) == at(LONDON, "2026-06-08 10:00")


def test_add_business_reads_the_start_as_an_instant_whatever_its_zone():
    london_friday_16 = datetime(2026, 6, 5, 15, 0, tzinfo=UTC)  # BST is UTC+1

    assert add_business(london_friday_16, 2 * H, NINE_TO_FIVE) == at(LONDON, "2026-06-08 10:00")


# --- business_between --------------------------------------------------------------

BETWEEN_VECTORS = [
    pytest.param(NINE_TO_FIVE, "2026-06-05 16:00", "2026-06-05 16:00", 0, id="same-instant"),
    pytest.param(NINE_TO_FIVE, "2026-06-06 00:00", "2026-06-08 00:00", 0, id="weekend"),
    pytest.param(NINE_TO_FIVE, "2026-06-05 16:00", "2026-06-08 10:00", 2 * H, id="over-weekend"),
    pytest.param(NINE_TO_FIVE, "2026-06-08 00:00", "2026-06-15 00:00", 40 * H, id="a-week"),
    pytest.param(NINE_TO_FIVE, "2026-06-08 10:00", "2026-06-05 16:00", 0, id="reversed-is-0"),
    pytest.param(HOLIDAY_MONDAY, "2026-06-08 00:00", "2026-06-15 00:00", 32 * H, id="holiday"),
    pytest.param(SPLIT_DAY, "2026-06-08 11:00", "2026-06-08 14:00", 2 * H, id="split-day"),
    pytest.param(NIGHT_SHIFT, "2026-06-08 23:00", "2026-06-09 01:00", 2 * H, id="midnight"),
    pytest.param(SHORT_MONDAY, "2026-06-08 00:00", "2026-06-09 00:00", 4 * H, id="special-day"),
    pytest.param(CLOSED_MONDAY, "2026-06-08 00:00", "2026-06-09 00:00", 0, id="closed-special"),
]


@pytest.mark.parametrize(("cal", "a", "b", "seconds"), BETWEEN_VECTORS)
def test_business_between_vectors(cal, a, b, seconds):
    assert business_between(at(cal.tz, a), at(cal.tz, b), cal) == seconds


def test_business_duration_is_the_exact_timedelta_form():
    a, b = at(LONDON, "2026-06-05 16:59:59.999999"), at(LONDON, "2026-06-08 09:00:00.000002")

    assert business_duration(a, b, NINE_TO_FIVE) == timedelta(microseconds=3)


def test_endpoints_may_be_in_different_zones():
    a = datetime(2026, 6, 5, 15, 0, tzinfo=UTC)  # Friday 16:00 in London
    b = at("America/New_York", "2026-06-08 05:00")  # Monday 10:00 in London

    assert business_between(a, b, NINE_TO_FIVE) == 2 * H


# --- DST: real elapsed time, wall-clock hours ------------------------------------------

DST_DAYS = [
    pytest.param("America/New_York", "2026-03-08", 23, id="new-york-spring"),
    pytest.param("America/New_York", "2026-11-01", 25, id="new-york-fall"),
    pytest.param("America/New_York", "2026-06-07", 24, id="new-york-summer"),
    pytest.param("Europe/Berlin", "2026-03-29", 23, id="berlin-spring"),
    pytest.param("Europe/Berlin", "2026-10-25", 25, id="berlin-fall"),
    pytest.param("Europe/Berlin", "2026-06-07", 24, id="berlin-summer"),
]


@pytest.mark.parametrize(("tz", "day", "hours"), DST_DAYS)
def test_a_whole_day_is_its_real_length(tz, day, hours):
    midnight = at(tz, f"{day} 00:00")
    next_midnight = at(tz, f"{(date.fromisoformat(day) + timedelta(days=1)).isoformat()} 00:00")
    sundays_only = calendar(tz=tz, hours=("00:00-24:00",), days=("sun",))

    assert business_between(midnight, next_midnight, always_open(tz)) == hours * H
    assert business_between(midnight, next_midnight, sundays_only) == hours * H
    assert add_business(midnight, hours * H, sundays_only) == next_midnight


DST_WEEKENDS = [
    # (tz, Friday, Monday, UTC offset on Friday, UTC offset on Monday)
    pytest.param("America/New_York", "2026-03-06", "2026-03-09", -5, -4, id="new-york-spring"),
    pytest.param("America/New_York", "2026-10-30", "2026-11-02", -4, -5, id="new-york-fall"),
    pytest.param("Europe/Berlin", "2026-03-27", "2026-03-30", 1, 2, id="berlin-spring"),
    pytest.param("Europe/Berlin", "2026-10-23", "2026-10-26", 2, 1, id="berlin-fall"),
]


@pytest.mark.parametrize(("tz", "friday", "monday", "before", "after"), DST_WEEKENDS)
def test_nine_to_five_across_a_dst_weekend(tz, friday, monday, before, after):
    cal = calendar(tz=tz)
    start = at(tz, f"{friday} 16:00")

    due = add_business(start, 2 * H, cal)

    assert due.astimezone(cal.zone).replace(tzinfo=None) == datetime.fromisoformat(
        f"{monday} 10:00"
    )
    assert start.utcoffset() == timedelta(hours=before)
    assert due.astimezone(cal.zone).utcoffset() == timedelta(hours=after)
    assert business_between(at(tz, f"{monday} 00:00"), at(tz, f"{monday} 23:00"), cal) == 8 * H


DST_INTERVALS = [
    # (tz, date, interval, real working seconds)
    pytest.param("America/New_York", "2026-03-08", "01:00-04:00", 2 * H, id="ny-spring-01-04"),
    pytest.param("America/New_York", "2026-11-01", "01:00-04:00", 4 * H, id="ny-fall-01-04"),
    pytest.param("Europe/Berlin", "2026-03-29", "01:00-04:00", 2 * H, id="berlin-spring-01-04"),
    pytest.param("Europe/Berlin", "2026-10-25", "01:00-04:00", 4 * H, id="berlin-fall-01-04"),
    # A wall time skipped by the jump means the instant the gap ends (03:00 EDT) ...
    pytest.param("America/New_York", "2026-03-08", "02:30-05:00", 2 * H, id="starts-in-gap"),
    pytest.param("America/New_York", "2026-03-08", "00:00-02:30", 2 * H, id="ends-in-gap"),
    # ... so an interval lying wholly inside the gap never happens.
    pytest.param("America/New_York", "2026-03-08", "02:10-02:50", 0, id="inside-gap"),
    # A repeated wall time means its first occurrence.
    pytest.param("America/New_York", "2026-11-01", "00:00-01:30", 90 * MIN, id="ends-in-repeat"),
    pytest.param("America/New_York", "2026-11-01", "01:30-03:00", 150 * MIN, id="starts-repeat"),
    pytest.param("America/New_York", "2026-11-01", "01:00-02:00", 2 * H, id="the-repeat-hour"),
    pytest.param("Australia/Lord_Howe", "2026-04-05", "01:00-03:00", 150 * MIN, id="half-hour-dst"),
]


@pytest.mark.parametrize(("tz", "day", "interval", "seconds"), DST_INTERVALS)
def test_dst_day_intervals_count_real_time(tz, day, interval, seconds):
    the_day = date.fromisoformat(day)
    cal = BusinessCalendar(
        tz=tz, week=((),) * 7, special_days={the_day: parse_intervals([interval])}
    )
    whole_day = at(tz, f"{day} 00:00"), at(tz, f"{day} 00:00") + timedelta(days=2)

    assert business_between(*whole_day, cal) == seconds
    assert sum((b - a for a, b in cal.working_spans(the_day)), timedelta()) == timedelta(
        seconds=seconds
    )


def test_a_gap_start_maps_to_the_end_of_the_gap():
    cal = calendar(tz="America/New_York", hours=("02:30-05:00",), days=("sun",))

    (start, end), *_ = cal.working_spans(date(2026, 3, 8))

    assert start == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)  # 03:00 EDT
    assert end == datetime(2026, 3, 8, 9, 0, tzinfo=UTC)  # 05:00 EDT


def test_adding_across_the_repeated_hour_lands_on_its_second_occurrence():
    ny = ZoneInfo("America/New_York")
    due = add_business(at("America/New_York", "2026-11-01 00:00"), 2 * H, always_open(ny.key))

    assert due == datetime(2026, 11, 1, 6, 0, tzinfo=UTC)
    assert due.astimezone(ny).replace(tzinfo=None) == datetime(2026, 11, 1, 1, 0)
    assert due.astimezone(ny).fold == 1


def test_an_evening_shift_ending_at_24_00_runs_into_the_dst_night():
    """Sat 20:00-24:00 + Sun 00:00-04:00 on Berlin's spring night: 7 h, one fewer than 8."""
    cal = BusinessCalendar.from_spec(
        tz="Europe/Berlin", week={"sat": ["20:00-24:00"], "sun": ["00:00-04:00"]}
    )
    start = at("Europe/Berlin", "2026-03-28 20:00")

    assert business_between(start, start + timedelta(days=1), cal) == 7 * H
    assert add_business(start, 7 * H, cal) == at("Europe/Berlin", "2026-03-29 04:00")


# --- holidays from the `holidays` package ----------------------------------------------


def test_holiday_dates_for_the_us():
    dates = holiday_dates("US", None, [2026])

    assert date(2026, 12, 25) in dates
    assert date(2026, 7, 3) in dates  # Independence Day falls on a Saturday: observed
    assert all(day.year == 2026 for day in dates)


def test_holiday_dates_for_a_german_state():
    dates = holiday_dates("DE", "BE", [2026, 2027])

    assert {date(2026, 10, 3), date(2027, 10, 3)} <= dates
    assert date(2026, 3, 8) in dates  # International Women's Day: Berlin only
    assert date(2026, 3, 8) not in holiday_dates("DE", "BY", [2026])


def test_holiday_dates_rejects_an_unknown_country():
    with pytest.raises(ValueError, match="XX"):
        holiday_dates("XX", None, [2026])


def test_seeded_holidays_close_the_calendar():
    cal = calendar(tz="America/New_York", holidays=holiday_dates("US", None, [2026]))

    due = add_business(at(cal.tz, "2026-12-24 16:00"), 2 * H, cal)  # Christmas is a Friday

    assert due == at(cal.tz, "2026-12-28 10:00")


# --- construction and validation --------------------------------------------------------


def test_from_spec_builds_the_documented_representation():
    cal = BusinessCalendar.from_spec(
        tz="Europe/Berlin",
        week={"mon": ["09:00-12:00", "13:00-17:30"], "sat": ["20:00-24:00"]},
        holidays=[date(2026, 10, 3)],
        special_days={date(2026, 12, 24): ["09:00-12:00"], date(2026, 12, 31): []},
    )

    assert cal.week[0] == ((time(9), time(12)), (time(13), time(17, 30)))
    assert cal.week[5] == ((time(20), None),)
    assert cal.week[1] == ()
    assert cal.holidays == frozenset({date(2026, 10, 3)})
    assert cal.special_days == {date(2026, 12, 24): ((time(9), time(12)),), date(2026, 12, 31): ()}
    assert cal == BusinessCalendar(
        tz="Europe/Berlin",
        week=[
            [(time(9), time(12)), (time(13), time(17, 30))],
            [],
            [],
            [],
            [],
            [(time(20), None)],
            [],
        ],
        holidays={date(2026, 10, 3)},
        special_days={date(2026, 12, 24): [(time(9), time(12))], date(2026, 12, 31): []},
    )


def test_a_calendar_is_immutable_and_hashable():
    cal = calendar(special_days={date(2026, 6, 8): []})

    with pytest.raises(dataclasses.FrozenInstanceError):
        cal.tz = "UTC"  # type: ignore[misc]
    with pytest.raises(TypeError):
        cal.special_days[date(2026, 6, 9)] = ()  # type: ignore[index]
    assert hash(cal) == hash(calendar(special_days={date(2026, 6, 8): []}))


def test_a_calendar_survives_pickling():
    cal = calendar(holidays={date(2026, 6, 8)}, special_days={date(2026, 6, 9): ["10:00-12:00"]})
    cal.working_spans(date(2026, 6, 9))  # warm the span cache; it must not travel

    copy = pickle.loads(pickle.dumps(cal))

    assert copy == cal
    assert copy.working_spans(date(2026, 6, 9)) == cal.working_spans(date(2026, 6, 9))


def test_touching_intervals_are_allowed():
    cal = calendar(hours=("09:00-12:00", "12:00-17:00"))

    assert business_between(
        at(LONDON, "2026-06-08 00:00"), at(LONDON, "2026-06-09 00:00"), cal
    ) == (8 * H)


INVALID_SPECS = [
    pytest.param({"mon": ["09:00-12:00", "11:00-13:00"]}, "overlaps", id="overlap"),
    pytest.param({"mon": ["20:00-24:00", "21:00-22:00"]}, "overlaps", id="after-24:00"),
    pytest.param({"mon": ["13:00-17:00", "09:00-12:00"]}, "out of order", id="unsorted"),
    pytest.param({"mon": ["17:00-09:00"]}, "ends before it starts", id="end-before-start"),
    pytest.param({"mon": ["09:00-09:00"]}, "ends before it starts", id="empty"),
    pytest.param({"mon": ["20:00-00:00"]}, "write 24:00", id="ends-at-00:00"),
    pytest.param({"mon": ["24:00-24:00"]}, "not a time", id="starts-at-24:00"),
    pytest.param({"mon": ["9 to 5"]}, "HH:MM-HH:MM", id="not-an-interval"),
    pytest.param({"mon": ["25:00-26:00"]}, "not a time", id="hour-25"),
    pytest.param({"mon": "09:00-17:00"}, "list of intervals", id="a-bare-string"),
    pytest.param({"monday": ["09:00-17:00"]}, "unknown weekday", id="unknown-weekday"),
]


@pytest.mark.parametrize(("week", "message"), INVALID_SPECS)
def test_invalid_hours_are_refused_with_a_clear_message(week, message):
    with pytest.raises(ValueError, match=message):
        BusinessCalendar.from_spec(tz="UTC", week=week)


INVALID_CALENDARS = [
    pytest.param({"tz": "Mars/Olympus_Mons"}, "unknown time zone", id="unknown-zone"),
    pytest.param({"week": ((),) * 6}, "7 entries", id="six-days"),
    pytest.param({"week": (((time(9, tzinfo=UTC), time(17)),),) + ((),) * 6}, "naive", id="aware"),
    pytest.param({"week": ((("09:00", "17:00"),),) + ((),) * 6}, "naive", id="strings-as-times"),
    pytest.param({"week": ((time(9),),) + ((),) * 6}, "pair", id="not-a-pair"),
    pytest.param({"week": (((None, time(9)),),) + ((),) * 6}, "24:00", id="starts-at-24"),
    pytest.param({"holidays": {datetime(2026, 1, 1)}}, "dates", id="datetime-holiday"),
    pytest.param({"special_days": {"2026-01-01": ()}}, "dates", id="string-special-day"),
    pytest.param(
        {"special_days": {date(2026, 1, 1): ((time(12), time(9)),)}},
        "2026-01-01: interval 12:00-09:00 ends before it starts",
        id="bad-special-hours",
    ),
]


@pytest.mark.parametrize(("overrides", "message"), INVALID_CALENDARS)
def test_invalid_calendars_are_refused(overrides, message):
    fields = {"tz": "UTC", "week": ((),) * 7, **overrides}

    with pytest.raises(ValueError, match=message):
        BusinessCalendar(**fields)


def test_a_calendar_without_working_time_cannot_add():
    closed = BusinessCalendar(tz="UTC", week=((),) * 7)
    start = at("UTC", "2026-06-05 16:00")

    with pytest.raises(NoWorkingTime, match="no working hours"):
        add_business(start, 1, closed)
    assert add_business(start, 0, closed) == start
    assert business_between(start, start + timedelta(days=30), closed) == 0


def test_a_calendar_closed_for_ever_gives_up_after_ten_years():
    start = at("UTC", "2026-01-01 00:00")
    every_day = {date(2026, 1, 1) + timedelta(days=n) for n in range(11 * 366)}
    cal = calendar(tz="UTC", holidays=every_day)

    with pytest.raises(ValueError, match="every day a holiday"):
        add_business(start, 1, cal)


def test_special_days_alone_are_working_time_until_they_run_out():
    cal = BusinessCalendar(
        tz="UTC", week=((),) * 7, special_days={date(2026, 6, 8): ((time(9), time(10)),)}
    )
    start = at("UTC", "2026-01-01 00:00")

    assert add_business(start, H, cal) == at("UTC", "2026-06-08 10:00")
    with pytest.raises(NoWorkingTime):
        add_business(start, H + 1, cal)


@pytest.mark.parametrize(
    "seconds", [-1, -0.5, timedelta(seconds=-1), math.nan, math.inf, "60", None, True]
)
def test_add_business_refuses_bad_amounts(seconds):
    with pytest.raises(ValueError):
        add_business(at("UTC", "2026-06-05 16:00"), seconds, NINE_TO_FIVE)


def test_naive_datetimes_are_refused():
    naive, aware = datetime(2026, 6, 5, 16), at(LONDON, "2026-06-05 16:00")

    with pytest.raises(ValueError, match="timezone-aware"):
        add_business(naive, H, NINE_TO_FIVE)
    with pytest.raises(ValueError, match="timezone-aware"):
        business_between(naive, aware, NINE_TO_FIVE)
    with pytest.raises(ValueError, match="timezone-aware"):
        business_between(aware, naive, NINE_TO_FIVE)


def test_thirty_business_days_is_cheap():
    """A day at a time, never a minute at a time: far below a millisecond when warm."""
    cal = calendar(tz="America/New_York", hours=("09:00-12:00", "13:00-17:00"))
    start = at(cal.tz, "2026-03-02 10:00")
    add_business(start, 30 * 7 * H, cal)

    best = min(timeit.repeat(lambda: add_business(start, 30 * 7 * H, cal), number=20, repeat=5))

    assert best / 20 < 0.005  # seconds; generous, so a loaded CI machine does not flake


# --- properties -------------------------------------------------------------------------

ZONES = [
    "UTC",
    "America/New_York",
    "Europe/Berlin",
    "Australia/Lord_Howe",  # 30-minute DST shift
    "America/Havana",  # transitions at midnight: 00:00 does not exist on spring day
    "America/Santiago",  # falls back at midnight: 23:00-24:00 of Saturday repeats
    "Africa/Casablanca",  # DST suspended for Ramadan: four transitions a year
    "Asia/Kolkata",
]
FIRST_DAY, LAST_DAY = date(2020, 1, 1), date(2030, 12, 31)


@functools.cache
def transition_days(tz: str) -> tuple[date, ...]:
    """Local dates (2020-2030) on which the UTC offset changes, and their neighbours."""
    zone = ZoneInfo(tz)
    days: set[date] = set()
    day = FIRST_DAY
    while day <= LAST_DAY:
        this = datetime.combine(day, time(), tzinfo=zone).utcoffset()
        following = datetime.combine(day + timedelta(days=1), time(), tzinfo=zone).utcoffset()
        if this != following:
            days |= {day - timedelta(days=1), day, day + timedelta(days=1)}
        day += timedelta(days=1)
    return tuple(sorted(days)) or (date(2026, 6, 8),)


@st.composite
def wall_intervals(draw) -> tuple[tuple[time, time | None], ...]:
    """Sorted, non-overlapping intervals on a 10-minute grid; 144 is 24:00."""
    points = sorted(draw(st.sets(st.integers(0, 144), max_size=6)))
    pairs = zip(points[::2], points[1::2], strict=False)

    def wall(step: int) -> time | None:
        return None if step == 144 else time(step // 6, step % 6 * 10)

    return tuple((wall(a), wall(b)) for a, b in pairs if a != 144)


@st.composite
def moments(draw, tz: str) -> datetime:
    """Aware instants, often on a DST transition day and on the calendar's 10-minute grid."""
    zone = ZoneInfo(tz)
    if draw(st.booleans()):
        day = draw(st.sampled_from(transition_days(tz)))
    else:
        day = draw(st.dates(FIRST_DAY, LAST_DAY))
    if draw(st.booleans()):
        wall = datetime.combine(day, time()) + timedelta(minutes=10 * draw(st.integers(0, 143)))
    else:
        wall = datetime.combine(day, time()) + timedelta(
            microseconds=draw(st.integers(0, 86_400 * 10**6 - 1))
        )
    local = wall.replace(tzinfo=zone, fold=draw(st.integers(0, 1)))  # may be imaginary: fine
    return local if draw(st.booleans()) else local.astimezone(UTC)


@st.composite
def scenarios(draw) -> tuple[BusinessCalendar, datetime]:
    """A calendar in a DST-heavy zone plus a start, with holidays and special days near it."""
    tz = draw(st.sampled_from(ZONES))
    start = draw(moments(tz))
    week = [draw(wall_intervals()) for _ in range(7)]
    if not any(week):
        week[draw(st.integers(0, 6))] = ((time(9), time(17)),)
    origin = start.astimezone(ZoneInfo(tz)).date()
    near = st.builds(lambda n: origin + timedelta(days=n), st.integers(-2, 120))
    holidays = draw(st.frozensets(near, max_size=15))
    special_days = draw(st.dictionaries(near, wall_intervals(), max_size=5))
    return BusinessCalendar(tz=tz, week=week, holidays=holidays, special_days=special_days), start


def nominal_week(cal: BusinessCalendar) -> timedelta:
    """Working time of a week by the wall clock, to keep amounts findable within 10 years."""

    def minutes(wall: time | None) -> int:
        return 24 * 60 if wall is None else wall.hour * 60 + wall.minute

    return timedelta(minutes=sum(minutes(b) - minutes(a) for day in cal.week for a, b in day))


amounts = st.one_of(
    st.integers(0, 86_400).map(lambda s: timedelta(seconds=s)),
    st.integers(0, 60 * 86_400).map(lambda s: timedelta(seconds=s)),
    st.integers(0, 60 * 86_400 * 10**6).map(lambda us: timedelta(microseconds=us)),
)


def findable(cal: BusinessCalendar, amount: timedelta) -> timedelta:
    """Cap an amount at what 100 weeks surely offer, holidays and DST notwithstanding."""
    cap = nominal_week(cal) * 100
    return amount if amount <= cap else amount % cap


PROPERTY = settings(max_examples=200, deadline=None)


@PROPERTY
@given(scenarios(), amounts)
def test_business_between_inverts_add_business_exactly(scenario, amount):
    cal, start = scenario
    amount = findable(cal, amount)

    due = add_business(start, amount, cal)

    assert due >= start
    assert business_duration(start, due, cal) == amount
    if amount:  # the earliest such instant: a microsecond sooner is not enough
        assert business_duration(start, due - timedelta(microseconds=1), cal) < amount


@PROPERTY
@given(scenarios(), st.integers(0, 60 * 86_400), st.floats(0, 1))
def test_float_seconds_round_to_the_microsecond(scenario, whole, fraction):
    cal, start = scenario
    seconds = findable(cal, timedelta(seconds=whole)).total_seconds() + fraction

    due = add_business(start, seconds, cal)

    assert business_between(start, due, cal) == pytest.approx(seconds, abs=1e-6)


@PROPERTY
@given(scenarios(), amounts, amounts)
def test_add_business_is_monotonic_in_the_amount(scenario, first, second):
    cal, start = scenario
    smaller, larger = sorted((findable(cal, first), findable(cal, second)))

    assert add_business(start, smaller, cal) <= add_business(start, larger, cal)


@PROPERTY
@given(
    scenarios(),
    st.timedeltas(timedelta(0), timedelta(days=90)),
    st.timedeltas(timedelta(0), timedelta(days=90)),
)
def test_business_time_is_additive(scenario, first, second):
    cal, a = scenario
    a = a.astimezone(UTC)
    b, c = sorted((a + first, a + second))

    whole = business_duration(a, c, cal)

    assert whole == business_duration(a, b, cal) + business_duration(b, c, cal)
    assert timedelta(0) <= whole <= c - a
    assert business_duration(c, a, cal) == timedelta(0)


@PROPERTY
@given(
    st.sampled_from(ZONES).flatmap(lambda tz: st.tuples(st.just(tz), moments(tz), moments(tz))),
    amounts,
)
def test_always_open_is_plain_elapsed_time(zone_and_ends, amount):
    tz, *ends = zone_and_ends
    # In UTC: Python subtracts two datetimes sharing a zone by wall clock, wrong across DST.
    a, b = sorted(moment.astimezone(UTC) for moment in ends)

    assert business_duration(a, b, always_open(tz)) == b - a
    assert add_business(a, amount, always_open(tz)) == a + amount


@PROPERTY
@given(scenarios(), st.integers(0, 20))
def test_days_tile_the_timeline_in_order(scenario, length):
    """Wall-to-instant never goes backwards, so spans of consecutive days never overlap."""
    cal, start = scenario
    first = start.astimezone(cal.zone).date()
    spans = [span for n in range(length) for span in cal.working_spans(first + timedelta(days=n))]

    for (a, b), (c, _) in itertools.pairwise(spans):
        assert a < b <= c


def reference_instant(zone: ZoneInfo, day: date, wall: time | None) -> datetime:
    """The first instant at which the local clock shows `wall` or later, found minute by
    minute: an independent statement of the documented gap and repeat rules."""
    target = datetime.combine(day, wall or time()) + timedelta(days=1 if wall is None else 0)
    moment = (target - timedelta(hours=15)).replace(tzinfo=UTC)  # offsets are within +-14 h
    # Large strides while far below the target: no zone here jumps by more than an hour.
    while moment.astimezone(zone).replace(tzinfo=None) < target - timedelta(hours=3):
        moment += timedelta(minutes=30)
    while moment.astimezone(zone).replace(tzinfo=None) < target:
        moment += timedelta(minutes=1)
    return moment


@settings(max_examples=100, deadline=None)
@given(scenarios(), st.integers(0, 3))
def test_spans_match_a_minute_by_minute_reference(scenario, offset):
    cal, start = scenario
    day = start.astimezone(cal.zone).date() + timedelta(days=offset)
    expected = [
        (reference_instant(cal.zone, day, a), reference_instant(cal.zone, day, b))
        for a, b in cal.hours_on(day)
    ]

    assert list(cal.working_spans(day)) == [(a, b) for a, b in expected if b > a]


@settings(max_examples=50, deadline=None)
@given(st.sampled_from(ZONES), st.dates(FIRST_DAY, LAST_DAY))
def test_a_calendar_with_only_24_00_intervals_is_always_open_on_its_days(tz, day):
    assume(day.weekday() < 5)
    cal = calendar(tz=tz, hours=("00:00-24:00",))
    midnight = datetime.combine(day, time(), tzinfo=ZoneInfo(tz))
    later = midnight + timedelta(hours=20)

    assert business_duration(midnight, later, cal) == business_duration(
        midnight, later, always_open(tz)
    )

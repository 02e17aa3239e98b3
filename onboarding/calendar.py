"""Business-hours arithmetic: pure functions over a `BusinessCalendar`, no database.

SLA timers need two questions answered, correctly across weekends, holidays and DST:

- `add_business(start, seconds, calendar)`: when will `seconds` of working time have
  elapsed after `start`? (the due date of a timer)
- `business_between(a, b, calendar)`: how much working time lies in `[a, b)`? (the
  business time a timer has consumed, or the time left)

How wall-clock hours become instants
------------------------------------
Working hours are local wall-clock intervals in the calendar's IANA time zone. Each
local date's intervals are turned into real instants with `zoneinfo` (a wall time
means the first instant at which the local clock shows that time or later), and the
working time of an interval is the *real* time elapsed between its two instants:

- A wall time that does not exist (skipped by a spring-forward jump, e.g. 02:30 on
  2026-03-08 in America/New_York) maps to the instant the gap ends (03:00 EDT). So
  01:00-04:00 on that day is 2 hours of work, an interval lying entirely inside the
  gap is empty, and 00:00-24:00 is 23 hours.
- An ambiguous wall time (repeated by a fall-back) means its first occurrence
  (``fold=0``). So 00:00-24:00 on a fall-back day is 25 hours, and 01:00-02:00 on
  2026-11-01 in New York is 2 hours (01:00 EDT to 02:00 EST).

This mapping never goes backwards in time, so consecutive intervals (including
20:00-24:00 followed by the next day's 00:00-02:00) tile the timeline without gaps or
overlaps, and the two functions are exact inverses of each other.

Exactness
---------
All arithmetic is done on `timedelta` (integer microseconds), never on float
seconds, so ``business_duration(a, add_business(a, d, cal), cal) == d`` holds exactly
for any `timedelta` `d`; a float `seconds` is rounded to the microsecond once, on the
way in.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from types import MappingProxyType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "WEEKDAYS",
    "BusinessCalendar",
    "Interval",
    "NoWorkingTime",
    "add_business",
    "always_open",
    "business_between",
    "business_duration",
    "holiday_dates",
    "parse_intervals",
]

Interval = tuple[time, time | None]
"""One working interval, local wall-clock ``(start, end)``; ``end=None`` means 24:00."""

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

# How far `add_business` looks for working time before giving up. A real calendar
# always has some within a year; ten years tolerates any sane holiday list and still
# turns a closed-forever calendar into an error instead of an endless loop.
MAX_SEARCH_DAYS = 3653

_ONE_DAY = timedelta(days=1)
_ZERO = timedelta(0)
_MICROSECOND = timedelta(microseconds=1)
_MIDNIGHT = time(0)
_SPAN_CACHE_SIZE = 4096


class NoWorkingTime(ValueError):
    """The calendar offers no (or not enough) working time to satisfy the request."""


@dataclass(frozen=True)
class BusinessCalendar:
    """Working hours in one time zone, with holidays and per-date overrides.

    - `tz`: an IANA zone name ("Europe/Berlin"); wall-clock hours are read in it.
    - `week`: seven entries, Monday first; each is a tuple of ``(start, end)`` local
      `time` intervals, sorted and non-overlapping (touching is fine). ``end=None``
      means 24:00, the end of the day. An empty tuple is a closed day.
    - `holidays`: dates closed all day.
    - `special_days`: dates whose hours replace the weekday's (an empty tuple closes
      the date). A special day wins over a holiday on the same date, since it is the
      more specific statement ("we open 10-14 on this public holiday").

    Lists are accepted where tuples are documented and normalised, so the instance is
    immutable and safe to share between threads. `BusinessCalendar.from_spec` builds
    one from strings ("09:00-17:00").
    """

    tz: str
    week: tuple[tuple[Interval, ...], ...]
    holidays: frozenset[date] = frozenset()
    special_days: Mapping[date, tuple[Interval, ...]] = field(
        default_factory=lambda: MappingProxyType({}), hash=False
    )
    _zone: ZoneInfo = field(init=False, repr=False, compare=False, hash=False)
    _has_weekly_hours: bool = field(init=False, repr=False, compare=False, hash=False)
    _last_special_open: date | None = field(init=False, repr=False, compare=False, hash=False)
    # Spans per local date, so a sweep that recomputes many due dates converts each
    # wall time to an instant once. Bounded by clearing; a lost race only recomputes.
    _spans: dict[date, tuple[tuple[datetime, datetime], ...]] = field(
        init=False, repr=False, compare=False, hash=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        try:
            zone = ZoneInfo(self.tz)
        except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
            raise ValueError(f"unknown time zone {self.tz!r}") from exc
        week = tuple(self.week)
        if len(week) != 7:
            raise ValueError(f"week needs 7 entries (Monday to Sunday), got {len(week)}")
        week = tuple(_validated(hours, WEEKDAYS[i]) for i, hours in enumerate(week))
        holidays = frozenset(self.holidays)
        for day in holidays:
            if type(day) is not date:
                raise ValueError(f"holidays must be dates, got {day!r}")
        special: dict[date, tuple[Interval, ...]] = {}
        for day, hours in self.special_days.items():
            if type(day) is not date:
                raise ValueError(f"special_days keys must be dates, got {day!r}")
            special[day] = _validated(hours, day.isoformat())
        open_specials = [day for day, hours in special.items() if hours]
        # Frozen dataclass: normalised values are written once, here.
        object.__setattr__(self, "week", week)
        object.__setattr__(self, "holidays", holidays)
        object.__setattr__(self, "special_days", MappingProxyType(special))
        object.__setattr__(self, "_zone", zone)
        object.__setattr__(self, "_has_weekly_hours", any(week))
        object.__setattr__(self, "_last_special_open", max(open_specials, default=None))

    def __reduce__(self) -> tuple[type[BusinessCalendar], tuple[object, ...]]:
        # Pickle (Django's cache, multiprocessing) by the four public fields; the read-only
        # mapping proxy and the span cache are rebuilt rather than pickled.
        return (type(self), (self.tz, self.week, self.holidays, dict(self.special_days)))

    @classmethod
    def from_spec(
        cls,
        *,
        tz: str,
        week: Mapping[str, Sequence[str]],
        holidays: Iterable[date] = (),
        special_days: Mapping[date, Sequence[str]] | None = None,
    ) -> BusinessCalendar:
        """Build a calendar from readable strings.

        ``week`` maps "mon".."sun" to interval strings such as ``["09:00-12:00",
        "13:00-17:00"]``; a missing weekday is closed. "24:00" is accepted as an end.
        ``special_days`` maps dates to the same kind of list (``[]`` closes the date).
        """
        unknown = set(week) - set(WEEKDAYS)
        if unknown:
            raise ValueError(f"unknown weekday keys {sorted(unknown)}; use {list(WEEKDAYS)}")
        return cls(
            tz=tz,
            week=tuple(parse_intervals(week.get(name, ())) for name in WEEKDAYS),
            holidays=frozenset(holidays),
            special_days={day: parse_intervals(v) for day, v in (special_days or {}).items()},
        )

    @property
    def zone(self) -> ZoneInfo:
        return self._zone

    def hours_on(self, day: date) -> tuple[Interval, ...]:
        """The wall-clock working intervals of one local date (special day > holiday > week)."""
        special = self.special_days.get(day)
        if special is not None:
            return special
        if day in self.holidays:
            return ()
        return self.week[day.weekday()]

    def working_spans(self, day: date) -> tuple[tuple[datetime, datetime], ...]:
        """The working intervals of one local date as UTC instants ``[start, end)``.

        Intervals that DST makes empty (entirely inside a spring-forward gap) are left
        out, so every returned span has a positive length.
        """
        spans = self._spans.get(day)
        if spans is None:
            hours = self.hours_on(day)
            if not hours:
                return ()
            pairs = ((_instant(day, a, self._zone), _instant(day, b, self._zone)) for a, b in hours)
            spans = tuple((a, b) for a, b in pairs if b > a)
            if len(self._spans) >= _SPAN_CACHE_SIZE:
                self._spans.clear()
            self._spans[day] = spans
        return spans


def parse_intervals(specs: Iterable[str | Interval]) -> tuple[Interval, ...]:
    """Parse ``"HH:MM-HH:MM"`` strings (seconds allowed, "24:00" as an end) to intervals.

    Tuples already in ``(time, time | None)`` form are passed through, so specs can mix.
    Validation (order, overlap) happens when the calendar is built.
    """
    if isinstance(specs, str):
        raise ValueError(f"expected a list of intervals, got the string {specs!r}")
    intervals: list[Interval] = []
    for spec in specs:
        if not isinstance(spec, str):
            intervals.append(tuple(spec))  # type: ignore[arg-type]
            continue
        start_text, sep, end_text = spec.partition("-")
        if not sep:
            raise ValueError(f"interval {spec!r} is not of the form HH:MM-HH:MM")
        start = _parse_time(start_text.strip(), spec)
        end_text = end_text.strip()
        end = None if end_text in ("24:00", "24:00:00") else _parse_time(end_text, spec)
        if end == _MIDNIGHT:
            raise ValueError(f"interval {spec!r} ends at 00:00; write 24:00 for end of day")
        intervals.append((start, end))
    return tuple(intervals)


def always_open(tz: str = "UTC") -> BusinessCalendar:
    """A 24/7 calendar: business time equals elapsed time (SLAs without business hours)."""
    return BusinessCalendar(tz=tz, week=(((_MIDNIGHT, None),),) * 7)


def holiday_dates(country: str, subdivision: str | None, years: Iterable[int]) -> set[date]:
    """Public holidays from the `holidays` package, to seed a calendar's holiday rows.

    Observed days are included (US 2026-07-03 for Independence Day on a Saturday).
    The import is lazy so the arithmetic above never pays for it.
    """
    import holidays  # lazy on purpose, see docstring

    try:
        found = holidays.country_holidays(country, subdiv=subdivision, years=list(years))
    except NotImplementedError as exc:
        raise ValueError(str(exc)) from exc
    return set(found)


def add_business(
    start: datetime, seconds: float | timedelta, calendar: BusinessCalendar
) -> datetime:
    """The instant at which `seconds` of working time have elapsed since `start`.

    Precisely: the earliest instant ``t >= start`` with ``business_duration(start, t)
    == seconds``. Consequences worth knowing:

    - ``seconds == 0`` returns `start` itself, even outside working hours.
    - A start outside working hours starts counting at the next opening.
    - Time that runs out exactly at a closing returns that closing (Fri 09:00 + 8 h on
      a 09-17 calendar is Fri 17:00), not the next opening.

    `seconds` may be a float (rounded to the microsecond) or a `timedelta`; negative
    values raise ValueError. The result is in UTC: Python compares and subtracts two
    datetimes that share a tzinfo by wall clock, which is wrong across DST, so a UTC
    result is the safe one to store and compare. Use `.astimezone(calendar.zone)` to
    show it.

    Raises `NoWorkingTime` (a ValueError) if the calendar has no working time at all,
    or none within `MAX_SEARCH_DAYS` of `start`.
    """
    remaining = _as_timedelta(seconds)
    start = _as_utc(start, "start")
    if not remaining:
        return start
    if not calendar._has_weekly_hours and calendar._last_special_open is None:
        raise NoWorkingTime("the calendar has no working hours on any day")
    # Begin one local date early: after a fall-back across midnight, an instant whose
    # local date is D can lie in the span that belongs to D + 1, and vice versa.
    first = start.astimezone(calendar._zone).date() - _ONE_DAY
    day = first
    for _ in range(MAX_SEARCH_DAYS):
        if not calendar._has_weekly_hours and day > calendar._last_special_open:  # type: ignore[operator]
            break
        for span_start, span_end in calendar.working_spans(day):
            if span_end <= start:
                continue
            begin = max(span_start, start)
            available = span_end - begin
            if remaining <= available:
                return begin + remaining
            remaining -= available
        day += _ONE_DAY
    raise NoWorkingTime(
        f"not enough working time in {calendar.tz} between {first} and {day} "
        f"(searched {MAX_SEARCH_DAYS} days); is every day a holiday?"
    )


def business_duration(a: datetime, b: datetime, calendar: BusinessCalendar) -> timedelta:
    """Working time in ``[a, b)`` as an exact `timedelta`; zero when ``b <= a``.

    Zero rather than negative for a reversed range: callers subtract consumed time
    from a budget, and a clock that stepped backwards should consume nothing.
    """
    a = _as_utc(a, "a")
    b = _as_utc(b, "b")
    if b <= a:
        return _ZERO
    total = _ZERO
    day = a.astimezone(calendar._zone).date() - _ONE_DAY  # see add_business
    last = b.astimezone(calendar._zone).date() + _ONE_DAY
    while day <= last:
        for span_start, span_end in calendar.working_spans(day):
            lo = max(span_start, a)
            hi = min(span_end, b)
            if hi > lo:
                total += hi - lo
        day += _ONE_DAY
    return total


def business_between(a: datetime, b: datetime, calendar: BusinessCalendar) -> float:
    """Working seconds in ``[a, b)``; 0.0 when ``b <= a``. See `business_duration`."""
    return business_duration(a, b, calendar).total_seconds()


# --- internals -------------------------------------------------------------------------


def _instant(day: date, wall: time | None, zone: ZoneInfo) -> datetime:
    """The UTC instant of a local wall time (``None`` = 24:00) under the DST rules above."""
    if wall is None:
        day += _ONE_DAY
        wall = _MIDNIGHT
    local = datetime.combine(day, wall, tzinfo=zone)  # fold=0: first occurrence if repeated
    instant = local.astimezone(UTC)
    offset = local.utcoffset()
    if instant.astimezone(zone).utcoffset() == offset:
        return instant  # exists, once or (fold=0) the first of two occurrences
    # Inside a spring-forward gap. PEP 495 shifts such a time forward by the gap's
    # length (02:30 -> 03:30), which can put an interval's start after its end; we use
    # the instant the gap ends instead, found by bisection: `lo` still reads the old
    # offset, `instant` already the new one.
    lo = local.replace(fold=1).astimezone(UTC)
    hi = instant
    while hi - lo > _MICROSECOND:
        mid = lo + (hi - lo) // 2
        if mid.astimezone(zone).utcoffset() == offset:
            lo = mid
        else:
            hi = mid
    return hi


def _validated(hours: Iterable[Interval], label: str) -> tuple[Interval, ...]:
    """Check one day's intervals and return them as a tuple of 2-tuples."""
    if isinstance(hours, str):
        raise ValueError(f"{label}: expected a sequence of (start, end) intervals, got {hours!r}")
    result: list[Interval] = []
    previous_end: time | None = _MIDNIGHT
    for interval in hours:
        try:
            start, end = interval
        except (TypeError, ValueError):
            raise ValueError(f"{label}: {interval!r} is not a (start, end) pair") from None
        for value in (start, end):
            if value is not None and (not isinstance(value, time) or value.tzinfo is not None):
                raise ValueError(f"{label}: {value!r} is not a naive datetime.time")
        if start is None:
            raise ValueError(f"{label}: an interval cannot start at 24:00")
        start = start.replace(fold=0)
        end = None if end is None else end.replace(fold=0)
        if end is not None and end <= start:
            raise ValueError(
                f"{label}: interval {_fmt(start)}-{_fmt(end)} ends before it starts "
                "(write 24:00 as the end of day, and split intervals that cross midnight)"
            )
        if previous_end is None or start < previous_end:
            previous = result[-1]
            problem = "overlaps" if previous[0] <= start else "is out of order after"
            raise ValueError(
                f"{label}: interval {_fmt(start)}-{_fmt(end)} {problem} "
                f"{_fmt(previous[0])}-{_fmt(previous[1])}"
            )
        result.append((start, end))
        previous_end = end
    return tuple(result)


def _parse_time(text: str, spec: str) -> time:
    try:
        return time.fromisoformat(text)
    except ValueError:
        raise ValueError(f"interval {spec!r}: {text!r} is not a time like 09:30") from None


def _fmt(value: time | None) -> str:
    if value is None:
        return "24:00"
    return value.isoformat(
        timespec="minutes" if not value.second and not value.microsecond else "auto"
    )


def _as_utc(moment: datetime, name: str) -> datetime:
    if not isinstance(moment, datetime):
        raise ValueError(f"{name} must be a datetime, got {moment!r}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {moment!r}")
    return moment.astimezone(UTC)


def _as_timedelta(seconds: float | timedelta) -> timedelta:
    if isinstance(seconds, timedelta):
        amount = seconds
    else:
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise ValueError(f"seconds must be a number or a timedelta, got {seconds!r}")
        if not math.isfinite(seconds):
            raise ValueError(f"seconds must be finite, got {seconds!r}")
        amount = timedelta(seconds=seconds)
    if amount < _ZERO:
        raise ValueError(f"cannot add a negative amount of business time ({seconds!r})")
    return amount

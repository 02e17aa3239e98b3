"""Add a calendar's public holidays from the `holidays` package as rows.

    python manage.py seed_holidays emea-office --years 2026 2027 [--dry-run]

Uses the calendar's country and subdivision. Existing rows for a date (holidays or
special days edited by hand) are kept as they are.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from onboarding import calendar as bizcal
from onboarding.models import BusinessCalendar, CalendarDay
from onboarding.services import sla


class Command(BaseCommand):
    help = "Add a business calendar's public holidays (holidays package) as calendar days."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("calendar", help="Calendar key")
        parser.add_argument("--years", type=int, nargs="+", required=True)
        parser.add_argument("--dry-run", action="store_true", help="Show, change nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        calendar = BusinessCalendar.objects.filter(key=options["calendar"]).first()
        if calendar is None:
            raise CommandError(f"No calendar with key {options['calendar']!r}.")
        if not calendar.country:
            raise CommandError(f"Calendar {calendar.key!r} has no country to take holidays from.")
        try:
            names = _names(calendar, options["years"])
        except (KeyError, NotImplementedError, ValueError) as exc:
            raise CommandError(f"Unknown country or subdivision: {exc}") from exc
        existing = set(calendar.days.values_list("date", flat=True))
        new = {day: name for day, name in sorted(names.items()) if day not in existing}
        for day, name in new.items():
            self.stdout.write(f"  {day}  {name}")
        if options["dry_run"]:
            self.stdout.write(f"Would add {len(new)} holidays ({len(names) - len(new)} present).")
            return
        with transaction.atomic():
            CalendarDay.objects.bulk_create(
                CalendarDay(calendar=calendar, date=day, name=name, source="holidays")
                for day, name in new.items()
            )
            calendar.save(update_fields=["updated_at"])
        sla.forget_calendar(calendar.pk)
        self.stdout.write(f"Added {len(new)} holidays ({len(names) - len(new)} already present).")


def _names(calendar: BusinessCalendar, years: list[int]) -> dict:
    import holidays

    dates = bizcal.holiday_dates(calendar.country, calendar.subdivision or None, years)
    named = holidays.country_holidays(
        calendar.country, subdiv=calendar.subdivision or None, years=years
    )
    return {day: named.get(day, "Holiday") for day in dates}

"""Business calendars, SLA policies and SLA timers.

Timers live in the database, not in broker ETAs: the sweep finds the due ones
through partial indexes. The arithmetic is `onboarding.calendar` (pure).
"""

from __future__ import annotations

from datetime import date

from django.db import models
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from onboarding import calendar as bizcal
from onboarding import rules


class BusinessCalendar(models.Model):
    """Working hours in one time zone, plus holidays and special days (rows)."""

    key = models.SlugField(max_length=60, unique=True)
    name = models.CharField(max_length=120)
    tz = models.CharField("time zone", max_length=64, default="UTC")
    week = models.JSONField(
        default=dict,
        help_text='Working intervals per weekday, e.g. {"mon": ["09:00-12:00", "13:00-17:00"]}; '
        "an interval may end at 24:00; a missing day is closed.",
    )
    country = models.CharField(max_length=2, blank=True, help_text="Holidays seeded for it.")
    subdivision = models.CharField(max_length=10, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.tz})"

    def compile(self) -> bizcal.BusinessCalendar:
        """The pure calendar the arithmetic works on (one query for its days)."""
        holidays: set[date] = set()
        special: dict[date, list[str]] = {}
        for day in self.days.all():
            if day.hours:
                special[day.date] = day.hours
            else:
                holidays.add(day.date)
        return bizcal.BusinessCalendar.from_spec(
            tz=self.tz, week=self.week, holidays=holidays, special_days=special
        )


class CalendarDay(models.Model):
    """A holiday (no hours) or a special day (its own hours) of one calendar."""

    calendar = models.ForeignKey(BusinessCalendar, on_delete=models.CASCADE, related_name="days")
    date = models.DateField()
    name = models.CharField(max_length=120, blank=True)
    hours = models.JSONField(
        default=list, blank=True, help_text='Empty: closed all day; else e.g. ["10:00-14:00"].'
    )
    source = models.CharField(max_length=20, default="manual")  # manual | holidays

    class Meta:
        ordering = ["calendar", "date"]
        constraints = [
            models.UniqueConstraint(fields=["calendar", "date"], name="one_entry_per_calendar_day")
        ]

    def __str__(self) -> str:
        return f"{self.date} {self.name}".strip()


class SlaPolicy(models.Model):
    """Target and warning threshold in business time. Versioned: edits make a new row
    (same key, next version) and running timers keep the version they started on."""

    class OnBreach(models.TextChoices):
        ESCALATE = "escalate", "Escalate (priority up, escalation queue)"
        NOTIFY = "notify", "Notify only"

    key = models.SlugField(max_length=60)
    version = models.PositiveIntegerField(default=1)
    name = models.CharField(max_length=120)
    target = models.DurationField(help_text="Business time allowed.")
    warn_percent = models.PositiveSmallIntegerField(
        default=75, help_text="Warn when this share of the target is used."
    )
    calendar = models.ForeignKey(
        BusinessCalendar,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        help_text="Empty: the clock runs 24/7.",
    )
    pause_states = models.JSONField(
        default=list,
        blank=True,
        help_text='Task states that stop the clock, e.g. ["waiting"] (waiting on the customer).',
    )
    on_breach = models.CharField(max_length=20, choices=OnBreach.choices, default=OnBreach.ESCALATE)
    escalation_queue = models.ForeignKey(
        "onboarding.Queue", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    is_current = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["key", "-version"]
        verbose_name = "SLA policy"
        verbose_name_plural = "SLA policies"
        constraints = [
            models.UniqueConstraint(fields=["key", "version"], name="unique_sla_policy_version"),
            models.UniqueConstraint(
                fields=["key"], condition=models.Q(is_current=True), name="one_current_sla_policy"
            ),
            models.CheckConstraint(
                condition=models.Q(warn_percent__gte=1, warn_percent__lte=100),
                name="warn_percent_1_100",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


class TimerState(models.TextChoices):
    RUNNING = "running", "Running"
    PAUSED = "paused", "Paused"
    MET = "met", "Met"
    BREACHED = "breached", "Breached"
    CANCELLED = "cancelled", "Cancelled"


class SlaTimer(ConcurrentTransitionMixin, models.Model):
    """One clock on one task (or on a whole case: its time to live)."""

    State = TimerState

    class Kind(models.TextChoices):
        TASK = "task", "Task"
        CASE = "case", "Case (time to live)"

    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.TASK)
    case = models.ForeignKey("onboarding.Case", on_delete=models.CASCADE, related_name="timers")
    task = models.ForeignKey(
        "onboarding.Task", on_delete=models.CASCADE, null=True, blank=True, related_name="timers"
    )
    policy = models.ForeignKey(SlaPolicy, on_delete=models.PROTECT, related_name="timers")
    state = FSMField(default=TimerState.RUNNING, choices=TimerState.choices, protected=True)
    started_at = models.DateTimeField()
    due_at = models.DateTimeField(null=True, blank=True)
    warn_at = models.DateTimeField(null=True, blank=True)
    warned_at = models.DateTimeField(null=True, blank=True)
    breached_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    # Business seconds that count against the target, up to `segment_started_at`.
    consumed_seconds = models.FloatField(default=0)
    # The open segment: since when, and whose time it is (internal/customer/automation).
    segment_started_at = models.DateTimeField()
    segment_category = models.CharField(max_length=20)
    attribution = models.JSONField(
        default=dict, help_text="Business seconds by category: internal, customer, automation."
    )

    class Meta:
        ordering = ["due_at"]
        verbose_name = "SLA timer"
        constraints = [
            models.UniqueConstraint(
                fields=["task"],
                condition=models.Q(state__in=["running", "paused"]),
                name="one_open_timer_per_task",
            ),
            models.UniqueConstraint(
                fields=["case"],
                condition=models.Q(kind="case", state__in=["running", "paused"]),
                name="one_open_case_timer",
            ),
        ]
        indexes = [
            # The sweep reads only due rows: its cost follows what is due.
            models.Index(
                fields=["warn_at"],
                condition=models.Q(state="running", warned_at__isnull=True),
                name="timer_warn_due",
            ),
            models.Index(
                fields=["due_at"], condition=models.Q(state="running"), name="timer_breach_due"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.policy} on {self.task or self.case}"

    @transition(
        field=state,
        source=TimerState.RUNNING,
        target=TimerState.PAUSED,
        permission=rules.allow(rules.system),
        custom={"event": "SLA Paused"},
    )
    def pause(self) -> None:
        pass

    @transition(
        field=state,
        source=TimerState.PAUSED,
        target=TimerState.RUNNING,
        permission=rules.allow(rules.system),
        custom={"event": "SLA Resumed"},
    )
    def resume(self) -> None:
        pass

    @transition(
        field=state,
        source=[TimerState.RUNNING, TimerState.PAUSED],
        target=TimerState.MET,
        permission=rules.allow(rules.system),
        custom={"event": "SLA Met"},
    )
    def meet(self) -> None:
        pass

    @transition(
        field=state,
        source=TimerState.RUNNING,
        target=TimerState.BREACHED,
        permission=rules.allow(rules.system),
        custom={"event": "SLA Breached"},
    )
    def breach(self) -> None:
        pass

    @transition(
        field=state,
        source=[TimerState.RUNNING, TimerState.PAUSED],
        target=TimerState.CANCELLED,
        permission=rules.allow(rules.system),
        custom={"event": "SLA Cancelled"},
    )
    def cancel(self) -> None:
        pass

"""Raw analytics events: append-only, one row per thing that happened.

The export stream (API `GET /api/v1/events/`, webhooks) reads events in commit-safe
order. Ids come from a sequence when a row is inserted, not when its transaction
commits: with two writers, id 11 can commit while id 10 is still in flight, so a
reader of `id > 10` after seeing 11 would skip 10 for ever. On PostgreSQL every
event therefore also carries `xact`, the id of the transaction that wrote it (a
column default, see migration 0003; not a model field, so the write path's INSERT
is unchanged). The stream is ordered by `(xact, id)` and serves only events below
the *horizon* (`stream_horizon`): the oldest transaction id of this database still
running, read from `pg_current_snapshot()`. Every transaction below it has ended, so
the set of events below it is final, and anything that commits later has an `xact`
at or above it, after every position already served. A cursor `(xact, id)` therefore never skips and
never repeats. SQLite runs one writer at a time, so there id order is commit order
and the stream is plain `id` order.
"""

from __future__ import annotations

import re
import uuid
from typing import Any, NamedTuple

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS, connections, models
from django.db.models.expressions import RawSQL

# A position past every event id (bigint): "all of this transaction's events".
MAX_EVENT_ID = 2**63 - 1


class StreamPosition(NamedTuple):
    """A place in the export stream: just after the event `(xact, id)`.

    `xact` is always 0 on SQLite (the stream is id order there).
    """

    xact: int
    id: int


STREAM_START = StreamPosition(0, 0)


def has_commit_order_column(using: str = DEFAULT_DB_ALIAS) -> bool:
    return connections[using].vendor == "postgresql"


# The oldest transaction of this database still running, or else the first id not yet
# given out. Transactions of other databases in the cluster are left out: they cannot
# write these events, and must not stall the stream (a snapshot's own xmin counts
# them). The caller's own transaction, if it has an id, counts too (it is not in its
# own snapshot's in-progress list). pg_stat_activity is read after the statement's
# snapshot is taken, so a transaction in the list that no longer shows there has ended.
_HORIZON_SQL = """
SELECT LEAST(
    (SELECT min(x) FROM pg_snapshot_xip(snap.s) AS x
      WHERE x::xid IN (
        SELECT a.backend_xid FROM pg_stat_activity AS a
         WHERE a.datname = current_database() AND a.backend_xid IS NOT NULL
        UNION ALL
        SELECT p.transaction FROM pg_prepared_xacts AS p
         WHERE p.database = current_database())),
    pg_current_xact_id_if_assigned(),
    pg_snapshot_xmax(snap.s)
)::text::bigint
FROM (SELECT pg_current_snapshot() AS s) AS snap
"""


def stream_horizon(using: str = DEFAULT_DB_ALIAS) -> int | None:
    """The transaction id below which the stream is final; None on SQLite.

    Every transaction of this database with a lower id has ended, so the events below
    it can no longer change; whatever commits later has an id at or above it. Read it
    before the events it bounds (a later statement sees every ended transaction).
    """
    connection = connections[using]
    if not has_commit_order_column(using):
        return None
    with connection.cursor() as cursor:
        if connection.in_atomic_block:  # pg_stat_activity is cached per transaction
            cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(_HORIZON_SQL)
        return cursor.fetchone()[0]


def position_after_page(
    after: StreamPosition, last: StreamPosition | None, *, full: bool, horizon: int | None
) -> StreamPosition:
    """Where the next read starts, after a page that ended at `last`.

    A full page continues after its last event. A short page has read everything
    below the horizon (that matched the filters), so the next read may start at the
    horizon: a filtered reader does not rescan events that can never match.
    """
    if full or horizon is None:
        return last or after
    return max(after, last or after, StreamPosition(horizon - 1, MAX_EVENT_ID))


class AppendOnly(Exception):
    """Events are never edited; only retention removes them."""


def stream_tail(using: str = DEFAULT_DB_ALIAS) -> StreamPosition:
    """The position after every event that is final now: where a new reader starts
    to receive only what happens from now on (events in flight included)."""
    horizon = stream_horizon(using)
    if horizon is not None:
        return StreamPosition(horizon - 1, MAX_EVENT_ID)
    last = Event.objects.using(using).aggregate(last=models.Max("id"))["last"]
    return StreamPosition(0, last or 0)


class EventQuerySet(models.QuerySet):
    def update(self, **kwargs: Any) -> int:
        raise AppendOnly("events are append-only")

    def for_case(self, case_id: int) -> EventQuerySet:
        return self.filter(case_id=case_id).order_by("-occurred_at", "-id")

    # --- the export stream (see the module docstring) ---------------------------------

    def stream_after(self, position: StreamPosition, horizon: int | None) -> EventQuerySet:
        """Events after `position` and below `horizon` (from `stream_horizon()`), in
        stream order, annotated with `stream_xact`. Take a slice: it is unbounded."""
        if not has_commit_order_column(self.db):
            return (
                self.filter(id__gt=position.id)
                .order_by("id")
                .annotate(stream_xact=models.Value(0, output_field=models.BigIntegerField()))
            )
        table = self.model._meta.db_table
        after = RawSQL(
            f'("{table}"."xact", "{table}"."id") > (%s::text::xid8, %s) '
            f'AND "{table}"."xact" < %s::text::xid8',
            (str(position.xact), position.id, str(horizon)),
            output_field=models.BooleanField(),
        )
        return (
            self.filter(after)
            .annotate(
                stream_xact=RawSQL(
                    f'"{table}"."xact"::text::bigint', (), output_field=models.BigIntegerField()
                )
            )
            .order_by(RawSQL(f'"{table}"."xact"', ()).asc(), "id")
        )


class Event(models.Model):
    # References are ids without database constraints: events outlive the rows they
    # describe and must not add foreign-key locking to every transition.
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=80)
    schema_version = models.PositiveSmallIntegerField()
    occurred_at = models.DateTimeField()
    recorded_at = models.DateTimeField()
    # No single-column indexes on account and case: event_account_time and
    # event_case_time lead with them (one index fewer to write per event each).
    account = models.ForeignKey(
        "onboarding.Account",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        null=True,
        related_name="events",
    )
    case = models.ForeignKey(
        "onboarding.Case",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        null=True,
        related_name="events",
    )
    task = models.ForeignKey(
        "onboarding.Task",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        related_name="events",
    )
    step_key = models.CharField(max_length=60, blank=True)
    playbook_key = models.CharField(max_length=60, blank=True)
    playbook_version = models.PositiveIntegerField(null=True)
    actor_type = models.CharField(max_length=10)
    actor_id = models.CharField(max_length=64)
    source = models.CharField(max_length=20)
    segmentation = models.JSONField(default=dict)
    properties = models.JSONField(default=dict)

    objects = EventQuerySet.as_manager()

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [
            models.Index(fields=["case", "occurred_at"], name="event_case_time"),
            models.Index(fields=["account", "occurred_at"], name="event_account_time"),
            models.Index(fields=["name", "occurred_at"], name="event_name_time"),
            models.Index(fields=["recorded_at"], name="event_recorded"),
            # The Events list: newest first, a page at a time (and date ranges).
            models.Index(fields=["occurred_at"], name="event_occurred"),
        ]

    def __str__(self) -> str:
        return f"{self.name} @ {self.occurred_at:%Y-%m-%d %H:%M}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnly("events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AppendOnly("events are append-only; retention purges them in bulk")

    @property
    def stream_position(self) -> StreamPosition:
        """This event's place in the export stream (read through `stream_after`)."""
        return StreamPosition(self.stream_xact, self.pk)


# --- alerts -------------------------------------------------------------------------------


class AlertRule(models.Model):
    """A watch on one manager metric for one scope; `analytics.alerts` evaluates it.

    The metrics and the two kinds of rule are defined in `analytics.alerts` (its
    docstring is the reference); `clean()` refuses a rule that could not be judged.
    """

    class Metric(models.TextChoices):
        MILESTONE_CONVERSION = "milestone_conversion", "Milestone conversion (% of cohort)"
        SLA_COMPLIANCE = "sla_compliance", "SLA compliance (% met)"
        FIRST_VALUE_MEDIAN = "first_value_median", "Time to first value, median (hours)"
        MILESTONE_TIME_MEDIAN = (
            "milestone_time_median",
            "Time from the previous milestone, median (hours)",
        )

    class Kind(models.TextChoices):
        THRESHOLD = "threshold", "Threshold: the value is beyond a fixed limit"
        BASELINE = "baseline", "Change against the baseline of the previous windows"

    class Direction(models.TextChoices):
        BELOW = "below", "Below / dropped"
        ABOVE = "above", "Above / grew"

    name = models.CharField(max_length=120)
    enabled = models.BooleanField(default=True)
    metric = models.CharField(max_length=30, choices=Metric.choices)
    step_key = models.SlugField(
        max_length=60,
        blank=True,
        help_text="Milestone metrics: the milestone's step key (conversion: blank for the "
        "last milestone). SLA compliance: one step only (blank: every step).",
    )
    # Scope: the report filters (`analytics.metrics.base.Filters`).
    playbook = models.ForeignKey(
        "onboarding.Playbook", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    version = models.PositiveIntegerField(
        null=True, blank=True, help_text="Playbook version number (blank: every version)."
    )
    plan = models.CharField(max_length=60, blank=True)
    region = models.CharField(max_length=60, blank=True)
    channel = models.CharField(max_length=60, blank=True)
    queue = models.ForeignKey(
        "onboarding.Queue",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="SLA compliance only: the clocks of this queue's steps.",
    )
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="SLA compliance only: the clocks of this person's steps.",
    )
    # The condition.
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.THRESHOLD)
    direction = models.CharField(
        max_length=10,
        choices=Direction.choices,
        default=Direction.BELOW,
        help_text="Threshold: fire while the value is below (above) the threshold. "
        "Baseline: fire when the value dropped (grew) by at least the change.",
    )
    threshold = models.FloatField(
        null=True, blank=True, help_text="Threshold rules: % for rates, hours for durations."
    )
    change_pct = models.FloatField(
        "change (%)",
        null=True,
        blank=True,
        help_text="Baseline rules: relative change, e.g. 20 = the value is 20 % above "
        "(or below) the baseline.",
    )
    window_days = models.PositiveSmallIntegerField(
        default=7, help_text="The period judged: this many days, up to today (less the lag)."
    )
    baseline_windows = models.PositiveSmallIntegerField(
        default=4,
        help_text="Baseline rules: the baseline is the metric over this many periods "
        "just before the current one, taken together.",
    )
    lag_days = models.PositiveSmallIntegerField(
        default=0,
        help_text="End the period this many days ago, so that cohorts had time to convert "
        "(conversion and first value count young cases as not reached yet).",
    )
    conversion_days = models.PositiveSmallIntegerField(
        default=30,
        help_text="Milestone and first-value metrics: a milestone counts if passed within "
        "this many days of the opening (the reports' conversion window).",
    )
    min_sample = models.PositiveIntegerField(
        default=5,
        help_text="Judge only a value computed from at least this many cases (clocks for "
        "SLA compliance); fewer is no data.",
    )
    recipients = models.TextField(
        blank=True, help_text="Email addresses to notify, one a line or comma-separated."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        editable=False,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # What the last evaluation saw (None: no data).
    last_evaluated_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_value = models.FloatField(null=True, blank=True, editable=False)
    last_baseline = models.FloatField(null=True, blank=True, editable=False)
    last_sample = models.PositiveIntegerField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(kind="threshold", threshold__isnull=False)
                    | models.Q(kind="baseline", change_pct__gt=0)
                ),
                name="alertrule_condition_complete",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_rate(self) -> bool:
        return self.metric in (self.Metric.MILESTONE_CONVERSION, self.Metric.SLA_COMPLIANCE)

    @property
    def unit(self) -> str:
        return "%" if self.is_rate else "h"

    def recipient_list(self) -> list[str]:
        return [r for r in re.split(r"[\s,;]+", self.recipients) if r]

    def condition_text(self) -> str:
        """The rule's condition in words, e.g. "below 80 %" or "grew by ≥ 20 % vs baseline"."""
        if self.kind == self.Kind.THRESHOLD:
            return f"{self.direction} {format_measure(self.threshold, self.unit)}"
        verb = "dropped" if self.direction == self.Direction.BELOW else "grew"
        return (
            f"{verb} by ≥ {self.change_pct:g} % vs the {self.baseline_windows} previous "
            f"{self.window_days}-day windows"
        )

    def clean(self) -> None:
        from analytics.alerts import rule_errors

        errors = rule_errors(self)
        if errors:
            raise ValidationError(errors)


def format_measure(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    return f"{value:.1f} %" if unit == "%" else f"{value:,.1f} h"


class AlertQuerySet(models.QuerySet):
    def firing(self) -> AlertQuerySet:
        return self.filter(state=Alert.State.FIRING)


class Alert(models.Model):
    """One breach of a rule: fired when the condition starts to hold, resolved when it
    stops. At most one per rule is firing (the partial unique constraint); while it
    fires, evaluations refresh `value` and `last_evaluated_at` without notifying.

    Written only by `analytics.alerts` (read-only in the admin)."""

    class State(models.TextChoices):
        FIRING = "firing", "Firing"
        RESOLVED = "resolved", "Resolved"

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="alerts")
    state = models.CharField(max_length=10, choices=State.choices, default=State.FIRING)
    fired_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.CharField(max_length=40, blank=True)
    # The period judged when it fired (the report link opens on it).
    period_start = models.DateField()
    period_end = models.DateField()
    fired_value = models.FloatField()
    value = models.FloatField(null=True, help_text="Latest value while firing.")
    threshold = models.FloatField(null=True, blank=True)
    baseline = models.FloatField(null=True, blank=True)
    sample = models.PositiveIntegerField(default=0)
    message = models.TextField()
    case_ids = models.JSONField(default=list, blank=True)
    case_count = models.PositiveIntegerField(
        default=0, help_text="Cases behind the alert (case_ids holds the first of them)."
    )
    last_evaluated_at = models.DateTimeField()

    objects = AlertQuerySet.as_manager()

    class Meta:
        ordering = ["-fired_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["rule"],
                condition=models.Q(state="firing"),
                name="alert_one_firing_per_rule",
            ),
        ]
        indexes = [models.Index(fields=["state", "fired_at"], name="alert_state_fired")]

    def __str__(self) -> str:
        return f"{self.rule} @ {self.fired_at:%Y-%m-%d %H:%M}"

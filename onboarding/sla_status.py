"""SLA status: the one definition of on track / at risk / breached / paused / met.

A clock (SlaTimer) is *breached* once its state says so or while it runs past its due
instant (the sweep records breaches a little after the fact; readers do not wait for
it), *at risk* while it runs past its warning instant, *on track* while it runs
before that, *paused* while stopped by a pause state or a case on hold, *met* when its
step finished in time. Open work is judged by the clocks of open tasks and the case's
own clock while the case is open: `timer_status` for one row in Python, `timer_status_q`
and `open_work_clocks` for the same rules in SQL (filters, counts, the API).

Badges turn a clock into what an agent reads: the status and the business time left.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q, QuerySet

from onboarding import calendar as bizcal
from onboarding.models import SlaTimer
from onboarding.models.cases import NON_FINAL_TASK_STATES, OPEN_CASE_STATES
from onboarding.models.sla import TimerState
from onboarding.services.sla import calendar_of


class SlaStatus:
    ON_TRACK = "on_track"
    AT_RISK = "at_risk"
    BREACHED = "breached"
    PAUSED = "paused"
    MET = "met"


STATUS_LABELS = {
    SlaStatus.ON_TRACK: "On track",
    SlaStatus.AT_RISK: "At risk",
    SlaStatus.BREACHED: "Breached",
    SlaStatus.PAUSED: "Paused",
    SlaStatus.MET: "Met",
}
STATUS_VARIANTS = {
    SlaStatus.ON_TRACK: "info",
    SlaStatus.AT_RISK: "warning",
    SlaStatus.BREACHED: "danger",
    SlaStatus.PAUSED: "",
    SlaStatus.MET: "success",
}


@dataclass(frozen=True)
class SlaBadge:
    status: str
    text: str
    detail: str  # tooltip: the policy and the wall-clock deadline

    @property
    def variant(self) -> str:
        return STATUS_VARIANTS[self.status]

    @property
    def label(self) -> str:
        return STATUS_LABELS[self.status]


def format_business(seconds: float) -> str:
    """`3h 20m`, `45m`, `0m`: hours stay hours (a business day is not 24 of them)."""
    minutes = max(int(seconds // 60), 0)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m"


def timer_status(timer: SlaTimer, now: datetime) -> str | None:
    """on_track / at_risk / breached / paused / met; None for a cancelled clock."""
    if timer.state == TimerState.MET:
        return SlaStatus.MET
    if timer.state == TimerState.BREACHED:
        return SlaStatus.BREACHED
    if timer.state == TimerState.PAUSED:
        return SlaStatus.PAUSED
    if timer.state != TimerState.RUNNING:
        return None
    # The sweep records breaches a little after the fact; the page does not wait for it.
    if timer.due_at is not None and timer.due_at <= now:
        return SlaStatus.BREACHED
    if timer.warned_at is not None or (timer.warn_at is not None and timer.warn_at <= now):
        return SlaStatus.AT_RISK
    return SlaStatus.ON_TRACK


def badge_for(timer: SlaTimer | None, now: datetime) -> SlaBadge | None:
    """The badge of one clock (its `policy` should be select_related)."""
    if timer is None:
        return None
    status = timer_status(timer, now)
    if status is None:
        return None
    policy = timer.policy
    target = policy.target.total_seconds()
    detail = f"{policy.name}: {format_business(target)} of business time"
    if status == SlaStatus.MET:
        return SlaBadge(status, "Met", detail)
    if status == SlaStatus.PAUSED:
        left = max(target - timer.consumed_seconds, 0.0)
        return SlaBadge(status, f"Paused · {format_business(left)} left", detail)
    cal = calendar_of(policy)
    if status == SlaStatus.BREACHED:
        since = timer.breached_at or timer.due_at
        over = bizcal.business_between(since, now, cal) if since and since < now else 0.0
        return SlaBadge(status, f"Breached · {format_business(over)} over", detail)
    left = bizcal.business_between(now, timer.due_at, cal) if timer.due_at else 0.0
    detail += f"; due {timer.due_at:%Y-%m-%d %H:%M} UTC" if timer.due_at else ""
    prefix = "At risk · " if status == SlaStatus.AT_RISK else ""
    return SlaBadge(status, f"{prefix}{format_business(left)} left", detail)


def timer_status_q(status: str, now: datetime, prefix: str = "") -> Q:
    """The rows of SlaTimer (reached through `prefix`) whose `timer_status` is `status`:
    the same rules as `timer_status`, for filters and counts in SQL."""

    def q(**lookups: object) -> Q:
        return Q(**{f"{prefix}{key}": value for key, value in lookups.items()})

    running = q(state=TimerState.RUNNING)
    if status == SlaStatus.BREACHED:
        return q(state=TimerState.BREACHED) | (running & q(due_at__lte=now))
    warned = q(warned_at__isnull=False) | q(warn_at__lte=now)
    if status == SlaStatus.AT_RISK:
        return running & q(due_at__gt=now) & warned
    if status == SlaStatus.ON_TRACK:
        return running & q(due_at__gt=now) & ~warned
    if status == SlaStatus.PAUSED:
        return q(state=TimerState.PAUSED)
    if status == SlaStatus.MET:
        return q(state=TimerState.MET)
    raise ValueError(f"unknown SLA status {status!r}")


def open_work_clocks(case_ref: object) -> QuerySet[SlaTimer]:
    """The clocks that judge a case's open work: those of its open tasks, and its own
    time-to-live clock while the case is open. `case_ref` is a case id or OuterRef."""
    return SlaTimer.objects.filter(case=case_ref).filter(
        Q(task__isnull=True, case__state__in=OPEN_CASE_STATES)
        | Q(task__state__in=NON_FINAL_TASK_STATES)
    )

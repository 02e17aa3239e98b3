"""Alerts: rules on a manager metric for a scope, evaluated by beat, fired once per breach.

Metrics: see `analytics.alert_metrics` (what each measures, its sample, the cases
behind an alert on it).

Kinds of rule:

- **threshold** — breached while the value is below (`direction` below) or above the
  threshold.
- **baseline** — breached while the value dropped (below) or grew (above) by at least
  `change_pct` % relative to the *baseline*: the same metric over the
  `baseline_windows` periods just before the current one, taken together (one
  report over that span: a volume-weighted baseline, one query, rather than an
  average of per-window values). The change is relative: 80 % → 72 % is a 10 % drop.

No data: a value from fewer than `min_sample` cases (or clocks), or no value at all
(no cases: no rate, no median), or no baseline, is not judged: nothing fires, and an
alert that is firing stays as it is (we cannot see that it recovered). A disabled
rule resolves its firing alert ("rule disabled") and is not evaluated.

De-duplication: each evaluation locks the rule's row (`SELECT … FOR UPDATE SKIP
LOCKED`: a second beat worker evaluating the same rule at the same time skips it,
it does not wait and then judge again) and holds the lock while it computes, decides
and writes. At most one alert per rule is firing, also by a partial unique
constraint. While the condition holds, later evaluations only refresh the alert's
value and `last_evaluated_at`; when it clears the alert resolves; a new breach after
that fires a new alert. Firing records one `Alert Fired` event (in the transaction,
so webhook subscribers get it through the relay) and sends one email after commit;
resolving records `Alert Resolved` and emails the recipients again. No hysteresis
(a value hovering at the threshold would fire and resolve in turns): `min_sample`
and a longer window keep the value steady, and each fire/resolve is a real crossing.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import date, datetime
from functools import partial
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.urls import reverse

from analytics.alert_metrics import REPORT_OF, Reading, cases_behind, read
from analytics.metrics import available
from analytics.models import Alert, AlertRule, format_measure
from analytics.recording import record
from onboarding import clock
from onboarding.actors import Actor
from onboarding.models import Step

log = logging.getLogger(__name__)

Metric = AlertRule.Metric
ACTOR = Actor.system("alerts", source="worker")
RATES = (Metric.MILESTONE_CONVERSION, Metric.SLA_COMPLIANCE)
NEEDS_PLAYBOOK = (Metric.MILESTONE_CONVERSION, Metric.MILESTONE_TIME_MEDIAN)


# --- validation ---------------------------------------------------------------------------


def rule_errors(rule: AlertRule) -> dict[str, list[str]]:
    """What makes `rule` impossible to judge, by field (empty: it is sound)."""
    errors: dict[str, list[str]] = {}

    def err(name: str, message: str) -> None:
        errors.setdefault(name, []).append(message)

    metric = rule.metric
    if rule.kind == AlertRule.Kind.THRESHOLD:
        if rule.threshold is None:
            err("threshold", "A threshold rule needs a threshold.")
        elif metric in RATES and not 0 <= rule.threshold <= 100:
            err("threshold", "A rate threshold is a percentage between 0 and 100.")
        elif metric not in RATES and rule.threshold <= 0:
            err("threshold", "A duration threshold is a positive number of hours.")
    elif rule.kind == AlertRule.Kind.BASELINE:
        if rule.change_pct is None:
            err("change_pct", "A baseline rule needs the change (%) that fires it.")
        elif rule.change_pct <= 0:
            err("change_pct", "The change is a positive percentage.")
        elif rule.direction == AlertRule.Direction.BELOW and rule.change_pct > 100:
            err("change_pct", "A value cannot drop by more than 100 %.")
        if not 1 <= rule.baseline_windows <= 12:
            err("baseline_windows", "Between 1 and 12 previous windows.")
    if not 1 <= rule.window_days <= 365:
        err("window_days", "Between 1 and 365 days.")
    if rule.lag_days > 365:
        err("lag_days", "At most 365 days.")
    if not 1 <= rule.conversion_days <= 365:
        err("conversion_days", "Between 1 and 365 days.")
    if rule.min_sample < 1:
        err("min_sample", "At least 1.")
    if metric in NEEDS_PLAYBOOK and rule.playbook_id is None:
        err("playbook", "Milestone metrics are about one playbook: choose it.")
    if rule.version is not None and rule.playbook_id is None:
        err("version", "Choose a playbook for a version.")
    elif (
        rule.version is not None and not rule.playbook.versions.filter(number=rule.version).exists()
    ):
        err("version", f"{rule.playbook} has no version {rule.version}.")
    if metric != Metric.SLA_COMPLIANCE:
        if rule.queue_id is not None:
            err("queue", "Only SLA compliance is measured per queue.")
        if rule.agent_id is not None:
            err("agent", "Only SLA compliance is measured per agent.")
    if metric == Metric.MILESTONE_TIME_MEDIAN and not rule.step_key:
        err("step_key", "Which milestone? Give its step key.")
    if metric == Metric.FIRST_VALUE_MEDIAN and rule.step_key:
        err("step_key", "Time to first value has no step: leave it blank.")
    if rule.step_key and metric != Metric.FIRST_VALUE_MEDIAN and "playbook" not in errors:
        steps = Step.objects.filter(key=rule.step_key)
        if rule.playbook_id is not None:
            steps = steps.filter(version__playbook_id=rule.playbook_id)
        if metric in NEEDS_PLAYBOOK:
            steps = steps.filter(is_milestone=True)
        if not steps.exists():
            where = f" of {rule.playbook}" if rule.playbook_id else ""
            kind = "milestone" if metric in NEEDS_PLAYBOOK else "step"
            err("step_key", f"No {kind} has the key {rule.step_key!r}{where}.")
    bad = []
    for address in rule.recipient_list():
        try:
            validate_email(address)
        except ValidationError:
            bad.append(address)
    if bad:
        err("recipients", f"Not an email address: {', '.join(bad)}.")
    return errors


# --- links and messages -------------------------------------------------------------------


def report_url(rule: AlertRule, start: date, end: date) -> str:
    """The Reports page on the rule's report, scope and period."""
    params: dict[str, Any] = {
        "report": REPORT_OF[rule.metric],
        "start": start.isoformat(),
        "end": end.isoformat(),
        "playbook": rule.playbook.key if rule.playbook_id else "",
        "version": rule.version if rule.version is not None else "",
        "plan": rule.plan,
        "region": rule.region,
        "channel": rule.channel,
        "queue": rule.queue.key if rule.queue_id else "",
        "agent": rule.agent_id or "",
    }
    if rule.metric != Metric.SLA_COMPLIANCE:
        params["window_days"] = rule.conversion_days
    query = urlencode({k: v for k, v in params.items() if v not in ("", None)})
    return f"{reverse('workspace:reports')}?{query}"


def alert_url(alert: Alert) -> str:
    """The alert's admin page, absolute when `SITE_URL` is set (emails, webhooks)."""
    path = reverse("admin:analytics_alert_change", args=[alert.pk])
    return f"{getattr(settings, 'SITE_URL', '').rstrip('/')}{path}"


def describe(rule: AlertRule, reading: Reading) -> str:
    unit = rule.unit
    text = (
        f"{rule.get_metric_display()} was {format_measure(reading.current.value, unit)} "
        f"from {reading.start:%Y-%m-%d} to {reading.end:%Y-%m-%d} "
        f"({reading.current.sample} in the sample): {rule.condition_text()}"
    )
    if rule.kind == AlertRule.Kind.BASELINE:
        text += f" (baseline {format_measure(reading.baseline_value, unit)})"
    return text + "."


# --- evaluation ---------------------------------------------------------------------------


def supported() -> bool:
    """Rules can be written on the SQLite demo but are evaluated only where the
    reports run (`analytics.metrics.available`)."""
    return available()


def evaluate_all(now: datetime | None = None) -> dict[str, int]:
    """Evaluate every enabled rule, and resolve the alerts of disabled ones.

    Each rule in its own transaction: one failing rule (logged) does not stop the rest.
    Returns how many rules ended in each outcome of `evaluate_rule`, and `errors`."""
    if not supported():
        return {}
    now = now or clock.now()
    counts: Counter[str] = Counter()
    rule_ids = (
        AlertRule.objects.filter(Q(enabled=True) | Q(alerts__state=Alert.State.FIRING))
        .distinct()
        .order_by("id")
        .values_list("id", flat=True)
    )
    for rule_id in list(rule_ids):
        try:
            counts[evaluate_rule(rule_id, now=now)] += 1
        except Exception:
            log.exception("alert rule %s could not be evaluated", rule_id)
            counts["errors"] += 1
    return dict(counts)


def evaluate_rule(rule_id: int, *, now: datetime | None = None) -> str:
    """Judge one rule now and write the outcome; returns what happened:

    `fired`, `firing` (still breached, already notified), `resolved`, `ok`, `no_data`,
    `disabled`, `busy` (another worker holds the rule: it skipped it), `gone`, or
    `unsupported` (not on PostgreSQL)."""
    if not supported():
        return "unsupported"
    now = now or clock.now()
    with transaction.atomic():
        rule = (
            AlertRule.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("playbook", "queue")
            .filter(pk=rule_id)
            .first()
        )
        if rule is None:
            return "busy" if AlertRule.objects.filter(pk=rule_id).exists() else "gone"
        alert = rule.alerts.firing().first()
        if not rule.enabled:
            if alert is not None:
                _resolve(rule, alert, now, value=alert.value, reason="rule disabled")
                return "resolved"
            return "disabled"
        reading = read(rule, now)
        rule.last_evaluated_at = now
        rule.last_value = reading.current.value
        rule.last_baseline = reading.baseline_value
        rule.last_sample = reading.current.sample
        rule.save(update_fields=["last_evaluated_at", "last_value", "last_baseline", "last_sample"])
        breached = reading.breached(rule)
        if alert is not None:
            if breached is False:
                _resolve(rule, alert, now, value=reading.current.value, reason="recovered")
                return "resolved"
            alert.last_evaluated_at = now
            if reading.current.value is not None:
                alert.value = reading.current.value
            alert.save(update_fields=["last_evaluated_at", "value"])
            return "firing" if breached else "no_data"
        if breached is None:
            return "no_data"
        if not breached:
            return "ok"
        return _fire(rule, reading, now)


def _fire(rule: AlertRule, reading: Reading, now: datetime) -> str:
    case_ids, case_count = cases_behind(rule, reading, now)
    value = reading.current.value
    try:
        with transaction.atomic():  # the constraint backs the lock; never two firing
            alert = Alert.objects.create(
                rule=rule,
                fired_at=now,
                period_start=reading.start,
                period_end=reading.end,
                fired_value=value,
                value=value,
                threshold=rule.threshold if rule.kind == AlertRule.Kind.THRESHOLD else None,
                baseline=reading.baseline_value,
                sample=reading.current.sample,
                message=describe(rule, reading),
                case_ids=case_ids,
                case_count=case_count,
                last_evaluated_at=now,
            )
    except IntegrityError:
        log.info("alert rule %s is already firing", rule.pk)
        return "firing"
    link = alert_url(alert)
    record(
        "Alert Fired",
        actor=ACTOR,
        occurred_at=now,
        properties={
            "alert_id": alert.pk,
            "rule_id": rule.pk,
            "rule_name": rule.name,
            "metric": rule.metric,
            "kind": rule.kind,
            "condition": rule.condition_text(),
            "value": value,
            "unit": rule.unit,
            "threshold": alert.threshold,
            "baseline": alert.baseline,
            "period_start": reading.start.isoformat(),
            "period_end": reading.end.isoformat(),
            "case_ids": case_ids,
            "case_count": case_count,
            "link": link,
        },
    )
    report = f"{getattr(settings, 'SITE_URL', '').rstrip('/')}"
    report += report_url(rule, reading.start, reading.end)
    body = [alert.message, "", f"Alert: {link}", f"Report: {report}"]
    if case_ids:
        body += ["", f"Cases behind it ({case_count}): " + ", ".join(f"#{c}" for c in case_ids)]
    _email_after_commit(rule, alert, "fired", f"[Alert] {rule.name}", "\n".join(body))
    return "fired"


def _resolve(
    rule: AlertRule, alert: Alert, now: datetime, *, value: float | None, reason: str
) -> None:
    alert.state = Alert.State.RESOLVED
    alert.resolved_at = now
    alert.resolution = reason
    alert.last_evaluated_at = now
    alert.value = value if value is not None else alert.value
    alert.save(update_fields=["state", "resolved_at", "resolution", "last_evaluated_at", "value"])
    link = alert_url(alert)
    record(
        "Alert Resolved",
        actor=ACTOR,
        occurred_at=now,
        properties={
            "alert_id": alert.pk,
            "rule_id": rule.pk,
            "rule_name": rule.name,
            "metric": rule.metric,
            "value": value,
            "unit": rule.unit,
            "reason": reason,
            "fired_at": alert.fired_at,
            "link": link,
        },
    )
    body = f"{rule.name}: resolved ({reason}), now {format_measure(value, rule.unit)}."
    body += f"\n\nAlert: {link}"
    _email_after_commit(rule, alert, "resolved", f"[Resolved] {rule.name}", body)


def _email_after_commit(rule: AlertRule, alert: Alert, what: str, subject: str, body: str) -> None:
    """Email the rule's recipients once the alert's transaction commits (not on rollback)."""
    recipients = rule.recipient_list()
    if recipients:
        message = EmailMessage(
            subject=subject,
            body=body,
            to=recipients,
            headers={"Idempotency-Key": f"alert-{alert.pk}-{what}"},
        )
        transaction.on_commit(partial(_send, message, alert.pk))


def _send(message: EmailMessage, alert_id: int) -> None:
    try:
        message.send()
    except Exception:  # the mail relay is down: the alert stands, the event went out
        log.warning("could not email alert %s", alert_id, exc_info=True)

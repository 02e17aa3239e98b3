"""Alerts: a rule on a metric and a scope fires once per breach, resolves when the
condition clears, notifies by email (after commit) and by an `Alert Fired` event that
webhooks relay; the admin lists alerts with the cases behind them, for managers only.

The playbook: kickoff (human, milestone, first value) → review (human). Every case is
built through the services at known instants; "now" is NOW, and a rule's period is
its `window_days` calendar days (UTC) ending on NOW's day.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.conf import settings
from django.core import mail
from django.db import IntegrityError, connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils.timezone import now as timezone_now

from analytics import alert_metrics, alerts, tasks
from analytics.metrics import run
from analytics.metrics.base import Filters
from analytics.models import Alert, AlertRule, Event
from api import tasks as api_tasks
from api import webhooks
from api.models import WebhookDelivery
from onboarding import clock, services
from onboarding.models import Case, Playbook, SlaPolicy
from tests.api.test_webhooks import Queue as SendQueue
from tests.api.test_webhooks import Receiver
from tests.conftest import act, race, task_of

NOW = datetime(2026, 9, 20, 12, 0, tzinfo=UTC)
M = timedelta(minutes=1)
H = timedelta(hours=1)
D = timedelta(days=1)


@pytest.fixture
def playbook(make_playbook, queue) -> Playbook:
    return make_playbook(
        "alerting",
        [
            {"key": "kickoff", "name": "Kickoff", "kind": "human", "queue": queue,
             "is_milestone": True, "is_first_value": True},
            {"key": "review", "name": "Review", "kind": "human", "queue": queue},
        ],
    )  # fmt: skip


@pytest.fixture
def open_at(playbook, make_account, system) -> Callable[[datetime], Case]:
    def build(moment: datetime) -> Case:
        with clock.travel_to(moment):
            return services.case_open(account=make_account(), playbook=playbook, actor=system)

    return build


@pytest.fixture
def kickoff_done(agent_a) -> Callable[[Case, timedelta], None]:
    """Complete a case's kickoff `after` its opening."""

    def complete(case: Case, after: timedelta) -> None:
        task = task_of(case, "kickoff").pk
        with clock.travel_to(case.opened_at + after):
            services.task_claim(task_id=task, actor=act(agent_a))
            services.task_complete(task_id=task, actor=act(agent_a))

    return complete


@pytest.fixture
def conversion_rule(playbook, manager) -> AlertRule:
    """Fires while fewer than half of the week's cases passed kickoff."""
    return AlertRule.objects.create(
        name="Kickoff conversion",
        metric=AlertRule.Metric.MILESTONE_CONVERSION,
        step_key="kickoff",
        playbook=playbook,
        kind=AlertRule.Kind.THRESHOLD,
        direction=AlertRule.Direction.BELOW,
        threshold=50,
        window_days=7,
        min_sample=1,
        recipients="ops@example.com, lead@example.com",
        created_by=manager,
    )


def evaluate(rule: AlertRule, at: datetime = NOW) -> str:
    return alerts.evaluate_rule(rule.pk, now=at)


def fired_events() -> list[Event]:
    return list(Event.objects.filter(name="Alert Fired").order_by("id"))


# --- firing once per breach -----------------------------------------------------------------


@pytest.mark.django_db
def test_a_threshold_rule_fires_once_per_breach_resolves_and_fires_again(
    conversion_rule, open_at, kickoff_done
):
    first, second = open_at(NOW - 2 * D), open_at(NOW - 2 * D)

    assert evaluate(conversion_rule) == "fired"
    assert evaluate(conversion_rule, NOW + 5 * M) == "firing"
    assert evaluate(conversion_rule, NOW + 10 * M) == "firing"

    alert = Alert.objects.get()
    assert alert.state == Alert.State.FIRING and alert.fired_at == NOW
    assert alert.last_evaluated_at == NOW + 10 * M
    assert alert.fired_value == 0.0 and alert.threshold == 50 and alert.sample == 2
    assert sorted(alert.case_ids) == sorted([first.pk, second.pk]) and alert.case_count == 2
    assert len(fired_events()) == 1

    kickoff_done(first, H)
    assert evaluate(conversion_rule, NOW + 2 * H) == "resolved"  # 1 of 2: 50 %, not below
    alert.refresh_from_db()
    assert alert.state == Alert.State.RESOLVED
    assert alert.resolved_at == NOW + 2 * H and alert.resolution == "recovered"
    assert alert.value == 50.0
    (resolved,) = Event.objects.filter(name="Alert Resolved")
    assert resolved.properties["alert_id"] == alert.pk
    assert resolved.properties["reason"] == "recovered"

    assert evaluate(conversion_rule, NOW + 3 * H) == "ok"
    open_at(NOW + 4 * H)  # 1 of 3 passed: 33 %
    assert evaluate(conversion_rule, NOW + 5 * H) == "fired"
    assert evaluate(conversion_rule, NOW + 6 * H) == "firing"

    assert Alert.objects.count() == 2
    assert Alert.objects.firing().get().fired_at == NOW + 5 * H
    assert len(fired_events()) == 2


@pytest.mark.django_db
def test_the_cases_behind_a_conversion_alert_are_the_cohort_cases_the_report_counts_as_not_reached(
    conversion_rule, open_at, kickoff_done
):
    cases = [open_at(NOW - n * D) for n in (1, 2, 3, 4)]
    kickoff_done(cases[0], H)
    kickoff_done(cases[3], 2 * D)  # after the 1-day conversion window: not passed
    open_at(NOW - 9 * D)  # before the period
    conversion_rule.conversion_days = 1
    conversion_rule.save()

    evaluate(conversion_rule)

    alert = Alert.objects.get()
    stages = run("funnel", Filters(start=(NOW - 6 * D).date(), end=NOW.date(),
                                   playbook="alerting", window_days=1), now=NOW).tables  # fmt: skip
    cohort = stages["summary"].rows[0][0]
    (kickoff,) = [r for r in stages["stages"].as_dicts() if r["step_key"] == "kickoff"]
    assert alert.case_count == cohort - kickoff["reached"]
    assert alert.fired_value == pytest.approx(kickoff["overall"] * 100)
    assert alert.case_ids == [c.pk for c in reversed(cases[1:])]  # oldest opening first


# --- baseline rules ---------------------------------------------------------------------


@pytest.fixture
def first_value_history(open_at, kickoff_done) -> dict[str, list[Case]]:
    """Baseline (the two weeks before the period): first value in 48 h, 48 h and 50 h.
    The period (the last 7 days) gets its cases from each test."""
    baseline = [open_at(NOW - d * D) for d in (9, 12, 15)]
    for case, hours in zip(baseline, (48, 48, 50), strict=True):
        kickoff_done(case, hours * H)
    return {"baseline": baseline}


def first_value_rule(change_pct: float, direction: str = "above") -> AlertRule:
    return AlertRule.objects.create(
        name=f"First value slower by {change_pct} %",
        metric=AlertRule.Metric.FIRST_VALUE_MEDIAN,
        playbook=Playbook.objects.get(key="alerting"),
        kind=AlertRule.Kind.BASELINE,
        direction=direction,
        change_pct=change_pct,
        window_days=7,
        baseline_windows=2,
        min_sample=1,
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("current_hours", "change_pct", "outcome"),
    [
        ((72, 72, 30), 20, "fired"),  # median 72 h vs 48 h: +50 %
        ((72, 72, 30), 50, "fired"),  # exactly +50 %: "by at least"
        ((72, 72, 30), 60, "ok"),
        ((52, 53, 30), 20, "ok"),  # median 52 h: +8 %
    ],
)
def test_a_baseline_rule_fires_when_the_median_grew_by_at_least_the_change(
    first_value_history, open_at, kickoff_done, current_hours, change_pct, outcome
):
    current = [open_at(NOW - d * D) for d in (4, 5, 6)]
    for case, hours in zip(current, current_hours, strict=True):
        kickoff_done(case, hours * H)
    rule = first_value_rule(change_pct)

    assert evaluate(rule) == outcome

    rule.refresh_from_db()
    assert rule.last_baseline == 48.0
    assert rule.last_value == sorted(current_hours)[1]
    assert Alert.objects.count() == (1 if outcome == "fired" else 0)
    if outcome == "fired":
        alert = Alert.objects.get()
        assert alert.baseline == 48.0 and alert.threshold is None
        slow = {c.pk for c, h in zip(current, current_hours, strict=True) if h > 48}
        assert set(alert.case_ids) == slow  # slower than the baseline median


@pytest.mark.django_db
def test_a_baseline_rule_on_a_drop_does_not_fire_on_growth(
    first_value_history, open_at, kickoff_done
):
    for d in (4, 5, 6):
        kickoff_done(open_at(NOW - d * D), 72 * H)
    dropped, grew = first_value_rule(10, "below"), first_value_rule(10, "above")

    assert (evaluate(dropped), evaluate(grew)) == ("ok", "fired")


@pytest.mark.django_db
def test_without_a_baseline_a_baseline_rule_has_no_data(open_at, kickoff_done, playbook):
    kickoff_done(open_at(NOW - 2 * D), 72 * H)

    assert evaluate(first_value_rule(10)) == "no_data"
    assert not Alert.objects.exists()


# --- the other metrics --------------------------------------------------------------------


@pytest.mark.django_db
def test_an_sla_compliance_rule_fires_with_the_cases_of_the_breached_clocks(
    make_playbook, make_account, queue, system, agent_a
):
    two_days = SlaPolicy.objects.create(
        key="kickoff-2d", name="Kickoff in 2 days", target=2 * D, on_breach="notify"
    )
    sla_playbook = make_playbook(
        "sla",
        [{"key": "kickoff", "name": "Kickoff", "kind": "human", "queue": queue,
          "sla_policy": two_days}],
    )  # fmt: skip
    cases = []
    for _ in range(3):
        with clock.travel_to(NOW - 5 * D):
            cases.append(
                services.case_open(account=make_account(), playbook=sla_playbook, actor=system)
            )
    met = cases[0]
    with clock.travel_to(NOW - 5 * D + H):
        task = task_of(met, "kickoff").pk
        services.task_claim(task_id=task, actor=act(agent_a))
        services.task_complete(task_id=task, actor=act(agent_a))
    rule = AlertRule.objects.create(
        name="Specialists on time",
        metric=AlertRule.Metric.SLA_COMPLIANCE,
        queue=queue,
        threshold=80,
        min_sample=3,
    )

    assert evaluate(rule) == "fired"

    alert = Alert.objects.get()
    assert alert.fired_value == pytest.approx(100 / 3) and alert.sample == 3
    assert sorted(alert.case_ids) == sorted(c.pk for c in cases[1:]) and alert.case_count == 2
    url = alerts.report_url(rule, alert.period_start, alert.period_end)
    assert url.endswith("?report=sla&start=2026-09-14&end=2026-09-20&queue=specialists")


@pytest.mark.django_db
def test_a_milestone_time_rule_fires_with_the_slowest_cases_first(
    make_playbook, make_account, queue, system, agent_a
):
    two = make_playbook(
        "two-milestones",
        [
            {"key": "kickoff", "name": "Kickoff", "kind": "human", "queue": queue,
             "is_milestone": True},
            {"key": "review", "name": "Review", "kind": "human", "queue": queue,
             "is_milestone": True},
        ],
    )  # fmt: skip
    hours_to_review = {}
    for hours in (48, 12, 72):
        with clock.travel_to(NOW - 5 * D):
            case = services.case_open(account=make_account(), playbook=two, actor=system)
        for key, after in (("kickoff", H), ("review", H + hours * H)):
            with clock.travel_to(case.opened_at + after):
                task = task_of(case, key).pk
                services.task_claim(task_id=task, actor=act(agent_a))
                services.task_complete(task_id=task, actor=act(agent_a))
        hours_to_review[hours] = case.pk
    rule = AlertRule.objects.create(
        name="Review within a day",
        metric=AlertRule.Metric.MILESTONE_TIME_MEDIAN,
        playbook=two,
        step_key="review",
        direction=AlertRule.Direction.ABOVE,
        threshold=24,
        min_sample=3,
    )

    assert evaluate(rule) == "fired"

    alert = Alert.objects.get()
    assert alert.fired_value == 48.0  # the median of 12, 48 and 72 hours
    assert alert.case_ids == [hours_to_review[72], hours_to_review[48]]
    assert alert.case_count == 2
    rule.threshold = 48  # not above 48
    rule.save()
    assert evaluate(rule, NOW + H) == "resolved"


# --- no data, disabled ------------------------------------------------------------------


@pytest.mark.django_db
def test_no_cases_means_no_value_and_no_alert(conversion_rule):
    assert evaluate(conversion_rule) == "no_data"

    conversion_rule.refresh_from_db()
    assert conversion_rule.last_evaluated_at == NOW and conversion_rule.last_value is None
    assert not Alert.objects.exists() and not fired_events()


@pytest.mark.django_db
def test_a_sample_below_the_minimum_is_not_judged(conversion_rule, open_at):
    open_at(NOW - D)
    conversion_rule.min_sample = 2
    conversion_rule.save()

    assert evaluate(conversion_rule) == "no_data"
    open_at(NOW - D)
    assert evaluate(conversion_rule) == "fired"


@pytest.mark.django_db
def test_a_firing_alert_stays_open_while_there_is_no_data(conversion_rule, open_at):
    case = open_at(NOW - D)
    evaluate(conversion_rule)

    # A week later the case is out of the period: nothing to judge, nothing recovered.
    assert evaluate(conversion_rule, NOW + 8 * D) == "no_data"
    assert Alert.objects.get().state == Alert.State.FIRING
    assert case.pk in Alert.objects.get().case_ids


@pytest.mark.django_db
def test_a_disabled_rule_is_not_evaluated_and_disabling_resolves_its_alert(
    conversion_rule, open_at
):
    open_at(NOW - D)
    conversion_rule.enabled = False
    conversion_rule.save()

    assert evaluate(conversion_rule) == "disabled"
    assert not Alert.objects.exists()

    conversion_rule.enabled = True
    conversion_rule.save()
    assert evaluate(conversion_rule) == "fired"
    conversion_rule.enabled = False
    conversion_rule.save()
    assert alerts.evaluate_all(now=NOW + H) == {"resolved": 1}
    alert = Alert.objects.get()
    assert alert.state == Alert.State.RESOLVED and alert.resolution == "rule disabled"
    assert alerts.evaluate_all(now=NOW + 2 * H) == {}  # disabled and quiet: not even read


# --- notifications --------------------------------------------------------------------------


@pytest.mark.django_db
def test_firing_emails_the_recipients_once_after_commit_and_records_one_event(
    conversion_rule, open_at, django_capture_on_commit_callbacks
):
    case = open_at(NOW - D)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        evaluate(conversion_rule)
    assert mail.outbox == []  # nothing before the commit
    for callback in callbacks:
        callback()
    with django_capture_on_commit_callbacks(execute=True):
        evaluate(conversion_rule, NOW + 5 * M)
        evaluate(conversion_rule, NOW + 10 * M)

    (message,) = mail.outbox
    alert = Alert.objects.get()
    assert message.to == ["ops@example.com", "lead@example.com"]
    assert message.subject == "[Alert] Kickoff conversion"
    assert "0.0 %" in message.body and f"#{case.pk}" in message.body
    assert reverse("admin:analytics_alert_change", args=[alert.pk]) in message.body
    assert message.extra_headers["Idempotency-Key"] == f"alert-{alert.pk}-fired"
    (event,) = fired_events()
    assert event.case_id is None and event.actor_type == "system"
    assert event.occurred_at == NOW
    assert event.properties == {
        "alert_id": alert.pk,
        "rule_id": conversion_rule.pk,
        "rule_name": "Kickoff conversion",
        "metric": "milestone_conversion",
        "kind": "threshold",
        "condition": "below 50.0 %",
        "value": 0.0,
        "unit": "%",
        "threshold": 50.0,
        "baseline": None,
        "period_start": "2026-09-14",
        "period_end": "2026-09-20",
        "case_ids": [case.pk],
        "case_count": 1,
        "link": reverse("admin:analytics_alert_change", args=[alert.pk]),
    }


@pytest.mark.django_db
def test_resolving_emails_the_recipients_too(
    conversion_rule, open_at, kickoff_done, django_capture_on_commit_callbacks
):
    case = open_at(NOW - D)
    with django_capture_on_commit_callbacks(execute=True):
        evaluate(conversion_rule)
    kickoff_done(case, H)

    with django_capture_on_commit_callbacks(execute=True):
        assert evaluate(conversion_rule, NOW + H) == "resolved"

    _fired, resolved = mail.outbox
    alert = Alert.objects.get()
    assert resolved.subject == "[Resolved] Kickoff conversion"
    assert "recovered" in resolved.body and "100.0 %" in resolved.body
    assert resolved.extra_headers["Idempotency-Key"] == f"alert-{alert.pk}-resolved"


@pytest.mark.django_db
def test_a_failed_evaluation_fires_nothing_and_sends_nothing(
    conversion_rule, open_at, monkeypatch, django_capture_on_commit_callbacks
):
    open_at(NOW - D)

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the event table is gone")

    monkeypatch.setattr(alerts, "record", broken)
    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(RuntimeError):
        evaluate(conversion_rule)

    assert callbacks == [] and mail.outbox == []
    assert not Alert.objects.exists()
    conversion_rule.refresh_from_db()
    assert conversion_rule.last_evaluated_at is None  # rolled back with the rest


@pytest.mark.django_db
def test_one_broken_rule_does_not_stop_the_others(conversion_rule, open_at, monkeypatch):
    open_at(NOW - D)
    broken = AlertRule.objects.create(
        name="Broken", metric=AlertRule.Metric.SLA_COMPLIANCE, threshold=90, min_sample=1
    )
    measure = alert_metrics.measure

    def flaky(rule: AlertRule, *args: Any) -> Any:
        if rule.pk == broken.pk:
            raise RuntimeError("boom")
        return measure(rule, *args)

    monkeypatch.setattr(alert_metrics, "measure", flaky)

    assert alerts.evaluate_all(now=NOW) == {"fired": 1, "errors": 1}


@pytest.mark.django_db
def test_the_beat_task_evaluates_every_rule(conversion_rule, open_at):
    open_at(NOW - D)
    entries = [e["task"] for e in settings.CELERY_BEAT_SCHEDULE.values()]
    assert "analytics.evaluate_alerts" in entries

    with clock.travel_to(NOW):
        result = tasks.evaluate_alerts.apply().get()

    assert result == {"fired": 1}
    assert Alert.objects.firing().count() == 1


@pytest.mark.django_db
def test_off_postgresql_rules_are_not_evaluated(conversion_rule, open_at, monkeypatch):
    open_at(NOW - D)
    monkeypatch.setattr(connection, "vendor", "sqlite")  # the embedded demo's database

    assert alerts.evaluate_all(now=NOW) == {}
    assert evaluate(conversion_rule) == "unsupported"
    assert not Alert.objects.exists()


@pytest.mark.django_db
def test_the_database_refuses_a_second_firing_alert_for_a_rule(conversion_rule):
    fields = {"fired_at": NOW, "period_start": NOW.date(), "period_end": NOW.date(),
              "fired_value": 1.0, "message": "x", "last_evaluated_at": NOW}  # fmt: skip
    Alert.objects.create(rule=conversion_rule, **fields)
    Alert.objects.create(rule=conversion_rule, state=Alert.State.RESOLVED, **fields)

    with pytest.raises(IntegrityError), transaction.atomic():
        Alert.objects.create(rule=conversion_rule, **fields)


# --- concurrency and webhooks (committed data, real connections) ----------------------------


@pytest.mark.django_db(transaction=True)
def test_two_workers_evaluating_the_same_rule_at_once_fire_one_alert_and_one_event(
    conversion_rule, open_at, monkeypatch
):
    open_at(NOW - D)
    read = alerts.read

    def slow_read(rule: AlertRule, now: datetime) -> Any:
        time.sleep(0.5)  # hold the rule's lock while the other worker arrives
        return read(rule, now)

    monkeypatch.setattr(alerts, "read", slow_read)

    results = race(lambda: evaluate(conversion_rule), lambda: evaluate(conversion_rule))

    assert sorted(results) == ["busy", "fired"], results
    assert Alert.objects.count() == 1
    assert len(fired_events()) == 1


@pytest.mark.django_db(transaction=True)
def test_many_evaluations_racing_without_a_pause_still_fire_once(conversion_rule, open_at):
    open_at(NOW - D)

    results = race(*[lambda: evaluate(conversion_rule) for _ in range(6)])

    assert results.count("fired") == 1, results
    assert set(results) <= {"fired", "firing", "busy"}, results
    assert Alert.objects.count() == 1 and len(fired_events()) == 1


@pytest.fixture
def receiver(settings) -> Any:
    """A webhook receiver on loopback (tests/api/test_webhooks.py)."""
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    receiver = Receiver()
    receiver.thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


@pytest.fixture
def sends(monkeypatch) -> SendQueue:
    """The webhook sends the relay queues; the test plays the worker."""
    queue = SendQueue()
    monkeypatch.setattr(api_tasks.webhook_deliver, "apply_async", queue.apply_async)
    return queue


@pytest.mark.django_db(transaction=True)
def test_the_webhook_relay_delivers_alert_fired_to_its_subscribers(
    conversion_rule, open_at, receiver, sends
):
    other, _ = webhooks.webhook_subscribe(url=receiver.url, event_names=["Case Opened"])
    subscriber, secret = webhooks.webhook_subscribe(url=receiver.url, event_names=["Alert Fired"])
    open_at(NOW - D)

    evaluate(conversion_rule)
    evaluate(conversion_rule, NOW + 5 * M)  # still firing: nothing more to deliver
    webhooks.relay()
    sends.work()

    alert = Alert.objects.get()
    alert_requests = [
        r for r in receiver.requests if r["headers"]["Onboarding-Event"] == "Alert Fired"
    ]
    (request,) = alert_requests
    body = json.loads(request["body"])
    assert body["webhook_id"] == subscriber.pk
    assert body["event"]["name"] == "Alert Fired"
    assert body["event"]["properties"]["alert_id"] == alert.pk
    assert body["event"]["properties"]["rule_id"] == conversion_rule.pk
    assert webhooks.verify(secret, request["headers"]["Onboarding-Signature"], request["body"])
    delivery = WebhookDelivery.objects.get(subscription=subscriber)
    assert delivery.status == WebhookDelivery.Status.DELIVERED
    assert not WebhookDelivery.objects.filter(subscription=other, event_name="Alert Fired").exists()


# --- admin ----------------------------------------------------------------------------------


def rule_form(playbook: Playbook, /, **changes: Any) -> dict[str, Any]:
    data = {
        "name": "Kickoff conversion",
        "enabled": "on",
        "metric": "milestone_conversion",
        "step_key": "kickoff",
        "playbook": playbook.pk,
        "version": "",
        "plan": "",
        "region": "",
        "channel": "",
        "queue": "",
        "agent": "",
        "kind": "threshold",
        "direction": "below",
        "threshold": "50",
        "change_pct": "",
        "window_days": "7",
        "baseline_windows": "4",
        "lag_days": "0",
        "conversion_days": "30",
        "min_sample": "5",
        "recipients": "ops@example.com",
        "_save": "Save",
    }
    return {**data, **changes}


@pytest.fixture
def as_manager(client: Client, manager) -> Client:
    client.force_login(manager)
    return client


ADD_RULE = reverse("admin:analytics_alertrule_add")


@pytest.mark.django_db
def test_a_manager_creates_a_rule_in_the_admin(as_manager, playbook, manager, make_account):
    make_account(plan="enterprise")
    form = as_manager.get(ADD_RULE).content.decode()
    assert '<option value="enterprise">' in form  # the plans accounts have

    response = as_manager.post(ADD_RULE, rule_form(playbook, plan="enterprise"))

    assert response.status_code == 302, response.context and response.context["errors"]
    rule = AlertRule.objects.get()
    assert rule.created_by == manager and rule.threshold == 50 and rule.plan == "enterprise"
    assert rule.recipient_list() == ["ops@example.com"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"threshold": ""}, "A threshold rule needs a threshold."),
        ({"threshold": "150"}, "A rate threshold is a percentage between 0 and 100."),
        (
            {"kind": "baseline", "threshold": ""},
            "A baseline rule needs the change (%) that fires it.",
        ),
        ({"kind": "baseline", "change_pct": "-5"}, "The change is a positive percentage."),
        ({"playbook": ""}, "Milestone metrics are about one playbook: choose it."),
        ({"step_key": "review"}, "No milestone has the key &#x27;review&#x27; of Alerting."),
        ({"metric": "first_value_median"}, "Time to first value has no step: leave it blank."),
        (
            {"metric": "milestone_time_median", "step_key": ""},
            "Which milestone? Give its step key.",
        ),
        ({"version": "7"}, "Alerting has no version 7."),
        (
            {"recipients": "ops@example.com, not-an-address"},
            "Not an email address: not-an-address.",
        ),
        ({"window_days": "0"}, "Between 1 and 365 days."),
        ({"plan": "no-such-plan"}, "Select a valid choice."),
    ],
)
def test_an_invalid_rule_is_refused_with_a_message(as_manager, playbook, queue, changes, message):
    response = as_manager.post(ADD_RULE, rule_form(playbook, **changes))

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not AlertRule.objects.exists()


@pytest.mark.django_db
def test_a_queue_scope_is_refused_on_a_metric_without_queues(as_manager, playbook, queue):
    response = as_manager.post(ADD_RULE, rule_form(playbook, queue=queue.pk))

    assert response.status_code == 200
    assert "Only SLA compliance is measured per queue." in response.content.decode()
    assert not AlertRule.objects.exists()


@pytest.mark.django_db
def test_the_alert_list_and_page_link_to_the_cases_and_the_report(
    as_manager, conversion_rule, open_at
):
    cases = [open_at(NOW - D), open_at(NOW - 2 * D)]
    evaluate(conversion_rule)
    alert = Alert.objects.get()

    listing = as_manager.get(reverse("admin:analytics_alert_changelist"))
    page = as_manager.get(reverse("admin:analytics_alert_change", args=[alert.pk]))
    rules = as_manager.get(reverse("admin:analytics_alertrule_changelist"))
    rule_page = as_manager.get(
        reverse("admin:analytics_alertrule_change", args=[conversion_rule.pk])
    )

    assert listing.status_code == page.status_code == rules.status_code == 200
    assert rule_page.status_code == 200
    text = listing.content.decode()
    assert "Kickoff conversion" in text and "firing" in text and "threshold 50.0 %" in text
    html = page.content.decode()
    for case in cases:
        assert reverse("admin:onboarding_case_change", args=[case.pk]) in html
    report = (
        f"{reverse('workspace:reports')}?report=funnel&amp;start=2026-09-14&amp;end=2026-09-20"
        "&amp;playbook=alerting&amp;window_days=30"
    )
    assert report in html
    assert alert.message in html


@pytest.mark.django_db
def test_alerts_cannot_be_added_or_edited_by_hand(as_manager, conversion_rule, open_at):
    open_at(NOW - D)
    evaluate(conversion_rule)
    alert = Alert.objects.get()

    assert as_manager.get(reverse("admin:analytics_alert_add")).status_code == 403
    response = as_manager.post(
        reverse("admin:analytics_alert_change", args=[alert.pk]), {"message": "edited"}
    )
    assert response.status_code == 403
    assert (
        as_manager.post(reverse("admin:analytics_alert_delete", args=[alert.pk])).status_code == 403
    )
    alert.refresh_from_db()
    assert alert.message != "edited"


@pytest.mark.django_db
def test_agents_are_refused_rules_and_alerts(client, agent_a, conversion_rule, open_at, playbook):
    open_at(NOW - D)
    evaluate(conversion_rule)
    alert = Alert.objects.get()
    client.force_login(agent_a)

    for url in (
        reverse("admin:analytics_alertrule_changelist"),
        reverse("admin:analytics_alertrule_change", args=[conversion_rule.pk]),
        reverse("admin:analytics_alert_changelist"),
        reverse("admin:analytics_alert_change", args=[alert.pk]),
    ):
        assert client.get(url).status_code == 403, url
    assert client.post(ADD_RULE, rule_form(playbook, name="Sneaky")).status_code == 403
    assert not AlertRule.objects.filter(name="Sneaky").exists()


@pytest.mark.django_db
def test_a_manager_evaluates_a_rule_now_from_its_page(as_manager, conversion_rule, open_at):
    open_at(timezone_now() - D)
    url = reverse("admin:analytics_alertrule_evaluate_now", args=[conversion_rule.pk])

    as_manager.get(url)  # the dialog: nothing happens yet
    assert not Alert.objects.exists()

    response = as_manager.post(url, {"_form_submitted": "on"}, follow=True)

    assert "an alert fired and its recipients are notified" in response.content.decode()
    assert Alert.objects.firing().filter(rule=conversion_rule).exists()


@pytest.mark.django_db
def test_the_rule_and_alert_lists_cost_the_same_queries_for_one_row_or_many(
    as_manager, conversion_rule, open_at
):
    open_at(NOW - D)

    def queries(url: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert as_manager.get(url).status_code == 200
        return len(captured)

    rules, alerts_url = (
        reverse("admin:analytics_alertrule_changelist"),
        reverse("admin:analytics_alert_changelist"),
    )
    evaluate(conversion_rule)
    one = queries(rules), queries(alerts_url)
    for n in range(3):
        rule = AlertRule.objects.create(
            name=f"Copy {n}",
            metric=conversion_rule.metric,
            step_key="kickoff",
            playbook=conversion_rule.playbook,
            threshold=50,
            min_sample=1,
        )
        evaluate(rule)

    assert Alert.objects.count() == 4
    assert (queries(rules), queries(alerts_url)) == one

"""Retention: events recorded before the window are purged in bounded batches, except
what an active webhook has not been sent yet; reports and case pages do not change;
stale idempotency responses go too."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from django.contrib.auth.models import Permission
from django.db import DatabaseError, connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from analytics.metrics import REPORTS, default_filters, run
from analytics.models import AppendOnly, Event, StreamPosition
from analytics.retention import purge_expired_events, purging_events
from analytics.tasks import purge_events
from api.models import IdempotencyKey, WebhookDelivery, WebhookSubscription
from api.webhooks import webhook_subscribe
from onboarding import clock, services
from onboarding.models import Account, Case
from tests.conftest import act, task_of

pytestmark = pytest.mark.django_db

DAYS = 30


@pytest.fixture(autouse=True)
def window(settings) -> None:
    settings.EVENT_RETENTION_DAYS = DAYS


def ids(case: Case) -> set[int]:
    return set(Event.objects.filter(case=case).values_list("id", flat=True))


def left() -> set[int]:
    return set(Event.objects.values_list("id", flat=True))


def recorded(*, before: datetime | None = None, after: datetime | None = None) -> set[int]:
    events = Event.objects.all()
    if before:
        events = events.filter(recorded_at__lt=before)
    if after:
        events = events.filter(recorded_at__gte=after)
    return set(events.values_list("id", flat=True))


def a_window_after(moment: datetime) -> datetime:
    """A purge time at which everything recorded before `moment` is past the window."""
    return moment + timedelta(days=DAYS)


def deletes(queries: CaptureQueriesContext) -> list[str]:
    return [
        q["sql"] for q in queries if q["sql"].lstrip().startswith("DELETE FROM analytics_event")
    ]


def position_of(event_id: int) -> StreamPosition:
    with connection.cursor() as cursor:
        cursor.execute("SELECT xact::text::bigint FROM analytics_event WHERE id = %s", [event_id])
        return StreamPosition(cursor.fetchone()[0], event_id)


@pytest.fixture
def old_and_new(human_playbook, make_account: Callable[..., Account], system):
    """Case `old` recorded before `cut`, case `new` after it."""
    old = services.case_open(account=make_account(), playbook=human_playbook, actor=system)
    cut = timezone.now()
    new = services.case_open(account=make_account(), playbook=human_playbook, actor=system)
    return old, new, cut


def test_events_recorded_before_the_window_are_purged_and_later_ones_kept(old_and_new):
    old, new, cut = old_and_new
    expired, recent = recorded(before=cut), recorded(after=cut)
    assert ids(old) <= expired and ids(new) <= recent

    result = purge_expired_events(now=a_window_after(cut))

    assert left() == recent
    assert result == {"events": len(expired), "event_batches": 1, "idempotency_keys": 0, "more": 0}


def test_a_window_of_zero_days_keeps_everything(old_and_new, settings):
    settings.EVENT_RETENTION_DAYS = 0
    before = left()

    result = purge_expired_events(now=a_window_after(timezone.now()) + timedelta(days=3650))

    assert left() == before
    assert result["events"] == 0 and result["event_batches"] == 0


def test_a_backlog_goes_in_bounded_batches_until_all_is_purged(old_and_new):
    _old, _new, cut = old_and_new
    expired = len(recorded(before=cut))
    assert expired >= 5

    with CaptureQueriesContext(connection) as queries:
        result = purge_expired_events(now=a_window_after(cut), batch_size=2)

    assert result["events"] == expired
    statements = deletes(queries)
    assert len(statements) == expired // 2 + 1  # full batches, then a short one
    assert result["event_batches"] == len(statements)
    assert all("LIMIT" in sql for sql in statements)
    assert left() == recorded(after=cut)


def test_out_of_time_it_stops_between_batches_and_the_next_run_continues(old_and_new):
    _old, _new, cut = old_and_new
    before = len(left())

    first = purge_expired_events(now=a_window_after(cut), batch_size=2, time_budget=0)

    assert first["events"] == 2 and first["event_batches"] == 1 and first["more"] == 1
    assert len(left()) == before - 2
    second = purge_expired_events(now=a_window_after(cut), batch_size=2)
    assert second["more"] == 0
    assert left() == recorded(after=cut)


def test_events_an_active_webhook_has_not_passed_are_kept(old_and_new):
    old, new, cut = old_and_new
    old_ids = sorted(ids(old))
    passed, not_passed = old_ids[:1], old_ids[1:]
    webhook, _ = webhook_subscribe(url="https://crm.example.com/hook", event_names=["*"])
    # The relay has sent the first event of the old case and nothing after it.
    position = position_of(passed[0])
    WebhookSubscription.objects.filter(pk=webhook.pk).update(
        stream_xact=position.xact, stream_event_id=position.id
    )

    purge_expired_events(now=a_window_after(cut))

    assert left().isdisjoint(passed)
    assert set(not_passed) <= left()
    assert ids(new) <= left()


def test_a_disabled_webhook_does_not_hold_retention_back(old_and_new):
    old, _new, cut = old_and_new
    webhook, _ = webhook_subscribe(url="https://crm.example.com/hook", event_names=["*"])
    WebhookSubscription.objects.filter(pk=webhook.pk).update(
        stream_xact=0, stream_event_id=0, is_active=False
    )

    purge_expired_events(now=a_window_after(cut))

    assert left().isdisjoint(ids(old))


def test_an_event_still_being_delivered_is_kept_until_its_delivery_ends(old_and_new):
    old, _new, cut = old_and_new
    webhook, _ = webhook_subscribe(url="https://crm.example.com/hook", event_names=["*"])
    last = max(left())
    position = position_of(last)
    WebhookSubscription.objects.filter(pk=webhook.pk).update(
        stream_xact=position.xact, stream_event_id=position.id
    )
    pending_id = min(ids(old))
    delivery = WebhookDelivery.objects.create(
        subscription=webhook, event_id=pending_id, event_name="Case Opened"
    )

    purge_expired_events(now=a_window_after(cut))
    assert left() & ids(old) == {pending_id}

    WebhookDelivery.objects.filter(pk=delivery.pk).update(status=WebhookDelivery.Status.DELIVERED)
    purge_expired_events(now=a_window_after(cut))
    assert pending_id not in left()


def test_events_stay_append_only_outside_the_purge(open_case):
    event = Event.objects.filter(case=open_case).first()

    with pytest.raises(AppendOnly):
        event.delete()


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM analytics_event WHERE id = %s",
        "UPDATE analytics_event SET name = 'Case Created' WHERE id = %s",
        "UPDATE analytics_event SET properties = '{}' WHERE id = %s",
    ],
)
def test_the_database_refuses_raw_sql_that_rewrites_events(open_case, statement):
    event = Event.objects.filter(case=open_case).first()

    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(statement, [event.pk])

    assert Event.objects.get(pk=event.pk).name == event.name


def test_after_a_purge_the_guard_is_back(old_and_new):
    _, new, cut = old_and_new
    assert purge_expired_events(now=a_window_after(cut))["events"] > 0
    survivor = Event.objects.filter(case=new).first()

    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("DELETE FROM analytics_event WHERE id = %s", [survivor.pk])


# --- what keeps working ------------------------------------------------------------------


@pytest.fixture
def history(make_playbook, queue, make_account: Callable[..., Account], system, agent_a, manager):
    """Cases through the services: one done, one half-way, one untouched, one on hold."""
    playbook = make_playbook(
        "milestones",
        [
            {"key": "kickoff", "name": "Kickoff", "kind": "human", "queue": queue,
             "is_milestone": True},
            {"key": "review", "name": "Review", "kind": "human", "queue": queue,
             "is_milestone": True, "is_first_value": True},
        ],
    )  # fmt: skip
    agent = act(agent_a)
    cases = []
    with clock.travel_to(clock.now() - timedelta(days=3)):
        for plan in ("growth", "enterprise", "growth", "scale"):
            account = make_account(plan=plan)
            cases.append(services.case_open(account=account, playbook=playbook, actor=system))
    for case, steps in zip(cases, (("kickoff", "review"), ("kickoff",), (), ()), strict=True):
        for key in steps:
            task = task_of(case, key)
            services.task_claim(task_id=task.pk, actor=agent)
            services.task_complete(task_id=task.pk, actor=agent)
    services.case_put_on_hold(case_id=cases[3].pk, actor=act(manager), reason="Holiday")
    return cases


def _tables(now: datetime) -> dict[str, list]:
    out = {}
    for key in REPORTS:
        report = run(key, default_filters(key), now=now, limit=None)
        out[key] = [
            (t.name, [(c.key, c.kind) for c in t.columns], t.rows, t.total)
            for t in report.tables.values()
        ]
    return out


def test_every_report_is_the_same_after_the_purge(history):
    now = clock.now()
    before = _tables(now)
    assert any(rows for tables in before.values() for _, _, rows, _ in tables)

    result = purge_expired_events(now=a_window_after(timezone.now()))

    assert result["events"] > 0 and not Event.objects.exists()
    assert _tables(now) == before


def test_case_pages_still_render_for_a_case_whose_events_were_purged(
    history, manager, client: Client
):
    purge_expired_events(now=a_window_after(timezone.now()))
    assert not Event.objects.exists()
    manager.user_permissions.add(*Permission.objects.filter(codename__startswith="view_"))
    client.force_login(manager)

    for case in history:
        response = client.get(reverse("admin:onboarding_case_change", args=[case.pk]))
        assert response.status_code == 200
        assert case.account.name in response.content.decode()
    assert client.get(reverse("admin:onboarding_case_changelist")).status_code == 200
    assert client.get(reverse("workspace:reports")).status_code == 200


# --- the scheduled task and idempotency keys -------------------------------------------


def _age(days: int) -> None:
    """Time passes: every stored event was recorded `days` earlier (test setup only)."""
    with purging_events(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE analytics_event SET recorded_at = recorded_at - %s", [timedelta(days=days)]
        )


def test_the_scheduled_task_purges(open_case, manager, settings):
    settings.EVENT_RETENTION_DAYS = 7
    expired = left()
    _age(8)
    services.case_put_on_hold(case_id=open_case.pk, actor=act(manager), reason="Later")
    recent = left() - expired

    outcome = purge_events.apply()

    assert outcome.successful()
    assert outcome.result["events"] == len(expired)
    assert left() == recent


def _key(key: str, age: timedelta) -> IdempotencyKey:
    return IdempotencyKey.objects.create(
        owner="token:1",
        key=key,
        fingerprint="f" * 64,
        response_status=201,
        response_body="{}",
        created_at=timezone.now() - age,
    )


def test_idempotency_responses_older_than_their_ttl_are_dropped(db, settings):
    settings.IDEMPOTENCY_KEY_TTL_HOURS = 24
    _key("stale", timedelta(hours=25))
    _key("fresh", timedelta(hours=23))

    result = purge_expired_events()

    assert result["idempotency_keys"] == 1
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["fresh"]


def test_a_ttl_of_zero_keeps_idempotency_responses(db, settings):
    settings.IDEMPOTENCY_KEY_TTL_HOURS = 0
    _key("ancient", timedelta(days=400))

    assert purge_expired_events()["idempotency_keys"] == 0
    assert IdempotencyKey.objects.filter(key="ancient").exists()


@pytest.mark.django_db(transaction=True)
def test_with_the_real_relay_only_what_it_has_passed_and_delivered_goes(
    human_playbook, make_account, system, monkeypatch
):
    from api import webhooks

    monkeypatch.setattr(webhooks, "queue_sends", lambda ids, **kw: None)  # no broker
    webhook, _ = webhook_subscribe(url="https://crm.example.com/hook", event_names=["*"])
    first = services.case_open(account=make_account(), playbook=human_playbook, actor=system)
    webhooks.relay()  # cuts a delivery per event of `first` and moves past them
    passed = ids(first)
    assert set(WebhookDelivery.objects.values_list("event_id", flat=True)) >= passed
    WebhookDelivery.objects.update(status=WebhookDelivery.Status.DELIVERED)
    later = services.case_open(account=make_account(), playbook=human_playbook, actor=system)

    purge_expired_events(now=a_window_after(timezone.now()))

    assert left().isdisjoint(passed)
    assert ids(later) and ids(later) <= left()  # recorded long ago too, but not relayed yet
    webhook.refresh_from_db()
    assert webhook.is_active

"""Webhooks: signed deliveries cut from the no-skip event stream, retried with backoff,
at least once, disabled after repeated failures, redelivered by hand.

The receiver is a real HTTP server on loopback. Celery is the outside world here: the
queue is recorded and the test plays the worker, calling the task the way a worker
would, at the time it would (tests/api/test_webhooks_worker.py runs a real one).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from analytics.models import Event
from api import tasks, webhooks
from api.models import WebhookAttempt, WebhookDelivery, WebhookSubscription
from onboarding import clock
from tests.api.test_event_export import JOIN_TIMEOUT, Writer, write_event

pytestmark = pytest.mark.django_db(transaction=True)

Status = WebhookDelivery.Status


class Receiver:
    """An HTTP endpoint answering each POST with the next scripted status (then 200)."""

    def __init__(self) -> None:
        self.script: list[int] = []
        self.default = 200
        self.requests: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = receiver.script.pop(0) if receiver.script else receiver.default
                receiver.requests.append(
                    {"headers": dict(self.headers), "body": body, "status": status}
                )
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"thanks" if status < 300 else b"something broke")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/hooks/onboarding"

    def delivered_events(self) -> list[int]:
        return [json.loads(r["body"])["event"]["id"] for r in self.requests if r["status"] < 300]


@pytest.fixture
def receiver(settings) -> Iterator[Receiver]:
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True  # it listens on loopback
    receiver = Receiver()
    receiver.thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


class Queue:
    """Celery as the relay and deliveries see it: the sends they queue, with their ETAs.

    `work_one` runs the next send as a worker would, at its ETA on the project clock.
    """

    def __init__(self) -> None:
        self.sent: list[tuple[int, datetime]] = []

    def apply_async(self, args: tuple[int], countdown: float | None = None, **kw: Any) -> None:
        self.sent.append((args[0], clock.now() + timedelta(seconds=countdown or 0)))

    def work_one(self) -> str:
        pk, eta = self.sent.pop(0)
        with clock.travel_to(max(eta, clock.now())):
            return tasks.webhook_deliver(pk)

    def work(self) -> list[str]:
        """Run every queued send, and the retries they queue, until none is left."""
        results = []
        while self.sent:
            results.append(self.work_one())
        return results


@pytest.fixture
def celery(monkeypatch) -> Queue:
    queue = Queue()
    monkeypatch.setattr(tasks.webhook_deliver, "apply_async", queue.apply_async)
    return queue


@pytest.fixture
def subscribe(receiver: Receiver):
    def build(*names: str) -> tuple[WebhookSubscription, str]:
        return webhooks.webhook_subscribe(url=receiver.url, event_names=names or ["*"])

    return build


def later(seconds: float):
    return clock.travel_to(clock.now() + timedelta(seconds=seconds))


def test_a_delivery_is_signed_with_the_webhook_secret_and_verifies_only_with_it(
    receiver, subscribe, celery
):
    webhook, secret = subscribe()
    event = write_event("signed")

    assert webhooks.relay().deliveries == 1
    assert celery.work() == ["delivered"]

    (request,) = receiver.requests
    headers, body = request["headers"], request["body"]
    delivery = WebhookDelivery.objects.get()
    assert headers["Onboarding-Delivery"] == str(delivery.delivery_id)
    assert headers["Onboarding-Event"] == "Account Created"
    assert headers["Content-Type"] == "application/json"
    timestamp, _, signature = headers["Onboarding-Signature"].partition(",")
    assert timestamp.startswith("t=") and signature.startswith("v1=")
    assert webhooks.verify(secret, headers["Onboarding-Signature"], body)
    assert not webhooks.verify(
        WebhookSubscription.new_secret(), headers["Onboarding-Signature"], body
    )
    assert not webhooks.verify(secret, headers["Onboarding-Signature"], body + b" ")
    stale = int(timestamp[2:]) + webhooks.SIGNATURE_TOLERANCE_SECONDS + 1
    assert not webhooks.verify(secret, headers["Onboarding-Signature"], body, now=stale)
    payload = json.loads(body)
    assert payload["delivery_id"] == str(delivery.delivery_id)
    assert payload["webhook_id"] == webhook.pk
    assert payload["event"]["id"] == event.pk
    assert payload["event"]["properties"] == {"external_id": "signed"}
    assert delivery.status == Status.DELIVERED and delivery.attempts == 1
    assert delivery.response_status == 200 and delivery.response_excerpt == "thanks"


def test_a_receiver_returning_500_is_retried_with_backoff_then_succeeds(
    receiver, subscribe, celery, settings
):
    settings.WEBHOOK_RETRY_BASE_SECONDS = 10
    webhook, _ = subscribe()
    write_event("retried")
    receiver.script = [500, 500, 503]
    webhooks.relay()

    for attempt in range(1, 4):
        assert celery.work_one().startswith("retry in")
        delivery = WebhookDelivery.objects.get()
        assert delivery.status == Status.PENDING and delivery.attempts == attempt
        ceiling = 10 * 2 ** (attempt - 1)  # exponential, jittered within its upper half
        delay = (delivery.next_attempt_at - delivery.last_attempt_at).total_seconds()
        assert ceiling / 2 <= delay <= ceiling + 1
        assert tasks.webhook_deliver(delivery.pk) == "not due"  # early: nothing is sent
        assert len(receiver.requests) == attempt
    assert celery.work() == ["delivered"]

    delivery = WebhookDelivery.objects.get()
    assert delivery.status == Status.DELIVERED and delivery.attempts == 4
    assert [r["status"] for r in receiver.requests] == [500, 500, 503, 200]
    assert len({r["headers"]["Onboarding-Delivery"] for r in receiver.requests}) == 1
    log = list(delivery.log.order_by("number"))
    assert [a.response_status for a in log] == [500, 500, 503, 200]
    gaps = [(b.attempted_at - a.attempted_at).total_seconds() for a, b in pairwise(log)]
    assert 5 <= gaps[0] <= 11 and 10 <= gaps[1] <= 21 and 20 <= gaps[2] <= 41
    webhook.refresh_from_db()
    assert webhook.consecutive_failures == 0 and webhook.is_active


def test_after_n_failures_in_a_row_the_webhook_is_disabled_and_catches_up_when_enabled(
    receiver, subscribe, celery, settings
):
    settings.WEBHOOK_DISABLE_AFTER_FAILURES = 3
    webhook, _ = subscribe()
    receiver.default = 500
    for n in range(3):
        write_event(f"failing {n}")
    webhooks.relay()

    # Three deliveries fail once each; the third failure disables the webhook, so the
    # retries the first two queued find it disabled and send nothing.
    assert [r.split(" in ")[0] for r in celery.work()] == ["retry"] * 3 + ["not due"] * 2

    webhook.refresh_from_db()
    assert not webhook.is_active
    assert webhook.consecutive_failures == 3
    assert webhook.disabled_at is not None
    assert "3 failed attempts in a row (last: HTTP 500)" in webhook.disabled_reason
    assert len(receiver.requests) == 3
    # Disabled: no new deliveries are cut, pending ones are not sent.
    write_event("while disabled")
    assert webhooks.relay().deliveries == 0
    with later(3600):
        assert {tasks.webhook_deliver(d.pk) for d in WebhookDelivery.objects.all()} == {"not due"}
    assert len(receiver.requests) == 3

    receiver.default = 200
    webhooks.webhook_enable(webhook.pk)
    assert celery.work() == ["delivered"] * 3  # its pending deliveries are due at once
    webhooks.relay()  # and the events recorded meanwhile are cut now
    assert celery.work() == ["delivered"]

    assert sorted(receiver.delivered_events()) == sorted(Event.objects.values_list("id", flat=True))
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {Status.DELIVERED}


def test_a_success_resets_the_count_of_failures_in_a_row(receiver, subscribe, celery, settings):
    settings.WEBHOOK_DISABLE_AFTER_FAILURES = 3
    webhook, _ = subscribe()
    receiver.script = [500, 500, 200, 500, 500]
    for n in range(5):
        write_event(f"event {n}")
    webhooks.relay()

    for _ in range(5):
        celery.work_one()

    webhook.refresh_from_db()
    assert webhook.is_active and webhook.consecutive_failures == 2
    assert celery.work() == ["delivered"] * 4  # the retries
    webhook.refresh_from_db()
    assert webhook.consecutive_failures == 0


def test_a_delivery_is_given_up_after_the_maximum_attempts(receiver, subscribe, celery, settings):
    settings.WEBHOOK_MAX_ATTEMPTS = 2
    subscribe()
    receiver.default = 500
    write_event("doomed")
    webhooks.relay()

    assert [r.split(" in ")[0] for r in celery.work()] == ["retry", "failed"]

    delivery = WebhookDelivery.objects.get()
    assert delivery.status == Status.FAILED and delivery.attempts == 2
    assert delivery.next_attempt_at is None
    assert len(receiver.requests) == 2


def test_nothing_is_lost_with_writers_committing_out_of_order_a_crashed_relay_and_a_dead_send(
    receiver, subscribe, celery, monkeypatch
):
    subscribe()

    def slow(writer: Writer) -> None:  # the lower id, committed last
        writer.events.append(write_event("slow"))
        writer.hold()

    slow_writer = Writer(slow)
    slow_writer.start()
    assert slow_writer.wrote.wait(JOIN_TIMEOUT)
    quick = write_event("quick")
    assert slow_writer.events[0].pk < quick.pk
    assert webhooks.relay().deliveries == 0  # `quick` waits: an older writer may commit

    # A relay that dies before committing stores nothing and moves nothing.
    slow_writer.finish()

    def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("relay killed")

    with monkeypatch.context() as patch:
        patch.setattr(WebhookDelivery.objects, "bulk_create", crash)
        with pytest.raises(RuntimeError):
            webhooks.relay()
    assert WebhookDelivery.objects.count() == 0 and celery.sent == []

    assert webhooks.relay().deliveries == 2
    # A send that dies mid-request (worker killed): its attempt stays claimed.
    first_pk, _ = celery.sent.pop(0)
    with monkeypatch.context() as patch:
        patch.setattr(webhooks, "post", crash)
        with pytest.raises(RuntimeError):
            tasks.webhook_deliver(first_pk)
    celery.work()
    assert len(receiver.requests) == 1

    # After its lease and the redispatch delay, the relay queues it again.
    with later(webhooks.settings.WEBHOOK_TIMEOUT_SECONDS + 31 + 60):
        assert webhooks.relay().redispatched == 1
        assert webhooks.relay().redispatched == 0  # queued once per redispatch delay
        celery.work()

    committed = sorted(Event.objects.values_list("id", flat=True))
    assert sorted(receiver.delivered_events()) == committed
    assert sorted(WebhookDelivery.objects.values_list("event_id", flat=True)) == committed
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {Status.DELIVERED}
    assert WebhookDelivery.objects.get(pk=first_pk).attempts == 2


def test_a_webhook_receives_only_the_events_it_subscribed_to_from_its_creation_on(
    receiver, subscribe, celery
):
    write_event("before subscribing")
    cases_only, _ = subscribe("Case Opened")
    accounts, _ = subscribe("Account Created", "Case Opened")
    everything, _ = subscribe("*")
    event = write_event("after")

    webhooks.relay()
    celery.work()

    received = [
        (json.loads(r["body"])["webhook_id"], json.loads(r["body"])["event"]["id"])
        for r in receiver.requests
    ]
    assert sorted(received) == sorted([(accounts.pk, event.pk), (everything.pk, event.pk)])
    assert not WebhookDelivery.objects.filter(subscription=cases_only).exists()


def test_a_manager_redelivers_from_the_admin_with_the_same_delivery_id(
    receiver, subscribe, celery, manager
):
    subscribe()
    write_event("again")
    webhooks.relay()
    celery.work()
    delivery = WebhookDelivery.objects.get()
    browser = Client()
    browser.force_login(manager)

    page = browser.get(reverse("admin:api_webhookdelivery_change", args=[delivery.pk]))
    assert page.status_code == 200 and b"Redeliver" in page.content
    browser.post(
        reverse("admin:api_webhookdelivery_redeliver", args=[delivery.pk]),
        {"_form_submitted": "on"},
    )
    assert celery.work() == ["delivered"]

    assert len(receiver.requests) == 2
    assert {r["headers"]["Onboarding-Delivery"] for r in receiver.requests} == {
        str(delivery.delivery_id)
    }
    delivery.refresh_from_db()
    assert delivery.status == Status.DELIVERED and delivery.redeliveries == 1
    assert WebhookAttempt.objects.filter(delivery=delivery).count() == 2


def test_redelivering_to_a_disabled_webhook_is_refused(receiver, subscribe, celery):
    webhook, _ = subscribe()
    write_event("x")
    webhooks.relay()
    celery.work()
    webhooks.webhook_disable(webhook.pk, "by hand")

    with pytest.raises(webhooks.Conflict):
        webhooks.redeliver(WebhookDelivery.objects.get().pk)


def test_a_deleted_webhook_is_sent_nothing_more(receiver, subscribe, celery):
    webhook, _ = subscribe()
    write_event("queued, then the webhook goes")
    webhooks.relay()

    webhook.delete()

    assert celery.work() == ["not due"]
    assert receiver.requests == [] and not WebhookDelivery.objects.exists()

"""Webhooks through a real Celery worker (subprocess) on Redis: sends are queued after
the relay commits, a receiver's 500s are retried with backoff by the worker (countdown),
and every event arrives, signed."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import redis
from django.conf import settings

from analytics.models import Event
from api import webhooks
from api.models import WebhookDelivery
from tests.api.test_event_export import write_event
from tests.api.test_webhooks import Receiver
from tests.integration.test_worker import Worker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def receiver(settings) -> Iterator[Receiver]:
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True  # it listens on loopback
    receiver = Receiver()
    receiver.thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


@pytest.fixture
def worker(tmp_path, monkeypatch) -> Iterator[Worker]:
    url = settings.CELERY_BROKER_URL
    if not url.startswith("redis://"):
        pytest.fail("The worker tests need Redis: set CELERY_BROKER_URL=redis://…")
    redis.Redis.from_url(url).flushdb()
    monkeypatch.setenv("WEBHOOK_RETRY_BASE_SECONDS", "1")
    monkeypatch.setenv("WEBHOOK_RETRY_MAX_SECONDS", "2")
    monkeypatch.setenv("WEBHOOK_ALLOW_PRIVATE_TARGETS", "1")  # the receiver is on loopback
    w = Worker(url, tmp_path / "worker.log")
    w.start()
    yield w
    w.stop()
    print((tmp_path / "worker.log").read_text()[-4000:])  # shown when a test fails


def test_a_real_worker_delivers_every_event_signed_retrying_a_failing_receiver(worker, receiver):
    _, secret = webhooks.webhook_subscribe(url=receiver.url, event_names=["*"])
    receiver.script = [500, 502]
    events = [write_event(f"worker {n}") for n in range(3)]

    assert webhooks.relay().deliveries == 3  # sends are queued on Redis after commit

    def all_delivered() -> bool:
        return WebhookDelivery.objects.filter(status="delivered").count() == 3

    wait_for(all_delivered, timeout=90)
    assert sorted(receiver.delivered_events()) == [e.pk for e in events]
    assert [r["status"] for r in receiver.requests].count(200) == 3
    assert len(receiver.requests) == 5  # two failed attempts were retried
    for request in receiver.requests:
        assert webhooks.verify(secret, request["headers"]["Onboarding-Signature"], request["body"])
        body = json.loads(request["body"])
        assert request["headers"]["Onboarding-Delivery"] == body["delivery_id"]
    retried = WebhookDelivery.objects.filter(attempts__gt=1)
    assert sum(d.attempts for d in WebhookDelivery.objects.all()) == 5
    assert retried.exists()
    assert Event.objects.count() == 3

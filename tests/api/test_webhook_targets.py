"""Webhook targets: a token holder must not be able to make this server POST to the
network it runs in (cloud metadata, databases, admin ports). Internal addresses are
refused when subscribing, and each send checks the address it really connected to."""

from __future__ import annotations

import pytest
from django.urls import reverse

from api import webhooks
from api.models import WebhookDelivery, WebhookSubscription
from tests.api.test_event_export import write_event
from tests.api.test_webhooks import Receiver, celery, receiver  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.9",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "fd00::1",
        "fe80::1%eth0",
        "::ffff:127.0.0.1",  # IPv4-mapped loopback
    ],
)
def test_internal_addresses_are_not_public(address):
    assert not webhooks.address_is_public(address)


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:4700:4700::1111"])
def test_internet_addresses_are_public(address):
    assert webhooks.address_is_public(address)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hooks",
        "http://localhost/hooks",
        "http://api.localhost/hooks",
        "https://10.0.0.5/hooks",
        "http://[::1]/hooks",
        "http://169.254.169.254/latest/meta-data/",
    ],
)
def test_subscribing_to_an_internal_address_is_refused_and_creates_nothing(url, client_with):
    response = client_with("webhooks:manage").post(
        "/api/v1/webhooks/", {"url": url, "events": ["*"]}, format="json"
    )

    assert response.status_code == 422, response.content
    assert [e["field"] for e in response.json()["errors"]] == ["url"]
    assert not WebhookSubscription.objects.exists()


def test_the_admin_form_refuses_an_internal_address_with_a_message(admin_client):
    response = admin_client.post(
        reverse("admin:api_webhooksubscription_add"),
        {"url": "http://192.168.0.10/hook", "event_names": ["*"], "description": ""},
    )

    assert response.status_code == 200
    assert "cannot be sent to loopback, private or link-local" in response.content.decode()
    assert not WebhookSubscription.objects.exists()


def test_a_host_name_is_accepted_when_subscribing_and_judged_when_sending():
    webhook, _ = webhooks.webhook_subscribe(url="https://crm.example.com/hooks", event_names=["*"])
    assert webhook.url == "https://crm.example.com/hooks"


@pytest.mark.django_db(transaction=True)  # the relay serves only committed events
def test_a_name_that_resolves_to_loopback_is_not_sent_to(receiver, celery, settings):  # noqa: F811
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    # "localhost" would be refused when subscribing; a stored URL whose name resolves
    # to loopback at send time (DNS changed, or rebinding) is what the send must stop.
    webhook = WebhookSubscription.objects.create(
        url=receiver.url.replace("127.0.0.1", "localhost"),
        event_names=["*"],
        secret=WebhookSubscription.new_secret(),
    )
    write_event("internal")

    assert webhooks.relay().deliveries == 1
    celery.work_one()

    assert receiver.requests == []  # nothing reached the listener
    delivery = WebhookDelivery.objects.get(subscription=webhook)
    assert delivery.status == WebhookDelivery.Status.PENDING  # failed attempt, retried later
    assert "non-public address 127.0.0.1" in delivery.log.get().error


@pytest.mark.django_db(transaction=True)
def test_private_targets_can_be_allowed_for_on_premises_receivers(receiver, celery, settings):  # noqa: F811
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    webhooks.webhook_subscribe(url=receiver.url, event_names=["*"])
    event = write_event("allowed")

    webhooks.relay()
    assert celery.work() == ["delivered"]
    assert receiver.delivered_events() == [event.pk]

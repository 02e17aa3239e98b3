"""Managing webhooks over the API and in the admin: the secret is shown once, bad input
is a 422 that creates nothing, only managers (or tokens with the scope) manage them."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from analytics.models import Event, StreamPosition, stream_horizon
from analytics.recording import record
from api import webhooks
from api.models import WebhookDelivery, WebhookSubscription

pytestmark = pytest.mark.django_db

HOOK = "https://crm.example.com/hooks/onboarding"


@pytest.fixture
def manager_client(client_with):
    return client_with("webhooks:manage")


def test_creating_a_webhook_shows_its_secret_once(manager_client):
    response = manager_client.post(
        "/api/v1/webhooks/",
        {"url": HOOK, "events": ["Case Opened", "Case Completed"], "description": "CRM"},
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    webhook = WebhookSubscription.objects.get()
    assert response["Location"] == f"/api/v1/webhooks/{webhook.pk}"
    assert body["secret"] == webhook.secret and body["secret"].startswith("whsec_")
    assert body["events"] == ["Case Completed", "Case Opened"]
    assert body["is_active"] is True
    assert webhook.created_by_token == manager_client.token
    for path in ("/api/v1/webhooks/", f"/api/v1/webhooks/{webhook.pk}"):
        assert webhook.secret not in manager_client.get(path).content.decode()


def test_a_new_webhook_starts_after_every_event_already_recorded(manager_client, open_case):
    response = manager_client.post(
        "/api/v1/webhooks/", {"url": HOOK, "events": ["*"]}, format="json"
    )

    webhook = WebhookSubscription.objects.get(pk=response.json()["id"])
    # Inside this test's transaction nothing is final yet; either way, nothing recorded
    # before the webhook existed is after its position.
    assert Event.objects.exists()
    position = StreamPosition(webhook.stream_xact, webhook.stream_event_id)
    assert not Event.objects.stream_after(position, stream_horizon()).exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://example.com/x", "events": ["*"]}, "url"),
        ({"url": "not a url", "events": ["*"]}, "url"),
        ({"url": HOOK, "events": []}, "events"),
        ({"url": HOOK, "events": ["No Such Event"]}, "events.0"),
        ({"url": HOOK}, "events"),
    ],
)
def test_bad_input_is_422_and_creates_nothing(manager_client, body, field):
    response = manager_client.post("/api/v1/webhooks/", body, format="json")

    assert response.status_code == 422
    assert field in [e["field"] for e in response.json()["errors"]]
    assert not WebhookSubscription.objects.exists()


def test_star_with_names_means_every_event(manager_client):
    response = manager_client.post(
        "/api/v1/webhooks/", {"url": HOOK, "events": ["Case Opened", "*"]}, format="json"
    )

    assert response.json()["events"] == ["*"]


def test_deleting_a_webhook_removes_it_and_its_deliveries(manager_client):
    webhook, _ = webhooks.webhook_subscribe(url=HOOK, event_names=["*"])

    assert manager_client.delete(f"/api/v1/webhooks/{webhook.pk}").status_code == 204

    assert not WebhookSubscription.objects.exists()
    assert manager_client.get(f"/api/v1/webhooks/{webhook.pk}").status_code == 404
    assert manager_client.delete(f"/api/v1/webhooks/{webhook.pk}").status_code == 404


def test_the_delivery_log_lists_a_webhooks_deliveries_with_a_status_filter(manager_client, system):
    webhook, _ = webhooks.webhook_subscribe(url=HOOK, event_names=["*"])
    other, _ = webhooks.webhook_subscribe(url=HOOK + "/2", event_names=["*"])
    events = [
        record("Account Created", actor=system, properties={"external_id": f"a{n}"})
        for n in range(3)
    ]
    for event, status in zip(events, ["pending", "delivered", "failed"], strict=True):
        WebhookDelivery.objects.create(
            subscription=webhook, event=event, event_name=event.name, status=status
        )
    WebhookDelivery.objects.create(subscription=other, event=events[0], event_name="x")

    listed = manager_client.get(f"/api/v1/webhooks/{webhook.pk}/deliveries").json()
    failed = manager_client.get(
        f"/api/v1/webhooks/{webhook.pk}/deliveries", {"status": "failed"}
    ).json()

    assert [d["event_id"] for d in listed["results"]] == [e.pk for e in reversed(events)]
    assert [d["status"] for d in failed["results"]] == ["failed"]
    assert set(listed["results"][0]) >= {"delivery_id", "attempts", "response_status"}


def test_an_agent_session_may_not_manage_webhooks_and_a_manager_session_may(
    signed_in, agent_a, manager
):
    refused = signed_in(agent_a).get("/api/v1/webhooks/")
    allowed = signed_in(manager).post(
        "/api/v1/webhooks/", {"url": HOOK, "events": ["*"]}, format="json"
    )

    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    assert allowed.status_code == 201
    assert WebhookSubscription.objects.get().created_by == manager


# --- admin ----------------------------------------------------------------------------


def test_a_manager_adds_a_webhook_in_the_admin_and_sees_its_secret_once(manager):
    browser = Client()
    browser.force_login(manager)

    response = browser.post(
        reverse("admin:api_webhooksubscription_add"),
        {"url": HOOK, "event_names": ["Case Opened"], "description": "CRM"},
        follow=True,
    )

    webhook = WebhookSubscription.objects.get()
    assert webhook.created_by == manager and webhook.event_names == ["Case Opened"]
    assert webhook.secret in response.content.decode()
    page = browser.get(reverse("admin:api_webhooksubscription_change", args=[webhook.pk]))
    assert page.status_code == 200 and webhook.secret not in page.content.decode()
    listing = browser.get(reverse("admin:api_webhooksubscription_changelist"))
    assert listing.status_code == 200 and HOOK in listing.content.decode()


def test_a_manager_disables_and_enables_a_webhook_in_the_admin(manager):
    webhook, _ = webhooks.webhook_subscribe(url=HOOK, event_names=["*"])
    browser = Client()
    browser.force_login(manager)

    browser.post(
        reverse("admin:api_webhooksubscription_disable", args=[webhook.pk]),
        {"_form_submitted": "on"},
    )
    webhook.refresh_from_db()
    assert not webhook.is_active and webhook.disabled_reason == "Disabled by manager."
    page = browser.get(reverse("admin:api_webhooksubscription_change", args=[webhook.pk]))
    assert "Disabled by manager." in page.content.decode()

    browser.post(
        reverse("admin:api_webhooksubscription_enable", args=[webhook.pk]),
        {"_form_submitted": "on"},
    )
    webhook.refresh_from_db()
    assert webhook.is_active and webhook.disabled_at is None


def test_the_delivery_log_pages_render_for_managers_only(manager, agent_a, system):
    webhook, _ = webhooks.webhook_subscribe(url=HOOK, event_names=["*"])
    event = record("Account Created", actor=system, properties={"external_id": "a"})
    delivery = WebhookDelivery.objects.create(
        subscription=webhook, event=event, event_name=event.name
    )
    browser, agent = Client(), Client()
    browser.force_login(manager)
    agent.force_login(agent_a)

    for url in (
        reverse("admin:api_webhookdelivery_changelist"),
        reverse("admin:api_webhookdelivery_change", args=[delivery.pk]),
        reverse("admin:api_webhooksubscription_change", args=[webhook.pk]),
    ):
        assert browser.get(url).status_code == 200, url
        assert agent.get(url).status_code == 403, url
    assert (
        str(delivery.delivery_id)
        in browser.get(
            reverse("admin:api_webhooksubscription_change", args=[webhook.pk])
        ).content.decode()
    )

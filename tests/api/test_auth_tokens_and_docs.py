"""Tokens (stored hashed, shown once, revocable, expiring), sessions for staff,
per-token throttling with Retry-After, the token admin, and the docs page."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from api.models import SCOPES, ApiToken

pytestmark = pytest.mark.django_db


def _bearer(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


# --- tokens ---------------------------------------------------------------------------


def test_only_the_hash_of_the_secret_is_stored(issue_token):
    token, secret = issue_token("cases:read")

    stored = ApiToken.objects.filter(pk=token.pk).values().get()
    assert secret not in {str(v) for v in stored.values()}
    assert stored["secret_hash"] == hashlib.sha256(secret.encode()).hexdigest()
    assert secret.startswith(stored["prefix"]) and len(stored["prefix"]) == 12


def test_a_request_records_when_the_token_was_last_used(issue_token):
    token, secret = issue_token("cases:read")

    assert _bearer(secret).get("/api/v1/cases/").status_code == 200

    token.refresh_from_db()
    assert token.last_used_at is not None


@pytest.mark.parametrize(
    ("header", "why"),
    [
        ("Bearer obk_not-a-real-token", "unknown"),
        ("Bearer ", "empty"),
        ("Bearer two words", "malformed"),
    ],
)
def test_a_bad_token_is_401(header, why):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)

    response = client.get("/api/v1/cases/")

    assert response.status_code == 401, why
    assert response.json()["code"] == "authentication_failed"
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_a_revoked_token_is_401(issue_token):
    token, secret = issue_token("cases:read")
    ApiToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now())

    assert _bearer(secret).get("/api/v1/cases/").status_code == 401


def test_an_expired_token_is_401_and_one_not_yet_expired_works(issue_token):
    _, expired = issue_token("cases:read", expires_at=timezone.now() - timedelta(seconds=1))
    _, valid = issue_token("cases:read", expires_at=timezone.now() + timedelta(days=1))

    assert _bearer(expired).get("/api/v1/cases/").status_code == 401
    assert _bearer(valid).get("/api/v1/cases/").status_code == 200


# --- sessions ---------------------------------------------------------------------------


def test_a_signed_in_manager_uses_the_api_under_their_own_name(signed_in, manager, open_case):
    response = signed_in(manager).post(
        f"/api/v1/cases/{open_case.pk}/transitions/put_on_hold", {"reason": "r"}, format="json"
    )

    assert response.status_code == 200
    from analytics.models import Event

    event = Event.objects.get(name="Case Put On Hold")
    assert (event.actor_type, event.actor_id, event.source) == ("agent", str(manager.pk), "api")


def test_a_signed_in_agent_is_held_to_their_role_not_to_scopes(signed_in, agent_a, open_case):
    client = signed_in(agent_a)

    assert client.get(f"/api/v1/cases/{open_case.pk}").status_code == 200  # their queue
    refused = client.post(
        f"/api/v1/cases/{open_case.pk}/transitions/put_on_hold", {"reason": "r"}, format="json"
    )
    assert refused.status_code == 403
    assert refused.json()["code"] == "forbidden"


def test_an_agent_does_not_see_cases_outside_their_queues(signed_in, outsider, open_case):
    client = signed_in(outsider)

    assert client.get(f"/api/v1/cases/{open_case.pk}").status_code == 404
    assert client.get("/api/v1/cases/").json()["results"] == []


def test_a_session_needs_a_staff_user(signed_in, django_user_model):
    customer = django_user_model.objects.create_user("customer", is_staff=False)

    response = signed_in(customer).get("/api/v1/cases/")

    assert response.status_code == 403


def test_session_writes_need_the_csrf_token(manager, open_case):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(manager)

    response = client.post(f"/api/v1/cases/{open_case.pk}/notes", {"body": "x"}, format="json")

    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]


# --- throttling -------------------------------------------------------------------------


def test_a_token_over_its_rate_gets_429_with_retry_after(client_with):
    client = client_with("cases:read", throttle_rate="2/min")

    assert [client.get("/api/v1/cases/").status_code for _ in range(2)] == [200, 200]
    throttled = client.get("/api/v1/cases/")

    assert throttled.status_code == 429
    assert throttled["Content-Type"] == "application/problem+json"
    assert throttled.json()["code"] == "throttled"
    assert 1 <= int(throttled["Retry-After"]) <= 60


def test_each_token_has_its_own_bucket(client_with):
    first = client_with("cases:read", throttle_rate="1/min")
    second = client_with("cases:read", throttle_rate="1/min")

    assert first.get("/api/v1/cases/").status_code == 200
    assert first.get("/api/v1/cases/").status_code == 429
    assert second.get("/api/v1/cases/").status_code == 200


def test_the_default_rate_comes_from_settings(client_with, settings):
    settings.API_TOKEN_THROTTLE_RATE = "1/hour"
    client = client_with("cases:read")

    assert client.get("/api/v1/cases/").status_code == 200
    assert client.get("/api/v1/cases/").status_code == 429


# --- the token admin --------------------------------------------------------------------


def test_a_manager_creates_a_token_and_sees_its_secret_once(manager):
    browser = Client()
    browser.force_login(manager)

    response = browser.post(
        reverse("admin:api_apitoken_add"),
        {"name": "CRM sync", "scopes": ["accounts:write", "cases:write"], "throttle_rate": ""},
        follow=True,
    )

    assert response.status_code == 200
    shown = [str(m) for m in get_messages(response.wsgi_request)]
    shown += re.findall(r"obk_[A-Za-z0-9_-]+", response.content.decode())
    secrets = {s for s in re.findall(r"obk_[A-Za-z0-9_-]{20,}", " ".join(shown))}
    assert len(secrets) == 1
    secret = secrets.pop()
    token = ApiToken.objects.get()
    assert token.scopes == ["accounts:write", "cases:write"]
    assert token.created_by == manager
    assert token.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    # The change page never shows it again.
    page = browser.get(reverse("admin:api_apitoken_change", args=[token.pk])).content.decode()
    assert secret not in page and token.prefix in page


def test_the_admin_token_form_offers_every_scope_the_api_checks(manager):
    schema = Client().get("/api/schema/", HTTP_ACCEPT="application/json").json()
    checked = {
        operation["x-required-scope"]
        for path in schema["paths"].values()
        for operation in path.values()
        if "x-required-scope" in operation
    }
    browser = Client()
    browser.force_login(manager)
    page = browser.get(reverse("admin:api_apitoken_add")).content.decode()

    offered = set(re.findall(r'name="scopes" value="([a-z]+:[a-z]+)"', page))
    assert offered == set(SCOPES)
    assert "reports:read" in checked
    assert checked <= offered


def test_a_manager_revokes_a_token(manager, issue_token):
    token, secret = issue_token("cases:read")
    browser = Client()
    browser.force_login(manager)

    browser.post(reverse("admin:api_apitoken_revoke", args=[token.pk]), {"_form_submitted": "on"})

    token.refresh_from_db()
    assert token.revoked_at is not None
    assert _bearer(secret).get("/api/v1/cases/").status_code == 401


def test_agents_cannot_see_tokens(agent_a, issue_token):
    issue_token("cases:read")
    browser = Client()
    browser.force_login(agent_a)

    assert browser.get(reverse("admin:api_apitoken_changelist")).status_code == 403


def test_a_bad_rate_is_refused_in_the_admin(manager):
    browser = Client()
    browser.force_login(manager)

    response = browser.post(
        reverse("admin:api_apitoken_add"),
        {"name": "x", "scopes": ["cases:read"], "throttle_rate": "lots"},
    )

    assert response.status_code == 200  # the form again, with the error
    assert not ApiToken.objects.exists()


# --- schema and docs ---------------------------------------------------------------------


def test_the_schema_is_openapi_3_and_public(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")

    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert "bearerToken" in schema["components"]["securitySchemes"]
    operation = schema["paths"]["/api/v1/cases/{case_id}"]["get"]
    assert operation["x-required-scope"] == "cases:read"
    assert "application/problem+json" in operation["responses"]["404"]["content"]


def test_the_docs_page_renders_from_our_own_static_files(client):
    response = client.get("/api/docs/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "swagger-ui" in page
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert any("drf_spectacular_sidecar/swagger-ui-dist" in a for a in assets)
    assert not [a for a in assets if a.startswith(("http://", "https://", "//"))]

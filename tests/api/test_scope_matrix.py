"""Every endpoint, crossed with {no token, a token lacking the scope, a token with only that scope}.

One table drives all three: 401 with a Bearer challenge, 403 naming the missing scope,
and the endpoint's success status. Refused requests change nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from rest_framework.test import APIClient

from analytics.models import Event
from api.models import WebhookSubscription
from api.webhooks import webhook_subscribe
from onboarding import services
from onboarding.models import Case, Signal
from tests.api.conftest import ALL_SCOPES
from tests.conftest import act, task_of

pytestmark = pytest.mark.django_db


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # formatted with the world below
    scope: str
    ok: int
    body: dict[str, Any] | None = None
    # A token with the right scope passes the gate; the domain may still refuse the
    # caller (claim-next: an integration is no queue member). Then `ok` is that status.
    refused_code: str | None = None


ENDPOINTS = [
    Endpoint("GET", "/api/v1/accounts/", "accounts:read", 200),
    Endpoint("GET", "/api/v1/accounts/{account}", "accounts:read", 200),
    Endpoint("PUT", "/api/v1/accounts/{account}", "accounts:write", 200, {"plan": "scale"}),
    Endpoint("GET", "/api/v1/cases/", "cases:read", 200),
    Endpoint(
        "POST",
        "/api/v1/cases/",
        "cases:write",
        201,
        {"account_external_id": "{new_account}", "playbook": "human"},
    ),
    Endpoint("GET", "/api/v1/cases/{case}", "cases:read", 200),
    Endpoint("POST", "/api/v1/cases/{case}/notes", "cases:write", 201, {"body": "Called them"}),
    Endpoint(
        "POST",
        "/api/v1/cases/{case}/transitions/put_on_hold",
        "cases:write",
        200,
        {"reason": "Customer on holiday"},
    ),
    Endpoint("POST", "/api/v1/tasks/{waiting_task}/transitions/resume", "cases:write", 200, {}),
    Endpoint(
        "POST",
        "/api/v1/signals/",
        "signals:write",
        201,
        {"signal_id": "sig-1", "name": "Data Source Connected", "account_external_id": "{account}"},
    ),
    Endpoint(
        "POST",
        "/api/v1/signals/batch",
        "signals:write",
        200,
        {
            "signals": [
                {"signal_id": "sig-2", "name": "Invited", "account_external_id": "{account}"}
            ]
        },
    ),
    Endpoint("GET", "/api/v1/queues/", "queues:read", 200),
    Endpoint(
        "POST",
        "/api/v1/queues/{queue}/claim-next",
        "queues:claim",
        403,
        {},
        refused_code="forbidden",
    ),
    Endpoint("GET", "/api/v1/events/", "events:read", 200),
    Endpoint("GET", "/api/v1/events/catalog", "events:read", 200),
    Endpoint("GET", "/api/v1/reports/", "reports:read", 200),
    Endpoint("GET", "/api/v1/reports/{report}", "reports:read", 200),
    Endpoint("GET", "/api/v1/webhooks/", "webhooks:manage", 200),
    Endpoint(
        "POST",
        "/api/v1/webhooks/",
        "webhooks:manage",
        201,
        {"url": "https://crm.example.com/hooks/onboarding", "events": ["Case Completed"]},
    ),
    Endpoint("GET", "/api/v1/webhooks/{webhook}", "webhooks:manage", 200),
    Endpoint("DELETE", "/api/v1/webhooks/{webhook}", "webhooks:manage", 204),
    Endpoint("GET", "/api/v1/webhooks/{webhook}/deliveries", "webhooks:manage", 200),
]


@pytest.fixture
def world(open_case, agent_a, queue, make_account) -> dict[str, Any]:
    """A case whose kickoff waits on the customer, its account and queue."""
    kickoff = task_of(open_case, "kickoff")
    services.task_claim(task_id=kickoff.pk, actor=act(agent_a))
    services.task_wait_on_customer(task_id=kickoff.pk, actor=act(agent_a), reason="Logo")
    return {
        "case": open_case.pk,
        "account": open_case.account.external_id,
        "new_account": make_account().external_id,
        "waiting_task": kickoff.pk,
        "queue": queue.pk,
        "webhook": webhook_subscribe(url="https://example.com/hook", event_names=["*"])[0].pk,
        "report": "workload",
    }


def _fill(value: Any, world: dict[str, Any]) -> Any:
    if isinstance(value, str):
        return value.format(**world)
    if isinstance(value, dict):
        return {k: _fill(v, world) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, world) for v in value]
    return value


def _call(client: APIClient, endpoint: Endpoint, world: dict[str, Any]) -> Any:
    path = _fill(endpoint.path, world)
    body = _fill(endpoint.body, world)
    return getattr(client, endpoint.method.lower())(path, body, format="json")


def _state(world: dict[str, Any]) -> tuple[int, ...]:
    return (
        Event.objects.count(),
        Case.objects.count(),
        Signal.objects.count(),
        WebhookSubscription.objects.count(),
    )


ids = [f"{e.method} {e.path}" for e in ENDPOINTS]


def test_the_table_covers_every_documented_operation():
    from tests.api.test_schema_conformance import schema

    documented = {
        (op.method.upper(), op.path)
        for op in (result.ok() for result in schema.get_all_operations())
    }
    covered = {(e.method, e.path.format_map(_Braces())) for e in ENDPOINTS}
    transitions = {(m, p) for m, p in documented if "/transitions/" in p}
    # One transition of each machine stands for all: they share one view factory.
    assert documented - transitions <= covered
    assert any("/cases/" in p for _, p in transitions & covered)
    assert any("/tasks/" in p for _, p in transitions & covered)


class _Braces(dict):
    names = {
        "account": "external_id",
        "new_account": "external_id",
        "case": "case_id",
        "waiting_task": "task_id",
        "queue": "queue_id",
        "webhook": "webhook_id",
        "report": "key",
    }

    def __missing__(self, key: str) -> str:
        return "{" + self.names[key] + "}"


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=ids)
def test_without_a_token_the_answer_is_401_with_a_bearer_challenge(endpoint, world):
    before = _state(world)

    response = _call(APIClient(), endpoint, world)

    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["code"] == "not_authenticated"
    assert _state(world) == before


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=ids)
def test_a_token_without_the_scope_gets_403_naming_it(endpoint, world, client_with):
    client = client_with(*(s for s in ALL_SCOPES if s != endpoint.scope))
    before = _state(world)

    response = _call(client, endpoint, world)

    assert response.status_code == 403
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "insufficient_scope"
    assert body["required_scope"] == endpoint.scope
    assert _state(world) == before


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=ids)
def test_a_token_with_only_that_scope_succeeds(
    endpoint, world, client_with: Callable[..., APIClient]
):
    response = _call(client_with(endpoint.scope), endpoint, world)

    assert response.status_code == endpoint.ok, response.content
    if endpoint.refused_code:
        assert response.json()["code"] == endpoint.refused_code

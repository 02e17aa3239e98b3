"""Bad input, endpoint by endpoint: a 4xx problem body naming the field, and nothing
changed (no row, no event)."""

# ruff: noqa: E501  (the table below reads best one request per line)

from __future__ import annotations

import pytest

from analytics.models import Event
from onboarding.models import Account, Case, ContextEntry, Signal

pytestmark = pytest.mark.django_db

LONG = "x" * 300

# (method, path, body, status, field) — paths formatted with the case's ids.
BAD_REQUESTS = [
    ("PUT", "/api/v1/accounts/new-acct", {}, 422, "name"),
    ("PUT", "/api/v1/accounts/new-acct", {"name": LONG}, 422, "name"),
    ("PUT", "/api/v1/accounts/new-acct", {"name": "A", "properties": [1]}, 422, "properties"),
    ("PUT", "/api/v1/accounts/new-acct", {"name": "A", "properties": {"k": "\x00"}}, 422, "properties"),
    ("PUT", "/api/v1/accounts/{external_id}", {"plan": "p" * 41}, 422, "plan"),
    ("PUT", "/api/v1/accounts/{external_id}", {"contact_email": "nope"}, 422, "contact_email"),
    ("PUT", f"/api/v1/accounts/{'y' * 129}", {"name": "A"}, 422, "external_id"),
    ("POST", "/api/v1/cases/", {}, 422, "account_external_id"),
    ("POST", "/api/v1/cases/", {"account_external_id": "ghost", "playbook": "human"}, 422, "account_external_id"),
    ("POST", "/api/v1/cases/", {"account_external_id": "{external_id}", "playbook": "ghost"}, 422, "playbook"),
    ("POST", "/api/v1/cases/", {"account_external_id": "{external_id}", "playbook": "human", "playbook_version": 9}, 422, "playbook_version"),
    ("POST", "/api/v1/cases/{case_id}/notes", {"body": "  "}, 422, "body"),
    ("POST", "/api/v1/cases/{case_id}/notes", {"body": "x", "task_id": 999999}, 422, "task"),
    ("POST", "/api/v1/cases/{case_id}/transitions/cancel", {}, 422, "reason"),
    ("POST", "/api/v1/cases/{case_id}/transitions/put_on_hold", {"reason": LONG * 10}, 422, "reason"),
    ("POST", "/api/v1/cases/{case_id}/transitions/reopen", {"reason": "r"}, 422, "step_key"),
    ("POST", "/api/v1/signals/", {"name": "X", "account_external_id": "{external_id}"}, 422, "signal_id"),
    ("POST", "/api/v1/signals/", {"signal_id": "s", "name": "X", "account_external_id": "{external_id}", "occurred_at": "yesterday"}, 422, "occurred_at"),
    ("POST", "/api/v1/signals/", {"signal_id": "s", "name": "X", "account_external_id": "ghost"}, 404, "account_external_id"),
    ("POST", "/api/v1/signals/batch", {"signals": {}}, 422, "signals"),
    ("POST", "/api/v1/signals/batch", {"signals": []}, 422, "signals"),
    ("POST", "/api/v1/signals/batch", {"signals": [{}] * 501}, 422, "signals"),
    ("POST", "/api/v1/cases/{case_id}/transitions/resume", {"unexpected": True}, 409, None),
    ("GET", "/api/v1/reports/sla", {"start": "2026-05-02", "end": "2026-05-01"}, 422, "end"),
    ("GET", "/api/v1/reports/funnel", {"playbook": "ghost"}, 422, "playbook"),
    ("GET", "/api/v1/reports/workload", {"limit": "0"}, 422, "limit"),
    ("GET", "/api/v1/reports/churn", {}, 404, None),
]  # fmt: skip


def _snapshot() -> tuple[int, ...]:
    return (
        Event.objects.count(),
        Account.objects.count(),
        Case.objects.count(),
        ContextEntry.objects.count(),
        Signal.objects.count(),
        *Case.objects.order_by("pk").values_list("updated_at", flat=True),
    )


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "field"),
    BAD_REQUESTS,
    ids=[f"{m} {p} {f}" for m, p, _, _, f in BAD_REQUESTS],
)
def test_bad_input_is_a_problem_and_changes_nothing(
    integration, open_case, method, path, body, status, field
):
    ids = {"case_id": open_case.pk, "external_id": open_case.account.external_id}
    body = {k: v.format(**ids) if isinstance(v, str) else v for k, v in body.items()}
    before = _snapshot()

    response = getattr(integration, method.lower())(path.format(**ids), body, format="json")

    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert {"type", "title", "status", "detail"} <= problem.keys()
    assert problem["status"] == status
    if status == 422:
        assert field in {e["field"] for e in problem["errors"]}, problem
    elif field:
        assert field in problem.get("field", field)
    assert _snapshot() == before


def test_malformed_json_is_400(integration):
    response = integration.post("/api/v1/cases/", "{not json", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["code"] == "malformed_request"


def test_a_form_body_is_415(integration):
    response = integration.post("/api/v1/cases/", {"playbook": "x"})  # multipart

    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"


def test_an_undocumented_method_is_405_with_allow(integration, open_case):
    response = integration.delete(f"/api/v1/cases/{open_case.pk}")

    assert response.status_code == 405
    assert response["Allow"].startswith("GET")
    assert response.json()["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("state=bogus", "state"),
        ("updated_since=yesterday", "updated_since"),
        ("sla_status=late", "sla_status"),
    ],
)
def test_bad_list_filters_are_422(integration, query, field):
    response = integration.get(f"/api/v1/cases/?{query}")

    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == [field]


def test_a_forged_cursor_is_404(integration):
    response = integration.get("/api/v1/cases/?cursor=~~not-base64~~")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/cases/0",
        "/api/v1/cases/99999999999999999999999",
        "/api/v1/cases/abc",
        "/api/v1/nothing-here",
        "/api/v2/cases/",
    ],
)
def test_urls_outside_any_operation_are_404_problems(integration, path):
    response = integration.get(path)

    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "not_found"


def test_every_problem_type_has_a_page(client):
    from api.problems import PROBLEM_TYPES, type_uri

    for code, (title, _) in PROBLEM_TYPES.items():
        page = client.get(type_uri(code))
        assert page.status_code == 200
        assert page.json()["title"] == title

"""POST /cases/ with an Idempotency-Key: a retry returns the first response and opens
nothing; the same key with another body is refused; racing duplicates open one case."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from rest_framework.test import APIClient

from analytics.models import Event
from api.models import IdempotencyKey
from onboarding.models import Case
from tests.api.conftest import ALL_SCOPES


@pytest.fixture
def body(make_account, human_playbook) -> dict[str, str]:
    return {"account_external_id": make_account().external_id, "playbook": human_playbook.key}


def _open(client: APIClient, body: dict[str, str], key: str | None = "open-acct-1"):
    headers = {"Idempotency-Key": key} if key is not None else {}
    return client.post("/api/v1/cases/", body, format="json", headers=headers)


@pytest.mark.django_db
def test_the_same_key_twice_opens_one_case_and_answers_identically(integration, body):
    first = _open(integration, body)
    events = Event.objects.count()
    again = _open(integration, body)

    assert first.status_code == again.status_code == 201
    assert again.content == first.content  # byte for byte
    assert again["Location"] == first["Location"] == f"/api/v1/cases/{first.json()['id']}"
    assert again["Idempotent-Replayed"] == "true"
    assert not first.has_header("Idempotent-Replayed")
    assert Case.objects.count() == 1
    assert Event.objects.count() == events  # the replay recorded nothing


@pytest.mark.django_db
def test_the_same_key_with_another_body_is_refused_and_changes_nothing(
    integration, body, make_account
):
    first = _open(integration, body)
    another_account = make_account().external_id
    events = Event.objects.count()

    other = _open(integration, {**body, "account_external_id": another_account})

    assert other.status_code == 422
    assert other["Content-Type"] == "application/problem+json"
    problem = other.json()
    assert problem["code"] == "idempotency_key_reused"
    assert problem["title"] == "Idempotency-Key reused with a different request"
    assert problem["errors"] == [{"field": "Idempotency-Key", "message": problem["detail"]}]
    assert Case.objects.count() == 1
    assert Event.objects.count() == events
    assert first.json()["id"] == Case.objects.get().pk


@pytest.mark.django_db
def test_a_refused_create_does_not_use_up_its_key(integration, body):
    refused = _open(integration, {**body, "playbook": "no-such-playbook"})
    assert refused.status_code == 422
    assert not IdempotencyKey.objects.exists()

    # Same key, same (fixed) body as a new request: it runs.
    assert _open(integration, body, key="open-acct-2").status_code == 201


@pytest.mark.django_db
def test_keys_belong_to_their_token(integration, client_with, body):
    assert _open(integration, body).status_code == 201

    # Another integration's identical key is its own request: here it meets the
    # one-open-case rule instead of a replay of someone else's response.
    other = _open(client_with(*ALL_SCOPES), body)

    assert other.status_code == 409
    assert other.json()["case_id"] == Case.objects.get().pk


@pytest.mark.django_db
def test_without_a_key_creates_still_work(integration, body):
    assert _open(integration, body, key=None).status_code == 201
    assert not IdempotencyKey.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["", "x" * 256, "spaces are not allowed", "ключ"])
def test_a_malformed_key_is_refused(integration, body, key):
    response = _open(integration, body, key=key)

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "Idempotency-Key"
    assert not Case.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_creates_with_one_key_open_one_case(integration, body):
    """Four requests race on separate connections; PostgreSQL's unique index on the key
    lets one through, the others wait for its commit and replay its response."""
    racers = 4
    barrier = threading.Barrier(racers)
    responses: list = []
    errors: list[BaseException] = []

    def race() -> None:
        try:
            barrier.wait(timeout=10)
            responses.append(_open(integration, body, key="race-1"))
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=race) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(t.is_alive() for t in threads), "a request hung (deadlock?)"
    assert not errors

    assert Case.objects.count() == 1
    assert [r.status_code for r in responses] == [201] * racers
    assert len({r.content for r in responses}) == 1
    assert sum(r.has_header("Idempotent-Replayed") for r in responses) == racers - 1
    assert Event.objects.filter(name="Case Opened").count() == 1

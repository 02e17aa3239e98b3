"""Signals one at a time or in batches, applied once per signal id; queues and
claim-next for signed-in agents."""

from __future__ import annotations

import json

import pytest
from rest_framework.renderers import JSONRenderer

from analytics.models import Event
from api.serializers import SignalSerializer
from onboarding import services
from onboarding.models import Signal, Task
from tests.conftest import task_of

pytestmark = pytest.mark.django_db

CONNECTED = "Data Source Connected"


@pytest.fixture
def waiting(make_playbook, make_account, system):
    """A case whose only step waits for the Data Source Connected signal."""
    playbook = make_playbook(
        "self-serve",
        [{"key": "connect", "name": "Connect", "kind": "signal", "signal_name": CONNECTED}],
    )
    return services.case_open(account=make_account(), playbook=playbook, actor=system)


def _signal(signal_id: str, account: str, name: str = CONNECTED, **extra):
    return {"signal_id": signal_id, "name": name, "account_external_id": account, **extra}


def test_a_signal_completes_the_step_waiting_for_it(integration, waiting):
    account = waiting.account.external_id

    response = integration.post(
        "/api/v1/signals/",
        _signal("evt-1", account, properties={"source": "snowflake"}),
        format="json",
    )

    assert response.status_code == 201
    body = response.json()
    assert (body["completed_tasks"], body["duplicate"]) == (1, False)
    assert task_of(waiting, "connect").state == "done"
    assert Signal.objects.get().properties == {"source": "snowflake"}


def test_the_same_signal_id_again_changes_nothing(integration, waiting):
    account = waiting.account.external_id
    integration.post("/api/v1/signals/", _signal("evt-1", account), format="json")
    events = Event.objects.count()

    again = integration.post("/api/v1/signals/", _signal("evt-1", account), format="json")

    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    assert Signal.objects.count() == 1
    assert Event.objects.count() == events


def test_a_signal_id_reused_for_another_signal_is_409(integration, waiting):
    account = waiting.account.external_id
    integration.post("/api/v1/signals/", _signal("evt-1", account), format="json")

    clash = integration.post(
        "/api/v1/signals/", _signal("evt-1", account, name="User Invited"), format="json"
    )

    assert clash.status_code == 409
    assert clash.json()["signal_id"] == "evt-1"


def test_a_batch_reports_each_signal_in_order(integration, waiting):
    account = waiting.account.external_id
    integration.post(
        "/api/v1/signals/", _signal("seen", account, name="User Invited"), format="json"
    )

    response = integration.post(
        "/api/v1/signals/batch",
        {
            "signals": [
                _signal("evt-1", account),
                _signal("seen", account, name="User Invited"),
                {"signal_id": "bad", "account_external_id": account},
                _signal("evt-2", "no-such-account"),
                _signal("evt-1", account),
            ]
        },
        format="json",
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["created"], body["duplicates"], body["errors"]) == (1, 2, 2)
    results = body["results"]
    assert [r["status"] for r in results] == ["created", "duplicate", "error", "error", "duplicate"]
    assert [r["index"] for r in results] == [0, 1, 2, 3, 4]
    assert results[0]["signal"]["completed_tasks"] == 1
    assert results[2]["error"]["status"] == 422
    assert results[2]["error"]["errors"] == [
        {"field": "name", "message": "This field is required."}
    ]
    assert results[3]["error"]["status"] == 404
    assert Signal.objects.count() == 2
    assert task_of(waiting, "connect").state == "done"


# --- queues -----------------------------------------------------------------------------


def test_queues_list_what_waits_in_them(integration, open_case, queue, other_queue):
    body = integration.get("/api/v1/queues/").json()

    waiting = {q["key"]: q["waiting"] for q in body["results"]}
    assert waiting == {queue.key: 1, other_queue.key: 0}


def test_an_agent_lists_only_their_queues(signed_in, agent_a, queue, other_queue):
    body = signed_in(agent_a).get("/api/v1/queues/").json()

    assert [q["key"] for q in body["results"]] == [queue.key]


def test_an_agent_claims_the_next_task_then_finds_nothing(signed_in, agent_a, open_case, queue):
    client = signed_in(agent_a)

    claimed = client.post(f"/api/v1/queues/{queue.pk}/claim-next")
    empty = client.post(f"/api/v1/queues/{queue.pk}/claim-next")

    assert claimed.status_code == 200
    assert claimed.json()["id"] == task_of(open_case, "kickoff").pk
    assert claimed.json()["assignee"]["username"] == "agent_a"
    assert empty.status_code == 204
    assert empty.content == b""


def test_an_outsider_may_not_claim_from_a_queue(signed_in, outsider, open_case, queue):
    response = signed_in(outsider).post(f"/api/v1/queues/{queue.pk}/claim-next")

    assert response.status_code == 403
    assert Task.objects.get(pk=task_of(open_case, "kickoff").pk).state == "queued"


def test_claim_next_on_a_missing_queue_is_404(signed_in, manager):
    assert signed_in(manager).post("/api/v1/queues/999999/claim-next").status_code == 404


def test_an_integration_is_no_queue_member(integration, open_case, queue):
    response = integration.post(f"/api/v1/queues/{queue.pk}/claim-next")

    assert response.status_code == 403
    assert Task.objects.get(pk=task_of(open_case, "kickoff").pk).state == "queued"


def test_a_manager_may_claim_from_any_queue(signed_in, manager, open_case, queue):
    assert signed_in(manager).post(f"/api/v1/queues/{queue.pk}/claim-next").status_code == 200


def test_replaying_a_batch_costs_a_few_queries_whatever_its_size(
    integration, waiting, django_assert_max_num_queries
):
    account = waiting.account.external_id
    batch = {"signals": [_signal(f"evt-{i}", account, name="User Invited") for i in range(50)]}
    assert integration.post("/api/v1/signals/batch", batch, format="json").json()["created"] == 50

    with django_assert_max_num_queries(4):  # token, accounts, stored signal ids
        replay = integration.post("/api/v1/signals/batch", batch, format="json")

    assert replay.json()["duplicates"] == 50


def test_a_batch_of_new_signals_costs_a_few_queries_whatever_its_size(
    integration, waiting, make_account, django_assert_max_num_queries
):
    accounts = [waiting.account.external_id] + [make_account().external_id for _ in range(4)]
    integration.get("/api/v1/events/")  # the token's last-used time is fresh
    batch = {
        "signals": [
            _signal(f"evt-{i}", accounts[i % 5], name=CONNECTED if i == 5 else "User Invited")
            for i in range(100)
        ]
    }

    # token, accounts, stored ids; then one transaction: insert, waiting steps, lock
    # their case, waiting steps again, the events so far, the step's completion (the
    # write path's dozen: lock, update + event, context entry, the case completes…),
    # the signal's count, waiting steps again, the rest of the events. Not 100 of any.
    with django_assert_max_num_queries(26):
        response = integration.post("/api/v1/signals/batch", batch, format="json")

    assert response.json()["created"] == 100
    assert response.json()["results"][5]["signal"]["completed_tasks"] == 1
    assert task_of(waiting, "connect").state == "done"
    assert Event.objects.filter(name="Signal Received").count() == 100

    quiet = {"signals": [_signal(f"more-{i}", accounts[i % 5], name="Other") for i in range(100)]}
    with django_assert_max_num_queries(8):  # … insert, waiting steps (none), events
        assert integration.post("/api/v1/signals/batch", quiet, format="json").status_code == 200


def test_batch_results_carry_the_signal_as_the_serializer_renders_it(integration, waiting):
    account = waiting.account.external_id
    integration.post(
        "/api/v1/signals/", _signal("seen", account, name="User Invited"), format="json"
    )
    items = [
        _signal(
            "evt-1",
            account,
            properties={
                "source": "snowflake",
                "rows": 12.5,
                "nested": {"ok": True, "by": "Zoë 🚀"},
            },
            occurred_at="2025-03-03T11:00:00.5+02:00",
        ),
        _signal("seen", account, name="User Invited"),
    ]

    results = integration.post("/api/v1/signals/batch", {"signals": items}, format="json").json()[
        "results"
    ]

    assert [r["status"] for r in results] == ["created", "duplicate"]
    for result in results:
        stored = Signal.objects.get(signal_id=result["signal"]["signal_id"])
        stored.api_account_external_id = account
        expected = json.loads(JSONRenderer().render(SignalSerializer(stored).data))
        assert result["signal"] == expected
    assert results[0]["signal"]["occurred_at"] == "2025-03-03T09:00:00.500000Z"

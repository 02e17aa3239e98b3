"""POST …/transitions/{name}: allowed → 200 with the new representation and exactly one
event; not allowed now → 409 with the current state; not the caller's to run → 403;
unknown name → 404; a concurrent duplicate → 409. Refusals change nothing."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from analytics.models import Event
from onboarding import services
from onboarding.models import Case, ContextEntry, Task
from tests.conftest import act, task_of


def _transition(client, kind: str, pk: int, name: str, body: dict | None = None):
    return client.post(f"/api/v1/{kind}/{pk}/transitions/{name}", body or {}, format="json")


def _new_events(since: int) -> list[str]:
    return list(Event.objects.filter(pk__gt=since).order_by("pk").values_list("name", flat=True))


def _last_event_id() -> int:
    return Event.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


@pytest.mark.django_db
def test_putting_a_case_on_hold_answers_the_new_case_and_records_one_event(integration, open_case):
    since = _last_event_id()

    response = _transition(integration, "cases", open_case.pk, "put_on_hold", {"reason": "Away"})

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == open_case.pk
    assert body["state"] == "on_hold"
    assert body["hold_reason"] == "Away"
    assert [t["step_key"] for t in body["tasks"]] == ["kickoff", "review"]
    assert Case.objects.get(pk=open_case.pk).state == "on_hold"
    assert _new_events(since) == ["Case Put On Hold"]
    event = Event.objects.get(pk__gt=since)
    assert (event.actor_type, event.source) == ("api", "api")
    assert event.actor_id == str(integration.token.pk)


@pytest.mark.django_db
def test_a_transition_not_allowed_now_is_409_with_the_current_state(integration, open_case):
    since = _last_event_id()

    response = _transition(integration, "cases", open_case.pk, "resume")

    assert response.status_code == 409
    assert response["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "transition_not_allowed"
    assert problem["current_state"] == "active"
    assert problem["transition"] == "resume"
    assert problem["type"] == "/api/problems/transition-not-allowed"
    assert problem["instance"] == f"/api/v1/cases/{open_case.pk}/transitions/resume"
    assert Case.objects.get(pk=open_case.pk).state == "active"
    assert _new_events(since) == []


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["cases", "tasks"])
def test_an_unknown_transition_is_404(integration, open_case, kind):
    pk = open_case.pk if kind == "cases" else task_of(open_case, "kickoff").pk

    response = _transition(integration, kind, pk, "teleport")

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert "teleport" in response.json()["detail"]


@pytest.mark.django_db
def test_an_integration_may_not_complete_human_work(integration, open_case, agent_a):
    task = services.task_claim(task_id=task_of(open_case, "kickoff").pk, actor=act(agent_a))
    since = _last_event_id()

    response = _transition(integration, "tasks", task.pk, "complete")

    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"
    assert Task.objects.get(pk=task.pk).state == "in_progress"
    assert _new_events(since) == []


@pytest.mark.django_db
def test_a_signed_in_agent_claims_and_completes_through_the_api(signed_in, agent_a, open_case):
    client = signed_in(agent_a)
    kickoff = task_of(open_case, "kickoff")

    since = _last_event_id()
    claimed = _transition(client, "tasks", kickoff.pk, "claim")
    assert claimed.status_code == 200
    assert claimed.json()["state"] == "in_progress"
    assert claimed.json()["assignee"] == {"id": agent_a.pk, "username": "agent_a"}
    assert _new_events(since) == ["Step Claimed"]

    since = _last_event_id()
    done = _transition(client, "tasks", kickoff.pk, "complete", {"note": "Kicked off"})
    assert done.status_code == 200
    assert done.json()["state"] == "done"
    # Completing it activates the next step: that is the workflow's own event.
    assert _new_events(since) == ["Step Completed", "Step Activated"]
    event = Event.objects.get(pk__gt=since, name="Step Completed")
    assert (event.actor_type, event.actor_id, event.source) == ("agent", str(agent_a.pk), "api")


@pytest.mark.django_db
def test_hand_off_names_queue_and_agent_by_key_and_username(
    signed_in, agent_a, agent_b, open_case, other_queue
):
    task = services.task_claim(task_id=task_of(open_case, "kickoff").pk, actor=act(agent_a))
    since = _last_event_id()

    response = _transition(
        signed_in(agent_a),
        "tasks",
        task.pk,
        "hand_off",
        {"note": "Needs the API expert", "to_queue": other_queue.key, "to_assignee": "agent_b"},
    )

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["state"] == "queued"
    assert body["queue"]["key"] == other_queue.key
    assert body["assignee"]["username"] == "agent_b"
    assert _new_events(since) == ["Step Handed Off"]
    assert ContextEntry.objects.get(task=task, kind="handoff").body == "Needs the API expert"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"to_queue": "technical"}, "note"),
        ({"note": "x", "to_queue": "nowhere"}, "to_queue"),
        ({"note": "x", "to_assignee": "ghost"}, "to_assignee"),
        ({"note": "x"}, "to_queue"),
    ],
)
def test_bad_hand_off_input_is_422_and_changes_nothing(
    signed_in, agent_a, open_case, other_queue, body, field
):
    task = services.task_claim(task_id=task_of(open_case, "kickoff").pk, actor=act(agent_a))
    since = _last_event_id()

    response = _transition(signed_in(agent_a), "tasks", task.pk, "hand_off", body)

    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == [field]
    assert Task.objects.get(pk=task.pk).state == "in_progress"
    assert _new_events(since) == []


@pytest.mark.django_db
def test_a_manager_skips_and_an_agent_may_not(signed_in, manager, agent_a, open_case):
    kickoff = task_of(open_case, "kickoff")
    refused = _transition(signed_in(agent_a), "tasks", kickoff.pk, "skip", {"reason": "n/a"})
    assert refused.status_code == 403

    since = _last_event_id()
    skipped = _transition(signed_in(manager), "tasks", kickoff.pk, "skip", {"reason": "n/a"})
    assert skipped.status_code == 200
    assert skipped.json()["state"] == "skipped"
    assert _new_events(since)[0] == "Step Skipped"


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_identical_transitions_one_wins_the_other_is_409(integration, open_case):
    racers = 2
    barrier = threading.Barrier(racers)
    responses: list = []

    def race() -> None:
        try:
            barrier.wait(timeout=10)
            responses.append(
                _transition(integration, "cases", open_case.pk, "put_on_hold", {"reason": "r"})
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=race) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(t.is_alive() for t in threads), "a request hung (deadlock?)"

    assert sorted(r.status_code for r in responses) == [200, 409]
    loser = next(r for r in responses if r.status_code == 409).json()
    assert loser["current_state"] == "on_hold"
    assert Event.objects.filter(name="Case Put On Hold").count() == 1

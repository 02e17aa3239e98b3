"""Reading: a case with its tasks, SLA clocks and context log; case lists filtered and
paged with a cursor; accounts upserted by external id."""

from __future__ import annotations

from datetime import timedelta

import pytest

from analytics.models import Event
from onboarding import clock, services
from onboarding.actors import Actor
from onboarding.models import Case, SlaPolicy
from tests.conftest import act, task_of

pytestmark = pytest.mark.django_db
INTEGRATION = Actor.integration("test", source="test")


# --- one case ---------------------------------------------------------------------------


def test_a_case_shows_its_tasks_clocks_and_newest_notes_first(
    integration, make_playbook, make_account, queue, system, agent_a
):
    policy = SlaPolicy.objects.create(key="kickoff", name="Kickoff 4h", target=timedelta(hours=4))
    kickoff = {"key": "kickoff", "name": "Kickoff", "kind": "human", "queue": queue}
    review = {"key": "review", "name": "Review", "kind": "human", "queue": queue}
    playbook = make_playbook("watched", [{**kickoff, "sla_policy": policy}, review])
    case = services.case_open(account=make_account(), playbook=playbook, actor=system)
    services.task_claim(task_id=task_of(case, "kickoff").pk, actor=act(agent_a))
    services.case_add_note(case_id=case.pk, actor=act(agent_a), body="first")
    services.case_add_note(case_id=case.pk, actor=act(agent_a), body="second")

    body = integration.get(f"/api/v1/cases/{case.pk}").json()

    assert body["playbook"] == {"key": "watched", "name": "Watched", "version": 1}
    assert body["account"]["external_id"] == case.account.external_id
    kickoff, review = body["tasks"]
    assert (kickoff["step_key"], kickoff["state"], review["state"]) == (
        "kickoff",
        "in_progress",
        "pending",
    )
    assert kickoff["assignee"]["username"] == "agent_a"
    assert kickoff["queue"]["key"] == queue.key
    assert kickoff["sla"]["state"] == "running"
    assert kickoff["sla"]["policy"] == "kickoff"
    assert kickoff["sla"]["due_at"] is not None
    assert review["sla"] is None
    assert body["sla_status"] == "on_track"
    assert [entry["body"] for entry in body["context"]][:2] == ["second", "first"]


def test_reading_a_case_costs_a_fixed_number_of_queries(
    integration, open_case, django_assert_max_num_queries
):
    with django_assert_max_num_queries(8):  # token, last-used, case, tasks, timers, log
        assert integration.get(f"/api/v1/cases/{open_case.pk}").status_code == 200


# --- lists ------------------------------------------------------------------------------


@pytest.fixture
def cases(make_playbook, make_account, queue, system, human_playbook) -> dict[str, Case]:
    other = make_playbook(
        "other", [{"key": "only", "name": "Only", "kind": "human", "queue": queue}]
    )
    made = {
        "growth_emea": services.case_open(
            account=make_account(plan="growth", region="emea"),
            playbook=human_playbook,
            actor=system,
        ),
        "scale_us": services.case_open(
            account=make_account(plan="scale", region="us"), playbook=human_playbook, actor=system
        ),
        "other_playbook": services.case_open(
            account=make_account(plan="growth", region="us"), playbook=other, actor=system
        ),
    }
    services.case_put_on_hold(case_id=made["scale_us"].pk, actor=INTEGRATION, reason="r")
    return made


def _ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [c["id"] for c in response.json()["results"]]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["other_playbook", "scale_us", "growth_emea"]),
        ("state=on_hold", ["scale_us"]),
        ("state=active&state=on_hold", ["other_playbook", "scale_us", "growth_emea"]),
        ("playbook=other", ["other_playbook"]),
        ("plan=growth", ["other_playbook", "growth_emea"]),
        ("region=us", ["other_playbook", "scale_us"]),
        ("plan=growth&region=us", ["other_playbook"]),
        ("sla_status=on_track", ["other_playbook", "scale_us", "growth_emea"]),
        ("sla_status=breached", []),
    ],
)
def test_cases_filter_by_state_playbook_segment_and_sla(integration, cases, query, expected):
    response = integration.get(f"/api/v1/cases/?{query}")

    assert _ids(response) == [cases[name].pk for name in expected]


def test_updated_since_returns_what_changed_since(integration, cases):
    mark = clock.now()
    services.case_put_on_hold(case_id=cases["growth_emea"].pk, actor=INTEGRATION, reason="r")

    response = integration.get("/api/v1/cases/", {"updated_since": mark.isoformat()})

    assert _ids(response) == [cases["growth_emea"].pk]


def test_sla_status_follows_the_clocks(integration, make_playbook, make_account, queue, system):
    policy = SlaPolicy.objects.create(
        key="fast", name="Fast", target=timedelta(hours=4), warn_percent=75
    )
    playbook = make_playbook(
        "fast", [{"key": "k", "name": "K", "kind": "human", "queue": queue, "sla_policy": policy}]
    )
    now = clock.now()
    opened = {}
    for name, ago in (("fresh", 0), ("late", 3.5), ("over", 5)):
        with clock.travel_to(now - timedelta(hours=ago)):
            opened[name] = services.case_open(
                account=make_account(), playbook=playbook, actor=system
            ).pk

    def status_of(name: str) -> str:
        return integration.get(f"/api/v1/cases/{opened[name]}").json()["sla_status"]

    assert [status_of(n) for n in ("fresh", "late", "over")] == ["on_track", "at_risk", "breached"]
    for status, name in (("on_track", "fresh"), ("at_risk", "late"), ("breached", "over")):
        assert _ids(integration.get(f"/api/v1/cases/?sla_status={status}")) == [opened[name]]


def test_the_cursor_walks_every_case_once_newest_first(
    integration, human_playbook, make_account, system
):
    made = [
        services.case_open(account=make_account(), playbook=human_playbook, actor=system).pk
        for _ in range(5)
    ]

    seen, url = [], "/api/v1/cases/?limit=2"
    while url:
        page = integration.get(url).json()
        assert len(page["results"]) <= 2
        seen += [c["id"] for c in page["results"]]
        url = page["next"]

    assert seen == sorted(made, reverse=True)


def test_listing_cases_costs_the_same_for_one_or_many(
    integration, human_playbook, make_account, system, django_assert_max_num_queries
):
    for _ in range(10):
        services.case_open(account=make_account(), playbook=human_playbook, actor=system)

    with django_assert_max_num_queries(4):  # token, last-used, page
        assert integration.get("/api/v1/cases/").status_code == 200


# --- accounts ---------------------------------------------------------------------------


def test_put_creates_then_updates_an_account_by_external_id(integration):
    created = integration.put(
        "/api/v1/accounts/crm-42", {"name": "Acme", "plan": "growth"}, format="json"
    )
    assert created.status_code == 201
    assert created.json()["external_id"] == "crm-42"

    updated = integration.put("/api/v1/accounts/crm-42", {"plan": "scale"}, format="json")

    assert updated.status_code == 200
    assert (updated.json()["name"], updated.json()["plan"]) == ("Acme", "scale")
    assert list(Event.objects.order_by("pk").values_list("name", flat=True)) == [
        "Account Created",
        "Account Updated",
    ]
    assert integration.get("/api/v1/accounts/crm-42").json()["plan"] == "scale"


def test_an_unchanged_upsert_records_nothing(integration):
    integration.put("/api/v1/accounts/crm-7", {"name": "Acme"}, format="json")
    events = Event.objects.count()

    again = integration.put("/api/v1/accounts/crm-7", {"name": "Acme"}, format="json")

    assert again.status_code == 200
    assert Event.objects.count() == events


def test_accounts_list_filters_by_plan(integration, make_account):
    growth = make_account(plan="growth")
    make_account(plan="scale")

    response = integration.get("/api/v1/accounts/?plan=growth")

    assert [a["external_id"] for a in response.json()["results"]] == [growth.external_id]


def test_an_unknown_account_is_404(integration):
    assert integration.get("/api/v1/accounts/nobody").status_code == 404

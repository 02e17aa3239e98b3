"""Reading: a case with its tasks, SLA clocks and context log; case lists filtered and
paged with a cursor; accounts upserted by external id."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from rest_framework.renderers import JSONRenderer

from analytics.models import Event
from api import selectors
from api.serializers import CaseDetailSerializer
from onboarding import clock, services, sweeper
from onboarding.actors import Actor
from onboarding.models import Case, ContextEntry, SlaPolicy, SlaTimer, Task
from onboarding.services.signals import signal_receive
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
    # token, last-used, and one statement for the case with its tasks, clocks and log
    with django_assert_max_num_queries(3):
        assert integration.get(f"/api/v1/cases/{open_case.pk}").status_code == 200
    for k in range(5):
        services.case_add_note(case_id=open_case.pk, actor=INTEGRATION, body=f"note {k}")
    with django_assert_max_num_queries(2):  # last-used is written once a minute at most
        assert integration.get(f"/api/v1/cases/{open_case.pk}").status_code == 200


# The case detail is rendered without serializers (api.selectors.case_detail); the
# serializer documents it. The body must be what the serializer would give, byte for byte.

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)  # whole seconds: rendered without a fraction


def serializer_body(case_id: int) -> bytes:
    """CaseDetailSerializer over the case loaded the ORM way (as the API did before)."""
    case = Case.objects.select_related("account", "playbook", "playbook_version").get(pk=case_id)
    tasks = list(
        Task.objects.filter(case=case)
        .select_related("step", "queue", "assignee")
        .order_by("step__position", "id")
    )
    timers = list(
        SlaTimer.objects.filter(case=case).select_related("policy").order_by("started_at", "id")
    )
    for task in tasks:
        task.case = case
        task.api_timer = ([None] + [t for t in timers if t.task_id == task.pk])[-1]
    case.api_tasks = tasks
    case.api_case_timer = ([None] + [t for t in timers if t.kind == SlaTimer.Kind.CASE])[-1]
    # the status the case list computes in SQL
    case.api_sla_status = (
        selectors.with_sla_status(Case.objects.filter(pk=case_id)).get().api_sla_status
    )
    case.api_context = list(
        ContextEntry.objects.filter(case=case)
        .select_related("author")
        .order_by("-created_at", "-id")
    )
    return JSONRenderer().render(CaseDetailSerializer(case).data)


@pytest.fixture
def busy_case(make_playbook, make_account, queue, system, agent_a, manager) -> Case:
    """A case with a time-to-live clock, a done step (met clock), a claimed step with
    a clock, a waiting step, notes by a person, about a task, and signal entries."""
    fast = SlaPolicy.objects.create(
        key="fast", name="Fast", target=timedelta(hours=4), warn_percent=50
    )
    ttl = SlaPolicy.objects.create(key="ttl", name="TTL", target=timedelta(days=14))
    playbook = make_playbook(
        "busy",
        [
            {
                "key": "intro",
                "name": "Intro call",
                "kind": "human",
                "queue": queue,
                "sla_policy": fast,
            },
            {"key": "setup", "name": "Set up", "kind": "human", "queue": queue, "sla_policy": fast},
            {
                "key": "logo",
                "name": "Logo",
                "kind": "human",
                "queue": queue,
                "signal_name": "Logo Uploaded",
                "depends_on": [],
            },
        ],
        publish=False,
    )
    version = playbook.versions.get()
    version.case_sla_policy = ttl
    version.save()
    services.playbook_version_publish(version=version, actor=system)
    agent = act(agent_a)
    with clock.travel_to(T0):
        case = services.case_open(
            account=make_account(name="Ünïcode & Co", region="us"), playbook=playbook, actor=system
        )
    with clock.travel_to(T0 + timedelta(minutes=30, microseconds=120)):
        services.task_claim(task_id=task_of(case, "intro").pk, actor=agent)
        services.task_complete(task_id=task_of(case, "intro").pk, actor=agent, note="went well")
        services.task_claim(task_id=task_of(case, "setup").pk, actor=agent)
        services.case_add_note(case_id=case.pk, actor=agent, body="Customer asked about SSO")
        logo = services.task_claim(task_id=task_of(case, "logo").pk, actor=agent)
        services.task_wait_on_customer(task_id=logo.pk, actor=agent, reason="asked for a logo")
    with clock.travel_to(T0 + timedelta(hours=3)):
        signal_receive(
            name="Logo Uploaded",
            account_external_id=case.account.external_id,
            signal_id="logo-1",
            actor=INTEGRATION,
        )
        services.case_add_note(
            case_id=case.pk, actor=act(manager), body="Priority account", task_id=logo.pk
        )
    return case


def test_the_case_detail_is_the_serializers_body_byte_for_byte(integration, busy_case):
    statuses = []
    for hours in (1, 3, 5, 24 * 20):  # set-up clock warns at 2:30, due at 4:30; TTL 14 d
        with clock.travel_to(T0 + timedelta(hours=hours)):
            response = integration.get(f"/api/v1/cases/{busy_case.pk}")
            assert response.status_code == 200
            assert response.content == serializer_body(busy_case.pk)
            statuses.append(response.json()["sla_status"])

    assert statuses == ["on_track", "at_risk", "breached", "breached"]
    body = response.json()
    assert [t["step_key"] for t in body["tasks"]] == ["intro", "setup", "logo"]
    assert [t["sla"] and t["sla"]["state"] for t in body["tasks"]] == ["met", "running", None]
    assert body["time_to_live"]["policy"] == "ttl"
    assert body["sla_status"] == "breached"
    assert any(e["author"] == "manager" and e["task_id"] for e in body["context"])


def test_a_case_after_an_action_and_on_hold_is_rendered_the_same_way(integration, busy_case):
    response = integration.post(
        f"/api/v1/cases/{busy_case.pk}/transitions/put_on_hold",
        {"reason": "contract"},
        format="json",
    )

    assert response.status_code == 200
    assert response.content == serializer_body(busy_case.pk)
    assert response.json()["hold_reason"] == "contract"


def test_an_agent_reads_the_cases_of_their_queues_only(signed_in, agent_a, outsider, busy_case):
    mine = signed_in(agent_a).get(f"/api/v1/cases/{busy_case.pk}")
    theirs = signed_in(outsider).get(f"/api/v1/cases/{busy_case.pk}")

    assert mine.status_code == 200
    assert mine.content == serializer_body(busy_case.pk)
    assert theirs.status_code == 404


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


def test_sla_status_judges_the_open_work_only(
    integration, make_playbook, make_account, queue, system, agent_a
):
    """The project's definition (onboarding.sla_status): clocks of open tasks, and the
    case's own while it is open. A breach of finished work no longer makes the case
    breached (before, any breached clock of the case did); a closed case is on track."""
    fast = SlaPolicy.objects.create(key="fast", name="Fast", target=timedelta(hours=4))
    playbook = make_playbook(
        "fast",
        [
            {"key": "a", "name": "A", "kind": "human", "queue": queue, "sla_policy": fast},
            {"key": "b", "name": "B", "kind": "human", "queue": queue},
        ],
    )
    agent = act(agent_a)
    with clock.travel_to(T0):
        late_then_done = services.case_open(account=make_account(), playbook=playbook, actor=system)
        late_and_open = services.case_open(account=make_account(), playbook=playbook, actor=system)
        closed = services.case_open(account=make_account(), playbook=playbook, actor=system)
    with clock.travel_to(T0 + timedelta(hours=5)):
        sweeper.sweep()  # records the breaches
        for case in (late_then_done, closed):
            services.task_claim(task_id=task_of(case, "a").pk, actor=agent)
            services.task_complete(task_id=task_of(case, "a").pk, actor=agent)
        services.task_claim(task_id=task_of(closed, "b").pk, actor=agent)
        services.task_complete(task_id=task_of(closed, "b").pk, actor=agent)
    assert Case.objects.get(pk=closed.pk).state == "completed"
    assert SlaTimer.objects.get(task=task_of(late_then_done, "a")).state == "breached"

    def detail(case: Case) -> dict:
        return integration.get(f"/api/v1/cases/{case.pk}").json()

    assert detail(late_then_done)["sla_status"] == "on_track"
    assert detail(late_then_done)["tasks"][0]["sla"]["state"] == "breached"  # still shown
    assert detail(late_and_open)["sla_status"] == "breached"
    assert detail(closed)["sla_status"] == "on_track"
    assert _ids(integration.get("/api/v1/cases/?sla_status=breached")) == [late_and_open.pk]
    assert _ids(integration.get("/api/v1/cases/?sla_status=on_track")) == [
        closed.pk,
        late_then_done.pk,
    ]
    listed = {c["id"]: c["sla_status"] for c in integration.get("/api/v1/cases/").json()["results"]}
    assert listed == {
        c.pk: detail(c)["sla_status"] for c in (late_then_done, late_and_open, closed)
    }


def test_a_case_past_its_time_to_live_is_breached_while_open(
    integration, make_playbook, make_account, queue, system
):
    ttl = SlaPolicy.objects.create(key="ttl", name="TTL", target=timedelta(days=1))
    playbook = make_playbook(
        "ttl", [{"key": "a", "name": "A", "kind": "human", "queue": queue}], publish=False
    )
    version = playbook.versions.get()
    version.case_sla_policy = ttl
    version.save()
    services.playbook_version_publish(version=version, actor=system)
    with clock.travel_to(T0):
        case = services.case_open(account=make_account(), playbook=playbook, actor=system)

    with clock.travel_to(T0 + timedelta(days=2)):
        body = integration.get(f"/api/v1/cases/{case.pk}").json()
        listed = _ids(integration.get("/api/v1/cases/?sla_status=breached"))

    assert body["sla_status"] == "breached"
    assert body["time_to_live"]["state"] == "running"
    assert listed == [case.pk]


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

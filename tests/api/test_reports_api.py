"""Manager reports over the API: the admin pages' numbers from the same definitions
(`analytics.metrics.run`), the page's filters and validation, managers and
`reports:read` tokens only."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from rest_framework.test import APIClient

from analytics.metrics import REPORTS, default_filters, run
from analytics.metrics.base import Filters, local_today
from onboarding import clock, services
from onboarding.models import Account, SlaPolicy
from tests.conftest import act, task_of

pytestmark = pytest.mark.django_db

LIST = "/api/v1/reports/"


def url(key: str) -> str:
    return f"/api/v1/reports/{key}"


@pytest.fixture
def history(make_playbook, queue, make_account: Callable[..., Account], system, agent_a) -> list:
    """Three cases of kickoff (a milestone, 1-minute SLA) → review, opened two days ago:
    one done, one half-way, one untouched (its kickoff clock breached)."""
    policy = SlaPolicy.objects.create(key="fast", name="Fast", target=timedelta(minutes=1))
    playbook = make_playbook(
        "milestones",
        [
            {"key": "kickoff", "name": "Kickoff", "kind": "human", "queue": queue,
             "is_milestone": True, "sla_policy": policy},
            {"key": "review", "name": "Review", "kind": "human", "queue": queue,
             "is_milestone": True, "is_first_value": True},
        ],
    )  # fmt: skip
    agent = act(agent_a)
    cases = []
    with clock.travel_to(clock.now() - timedelta(days=2)):
        for plan in ("growth", "enterprise", "growth"):
            account = make_account(plan=plan)
            cases.append(services.case_open(account=account, playbook=playbook, actor=system))
    for case, steps in zip(cases, (("kickoff", "review"), ("kickoff",), ()), strict=True):
        for key in steps:
            task = task_of(case, key)
            services.task_claim(task_id=task.pk, actor=agent)
            services.task_complete(task_id=task.pk, actor=agent)
    return cases


@pytest.fixture
def reader(client_with: Callable[..., APIClient]) -> APIClient:
    return client_with("reports:read")


def same(served: Any, computed: Any) -> bool:
    """A JSON value is the Python value it stands for (instants and days in ISO 8601)."""
    if isinstance(computed, datetime):
        return datetime.fromisoformat(served) == computed
    if isinstance(computed, date):
        return date.fromisoformat(served) == computed
    if isinstance(computed, Decimal):
        return served == float(computed)
    if isinstance(computed, list | tuple):
        return len(served) == len(computed) and all(map(same, served, computed))
    return served == computed


def filters_of(body: dict[str, Any]) -> Filters:
    f = dict(body["filters"])
    f["start"], f["end"] = date.fromisoformat(f["start"]), date.fromisoformat(f["end"])
    return Filters(**f)


@pytest.mark.parametrize("key", list(REPORTS))
def test_each_report_is_the_same_run_as_the_page(reader, history, key):
    now = clock.now()
    query = {"plan": "growth", "window_days": 20}
    with clock.travel_to(now):
        response = reader.get(url(key), query)

    assert response.status_code == 200, response.content
    body = response.json()
    spec = REPORTS[key]
    assert (body["key"], body["title"], body["definition"]) == (key, spec.title, spec.definition)
    assert body["filters"]["plan"] == "growth" and body["filters"]["window_days"] == 20
    expected = run(key, default_filters(key).but(plan="growth", window_days=20), now=now)
    assert filters_of(body) == expected.filters
    assert body["ignores"] == list(expected.ignores)
    assert list(body["tables"]) == list(expected.tables)
    for name, table in expected.tables.items():
        served = body["tables"][name]
        assert served["title"] == table.title and served["note"] == table.note
        assert served["total"] == table.total
        assert served["columns"] == [
            {"key": c.key, "label": c.label, "kind": c.kind} for c in table.columns
        ]
        assert len(served["rows"]) == len(table.rows)
        for got, row in zip(served["rows"], table.as_dicts(), strict=True):
            assert list(got) == list(row)
            assert all(same(got[k], v) for k, v in row.items()), (name, got, row)


def test_the_list_names_every_report_with_its_definition_and_address(reader):
    response = reader.get(LIST)

    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["key"] for r in results] == list(REPORTS)
    for result in results:
        spec = REPORTS[result["key"]]
        assert (result["title"], result["definition"]) == (spec.title, spec.definition)
        assert result["url"] == f"http://testserver{url(spec.key)}"
        assert reader.get(result["url"]).status_code == 200


def test_without_filters_the_report_opens_on_the_pages_range(reader, history):
    today = local_today()
    for key in REPORTS:
        f = reader.get(url(key)).json()["filters"]
        default = default_filters(key, today)
        assert (f["start"], f["end"]) == (default.start.isoformat(), default.end.isoformat())
    cohorts = reader.get(url("cohorts")).json()["filters"]
    assert date.fromisoformat(cohorts["end"]) - date.fromisoformat(cohorts["start"]) == timedelta(
        days=55
    )


def test_filters_narrow_the_numbers(reader, history):
    everyone = reader.get(url("workload")).json()["tables"]["done_summary"]["rows"]
    enterprise = reader.get(url("workload"), {"plan": "enterprise"}).json()
    assert everyone == [{"done": 3}]
    assert enterprise["tables"]["done_summary"]["rows"] == [{"done": 1}]
    assert enterprise["filters"]["plan"] == "enterprise"


def test_values_are_json_numbers_and_iso_instants(reader, history):
    body = reader.get(url("sla")).json()
    breached = body["tables"]["breached"]
    assert breached["rows"], "the untouched case's kickoff clock ran past due"
    kinds = {c["key"]: c["kind"] for c in breached["columns"]}
    for row in breached["rows"]:
        for column, value in row.items():
            if value is None:
                continue
            if kinds[column] in ("hours", "days", "pct", "ratio", "int"):
                assert isinstance(value, int | float), (column, value)
            if kinds[column] == "datetime":
                assert datetime.fromisoformat(value).tzinfo is not None


def test_limit_cuts_the_lists_and_total_still_counts_them(reader, history, make_account, system):
    playbook = history[0].playbook
    with clock.travel_to(clock.now() - timedelta(days=1)):
        services.case_open(account=make_account(), playbook=playbook, actor=system)

    cut = reader.get(url("sla"), {"limit": 1}).json()["tables"]["breached"]
    whole = reader.get(url("sla")).json()["tables"]["breached"]

    assert cut["total"] == whole["total"] == 2
    assert len(cut["rows"]) == 1 and len(whole["rows"]) == 2
    assert cut["rows"][0] == whole["rows"][0]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"start": "yesterday"}, "start"),
        ({"end": "2026-02-30"}, "end"),
        ({"start": "2026-05-02", "end": "2026-05-01"}, "end"),
        ({"start": "2026-05-02", "end": "9999-12-31"}, "end"),
        ({"start": "2016-05-02", "end": "2026-05-01"}, "end"),
        ({"playbook": "ghost"}, "playbook"),
        ({"playbook": "milestones", "version": "7"}, "version"),
        ({"version": "1"}, "version"),
        ({"queue": "ghost"}, "queue"),
        ({"agent": "999999"}, "agent"),
        ({"plan": "\x00"}, "plan"),
        ({"window_days": "0"}, "window_days"),
        ({"stall_days": "366"}, "stall_days"),
        ({"by": "mood"}, "by"),
        ({"limit": "0"}, "limit"),
        ({"limit": str(10**6)}, "limit"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_a_bad_filter_is_a_422_naming_it(reader, history, query, field):
    response = reader.get(url("funnel"), query)

    assert response.status_code == 422, response.content
    assert response["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "invalid_input"
    assert field in {e["field"] for e in problem["errors"]}, problem


def test_every_bad_parameter_is_named_at_once(reader, history):
    response = reader.get(url("sla"), {"start": "nope", "playbook": "ghost", "limit": "-1"})

    assert response.status_code == 422
    assert {e["field"] for e in response.json()["errors"]} == {"start", "playbook", "limit"}


def test_an_unknown_report_is_a_404_problem(reader):
    response = reader.get(url("churn"))

    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "not_found"


def test_a_token_without_the_scope_is_refused(client_with):
    client = client_with("cases:read", "events:read")
    for path in (LIST, url("sla")):
        response = client.get(path)
        assert response.status_code == 403
        assert response.json()["required_scope"] == "reports:read"


def test_a_signed_in_manager_reads_reports(signed_in, manager, history):
    client = signed_in(manager)

    assert client.get(LIST).status_code == 200
    response = client.get(url("workload"))
    assert response.status_code == 200
    assert response.json()["tables"]["done_summary"]["rows"] == [{"done": 3}]


def test_a_signed_in_agent_is_refused_as_on_the_pages(signed_in, agent_a, history):
    client = signed_in(agent_a)

    for path in (LIST, url("sla")):
        response = client.get(path)
        assert response.status_code == 403
        assert response.json()["code"] == "forbidden"
        assert response.json()["detail"] == "Reports are for managers."


def test_off_postgresql_a_report_is_a_503_problem_not_a_crash(reader, history, monkeypatch):
    from django.db import connection

    monkeypatch.setattr(connection, "vendor", "sqlite")  # the embedded demo's database
    response = reader.get(url("sla"))

    assert response.status_code == 503
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "not_available"
    assert reader.get("/api/v1/reports/").status_code == 200  # the list still says what exists

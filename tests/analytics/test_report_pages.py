"""The Reports section: managers read every report with its charts, filters and CSV;
agents are refused; each page costs the same few queries whatever the data."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from analytics.metrics import REPORTS
from analytics.views.filters import MAX_RANGE_DAYS, Options
from onboarding import services
from onboarding.models import Account
from tests.conftest import act, task_of

pytestmark = pytest.mark.django_db

URL = reverse("workspace:reports")


@pytest.fixture
def as_user(client: Client) -> Callable[[User], Client]:
    def login(user: User) -> Client:
        client.force_login(user)
        return client

    return login


@pytest.fixture
def history(make_playbook, queue, make_account: Callable[..., Account], system, agent_a) -> list:
    """Three cases of kickoff (a milestone) → review: one done, one half-way, one untouched."""
    playbook = make_playbook(
        "milestones",
        [
            {"key": "kickoff", "name": "Kickoff", "kind": "human", "queue": queue,
             "is_milestone": True},
            {"key": "review", "name": "Review", "kind": "human", "queue": queue,
             "is_milestone": True, "is_first_value": True},
        ],
    )  # fmt: skip
    cases = [
        services.case_open(account=make_account(plan=plan), playbook=playbook, actor=system)
        for plan in ("growth", "enterprise", "growth")
    ]
    agent = act(agent_a)
    for case, steps in zip(cases, (("kickoff", "review"), ("kickoff",), ()), strict=True):
        for key in steps:
            task = task_of(case, key)
            services.task_claim(task_id=task.pk, actor=agent)
            services.task_complete(task_id=task.pk, actor=agent)
    return cases


@pytest.mark.parametrize("key", list(REPORTS))
def test_a_manager_sees_each_report_with_its_charts_and_tables(as_user, manager, history, key):
    response = as_user(manager).get(URL, {"report": key})

    assert response.status_code == 200
    assert response.context["report"].key == key
    charts = response.context["charts"]
    assert charts, "every report draws at least one chart"
    for chart in charts:
        if chart.is_cohort:  # Unfold's cohort table: a row per week, a cell per day
            assert chart.data["headers"] and "rows" in chart.data
            continue
        assert chart.data["labels"] is not None
        assert chart.data["datasets"] and all("data" in d for d in chart.data["datasets"])
    page = response.content.decode()
    assert 'class="chart"' in page and "data-value=" in page  # Unfold's Chart.js canvas
    for table in response.context["report"].tables.values():
        assert f'data-table="{table.name}"' in page
        assert f'data-testid="csv-{table.name}"' in page


def test_the_workload_page_counts_the_history(as_user, manager, history, queue):
    response = as_user(manager).get(URL, {"report": "workload"})

    tables = response.context["report"].tables
    assert tables["done_summary"].rows == [(3,)]  # two steps of case 1, one of case 2
    assert tables["open_by_queue"].comparable() == [(queue.key, 2, 0, 0, 0, 2)]
    done_chart = response.context["charts"][1]
    assert sum(done_chart.data["datasets"][0]["data"]) == 3


def test_filters_come_from_the_query_string(as_user, manager, history):
    response = as_user(manager).get(URL, {"report": "workload", "plan": "enterprise"})

    assert response.context["report"].filters.plan == "enterprise"
    assert response.context["report"].tables["done_summary"].rows == [(1,)]


def test_pages_open_on_the_last_four_weeks_and_cohorts_on_eight(as_user, manager, history):
    client = as_user(manager)
    for key, days in (("sla", 28), ("funnel", 28), ("cohorts", 56)):
        f = client.get(URL, {"report": key}).context["report"].filters
        assert (f.end - f.start).days == days - 1, key


def test_a_bad_filter_is_shown_and_the_rest_still_apply(as_user, manager, history):
    response = as_user(manager).get(
        URL,
        {"report": "workload", "plan": "enterprise", "start": "2026-05-02", "end": "2026-05-01"},
    )

    assert response.status_code == 200
    assert "end" in response.context["form"].errors
    assert response.context["report"].filters.plan == "enterprise"


@pytest.mark.parametrize(
    ("start", "end", "field"),
    [
        ("2026-05-02", "9999-12-31", "end"),
        ("0001-01-01", "2026-05-01", "start"),
        ("2020-01-01", "2026-05-01", "end"),
    ],
)
def test_an_impossible_or_endless_range_is_shown_and_a_bounded_one_applies(
    as_user, manager, history, start, end, field
):
    response = as_user(manager).get(URL, {"report": "cohorts", "start": start, "end": end})

    assert response.status_code == 200
    assert field in response.context["form"].errors
    f = response.context["report"].filters
    assert (f.end - f.start).days < MAX_RANGE_DAYS


def test_every_table_downloads_as_csv(as_user, manager, history):
    client = as_user(manager)
    for key, spec in REPORTS.items():
        page = client.get(URL, {"report": key})
        for name, table in page.context["report"].tables.items():
            response = client.get(URL, {"report": key, "format": "csv", "table": name})
            assert response.status_code == 200, (key, name)
            assert response["Content-Type"].startswith("text/csv")
            assert f"{key}-{name}-" in response["Content-Disposition"]
            rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
            assert len(rows[0]) == len(table.columns), (spec.title, name)
            assert len(rows) == 1 + len(table.rows)


def test_an_unknown_table_is_not_found(as_user, manager, history):
    response = as_user(manager).get(URL, {"report": "sla", "format": "csv", "table": "nope"})

    assert response.status_code == 404


def test_without_postgresql_the_page_says_what_it_needs(as_user, manager, monkeypatch):
    monkeypatch.setattr(connection, "vendor", "sqlite")

    response = as_user(manager).get(URL)

    assert response.status_code == 200
    assert b"Reports run on PostgreSQL" in response.content


def test_agents_are_refused(as_user, agent_a):
    response = as_user(agent_a).get(URL)

    assert response.status_code == 403


def test_anonymous_people_are_sent_to_the_login(client):
    response = client.get(URL)

    assert response.status_code == 302
    assert "/login/" in response["Location"]


@pytest.mark.parametrize("key", list(REPORTS))
def test_a_page_runs_the_same_queries_for_three_cases_as_for_thirty(
    as_user, manager, human_playbook, make_account, system, agent_a, key
):
    client = as_user(manager)
    agent = act(agent_a)

    def add_cases(n: int) -> None:
        for _ in range(n):
            case = services.case_open(account=make_account(), playbook=human_playbook, actor=system)
            task = task_of(case, "kickoff")
            services.task_claim(task_id=task.pk, actor=agent)
            services.task_complete(task_id=task.pk, actor=agent)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(URL, {"report": key}).status_code == 200
        return len(captured)

    add_cases(3)
    few = queries()
    add_cases(27)
    assert queries() == few
    assert few <= 17  # the sidebar badges count my open tasks and firing alerts


def test_the_health_page_lists_open_cases_with_status_badges_and_case_links(
    as_user, manager, history
):
    response = as_user(manager).get(URL, {"report": "health", "stall_days": "30"})

    report = response.context["report"]
    assert report.filters.stall_days == 30
    # two cases are open (the third finished both steps); nothing is expected of them
    assert report.tables["summary"].comparable()[-1] == ("all", 2, 1.0, 0, 0, None)
    assert report.tables["cases"].column("status") == ["on_track", "on_track"]
    page = response.content.decode()
    for case in history[1:]:
        assert reverse("admin:onboarding_case_change", args=[case.pk]) in page
    assert page.count('data-status="success"') == 3  # two cases and the summary row
    status_chart = response.context["charts"][0]
    assert status_chart.data["labels"] == ["Stuck", "Behind", "On hold", "On track"]
    assert status_chart.data["datasets"][0]["data"] == [0, 0, 0, 2]
    # open now: the page neither offers nor applies a date range, queue or agent
    fields = [field.name for field in response.context["fields"]]
    assert {"start", "end", "queue", "agent"}.isdisjoint(fields)
    assert {"stall_days", "by", "playbook"} <= set(fields)
    assert "Open cases now, whatever the date range" in page


def test_the_filter_choices_are_the_same_off_postgresql(history, monkeypatch):
    on_postgresql = Options.load()
    monkeypatch.setattr(connection, "vendor", "sqlite")  # the alert rule form uses them there

    assert Options.load() == on_postgresql
    assert on_postgresql.segments["plan"]

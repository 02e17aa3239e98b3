"""The event catalog page (admin, any staff user) and its JSON twin in the API: every
event of `analytics.catalog` with its version, description and properties, the
columns every event row has, and how much each is used lately."""

from __future__ import annotations

import html
import re
import uuid
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from analytics import catalog
from analytics.catalog import CATALOG, EventSpec, Prop
from analytics.models import Event
from onboarding import clock, services

pytestmark = pytest.mark.django_db

URL = reverse("workspace:event_catalog")


def section(page: str, name: str) -> str:
    """The HTML of one event's section."""
    match = re.search(rf'<section[^>]*data-event="{re.escape(name)}".*?</section>', page, re.S)
    assert match, f"no section for {name!r}"
    return html.unescape(match.group(0))


def cells(row_html: str) -> dict[str, str]:
    return {
        field: re.sub(r"<[^>]+>|\s+", " ", value).strip()
        for field, value in re.findall(r'data-field="(\w+)">(.*?)</td>', row_html, re.S)
    }


def property_rows(section_html: str) -> dict[str, dict[str, str]]:
    rows = re.findall(r'<tr[^>]*data-property="([^"]+)"[^>]*>(.*?)</tr>', section_html, re.S)
    return {name: cells(row) for name, row in rows}


def test_every_event_and_property_is_on_the_page(client: Client, agent_a):
    client.force_login(agent_a)

    response = client.get(URL)

    assert response.status_code == 200
    page = response.content.decode()
    assert len(re.findall(r"data-event=", page)) == len(CATALOG)
    for name, spec in CATALOG.items():
        part = section(page, name)
        assert f"v{spec.version}" in part
        assert spec.description in part
        rows = property_rows(part)
        assert list(rows) == list(spec.properties)
        for key, prop in spec.properties.items():
            row = rows[key]
            assert row["type"] == prop.type
            assert row["required"] == ("required" if prop.required else "optional")
            assert row["nullable"] == ("yes" if prop.nullable else "no")
            assert row["pii"].startswith("PII") is prop.pii
            assert row["description"] == prop.description


def test_pii_properties_are_flagged(client: Client, manager):
    client.force_login(manager)
    part = section(client.get(URL).content.decode(), "Account Created")

    assert property_rows(part)["contact_email"]["pii"].startswith("PII")
    assert not property_rows(part)["external_id"]["pii"].startswith("PII")


def test_the_columns_every_event_has_are_listed(client: Client, manager):
    client.force_login(manager)
    page = client.get(URL).content.decode()

    common = re.search(r'data-testid="common-columns".*?</section>', page, re.S).group(0)
    listed = re.findall(r'data-column="(\w+)"', common)
    assert listed == [f.name for f in Event._meta.concrete_fields]
    for column in ("occurred_at", "recorded_at", "actor_type", "segmentation", "properties"):
        assert column in listed
    assert "Retention counts from here" in common


def test_a_new_catalog_event_appears_without_a_template_change(
    client: Client, manager, monkeypatch
):
    spec = EventSpec(
        "Invoice Disputed",
        3,
        "The customer disputed their first invoice.",
        {
            "amount": Prop("number", "Disputed amount."),
            "email": Prop("string", "Who complained.", required=False, pii=True, nullable=True),
        },
    )
    monkeypatch.setitem(catalog.CATALOG, spec.name, spec)
    client.force_login(manager)

    part = section(client.get(URL).content.decode(), "Invoice Disputed")

    assert "v3" in part and spec.description in part
    rows = property_rows(part)
    assert rows["amount"] == {
        "type": "number",
        "required": "required",
        "nullable": "no",
        "pii": "no",
        "description": "Disputed amount.",
    }
    assert rows["email"]["required"] == "optional" and rows["email"]["nullable"] == "yes"
    assert rows["email"]["pii"].startswith("PII")


def test_each_event_shows_its_last_weeks_count_and_last_occurrence_linking_to_the_list(
    client: Client, manager, human_playbook, make_account, system, admin_client: Client
):
    now = timezone.now()
    with clock.travel_to(now - timedelta(days=30)):
        services.case_open(account=make_account(), playbook=human_playbook, actor=system)
    services.case_open(account=make_account(), playbook=human_playbook, actor=system)
    client.force_login(manager)

    with CaptureQueriesContext(connection) as queries:
        page = client.get(URL).content.decode()

    reading = [q["sql"] for q in queries if "analytics_event" in q["sql"]]
    assert len(reading) == 1, reading  # one statement, whatever the catalog size
    week = Event.objects.filter(occurred_at__gte=now - timedelta(days=7))
    for name in CATALOG:
        part = section(page, name)
        link = re.search(r'<a[^>]*href="([^"]+)"[^>]*data-testid="recent" data-count="(\d+)"', part)
        assert int(link.group(2)) == week.filter(name=name).count(), name
        url = urlsplit(link.group(1))
        assert url.path == reverse("admin:analytics_event_changelist")
        assert parse_qs(url.query) == {"name": [name]}
    opened = section(page, "Case Opened")
    assert 'data-count="1"' in opened  # of two openings, one in the last seven days
    latest = Event.objects.filter(name="Case Opened").latest("occurred_at").occurred_at
    assert f"last {timezone.localtime(latest):%Y-%m-%d %H:%M}" in opened
    assert "never recorded" in section(page, "Alert Fired")
    # The link's filter is the Events list's own: it narrows to that name.
    listed = admin_client.get(reverse("admin:analytics_event_changelist"), {"name": "Case Opened"})
    assert listed.status_code == 200
    assert {e.name for e in listed.context["cl"].result_list} == {"Case Opened"}


def test_events_stored_under_a_name_the_catalog_dropped_are_listed_apart(
    client: Client, manager, open_case
):
    renamed = Event.objects.filter(case=open_case).first()
    renamed.pk, renamed.uuid, renamed.name = None, uuid.uuid4(), "Case Created"
    renamed._state.adding = True  # a copy: stored as a new row
    renamed.save()
    client.force_login(manager)

    page = client.get(URL).content.decode()

    apart = re.search(r'data-testid="uncatalogued".*?</section>', page, re.S).group(0)
    assert "Case Created" in apart and "1 in 7 days" in apart


def test_signed_out_visitors_go_to_the_admin_login(client: Client):
    response = client.get(URL)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_the_api_serves_the_same_catalog(client_with_events_read):
    body = client_with_events_read.get("/api/v1/events/catalog").json()

    assert [e["name"] for e in body["results"]] == sorted(CATALOG)
    for served in body["results"]:
        spec = CATALOG[served["name"]]
        assert (served["version"], served["description"]) == (spec.version, spec.description)
        assert served["properties"] == [
            {
                "name": key,
                "type": p.type,
                "description": p.description,
                "required": p.required,
                "nullable": p.nullable,
                "pii": p.pii,
            }
            for key, p in spec.properties.items()
        ]


@pytest.fixture
def client_with_events_read(db):
    from rest_framework.test import APIClient

    from api.models import ApiToken

    _, secret = ApiToken.issue(name="analyst", scopes=["events:read"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client

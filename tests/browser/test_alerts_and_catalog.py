"""Alerts and the event catalog in a real browser.

A manager writes a rule in the admin form, evaluates it now from its page (Unfold's
dialog), sees the alert fire, finds it under Alerts (with the sidebar's count) and
follows it to a case behind it. An agent reads the event catalog.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from playwright.sync_api import expect

from analytics.models import Alert
from onboarding import clock, services
from tests.browser.conftest import make_person

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def stalled_cases(make_playbook, queue, make_account, system) -> list:
    """Two cases opened yesterday on a playbook whose kickoff milestone nobody reached."""
    playbook = make_playbook(
        "alerting",
        [
            {"key": "kickoff", "name": "Kickoff", "kind": "human", "queue": queue,
             "is_milestone": True, "is_first_value": True},
            {"key": "review", "name": "Review", "kind": "human", "queue": queue},
        ],
    )  # fmt: skip
    with clock.travel_to(clock.now() - timedelta(days=1)):
        return [
            services.case_open(account=make_account(), playbook=playbook, actor=system)
            for _ in range(2)
        ]


def test_a_manager_writes_a_rule_evaluates_it_and_follows_the_alert_to_a_case(
    open_page, stalled_cases
):
    manager = make_person("maya", full_name="Maya Metrics", role="manager")
    page = open_page(manager)
    base = open_page.base_url

    page.goto(f"{base}/admin/analytics/alertrule/add/")
    page.fill("input[name=name]", "Kickoff conversion")
    page.select_option("select[name=metric]", "milestone_conversion")
    page.fill("input[name=step_key]", "kickoff")
    page.select_option("select[name=playbook]", label="Alerting")
    page.select_option("select[name=kind]", "threshold")
    page.select_option("select[name=direction]", "below")
    page.fill("input[name=threshold]", "50")
    page.fill("input[name=window_days]", "7")
    page.fill("input[name=min_sample]", "1")
    page.fill("[name=recipients]", "ops@example.com")
    page.locator("button[name=_continue]").click()
    expect(page.locator("body")).to_contain_text("was added successfully")

    page.get_by_role("link", name="Evaluate now").click()
    dialog = page.locator("#dialog")  # Unfold's action dialog
    expect(dialog).to_contain_text("Evaluate this rule now")
    dialog.get_by_role("button", name="Evaluate").click()
    expect(page.locator("body")).to_contain_text("an alert fired and its recipients are notified")
    assert Alert.objects.firing().count() == 1
    assert [m.to for m in mail.outbox] == [["ops@example.com"]]

    page.goto(f"{base}/admin/")
    alerts_link = page.locator("#nav-sidebar, nav, aside").get_by_role("link", name="Alerts")
    expect(alerts_link.first).to_contain_text("1")  # the firing count badge
    alerts_link.first.click()
    row = page.locator("#result_list tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Kickoff conversion")
    row.get_by_role("link").first.click()  # the alert's page

    case = stalled_cases[0]
    expect(page.get_by_role("link", name=f"#{case.pk}")).to_be_visible()
    page.get_by_role("link", name=f"#{case.pk}").click()
    expect(page).to_have_url(f"{base}/admin/onboarding/case/{case.pk}/change/")


def test_an_agent_reads_the_event_catalog_from_the_sidebar(open_page, queue):
    agent = make_person("ari", full_name="Ari Analyst", role="agent")
    page = open_page(agent)

    page.get_by_role("link", name="Event catalog").click()

    expect(page.locator("h1, h2").first).to_be_visible()
    expect(page.locator("body")).to_contain_text("Case Opened")
    expect(page.locator("body")).to_contain_text("Step Handed Off")
    expect(page.locator("body")).to_contain_text("Alert Fired")
    expect(page.locator("body")).not_to_contain_text("Server Error")

"""Report pages in a real browser: each loads for a manager with its charts drawn."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from analytics.views.reports import REPORTS
from tests.browser.conftest import make_person

pytestmark = pytest.mark.django_db(transaction=True)


def test_every_report_page_draws_its_charts(open_page, open_case):
    manager = make_person("rhea", full_name="Rhea Reports", role="manager")
    page = open_page(manager)
    drawn_in_all = 0
    for key in REPORTS:
        page.goto(f"{open_page.base_url}/admin/work/reports/?report={key}")
        expect(page.locator("body")).not_to_contain_text("Server Error")
        charts = page.locator("[data-testid=charts] canvas")
        for i in range(charts.count()):
            # Chart.js has taken the canvas over: the chart exists and has drawn.
            drawn = charts.nth(i).evaluate(
                "c => !!(window.Chart && window.Chart.getChart(c)) && c.width > 0"
            )
            assert drawn, f"chart {i} of report {key} was not drawn"
            drawn_in_all += 1

    assert drawn_in_all >= len(REPORTS)  # every report has at least one chart


def test_the_health_tab_shows_each_open_case_with_its_status_and_a_link_to_it(open_page, open_case):
    manager = make_person("hana", full_name="Hana Health", role="manager")
    page = open_page(manager)
    page.goto(f"{open_page.base_url}/admin/work/reports/?report=health")

    cases = page.locator("[data-table=cases] tbody tr")
    expect(cases).to_have_count(1)
    expect(cases.first.locator("[data-status=success]")).to_have_text("On track")
    cases.first.get_by_role("link", name=f"#{open_case.pk}").click()
    expect(page).to_have_url(f"{open_page.base_url}/admin/onboarding/case/{open_case.pk}/change/")

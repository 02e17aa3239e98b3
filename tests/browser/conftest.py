"""Browser tests: Playwright drives the system Chromium against pytest-django's live server.

Chromium comes from Debian (`scripts/ensure-chromium`, run by `make test`); Playwright
cannot download browsers here. A failing test leaves a full-page screenshot in
`test-artifacts/screenshots/`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, Permission, User

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
PASSWORD = "browser-test-pass"

# Playwright's sync API runs an event loop in this thread; Django refuses ORM calls from
# a thread with a running loop unless told it is fine (it is: the calls are not async).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"No Chromium at {CHROMIUM}: run scripts/ensure-chromium "
            "(apt-get install -y chromium) or set CHROMIUM_PATH."
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture(autouse=True)
def _plain_static_files(settings) -> None:
    # A manifest storage would 404 Unfold's assets on the live server.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture
def open_page(browser, live_server, request) -> Iterator[Callable[..., object]]:
    """`open_page(user)`: a fresh browser context logged in as `user` through the login form."""
    contexts = []
    pages = []

    def login(user: User) -> object:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        pages.append((user.username, page))
        page.goto(f"{live_server.url}/admin/login/?next=/admin/")
        page.fill("#id_username", user.username)
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(re.compile(r".*/admin/$"))
        return page

    login.base_url = live_server.url  # type: ignore[attr-defined]
    yield login
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for username, page in pages:
            if not page.is_closed():
                path = SCREENSHOTS / f"{request.node.name}-{username}.png"
                page.screenshot(path=str(path), full_page=True)
                print(f"screenshot: {path}")
    for context in contexts:
        context.close()


def make_person(username: str, *, full_name: str, role: str) -> User:
    """A staff user who logs in with PASSWORD, in the agents or managers group."""
    first, _, last = full_name.partition(" ")
    user = User.objects.create_user(
        username, f"{username}@example.com", PASSWORD, first_name=first, last_name=last
    )
    user.is_staff = True
    user.save()
    codename = "manage_onboarding" if role == "manager" else "work_tasks"
    group, _ = Group.objects.get_or_create(name=f"Browser {role}s")
    group.permissions.add(
        Permission.objects.get(codename=codename),
        *Permission.objects.filter(
            codename__startswith="view_", content_type__app_label__in=["onboarding", "analytics"]
        ),
    )
    user.groups.add(group)
    return user

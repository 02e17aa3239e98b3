"""Agents see their queues and the cases in them — in every admin view; managers see all."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from onboarding import services

pytestmark = pytest.mark.django_db

VIEWS = ["case", "task", "contextentry", "slatimer", "account", "queue", "signal", "reminder"]


@pytest.fixture
def two_cases(make_playbook, make_account, system, queue, other_queue, agent_a):
    """One case in the specialists queue (with a note), one only in the technical queue."""
    mine = make_playbook("mine", [{"key": "kickoff", "name": "K", "kind": "human", "queue": queue}])
    theirs = make_playbook(
        "theirs", [{"key": "sso", "name": "SSO", "kind": "human", "queue": other_queue}]
    )
    visible = services.case_open(
        account=make_account(name="Visible Co"), playbook=mine, actor=system
    )
    hidden = services.case_open(
        account=make_account(name="Hidden Co"), playbook=theirs, actor=system
    )
    services.case_add_note(case_id=hidden.pk, actor=system, body="secret plan")
    return visible, hidden


@pytest.fixture
def login(client):
    def as_user(user):
        perms = Permission.objects.filter(codename__startswith="view_")
        user.user_permissions.add(*perms)
        client.force_login(user)
        return client

    return as_user


def test_an_agent_cannot_see_cases_outside_their_queues(login, agent_a, two_cases):
    visible, hidden = two_cases
    client = login(agent_a)

    listing = client.get(reverse("admin:onboarding_case_changelist")).content.decode()
    search = client.get(reverse("admin:onboarding_case_changelist"), {"q": "Hidden"})
    direct = client.get(reverse("admin:onboarding_case_change", args=[hidden.pk]))
    tasks = client.get(reverse("admin:onboarding_task_changelist")).context_data["cl"]
    events = client.get(reverse("admin:analytics_event_changelist")).context_data["cl"]
    notes = client.get(reverse("admin:onboarding_contextentry_changelist")).context_data["cl"]

    assert "Visible Co" in listing and "Hidden Co" not in listing
    assert "Hidden Co" not in search.content.decode()
    assert direct.status_code == 302  # the admin's "does not exist" redirect, no page
    assert {t.case_id for t in tasks.queryset} == {visible.pk}
    assert {e.case_id for e in events.queryset} == {visible.pk}  # no account/playbook events
    assert not notes.queryset.filter(case=hidden).exists()
    assert client.get(reverse("admin:onboarding_case_change", args=[visible.pk])).status_code == 200


def test_every_admin_list_loads_for_an_agent(login, agent_a, two_cases):
    client = login(agent_a)
    for model in VIEWS:
        assert client.get(reverse(f"admin:onboarding_{model}_changelist")).status_code == 200
    assert client.get(reverse("admin:analytics_event_changelist")).status_code == 200


def test_managers_see_every_case(login, manager, two_cases):
    _, hidden = two_cases
    client = login(manager)

    listing = client.get(reverse("admin:onboarding_case_changelist")).content.decode()

    assert "Visible Co" in listing and "Hidden Co" in listing
    assert client.get(reverse("admin:onboarding_case_change", args=[hidden.pk])).status_code == 200

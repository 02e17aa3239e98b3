"""The SLA configuration pages: calendars, versioned policies, read-only timers."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse

from onboarding import services
from onboarding.models import BusinessCalendar, SlaPolicy, SlaTimer
from tests.conftest import task_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def timer(make_playbook, make_account, system, queue):
    policy = SlaPolicy.objects.create(key="first", name="First", target=timedelta(hours=8))
    playbook = make_playbook(
        "sla-admin",
        [{"key": "k", "name": "K", "kind": "human", "queue": queue, "sla_policy": policy}],
    )
    case = services.case_open(account=make_account(), playbook=playbook, actor=system)
    return SlaTimer.objects.get(task=task_of(case, "k"))


@pytest.fixture
def admin_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", "", "pw"))
    return client


def test_the_sla_pages_load(admin_client, timer):
    BusinessCalendar.objects.create(
        key="office", name="Office", tz="Europe/Berlin", week={"mon": ["09:00-17:00"]}
    )
    for model in ("businesscalendar", "slapolicy", "slatimer"):
        response = admin_client.get(reverse(f"admin:onboarding_{model}_changelist"))
        assert response.status_code == 200, model
    response = admin_client.get(reverse("admin:onboarding_slatimer_change", args=[timer.pk]))
    assert response.status_code == 200
    assert b"First" in response.content


def test_editing_a_policy_saves_a_new_version_and_running_timers_keep_theirs(admin_client, timer):
    policy = timer.policy
    url = reverse("admin:onboarding_slapolicy_change", args=[policy.pk])

    response = admin_client.post(
        url,
        {
            "name": "First (faster)",
            "target": "04:00:00",
            "warn_percent": 80,
            "pause_states": "[]",
            "on_breach": "escalate",
        },
    )

    assert response.status_code == 302
    versions = list(
        SlaPolicy.objects.filter(key="first")
        .order_by("version")
        .values_list("version", "is_current", "target")
    )
    assert versions == [(1, False, timedelta(hours=8)), (2, True, timedelta(hours=4))]
    assert SlaTimer.objects.get(pk=timer.pk).policy_id == policy.pk


def test_timers_cannot_be_edited_in_the_admin(admin_client, timer):
    url = reverse("admin:onboarding_slatimer_change", args=[timer.pk])

    admin_client.post(url, {"state": "met"})

    assert SlaTimer.objects.get(pk=timer.pk).state == "running"
    assert admin_client.get(reverse("admin:onboarding_slatimer_add")).status_code == 403

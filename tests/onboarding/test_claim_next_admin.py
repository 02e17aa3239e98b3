"""The queue page's Claim next button: members claim, outsiders are refused."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from onboarding.models import Task
from tests.conftest import task_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def login(client):
    def as_user(user):
        user.user_permissions.add(Permission.objects.get(codename="view_queue"))
        client.force_login(user)
        return client

    return as_user


def test_a_member_claims_the_next_task_and_lands_on_its_case(login, agent_a, open_case, queue):
    client = login(agent_a)

    response = client.post(
        reverse("admin:onboarding_queue_claim_next", args=[queue.pk]), {"_form_submitted": "on"}
    )

    task = task_of(open_case, "kickoff")
    assert (task.state, task.assignee_id) == ("in_progress", agent_a.pk)
    assert response.status_code == 302
    assert response.url == reverse("admin:onboarding_case_change", args=[open_case.pk])


def test_an_empty_queue_says_so(login, agent_a, queue):
    client = login(agent_a)

    response = client.post(
        reverse("admin:onboarding_queue_claim_next", args=[queue.pk]),
        {"_form_submitted": "on"},
        follow=True,
    )

    assert response.status_code == 200
    assert "Nothing to claim" in response.content.decode()


def test_an_agent_of_another_queue_is_refused(login, outsider, open_case, queue):
    client = login(outsider)

    response = client.post(
        reverse("admin:onboarding_queue_claim_next", args=[queue.pk]), {"_form_submitted": "on"}
    )

    assert response.status_code == 403
    assert not Task.objects.filter(state="in_progress").exists()

"""The write path's shape: one lock order, and few round trips per transition."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from onboarding import services
from tests.conftest import act, task_of

pytestmark = pytest.mark.django_db(transaction=True)


def _claimed(open_case, agent):
    return services.task_claim(task_id=task_of(open_case, "kickoff").pk, actor=agent)


def test_task_transitions_lock_the_case_before_the_task(open_case, agent_a):
    agent = act(agent_a)
    task = _claimed(open_case, agent)

    with CaptureQueriesContext(connection) as ctx:
        services.task_wait_on_customer(task_id=task.pk, actor=agent, reason="logo")

    lock = next(q["sql"] for q in ctx.captured_queries if "FOR NO KEY UPDATE" in q["sql"])
    assert lock.endswith('FOR NO KEY UPDATE OF "onboarding_case", "onboarding_task"')


def test_a_simple_transition_takes_at_most_six_round_trips(open_case, agent_a):
    agent = act(agent_a)
    task = _claimed(open_case, agent)
    services.task_wait_on_customer(task_id=task.pk, actor=agent, reason="logo")

    with CaptureQueriesContext(connection) as ctx:
        services.task_resume(task_id=task.pk, actor=agent)

    statements = [q["sql"].split()[0] for q in ctx.captured_queries]
    # BEGIN, lock (case+task+account+playbook in one SELECT), UPDATE, INSERT event, COMMIT
    assert statements == ["BEGIN", "SELECT", "UPDATE", "INSERT", "COMMIT"]

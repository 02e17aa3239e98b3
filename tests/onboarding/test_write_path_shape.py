"""The write path's shape: one lock order, and few round trips per transition."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from analytics.models import Event
from onboarding import services
from onboarding.errors import Conflict
from onboarding.models import Task
from onboarding.services._write import apply_transition, lock_task
from onboarding.services.tasks import _NEXT_IN_QUEUE
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
    # BEGIN, lock (case + task + account in one SELECT), UPDATE+INSERT event, COMMIT
    assert statements == ["BEGIN", "SELECT", "WITH", "COMMIT"]
    combined = ctx.captured_queries[2]["sql"]
    assert 'UPDATE "onboarding_task"' in combined
    assert 'INSERT INTO "analytics_event"' in combined


def test_an_update_that_finds_the_state_moved_writes_no_event(open_case, agent_a):
    agent = act(agent_a)
    task = _claimed(open_case, agent)
    events = Event.objects.count()

    with pytest.raises(Conflict), transaction.atomic():
        locked = lock_task(task.pk)
        # a write that bypassed the lock (a raw UPDATE) moved the row meanwhile
        Task.objects.filter(pk=task.pk).update(assignee=None)
        with connection.cursor() as cursor:
            cursor.execute("UPDATE onboarding_task SET state = 'queued' WHERE id = %s", [task.pk])
        apply_transition(locked, "complete", actor=agent, properties={"completed_by": "human"})

    assert Event.objects.count() == events
    assert Task.objects.get(pk=task.pk).state == "in_progress"


def _warm(agent):
    """Load the actor's permissions and queues (cached on it), as a request would."""
    assert agent.is_agent and agent.queue_ids and not agent.is_manager
    return agent


def test_claim_next_takes_four_round_trips(open_case, agent_a, queue):
    agent = _warm(act(agent_a))

    with CaptureQueriesContext(connection) as ctx:
        task = services.task_claim_next(queue_id=queue.pk, actor=agent)

    assert task == task_of(open_case, "kickoff")
    statements = [q["sql"].split()[0] for q in ctx.captured_queries]
    # BEGIN, the head of the queue locked (task, case, account), UPDATE+INSERT event, COMMIT
    assert statements == ["BEGIN", "SELECT", "WITH", "COMMIT"]
    select = ctx.captured_queries[1]["sql"]
    assert select.endswith('FOR NO KEY UPDATE OF "onboarding_case", "onboarding_task" SKIP LOCKED')
    assert "ORDER BY" in select and "LIMIT 1" in select


def test_claim_next_writes_its_states_into_the_sql(db):
    with transaction.atomic():  # Django compiles FOR UPDATE only in a transaction
        sql = _NEXT_IN_QUEUE.sql()

    # Only the queue and the claimer are parameters: PostgreSQL's generic plan for a
    # prepared `state = $n` could not use the partial index task_claim_order.
    assert sql.count("%s") == 2
    assert '"onboarding_task"."state" = (\'queued\')' in sql
    assert '"onboarding_case"."state" = (\'active\')' in sql


def test_reused_statement_cursors_still_pass_through_execute_wrappers(
    human_playbook, make_account, system, agent_a, queue
):
    for _ in range(2):
        services.case_open(account=make_account(), playbook=human_playbook, actor=system)
    agent = _warm(act(agent_a))
    seen = []

    def spy(execute, sql, params, many, context):
        seen.append(sql.split()[0])
        return execute(sql, params, many, context)

    with connection.execute_wrapper(spy):
        services.task_claim_next(queue_id=queue.pk, actor=agent)
        services.task_claim_next(queue_id=queue.pk, actor=agent)  # the same cursors again

    assert seen == ["SELECT", "WITH", "SELECT", "WITH"]
    assert Event.objects.filter(name="Step Claimed").count() == 2


def test_only_the_recorder_writes_event_rows():
    """Events are validated against the catalog in one place: no other module of the
    product builds its own INSERT of them (the batch signal path uses `record_many`)."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    writes = re.compile(
        r"Event\.objects\.(create|bulk_create|get_or_create|update_or_create)\b"
        r"|insert_rows?\(\s*Event\b|INSERT INTO \"?analytics_event\b",
        re.IGNORECASE,
    )
    offenders = [
        f"{path.relative_to(root)}:{n}"
        for package in ("onboarding", "analytics", "api", "config")
        for path in (root / package).rglob("*.py")
        if "migrations" not in path.parts and path.name != "recording.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if writes.search(line)
    ]

    assert offenders == []

"""Automated steps: lease, run outside any lock, record the outcome; retries with
backoff; escalation; duplicate and stale deliveries; the sweep as the safety net."""

from __future__ import annotations

import itertools
import random
import threading
from datetime import timedelta

import pytest
from django.db import connections, transaction

from analytics.models import Event
from onboarding import automation, clock, services, sweeper
from onboarding.automation import PermanentError, automated_step, retry_delay
from onboarding.errors import Conflict
from onboarding.models import Task
from tests.conftest import task_of

_keys = itertools.count()


@pytest.fixture
def sent(monkeypatch):
    """Steps handed to the broker, in order (the broker itself is the worker tests' job)."""
    calls: list[tuple[int, float]] = []
    monkeypatch.setattr(
        automation,
        "send_to_worker",
        lambda task_id, countdown=0: calls.append((task_id, countdown)) or True,
    )
    monkeypatch.setattr(sweeper, "send_to_worker", lambda task_id: calls.append((task_id, 0)))
    return calls


@pytest.fixture
def handler():
    """Register a fresh handler key for one test and remove it afterwards."""
    registered: list[str] = []

    def register(fn):
        key = f"test_handler_{next(_keys)}"
        automated_step(key)(fn)
        registered.append(key)
        return key

    yield register
    for key in registered:
        automation.HANDLERS.pop(key, None)


@pytest.fixture
def automated_case(make_playbook, make_account, system, queue, exceptions_queue):
    playbooks: dict[str, object] = {}

    def build(handler_key: str, **step: object):
        playbook = playbooks.get(handler_key) or make_playbook(
            f"auto-{handler_key}",
            [
                {
                    "key": "auto",
                    "name": "Auto",
                    "kind": "automated",
                    "handler": handler_key,
                    **step,
                },
                {"key": "after", "name": "After", "kind": "human", "queue": queue},
            ],
        )
        playbooks[handler_key] = playbook
        return services.case_open(account=make_account(), playbook=playbook, actor=system)

    return build


def names(task: Task) -> list[str]:
    return list(Event.objects.filter(task=task).order_by("id").values_list("name", flat=True))


@pytest.mark.django_db
def test_activation_rings_the_worker_only_after_commit(
    handler, automated_case, sent, django_capture_on_commit_callbacks
):
    key = handler(lambda task, idempotency_key: "ok")

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        case = automated_case(key)

    task = task_of(case, "auto")
    assert len(callbacks) == 1
    assert sent == [(task.pk, 0)]
    assert task.not_before is not None and task.dispatched_at is not None


@pytest.mark.django_db
def test_nothing_is_dispatched_when_the_transaction_rolls_back(handler, automated_case, sent):
    key = handler(lambda task, idempotency_key: "ok")

    with pytest.raises(RuntimeError), transaction.atomic():
        automated_case(key)
        raise RuntimeError("boom")

    assert sent == []


@pytest.mark.django_db
def test_a_step_runs_its_handler_and_completes(handler, automated_case, sent):
    seen: list[str] = []
    key = handler(lambda task, idempotency_key: seen.append(idempotency_key) or "provisioned")
    task = task_of(automated_case(key), "auto")

    assert automation.run_step(task.pk) == "succeeded"

    task.refresh_from_db()
    assert task.state == "done"
    assert seen == [f"{task.pk}:1"]
    assert names(task) == ["Step Activated", "Step Started", "Step Completed"]
    assert task.context_entries.get(kind="automation").body == "provisioned"
    assert task_of(task.case, "after").state == "queued"


@pytest.mark.django_db
def test_a_duplicate_delivery_does_nothing(handler, automated_case, sent):
    calls: list[int] = []
    key = handler(lambda task, idempotency_key: calls.append(1))
    task = task_of(automated_case(key), "auto")

    first, second = automation.run_step(task.pk), automation.run_step(task.pk)

    assert (first, second) == ("succeeded", "skipped")
    assert len(calls) == 1
    assert names(task).count("Step Completed") == 1


@pytest.mark.django_db
def test_a_failed_attempt_is_retried_after_a_jittered_backoff(
    handler, automated_case, sent, django_capture_on_commit_callbacks
):
    def flaky(task, idempotency_key):
        raise ConnectionError("CRM timed out")

    key = handler(flaky)
    task = task_of(automated_case(key, retry_backoff_seconds=40), "auto")
    sent.clear()

    with django_capture_on_commit_callbacks(execute=True):
        assert automation.run_step(task.pk) == "failed"

    task.refresh_from_db()
    assert task.state == "scheduled"
    assert task.last_error == "CRM timed out"
    delay = (task.not_before - task.dispatched_at).total_seconds()
    assert 20 <= delay <= 40
    assert sent == [(task.pk, pytest.approx(delay, abs=0.01))]
    # not due yet: an early or duplicate delivery leaves it alone
    assert automation.run_step(task.pk) == "skipped"
    error = task.context_entries.get(kind="error")
    assert error.properties == {"attempt": 1, "error_type": "ConnectionError"}


@pytest.mark.django_db
def test_exhausted_attempts_escalate_to_the_exceptions_queue(
    handler, automated_case, sent, exceptions_queue
):
    def broken(task, idempotency_key):
        raise ValueError("bad credentials")

    key = handler(broken)
    task = task_of(automated_case(key, max_attempts=3), "auto")
    for _ in range(3):
        task.refresh_from_db()
        with clock.travel_to(task.not_before):
            automation.run_step(task.pk)

    task.refresh_from_db()
    assert (task.state, task.escalated, task.queue_id) == ("queued", True, exceptions_queue.pk)
    assert names(task).count("Step Failed") == 2
    escalated = Event.objects.get(task=task, name="Step Escalated")
    assert escalated.properties["cause"] == "attempts_exhausted"
    assert task.context_entries.filter(kind="error").count() == 3


@pytest.mark.django_db
def test_a_permanent_error_escalates_without_retrying(handler, automated_case, sent):
    def refuse(task, idempotency_key):
        raise PermanentError("account is suspended upstream")

    task = task_of(automated_case(handler(refuse), max_attempts=5), "auto")

    automation.run_step(task.pk)

    task.refresh_from_db()
    assert task.state == "queued" and task.attempts == 1
    assert "Step Failed" not in names(task)


@pytest.mark.django_db
def test_an_unknown_handler_escalates_with_a_clear_error(automated_case, sent):
    task = task_of(automated_case("nobody_registered_this"), "auto")

    automation.run_step(task.pk)

    task.refresh_from_db()
    assert task.state == "queued"
    assert "no automation handler registered" in task.last_error


@pytest.mark.django_db
def test_a_late_outcome_after_the_lease_expired_is_discarded(handler, automated_case, system):
    key = handler(lambda task, idempotency_key: "ok")
    task = task_of(automated_case(key), "auto")
    task = services.task_start(task_id=task.pk, actor=system)
    with clock.travel_to(task.lease_expires_at + timedelta(seconds=1)):
        services.task_expire_lease(task_id=task.pk, actor=system)

    with pytest.raises(Conflict):
        services.task_succeed(task_id=task.pk, actor=system, attempt=1)

    task.refresh_from_db()
    assert task.state == "scheduled"
    assert "Step Completed" not in names(task)


@pytest.mark.django_db
def test_the_sweep_recovers_expired_leases_and_redispatches_lost_doorbells(
    handler, automated_case, system, sent, django_capture_on_commit_callbacks
):
    key = handler(lambda task, idempotency_key: "ok")
    lost = services.task_start(task_id=task_of(automated_case(key), "auto").pk, actor=system)
    undelivered = task_of(automated_case(key), "auto")
    sent.clear()
    later = max(lost.lease_expires_at, undelivered.not_before) + timedelta(minutes=5)

    with clock.travel_to(later), django_capture_on_commit_callbacks(execute=True):
        report = sweeper.sweep()

    lost.refresh_from_db()
    undelivered.refresh_from_db()
    assert report.leases_expired == 1
    assert lost.state == "scheduled"
    assert names(lost)[-1] == "Step Lease Expired"
    assert report.redispatched == 1
    assert undelivered.dispatched_at == later
    assert (undelivered.pk, 0) in sent
    # the lease recovery rang for its retry too
    assert any(task_id == lost.pk for task_id, _ in sent)


@pytest.mark.django_db
def test_the_sweep_leaves_work_of_held_cases_alone_until_they_resume(
    handler, automated_case, manager, sent, django_capture_on_commit_callbacks
):
    from tests.conftest import act

    key = handler(lambda task, idempotency_key: "ok")
    case = automated_case(key)
    services.case_put_on_hold(case_id=case.pk, actor=act(manager), reason="legal")
    task = task_of(case, "auto")
    sent.clear()

    with clock.travel_to(task.not_before + timedelta(hours=1)):
        assert sweeper.sweep().redispatched == 0
        assert automation.run_step(task.pk) == "skipped"
        with django_capture_on_commit_callbacks(execute=True):
            services.case_resume(case_id=case.pk, actor=act(manager))

    assert sent == [(task.pk, 0)]


@pytest.mark.django_db(transaction=True)
def test_two_sweepers_expire_each_lease_exactly_once(handler, automated_case, system, sent):
    key = handler(lambda task, idempotency_key: "ok")
    tasks = [
        services.task_start(task_id=task_of(automated_case(key), "auto").pk, actor=system)
        for _ in range(30)
    ]
    later = max(t.lease_expires_at for t in tasks) + timedelta(seconds=1)
    reports: list[sweeper.SweepReport] = []
    barrier = threading.Barrier(2)

    def run() -> None:
        try:
            barrier.wait()
            with clock.travel_to(later):
                reports.append(sweeper.sweep(batch_size=5))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    assert not any(t.is_alive() for t in threads)
    assert sum(r.leases_expired for r in reports) == 30
    assert Event.objects.filter(name="Step Lease Expired").count() == 30
    assert not Task.objects.filter(state="running").exists()


@pytest.mark.parametrize("attempt", [1, 2, 3, 8, 20])
def test_retry_delay_is_exponential_capped_and_jittered(attempt):
    rng = random.Random(attempt)
    ceiling = min(600, 30 * 2 ** (attempt - 1))
    delays = [retry_delay(attempt, base=30, cap=600, rng=rng) for _ in range(200)]
    assert all(ceiling / 2 <= d <= ceiling for d in delays)
    assert len({round(d, 3) for d in delays}) > 100  # jittered, not one value


@pytest.mark.django_db
def test_automation_that_gives_up_is_assigned_when_the_exceptions_queue_assigns(
    handler, automated_case, sent, exceptions_queue
):
    from tests.conftest import _agent

    exceptions_queue.assignment = "round_robin"
    exceptions_queue.save(update_fields=["assignment"])
    firefighter = _agent("firefighter", exceptions_queue)

    def refuse(task, idempotency_key):
        raise PermanentError("account is suspended upstream")

    task = task_of(automated_case(handler(refuse)), "auto")
    automation.run_step(task.pk)

    task.refresh_from_db()
    assert (task.state, task.queue_id, task.assignee_id) == (
        "queued",
        exceptions_queue.pk,
        firefighter.pk,
    )
    assert names(task)[-2:] == ["Step Escalated", "Step Assigned"]

"""A real Celery worker (subprocess) against Redis and the test database.

What only a real worker can show: a step completes by itself; retries then
escalation; and a worker killed with SIGKILL mid-handler loses nothing — after a
restart the step completes exactly once and nothing stays running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.db import connection

from analytics.models import Event
from onboarding import services, sweeper
from onboarding.models import Task
from tests.conftest import task_of

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db(transaction=True)


def _database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture(scope="module")
def broker_url() -> str:
    url = settings.CELERY_BROKER_URL
    if not url.startswith("redis://"):
        pytest.fail(
            "The worker tests need Redis: run `make test` (it exports "
            "CELERY_BROKER_URL=redis://127.0.0.1:6379/15) or set CELERY_BROKER_URL."
        )
    redis.Redis.from_url(url).flushdb()
    return url


class Worker:
    def __init__(self, broker: str, log: Path) -> None:
        self.broker, self.log, self.process = broker, log, None

    def start(self) -> None:
        env = {
            **os.environ,
            "DATABASE_URL": _database_url(),
            "CELERY_BROKER_URL": self.broker,
            "CELERY_VISIBILITY_TIMEOUT": "5",  # Redis hands unacked messages back soon
            "AUTOMATION_HANDLER_MODULES": "onboarding.handlers,tests.integration.handlers",
            "DEBUG": "1",
        }
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--pool",
                "solo",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-l",
                "INFO",
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def worker(broker_url, tmp_path) -> Iterator[Worker]:
    w = Worker(broker_url, tmp_path / "worker.log")
    w.start()
    yield w
    w.stop()
    print((tmp_path / "worker.log").read_text()[-4000:])  # shown when a test fails


def wait_for(condition: Callable[[], bool], timeout: float = 60, every: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {condition.__doc__ or condition}")


@pytest.fixture
def scripted_case(make_playbook, make_account, system, queue, exceptions_queue):
    """A case whose automated step runs the `scripted` test handler with `script`."""

    def build(script: dict, **step: object):
        playbook = make_playbook(
            f"scripted-{len(script)}-{time.monotonic_ns()}",
            [
                {
                    "key": "auto",
                    "name": "Auto",
                    "kind": "automated",
                    "handler": "scripted",
                    "retry_backoff_seconds": 1,
                    "retry_backoff_max_seconds": 2,
                    **step,
                },
                {"key": "after", "name": "After", "kind": "human", "queue": queue},
            ],
        )
        account = make_account(properties=script)
        return services.case_open(account=account, playbook=playbook, actor=system)

    return build


def state(task: Task) -> str:
    return Task.objects.get(pk=task.pk).state


def test_an_automated_step_completes_by_itself(worker, scripted_case):
    task = task_of(scripted_case({}), "auto")

    wait_for(lambda: state(task) == "done")

    assert Event.objects.filter(task=task, name="Step Completed").count() == 1
    assert task_of(task.case, "after").state == "queued"


def test_failures_are_retried_then_escalated(worker, scripted_case, exceptions_queue):
    retried = task_of(scripted_case({"fail_first": 2}, max_attempts=3), "auto")
    doomed = task_of(scripted_case({"fail_first": 9}, max_attempts=2), "auto")

    wait_for(lambda: state(retried) == "done" and state(doomed) == "queued")

    assert Event.objects.filter(task=retried, name="Step Failed").count() == 2
    assert Task.objects.get(pk=retried.pk).attempts == 3
    doomed = Task.objects.get(pk=doomed.pk)
    assert (doomed.escalated, doomed.queue_id) == (True, exceptions_queue.pk)
    assert doomed.context_entries.filter(kind="error").count() == 2


def test_a_worker_killed_mid_handler_loses_nothing_and_runs_the_step_once_more(
    worker, scripted_case
):
    task = task_of(scripted_case({"hang_on_attempts": [1]}, lease_seconds=2), "auto")
    wait_for(lambda: state(task) == "running")
    time.sleep(0.5)  # inside the handler now

    worker.kill()
    worker.start()
    task = Task.objects.get(pk=task.pk)
    assert task.state == "running"  # the crash left the attempt hanging...
    # ...until the sweep (beat's job) sees its lease ran out and schedules a retry
    wait_for(lambda: sweeper.sweep().leases_expired == 1, timeout=20, every=0.5)
    wait_for(lambda: state(task) == "done")
    # Redis hands the killed worker's unacked message back after the visibility
    # timeout; that duplicate must find the step done and change nothing.
    time.sleep(8)

    task = Task.objects.get(pk=task.pk)
    assert task.state == "done"
    assert task.attempts == 2
    assert Event.objects.filter(task=task, name="Step Completed").count() == 1
    assert Event.objects.filter(task=task, name="Step Lease Expired").count() == 1
    assert not Task.objects.filter(state="running").exists()

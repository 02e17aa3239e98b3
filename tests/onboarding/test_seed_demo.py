"""`manage.py seed_demo`: idempotent demo data whose history went through the write path."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections import defaultdict
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.utils import timezone

from analytics.catalog import CATALOG
from analytics.models import Event
from onboarding.actors import MANAGE_PERM, WORK_PERM
from onboarding.demo import LOGINS
from onboarding.management.commands.seed_demo import LIVE_CASES
from onboarding.models import Account, Case, Playbook, Queue, Task

PROJECT_DIR = Path(__file__).resolve().parents[2]
COUNTED_TABLES = (
    "onboarding_account",
    "onboarding_case",
    "onboarding_task",
    "onboarding_contextentry",
    "analytics_event",
    "auth_user",
)


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"manage.py {' '.join(args)} failed:\n{result.stderr}"
    return result


def _counts(db_path: Path) -> dict[str, int]:
    with sqlite3.connect(db_path) as conn:
        return {
            table: conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            for table in COUNTED_TABLES
        }


def test_seed_demo_on_a_fresh_sqlite_file_is_idempotent(tmp_path: Path) -> None:
    db_path = tmp_path / "demo.sqlite3"
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{db_path}",
        "VAR_DIR": str(tmp_path),
        "DEBUG": "1",  # the demo's default; the seeder refuses to run without it
    }
    _manage("migrate", "-v0", env=env)

    first = _manage("seed_demo", "--accounts", "20", env=env)
    after_first = _counts(db_path)
    second = _manage("seed_demo", "--accounts", "20", env=env)
    after_second = _counts(db_path)

    # 20 accounts with histories, and the live cases opened now for the worker
    assert after_first["onboarding_account"] == 20 + LIVE_CASES
    assert after_first["onboarding_case"] == 20 + LIVE_CASES
    assert after_first["analytics_event"] > 20 * 5
    assert after_second == after_first
    assert "Created" in first.stdout
    assert "already exists" in second.stdout
    for output in (first.stdout, second.stdout):
        for login in LOGINS:
            assert login.username in output
            assert login.password in output


def seed_demo(**options: object) -> None:
    # pytest-django runs with DEBUG off, where the seeder refuses unless told otherwise.
    call_command("seed_demo", no_progress=True, allow_without_debug=True, **options)


@pytest.fixture
def seeded(settings: object) -> str:
    # A fast hasher: the demo logins' passwords are hashed once each.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # type: ignore[attr-defined]
    out = StringIO()
    seed_demo(accounts=15, live=0, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_live_cases_are_left_to_the_worker(settings: object) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # type: ignore[attr-defined]
    seed_demo(accounts=2, live=3, stdout=StringIO())

    live = Case.objects.filter(account__external_id__startswith="demo-live-")
    assert live.count() == 3
    scheduled = Task.objects.filter(case__in=live, state="scheduled")
    assert scheduled.count() >= 3  # provisioning waits for a worker, dispatched on commit
    assert all(t.dispatched_at is not None for t in scheduled)


@pytest.mark.django_db
def test_seed_demo_publishes_both_playbooks_and_pins_cases_to_versions(seeded: str) -> None:
    self_serve = Playbook.objects.get(key="self-serve")
    enterprise = Playbook.objects.get(key="enterprise")

    assert set(self_serve.versions.values_list("number", "state")) == {
        (1, "published"),
        (2, "published"),
    }
    assert set(enterprise.versions.values_list("number", "state")) == {(1, "published")}
    assert enterprise.latest_published().steps.count() == 10
    pinned = set(
        Case.objects.filter(playbook=self_serve).values_list("playbook_version__number", flat=True)
    )
    assert pinned == {1, 2}


@pytest.mark.django_db
def test_seed_demo_leaves_cases_in_several_states(seeded: str) -> None:
    assert Account.objects.filter(external_id__startswith="demo-").count() == 15
    states = set(Case.objects.values_list("state", flat=True))
    assert {"completed", "active"} <= states
    live = {"queued", "in_progress", "waiting", "scheduled", "running"}
    assert set(Task.objects.values_list("state", flat=True)) & live


@pytest.mark.django_db
def test_seed_demo_logins_queues_and_groups(seeded: str) -> None:
    for login in LOGINS:
        user = authenticate(username=login.username, password=login.password)
        assert user is not None, login.username
        assert user.is_staff
        assert f"{login.username} " in seeded and login.password in seeded
    assert User.objects.get(username="admin").is_superuser
    assert User.objects.get(username="manager").has_perm(MANAGE_PERM)
    agents = User.objects.filter(username__in=["agent1", "agent2", "agent3"])
    assert all(agent.has_perm(WORK_PERM) and not agent.has_perm(MANAGE_PERM) for agent in agents)
    assert Queue.objects.get(key="exceptions").is_exceptions
    assert max(q.members.count() for q in Queue.objects.all()) >= 2  # two agents share one


@pytest.mark.django_db
def test_every_state_change_of_the_demo_has_its_event(seeded: str) -> None:
    events = list(Event.objects.order_by("occurred_at", "id"))
    assert {e.name for e in events} <= set(CATALOG)
    assert all(e.occurred_at <= timezone.now() for e in events)
    assert all(e.source == "seed" for e in events)

    opened = defaultdict(int)
    for e in events:
        if e.name == "Case Opened":
            opened[e.case_id] += 1
    assert opened == {case_id: 1 for case_id in Case.objects.values_list("id", flat=True)}

    activated = sum(1 for e in events if e.name == "Step Activated")
    assert activated == Task.objects.filter(activated_at__isnull=False).count()
    assert activated == (
        Task.objects.exclude(state="pending").count()
        - Task.objects.filter(state="cancelled", activated_at__isnull=True).count()
    )

    # Replaying each object's transition events ends in the state stored on its row.
    last_task_state: dict[int, str] = {}
    last_case_state: dict[int, str] = {}
    for e in events:
        to_state = e.properties.get("to_state")
        if e.name.startswith("SLA "):
            continue  # an SLA timer's transitions, not its task's or case's
        if e.name == "Case Opened":
            last_case_state[e.case_id] = "active"
        elif to_state is None:
            continue
        elif e.task_id is not None:
            last_task_state[e.task_id] = to_state
        elif e.case_id is not None:
            last_case_state[e.case_id] = to_state
    for task_id, state in Task.objects.values_list("id", "state"):
        assert last_task_state.get(task_id, "pending") == state, task_id
    assert last_case_state == dict(Case.objects.values_list("id", "state"))


@pytest.mark.django_db
def test_each_case_history_moves_forward_in_time(seeded: str) -> None:
    for case in Case.objects.all():
        times = list(
            Event.objects.filter(case=case).order_by("id").values_list("occurred_at", flat=True)
        )
        assert times == sorted(times), case.pk
        assert times[0] == case.opened_at


@pytest.mark.django_db
def test_running_seed_demo_again_creates_nothing(seeded: str) -> None:
    before = (Account.objects.count(), Case.objects.count(), Event.objects.count())
    out = StringIO()
    seed_demo(accounts=15, live=0, stdout=out)

    assert (Account.objects.count(), Case.objects.count(), Event.objects.count()) == before
    assert "already exists" in out.getvalue()


@pytest.mark.django_db
def test_seed_demo_refuses_to_run_with_debug_off_unless_told(settings: object) -> None:
    settings.DEBUG = False  # type: ignore[attr-defined]
    with pytest.raises(CommandError, match="--allow-without-debug"):
        call_command("seed_demo", accounts=1, no_progress=True, stdout=StringIO())

    assert not User.objects.exists()
    assert not Account.objects.exists()

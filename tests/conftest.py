"""Shared personas and builders. The suite runs on PostgreSQL (see README: make test)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import factory
import pytest
from django.conf import settings
from django.contrib.auth.models import Group, Permission, User
from django.db import connections

from onboarding import services
from onboarding.actors import Actor
from onboarding.models import Account, Case, Playbook, Queue, Task


def pytest_configure(config: pytest.Config) -> None:
    engine = settings.DATABASES["default"]["ENGINE"]
    if engine != "django.db.backends.postgresql":
        pytest.exit(
            "The test suite runs on PostgreSQL (locking and concurrency are part of what it "
            "proves). Run `make test`, or set DATABASE_URL=postgres://postgres@127.0.0.1:5432/"
            f"onboarding. Current engine: {engine}",
            returncode=2,
        )


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    is_staff = True


class QueueFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Queue
        django_get_or_create = ("key",)

    key = factory.Sequence(lambda n: f"queue-{n}")
    name = factory.LazyAttribute(lambda q: q.key.replace("-", " ").title())


def _group(name: str, codename: str) -> Group:
    group, _ = Group.objects.get_or_create(name=name)
    group.permissions.add(Permission.objects.get(codename=codename))
    return group


@pytest.fixture
def system() -> Actor:
    return Actor.system("test", source="test")


@pytest.fixture
def queue(db: None) -> Queue:
    return QueueFactory(key="specialists")


@pytest.fixture
def other_queue(db: None) -> Queue:
    return QueueFactory(key="technical")


@pytest.fixture
def exceptions_queue(db: None) -> Queue:
    return QueueFactory(key="exceptions", is_exceptions=True)


def _agent(username: str, *queues: Queue) -> User:
    user = UserFactory(username=username)
    user.groups.add(_group("Onboarding agents", "work_tasks"))
    for q in queues:
        q.members.add(user)
    return User.objects.get(pk=user.pk)  # fresh: no stale permission cache


@pytest.fixture
def agent_a(queue: Queue) -> User:
    """Works the specialists queue."""
    return _agent("agent_a", queue)


@pytest.fixture
def agent_b(queue: Queue, other_queue: Queue) -> User:
    """Works both the specialists and the technical queue."""
    return _agent("agent_b", queue, other_queue)


@pytest.fixture
def outsider(other_queue: Queue) -> User:
    """An agent of another queue only."""
    return _agent("outsider", other_queue)


@pytest.fixture
def manager(db: None) -> User:
    user = UserFactory(username="manager")
    user.groups.add(_group("Onboarding managers", "manage_onboarding"))
    return User.objects.get(pk=user.pk)


def act(user: User) -> Actor:
    return Actor.for_user(user, source="test")


StepSpec = dict[str, Any]


@pytest.fixture
def make_playbook(system: Actor) -> Callable[..., Playbook]:
    """Build and publish a playbook from step specs (dicts of playbook_version_add_step args)."""

    def build(key: str, steps: Sequence[StepSpec], publish: bool = True) -> Playbook:
        playbook = services.playbook_create(key=key, name=key.title(), actor=system)
        version = playbook.versions.get()
        for spec in steps:
            services.playbook_version_add_step(version=version, actor=system, **spec)
        if publish:
            services.playbook_version_publish(version=version, actor=system)
        return playbook

    return build


@pytest.fixture
def make_account(system: Actor) -> Callable[..., Account]:
    counter = iter(range(1, 10_000))

    def build(**attrs: Any) -> Account:
        n = next(counter)
        defaults = {"name": f"Account {n}", "plan": "growth", "segment": "smb", "region": "emea"}
        account, _ = services.account_upsert(
            external_id=f"acct-{n}", actor=system, **{**defaults, **attrs}
        )
        return account

    return build


@pytest.fixture
def human_playbook(make_playbook: Callable[..., Playbook], queue: Queue) -> Playbook:
    """Two human steps in the specialists queue: kickoff → review."""
    return make_playbook(
        "human",
        [
            {"key": "kickoff", "name": "Kickoff", "kind": "human", "queue": queue},
            {"key": "review", "name": "Review", "kind": "human", "queue": queue},
        ],
    )


@pytest.fixture
def open_case(
    human_playbook: Playbook, make_account: Callable[..., Account], system: Actor
) -> Case:
    return services.case_open(account=make_account(), playbook=human_playbook, actor=system)


def task_of(case: Case, step_key: str) -> Task:
    return Task.objects.select_related("case").get(case=case, step_key=step_key)


def race(*calls: Callable[[], Any], timeout: float = 30) -> list[Any]:
    """Start every call at once, each on its own thread and database connection;
    return each one's result or the exception it raised (for the assertions)."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int, call: Callable[[], Any]) -> None:
        try:
            barrier.wait()
            results[i] = call()
        except Exception as exc:  # surfaced by the assertions
            results[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), "threads deadlocked or hung"
    return results

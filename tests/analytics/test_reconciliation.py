"""Reconciliation: every report, recomputed from the raw events alone, equals the report
served from the facts.

Two data sets, both made through the real services: the demo (`seed_demo`), and a
generated three weeks in which cases are worked at random (claims, hand-offs,
releases, escalations, waits on the customer, failed and lost automation attempts,
skips, holds, cancellations, reopened cases, sweeps that warn and breach) against
business-hours clocks. The recomputation (`analytics.metrics.replay`) shares no SQL
with the reports.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from analytics.metrics import REPORTS, run
from analytics.metrics.base import Filters
from analytics.metrics.replay import Config, differences, replay
from onboarding import clock, services, sweeper
from onboarding.actors import Actor
from onboarding.errors import DomainError
from onboarding.models import BusinessCalendar, Case, Playbook, SlaPolicy, Task
from tests.conftest import _agent, act

pytestmark = pytest.mark.django_db


def reconcile(now: datetime, filter_sets: list[Filters]) -> list[str]:
    config = Config()
    problems = []
    for key in REPORTS:
        for filters in filter_sets:
            report = run(key, filters, now=now, limit=None)
            for problem in differences(report, replay(key, filters, now=now, config=config)):
                problems.append(f"{key} {filters}: {problem}")
    return problems


def filter_sets(now: datetime, *, playbook: str, queue: str, agent: int) -> list[Filters]:
    everything = Filters(start=(now - timedelta(days=120)).date(), end=now.date())
    return [
        everything,
        Filters.default(now.date()),
        everything.but(plan="enterprise"),
        everything.but(region="emea", channel="sales"),
        everything.but(playbook=playbook, by="region"),
        everything.but(playbook=playbook, version=1, by="version"),
        everything.but(queue=queue),
        everything.but(agent=agent),
        everything.but(window_days=5, stall_days=1, by="channel"),
    ]


# --- the demo ------------------------------------------------------------------------


def test_the_demo_reconciles(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # The clock stands still while the live cases open (the histories travel anyway):
    # on a moving clock `case_open` stamps the case's opened_at before creating its
    # tasks and its "Case Opened" event after, milliseconds apart, and the health
    # report's opening instants would differ from the events' by that much.
    with clock.travel_to(timezone.now()):
        call_command(
            "seed_demo", no_progress=True, allow_without_debug=True, accounts=60, live=2,
            stdout=StringIO(),
        )  # fmt: skip
    now = clock.now()
    agent = Task.objects.exclude(assignee=None).values_list("assignee_id", flat=True).first()

    sets = filter_sets(now, playbook="self-serve", queue="technical-onboarding", agent=agent)
    assert reconcile(now, sets) == []
    # and it is not vacuous: the demo has something in every report
    full = sets[0]
    assert run("sla", full, now=now).tables["summary"].rows[0][:2] != (0, 0)
    assert run("funnel", full.but(playbook="enterprise"), now=now).tables["stages"].rows
    assert run("automation", full, now=now).tables["failures"].rows
    assert run("workload", full, now=now).tables["open_summary"].rows[0][-1] > 0
    statuses = {row[0]: row[1] for row in run("health", full, now=now).tables["summary"].rows}
    assert all(statuses[s] > 0 for s in ("stuck", "behind", "on_track")), statuses


# --- a generated three weeks --------------------------------------------------------------

T0 = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)  # a Monday; DST in Berlin starts on the 29th


@pytest.fixture
def generated(
    make_playbook, make_account, system, queue, other_queue, exceptions_queue, agent_a, agent_b,
    manager, monkeypatch,
) -> Callable[[int], datetime]:  # fmt: skip
    monkeypatch.setattr(sweeper, "send_to_worker", lambda task_id, countdown=0: True)
    office = BusinessCalendar.objects.create(
        key="office", name="Office", tz="Europe/Berlin",
        week={d: ["09:00-12:30", "13:30-18:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
    )  # fmt: skip
    human = SlaPolicy.objects.create(
        key="human", name="Human", target=timedelta(hours=6), calendar=office,
        pause_states=["waiting"], escalation_queue=other_queue,
    )  # fmt: skip
    signal = SlaPolicy.objects.create(
        key="signal", name="Signal", target=timedelta(days=3), warn_percent=50
    )
    robot = SlaPolicy.objects.create(
        key="robot", name="Robot", target=timedelta(minutes=30), on_breach="notify"
    )
    make_playbook(
        "generated",
        [
            {"key": "provision", "name": "Provision", "kind": "automated", "max_attempts": 2,
             "handler": "provision_workspace", "sla_policy": robot, "is_milestone": True,
             "expected_within": timedelta(hours=4)},
            {"key": "kickoff", "name": "Kickoff", "kind": "human", "queue": queue,
             "sla_policy": human, "is_milestone": True, "expected_within": timedelta(days=2)},
            {"key": "connect", "name": "Connect", "kind": "signal", "signal_name": "Connected",
             "sla_policy": signal, "is_milestone": True, "is_first_value": True,
             "expected_within": timedelta(days=5)},
            {"key": "training", "name": "Training", "kind": "human", "queue": other_queue,
             "sla_policy": human, "required": False, "depends_on": ["kickoff"]},
            {"key": "handover", "name": "Handover", "kind": "human", "queue": queue,
             "depends_on": ["connect"], "is_milestone": True},
        ],
    )  # fmt: skip
    playbook = Playbook.objects.get(key="generated")
    fixer = _agent("fixer", exceptions_queue)
    people = {
        queue.pk: [act(agent_a), act(agent_b)],
        other_queue.pk: [act(agent_b)],
        exceptions_queue.pk: [act(fixer)],
    }
    boss = act(manager)

    def generate(seed: int) -> datetime:
        rng = random.Random(seed)
        now = T0

        def attempt(service: Callable, **kwargs: object) -> None:
            try:
                with clock.travel_to(now):
                    service(**kwargs)
            except DomainError:
                pass  # a move the state machine refuses: the history goes on without it

        def holder(task: Task) -> Actor:
            for person in people.get(task.queue_id, []):
                if person.user.pk == task.assignee_id:
                    return person
            return boss

        for _ in range(700):
            now += timedelta(minutes=rng.choice([3, 10, 20, 45, 90, 240]))
            if rng.random() < 0.06:
                plan = rng.choice(["growth", "enterprise", "starter"])
                account = make_account(
                    plan=plan,
                    region=rng.choice(["emea", "na"]),
                    channel=rng.choice(["sales", "self-serve"]),
                )
                attempt(services.case_open, account=account, playbook=playbook, actor=system)
            if rng.random() < 0.1:
                with clock.travel_to(now):
                    sweeper.sweep()
            wanted = ["completed"] if rng.random() < 0.08 else ["active", "on_hold"]
            cases = list(Case.objects.filter(state__in=wanted).order_by("id"))
            if not cases:
                continue
            case = rng.choice(cases)
            roll = rng.random()
            if case.state == "on_hold":
                if roll < 0.3:
                    attempt(services.case_resume, case_id=case.pk, actor=boss)
                continue
            if case.state == "completed":
                if roll < 0.5:
                    done = list(case.tasks.filter(state__in=["done", "skipped"]))
                    step = rng.choice(done).step_key
                    attempt(services.case_reopen, case_id=case.pk, actor=boss, step_key=step,
                            reason="again")  # fmt: skip
                continue
            if case.state == "cancelled":
                continue
            if roll < 0.02:
                attempt(services.case_cancel, case_id=case.pk, actor=boss, reason="churned")
                continue
            if roll < 0.05:
                attempt(services.case_put_on_hold, case_id=case.pk, actor=boss, reason="wait")
                continue
            live = list(case.tasks.exclude(state__in=["pending", "done", "skipped", "cancelled"]))
            if not live:
                continue
            task = rng.choice(live)
            r = rng.random()
            if task.state == "scheduled":
                attempt(services.task_start, task_id=task.pk, actor=system)
            elif task.state == "running":
                if r < 0.75:
                    attempt(services.task_succeed, task_id=task.pk, actor=system)
                elif r < 0.9:
                    error = rng.choice(["TimeoutError", "HTTPError"])
                    attempt(services.task_fail, task_id=task.pk, actor=system, error=error,
                            error_type=error)  # fmt: skip
                else:
                    now += timedelta(minutes=10)  # past the 5-minute lease
                    attempt(services.task_expire_lease, task_id=task.pk, actor=system)
            elif task.state == "queued":
                members = people.get(task.queue_id, [])
                if task.assignee_id:
                    who = holder(task)
                else:
                    who = rng.choice(members) if members and r < 0.85 else boss
                attempt(services.task_claim, task_id=task.pk, actor=who)
            elif task.state == "in_progress":
                who = holder(task)
                if r < 0.5:
                    attempt(services.task_complete, task_id=task.pk, actor=who)
                elif r < 0.62:
                    attempt(services.task_wait_on_customer, task_id=task.pk, actor=who,
                            reason="their move")  # fmt: skip
                elif r < 0.74:
                    target = rng.choice([queue, other_queue])
                    attempt(services.task_hand_off, task_id=task.pk, actor=who, note="yours",
                            to_queue_id=target.pk)  # fmt: skip
                elif r < 0.84:
                    attempt(services.task_release, task_id=task.pk, actor=who)
                elif r < 0.92:
                    attempt(services.task_escalate, task_id=task.pk, actor=who, reason="help")
                else:
                    attempt(services.task_skip, task_id=task.pk, actor=boss, reason="not needed")
            elif task.state == "waiting":
                if task.kind == "signal":
                    if r < 0.5:
                        attempt(services.task_complete_by_signal, task_id=task.pk,
                                actor=system, signal_name="Connected")  # fmt: skip
                else:
                    attempt(services.task_resume, task_id=task.pk, actor=holder(task))
        return now + timedelta(hours=1)

    return generate


@pytest.mark.parametrize("seed", [1, 2])
def test_a_generated_history_reconciles(generated, queue, agent_a, seed):
    now = generated(seed)

    # the generator reached the paths the reports must follow
    states = set(Case.objects.values_list("state", flat=True))
    assert {"active", "completed"} <= states
    assert Case.objects.filter(reopen_count__gt=0).exists()
    assert Task.objects.filter(escalated=True).exists()
    assert Task.objects.filter(handoff_count__gt=0).exists()

    sets = filter_sets(now, playbook="generated", queue=queue.key, agent=agent_a.pk)
    assert reconcile(now, sets) == []
    health = {r["status"]: r for r in run("health", sets[0], now=now).tables["summary"].as_dicts()}
    assert all(health[s]["cases"] > 0 for s in ("stuck", "behind", "on_track")), health
    assert 0 < health["all"]["done"] < health["all"]["expected"]
    # with another "now": the at-risk, overdue, in-progress and stalled rules move
    earlier = now - timedelta(days=4)
    assert reconcile(earlier, [Filters(start=T0.date(), end=earlier.date())]) == []

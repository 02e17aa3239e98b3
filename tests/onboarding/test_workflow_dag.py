"""The workflow engine: parallel branches, joins, completion and playbook versions."""

from __future__ import annotations

import pytest

from analytics.models import Event
from onboarding import services
from onboarding.errors import Conflict, InvalidInput
from onboarding.models import Case, Step
from tests.conftest import act, task_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def diamond(make_playbook, queue, other_queue):
    """provision → {kickoff, connect} → review (a join), plus an optional survey."""
    return make_playbook(
        "diamond",
        [
            {"key": "provision", "name": "Provision", "kind": "automated", "handler": "p"},
            {"key": "kickoff", "name": "Kickoff", "kind": "human", "queue": queue},
            {
                "key": "connect",
                "name": "Connect",
                "kind": "signal",
                "signal_name": "Data Source Connected",
                "depends_on": ["provision"],
            },
            {
                "key": "review",
                "name": "Review",
                "kind": "human",
                "queue": other_queue,
                "depends_on": ["kickoff", "connect"],
            },
            {
                "key": "survey",
                "name": "Survey",
                "kind": "human",
                "queue": queue,
                "depends_on": [],
                "required": False,
            },
        ],
    )


def states(case: Case) -> dict[str, str]:
    return dict(case.tasks.values_list("step_key", "state"))


def _finish_provision(case, system):
    task = task_of(case, "provision")
    services.task_start(task_id=task.pk, actor=system)
    services.task_succeed(task_id=task.pk, actor=system)


def test_opening_a_case_activates_only_tasks_without_dependencies(diamond, make_account, system):
    case = services.case_open(account=make_account(), playbook=diamond, actor=system)

    assert states(case) == {
        "provision": "scheduled",
        "kickoff": "pending",
        "connect": "pending",
        "review": "pending",
        "survey": "queued",
    }


def test_parallel_branches_activate_together(diamond, make_account, system):
    case = services.case_open(account=make_account(), playbook=diamond, actor=system)

    _finish_provision(case, system)

    assert states(case)["kickoff"] == "queued"
    assert states(case)["connect"] == "waiting"


def test_a_join_waits_for_all_its_inputs(diamond, make_account, system, agent_a):
    case = services.case_open(account=make_account(), playbook=diamond, actor=system)
    _finish_provision(case, system)
    kickoff = services.task_claim(task_id=task_of(case, "kickoff").pk, actor=act(agent_a))
    services.task_complete(task_id=kickoff.pk, actor=act(agent_a))

    assert states(case)["review"] == "pending"

    services.task_complete_by_signal(
        task_id=task_of(case, "connect").pk, actor=system, signal_name="Data Source Connected"
    )

    assert states(case)["review"] == "queued"
    assert Event.objects.filter(task__step_key="review", name="Step Activated").count() == 1


def test_case_completes_when_every_required_task_is_final(
    diamond, make_account, system, agent_a, agent_b, manager
):
    case = services.case_open(account=make_account(), playbook=diamond, actor=system)
    _finish_provision(case, system)
    services.task_skip(task_id=task_of(case, "kickoff").pk, actor=act(manager), reason="n/a")
    services.task_complete_by_signal(
        task_id=task_of(case, "connect").pk, actor=system, signal_name="Data Source Connected"
    )
    review = services.task_claim(task_id=task_of(case, "review").pk, actor=act(agent_b))
    assert Case.objects.get(pk=case.pk).state == "active"

    services.task_complete(task_id=review.pk, actor=act(agent_b))

    case.refresh_from_db()
    assert case.state == "completed"
    assert case.completed_at is not None
    # the optional survey does not hold the case open; it ends with it
    assert states(case)["survey"] == "cancelled"
    assert Event.objects.filter(case=case, name="Case Completed").count() == 1


def test_a_skipped_dependency_counts_as_satisfied(diamond, make_account, system, manager):
    case = services.case_open(account=make_account(), playbook=diamond, actor=system)

    services.task_skip(task_id=task_of(case, "provision").pk, actor=act(manager), reason="manual")

    assert states(case)["kickoff"] == "queued"


def test_cancelling_a_case_cancels_every_open_task(diamond, make_account, system, manager):
    case = services.case_open(account=make_account(), playbook=diamond, actor=system)

    services.case_cancel(case_id=case.pk, actor=act(manager), reason="churned")

    assert set(states(case).values()) == {"cancelled"}
    assert Event.objects.filter(case=case, name="Step Cancelled").count() == 5


def test_reopening_a_completed_case_puts_the_step_back_in_its_queue(
    make_playbook, queue, make_account, system, agent_a, manager
):
    playbook = make_playbook(
        "one", [{"key": "only", "name": "Only", "kind": "human", "queue": queue}]
    )
    case = services.case_open(account=make_account(), playbook=playbook, actor=system)
    task = services.task_claim(task_id=task_of(case, "only").pk, actor=act(agent_a))
    services.task_complete(task_id=task.pk, actor=act(agent_a))

    services.case_reopen(case_id=case.pk, actor=act(manager), step_key="only", reason="bug")

    case.refresh_from_db()
    assert case.state == "active"
    assert case.reopen_count == 1
    assert states(case) == {"only": "queued"}


def test_editing_a_published_playbook_makes_a_new_version_and_running_cases_keep_theirs(
    diamond, make_account, system, queue
):
    running = services.case_open(account=make_account(), playbook=diamond, actor=system)
    v1 = running.playbook_version

    draft = services.playbook_draft_new_version(playbook=diamond, actor=system)
    services.playbook_version_add_step(
        version=draft, actor=system, key="training", name="Training", kind="human", queue=queue
    )
    services.playbook_version_publish(version=draft, actor=system)
    newer = services.case_open(account=make_account(), playbook=diamond, actor=system)

    assert (v1.number, draft.number) == (1, 2)
    assert newer.playbook_version_id == draft.pk
    assert Case.objects.get(pk=running.pk).playbook_version_id == v1.pk
    assert "training" not in states(running)
    assert "training" in states(newer)
    # the copy kept the DAG: review still joins kickoff and connect
    review = draft.steps.get(key="review")
    assert set(review.depends_on.values_list("key", flat=True)) == {"kickoff", "connect"}


def test_published_steps_are_frozen(diamond, system, queue):
    step = diamond.latest_published().steps.get(key="kickoff")
    step.name = "Renamed"

    with pytest.raises(Conflict):
        step.save()
    with pytest.raises(Conflict):
        services.playbook_version_add_step(
            version=diamond.latest_published(),
            actor=system,
            key="x",
            name="X",
            kind="human",
            queue=queue,
        )
    assert Step.objects.get(pk=step.pk).name == "Kickoff"


def test_publishing_refuses_a_cycle(make_playbook, queue, system):
    playbook = make_playbook(
        "loop",
        [
            {"key": "a", "name": "A", "kind": "human", "queue": queue},
            {"key": "b", "name": "B", "kind": "human", "queue": queue},
        ],
        publish=False,
    )
    version = playbook.versions.get()
    a, b = version.steps.get(key="a"), version.steps.get(key="b")
    a.depends_on.add(b)  # b already depends on a

    with pytest.raises(InvalidInput, match="cycle"):
        services.playbook_version_publish(version=version, actor=system)
    assert playbook.versions.get().state == "draft"


def test_a_step_cannot_depend_on_an_unknown_step(make_playbook, queue, system):
    playbook = make_playbook("bad", [], publish=False)

    with pytest.raises(InvalidInput):
        services.playbook_version_add_step(
            version=playbook.versions.get(),
            actor=system,
            key="a",
            name="A",
            kind="human",
            queue=queue,
            depends_on=["ghost"],
        )


def test_a_human_step_needs_a_queue(make_playbook, system):
    playbook = make_playbook("noqueue", [], publish=False)

    with pytest.raises(InvalidInput, match="queue"):
        services.playbook_version_add_step(
            version=playbook.versions.get(), actor=system, key="a", name="A", kind="human"
        )


def test_an_empty_playbook_cannot_be_published(make_playbook, system):
    playbook = make_playbook("empty", [], publish=False)

    with pytest.raises(InvalidInput):
        services.playbook_version_publish(version=playbook.versions.get(), actor=system)

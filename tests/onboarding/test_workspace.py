"""The agent workspace: the desk, the queue overview, the case page and its actions.

What a person is offered is computed from the state machines for them; what they post
is decided by the services. Crafted and stale posts change nothing and say why.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from analytics.models import Event
from onboarding import clock, services
from onboarding.models import Case, ContextEntry, Playbook, Queue, SlaPolicy, SlaTimer, Task
from tests.conftest import act, task_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def login(client: Client) -> Callable[[User], Client]:
    def as_user(user: User) -> Client:
        user.user_permissions.add(*Permission.objects.filter(codename__startswith="view_"))
        client.force_login(user)
        return client

    return as_user


@pytest.fixture
def clocked(queue: Queue) -> SlaPolicy:
    """An 8-hour clock on the specialists queue, paused while waiting on the customer."""
    policy = SlaPolicy.objects.create(
        key="response", name="Response", target=timedelta(hours=8), pause_states=["waiting"]
    )
    queue.default_sla_policy = policy
    queue.save()
    return policy


def _case_url(case: Case) -> str:
    return reverse("admin:onboarding_case_change", args=[case.pk])


def _act(client: Client, case: Case, action: str, target: Task | Case | None = None, **fields):
    target = target or case
    data = {"action": action, "seen_state": target.state}
    if isinstance(target, Task):
        data["task"] = target.pk
    data.update({f"{action}-{target.pk}-{name}": value for name, value in fields.items()})
    return client.post(reverse("admin:onboarding_case_act", args=[case.pk]), data)


def _messages(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def _offered(response, step_key: str) -> list[str]:
    (task,) = [t for t in response.context["page"].tasks if t.step_key == step_key]
    return [a.spec.name for a in task.actions]


# --- what each person is offered -----------------------------------------------------


def test_a_member_is_offered_only_claim_on_a_queued_task(login, agent_a, open_case):
    page = login(agent_a).get(_case_url(open_case))

    assert _offered(page, "kickoff") == ["claim"]
    assert _offered(page, "review") == []  # pending: nothing to do yet


def test_the_assignee_is_offered_the_work_actions(login, agent_a, open_case):
    services.task_claim(task_id=task_of(open_case, "kickoff").pk, actor=act(agent_a))

    page = login(agent_a).get(_case_url(open_case))

    assert _offered(page, "kickoff") == [
        "complete",
        "hand_off",
        "wait_on_customer",
        "escalate",
        "release",
    ]
    assert [a.spec.name for a in page.context["case_actions"]] == ["add_note"]


def test_another_member_sees_a_claimed_task_but_may_not_touch_it(
    login, agent_a, agent_b, open_case
):
    services.task_claim(task_id=task_of(open_case, "kickoff").pk, actor=act(agent_a))

    page = login(agent_b).get(_case_url(open_case))

    assert _offered(page, "kickoff") == []


def test_a_manager_is_also_offered_reassign_skip_hold_and_cancel(login, manager, open_case):
    page = login(manager).get(_case_url(open_case))

    assert _offered(page, "kickoff") == ["claim", "hand_off", "escalate", "reassign", "skip"]
    assert [a.spec.name for a in page.context["case_actions"]] == [
        "add_note",
        "put_on_hold",
        "cancel",
    ]


def test_waiting_on_the_customer_offers_resume(login, agent_a, open_case):
    kickoff = task_of(open_case, "kickoff")
    services.task_claim(task_id=kickoff.pk, actor=act(agent_a))
    services.task_wait_on_customer(task_id=kickoff.pk, actor=act(agent_a), reason="Need SSO")

    page = login(agent_a).get(_case_url(open_case))

    assert _offered(page, "kickoff") == ["resume", "escalate"]


# --- doing it ------------------------------------------------------------------------


def test_completing_with_an_outcome_note_records_one_event_and_the_note(login, agent_a, open_case):
    kickoff = task_of(open_case, "kickoff")
    services.task_claim(task_id=kickoff.pk, actor=act(agent_a))
    kickoff.refresh_from_db()

    response = _act(login(agent_a), open_case, "complete", kickoff, note="Walked them through it")

    assert response.status_code == 302
    kickoff.refresh_from_db()
    assert kickoff.state == "done"
    assert Event.objects.filter(task=kickoff, name="Step Completed").count() == 1
    assert ContextEntry.objects.get(task=kickoff, kind="note").body == "Walked them through it"
    assert "kickoff is done." in _messages(response)


def test_a_hand_off_without_a_note_keeps_what_was_typed_and_changes_nothing(
    login, agent_a, other_queue, open_case
):
    kickoff = task_of(open_case, "kickoff")
    services.task_claim(task_id=kickoff.pk, actor=act(agent_a))
    kickoff.refresh_from_db()
    events = Event.objects.count()

    response = _act(
        login(agent_a), open_case, "hand_off", kickoff, to_queue=other_queue.pk, note=" "
    )

    assert response.status_code == 400
    (task,) = [t for t in response.context["page"].tasks if t.pk == kickoff.pk]
    (hand_off,) = [a for a in task.actions if a.spec.name == "hand_off"]
    assert hand_off.open and "note" in hand_off.form.errors
    assert hand_off.form["to_queue"].value() == str(other_queue.pk)
    kickoff.refresh_from_db()
    assert (kickoff.state, kickoff.queue_id) == (
        "in_progress",
        open_case.tasks.get(step_key="review").queue_id,
    )
    assert Event.objects.count() == events


def test_a_hand_off_moves_the_task_and_logs_the_note(login, agent_a, other_queue, open_case):
    kickoff = task_of(open_case, "kickoff")
    services.task_claim(task_id=kickoff.pk, actor=act(agent_a))
    kickoff.refresh_from_db()

    _act(login(agent_a), open_case, "hand_off", kickoff, to_queue=other_queue.pk, note="SSO")

    kickoff.refresh_from_db()
    assert (kickoff.state, kickoff.queue_id, kickoff.assignee_id) == (
        "queued",
        other_queue.pk,
        None,
    )
    assert ContextEntry.objects.get(task=kickoff, kind="handoff").body == "SSO"


def test_the_hand_off_agent_choices_say_which_queues_each_agent_works(
    login, agent_a, agent_b, queue, other_queue, open_case
):
    kickoff = task_of(open_case, "kickoff")
    services.task_claim(task_id=kickoff.pk, actor=act(agent_a))

    page = login(agent_a).get(_case_url(open_case)).content.decode()

    both = " ".join(str(q) for q in sorted([queue.pk, other_queue.pk]))
    assert f'value="{agent_b.pk}" data-queues="{both}"' in page
    assert f'value="{agent_a.pk}" data-queues="{queue.pk}"' in page


def test_a_hand_off_reserved_for_someone_outside_the_target_queue_is_refused_on_the_field(
    login, agent_a, other_queue, open_case
):
    kickoff = task_of(open_case, "kickoff")
    services.task_claim(task_id=kickoff.pk, actor=act(agent_a))
    kickoff.refresh_from_db()
    events = Event.objects.count()

    response = _act(
        login(agent_a),
        open_case,
        "hand_off",
        kickoff,
        to_queue=other_queue.pk,
        to_assignee=agent_a.pk,  # works specialists only
        note="For you",
    )

    assert response.status_code == 400
    (task,) = [t for t in response.context["page"].tasks if t.pk == kickoff.pk]
    (hand_off,) = [a for a in task.actions if a.spec.name == "hand_off"]
    assert hand_off.form.errors["to_assignee"] == ["This agent does not work the queue chosen."]
    kickoff.refresh_from_db()
    assert (kickoff.state, kickoff.assignee_id) == ("in_progress", agent_a.pk)
    assert Event.objects.count() == events


def test_a_crafted_post_for_a_forbidden_transition_is_refused(login, agent_a, open_case):
    """Skip is for managers: an agent who posts it anyway changes nothing."""
    kickoff = task_of(open_case, "kickoff")
    events = Event.objects.count()

    response = _act(login(agent_a), open_case, "skip", kickoff, reason="I'd rather not")

    assert response.status_code == 403
    assert any("Skip refused" in m for m in _messages(response))
    kickoff.refresh_from_db()
    assert kickoff.state == "queued"
    assert Event.objects.count() == events


def test_a_crafted_post_on_another_cases_task_is_refused(
    login, agent_a, open_case, make_account, human_playbook, system
):
    other = services.case_open(account=make_account(), playbook=human_playbook, actor=system)
    foreign = task_of(other, "kickoff")

    response = _act(login(agent_a), open_case, "claim", foreign)

    assert response.status_code == 302
    assert "That task is not part of this case" in _messages(response)[0]
    foreign.refresh_from_db()
    assert foreign.state == "queued"


def test_claiming_from_a_stale_page_says_who_got_there_first(login, agent_a, agent_b, open_case):
    kickoff = task_of(open_case, "kickoff")
    seen = kickoff.state  # agent A's page shows it queued
    services.task_claim(task_id=kickoff.pk, actor=act(agent_b))
    events = Event.objects.count()

    response = login(agent_a).post(
        reverse("admin:onboarding_case_act", args=[open_case.pk]),
        {"action": "claim", "task": kickoff.pk, "seen_state": seen},
    )

    assert response.status_code == 302
    assert "kickoff was already claimed by agent_b." in _messages(response)[0]
    kickoff.refresh_from_db()
    assert kickoff.assignee_id == agent_b.pk
    assert Event.objects.count() == events


def test_an_unknown_action_changes_nothing(login, manager, open_case):
    response = login(manager).post(
        reverse("admin:onboarding_case_act", args=[open_case.pk]), {"action": "delete_all"}
    )

    assert response.status_code == 302
    assert "Unknown action" in _messages(response)[0]


def test_a_manager_reassigns_a_task_to_an_agent(login, manager, agent_a, agent_b, open_case):
    kickoff = task_of(open_case, "kickoff")
    services.task_claim(task_id=kickoff.pk, actor=act(agent_a))
    kickoff.refresh_from_db()

    _act(login(manager), open_case, "reassign", kickoff, to_assignee=agent_b.pk, note="Cover")

    kickoff.refresh_from_db()
    assert (kickoff.state, kickoff.assignee_id) == ("queued", agent_b.pk)
    assert Event.objects.filter(task=kickoff, name="Step Assigned").count() == 1


def test_an_outsider_cannot_open_or_act_on_the_case(login, outsider, open_case):
    client = login(outsider)
    kickoff = task_of(open_case, "kickoff")

    page = client.get(_case_url(open_case))
    post = _act(client, open_case, "claim", kickoff)

    assert page.status_code == 302 and post.status_code == 302
    assert "does not exist or is not in your queues" in _messages(post)[-1]
    kickoff.refresh_from_db()
    assert kickoff.state == "queued"


# --- the desk and the queues ----------------------------------------------------------


def test_the_queue_overview_counts_waiting_work_and_its_sla_risk(
    login, agent_a, agent_b, queue, clocked, human_playbook, make_account, system
):
    cases = [
        services.case_open(account=make_account(), playbook=human_playbook, actor=system)
        for _ in range(4)
    ]
    services.task_claim(task_id=task_of(cases[0], "kickoff").pk, actor=act(agent_b))
    late, warned = (SlaTimer.objects.get(task=task_of(c, "kickoff")) for c in cases[2:])
    now = clock.now()
    SlaTimer.objects.filter(pk=late.pk).update(due_at=now - timedelta(minutes=1))
    SlaTimer.objects.filter(pk=warned.pk).update(warn_at=now - timedelta(minutes=1))

    page = login(agent_a).get(reverse("workspace:queues"))

    (row,) = page.context["queue_rows"]
    assert (row.queue, row.queued, row.in_progress, row.waiting) == (queue, 3, 1, 0)
    assert (row.breached, row.at_risk) == (1, 1)
    assert row.oldest_queued_at is not None


def test_claim_next_from_the_overview_lands_on_the_case(login, agent_a, queue, open_case):
    response = login(agent_a).post(reverse("workspace:claim_next", args=[queue.pk]))

    assert response.url == _case_url(open_case)
    assert task_of(open_case, "kickoff").assignee_id == agent_a.pk


def test_claim_next_on_an_empty_queue_says_so(login, agent_a, queue):
    response = login(agent_a).post(reverse("workspace:claim_next", args=[queue.pk]))

    assert response.url == reverse("workspace:queues")
    assert _messages(response) == ["Nothing to claim in Specialists right now."]


def test_claim_next_on_someone_elses_queue_is_not_found(login, outsider, queue, open_case):
    response = login(outsider).post(reverse("workspace:claim_next", args=[queue.pk]))

    assert response.status_code == 404
    assert task_of(open_case, "kickoff").state == "queued"


def test_my_work_lists_my_tasks_soonest_due_first(
    login, agent_a, clocked, human_playbook, make_account, system
):
    first, second = (
        services.case_open(account=make_account(), playbook=human_playbook, actor=system)
        for _ in range(2)
    )
    for case in (first, second):
        services.task_claim(task_id=task_of(case, "kickoff").pk, actor=act(agent_a))
    Task.objects.filter(pk=task_of(second, "kickoff").pk).update(
        sla_due_at=clock.now() + timedelta(minutes=5)
    )

    page = login(agent_a).get(reverse("admin:index"))

    assert [t.case_id for t in page.context["my_tasks"]] == [second.pk, first.pk]
    assert all(t.sla is not None and t.sla.status == "on_track" for t in page.context["my_tasks"])


# --- filters ---------------------------------------------------------------------------


def test_cases_filter_by_sla_status_queue_and_assignee(
    login, manager, agent_a, queue, clocked, human_playbook, make_account, system
):
    on_time, late = (
        services.case_open(account=make_account(), playbook=human_playbook, actor=system)
        for _ in range(2)
    )
    SlaTimer.objects.filter(task=task_of(late, "kickoff")).update(
        due_at=clock.now() - timedelta(minutes=1)
    )
    services.task_claim(task_id=task_of(on_time, "kickoff").pk, actor=act(agent_a))
    client = login(manager)
    url = reverse("admin:onboarding_case_changelist")

    def listed(**params) -> set[int]:
        return {c.pk for c in client.get(url, params).context["cl"].result_list}

    assert listed(sla="breached") == {late.pk}
    assert listed(sla="on_track") == {on_time.pk}
    assert listed(queue=queue.pk) == {on_time.pk, late.pk}
    assert listed(assignee=agent_a.pk) == {on_time.pk}
    assert listed(assignee="none") == {late.pk}


# --- no N+1 ------------------------------------------------------------------------------


def _queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


@pytest.mark.parametrize("page", ["desk", "queues", "case"])
def test_workspace_pages_cost_the_same_queries_with_more_tasks(
    page,
    login,
    manager,
    agent_a,
    queue,
    other_queue,
    clocked,
    make_playbook: Callable[..., Playbook],
    make_account,
    system,
):
    # Twelve independent steps: all queued at once, so there is work to claim.
    steps = [
        {"key": f"s{n}", "name": f"Step {n}", "kind": "human", "queue": queue, "depends_on": []}
        for n in range(12)
    ]
    wide = make_playbook("wide", steps)
    case = services.case_open(account=make_account(), playbook=wide, actor=system)
    url = {
        "desk": reverse("admin:index"),
        "queues": reverse("workspace:queues"),
        "case": _case_url(case),
    }[page]
    # The desk lists the agent's own tasks, which grow; the other pages are the manager's.
    client = login(agent_a if page == "desk" else manager)

    def grow(n: int) -> None:
        for task in list(case.tasks.filter(state="queued"))[:n]:
            services.task_claim(task_id=task.pk, actor=act(agent_a))
            services.case_add_note(case_id=case.pk, actor=act(agent_a), body="Working on it")
        for _ in range(n):
            services.case_open(
                account=make_account(),
                playbook=wide,
                actor=system,
            )

    grow(1)
    client.get(url)  # warm per-process caches (calendars, content types)
    few = _queries(client, url)
    grow(4)
    many = _queries(client, url)

    assert many == few


def test_the_timeline_can_show_only_what_people_and_automation_wrote(login, manager, open_case):
    services.case_add_note(case_id=open_case.pk, actor=act(manager), body="Spoke to the CTO")

    everything = login(manager).get(_case_url(open_case)).context["page"].timeline
    notes = login(manager).get(_case_url(open_case), {"log": "notes"}).context["page"].timeline

    assert {i.kind for i in everything} == {"event", "note"}
    assert [(i.kind, i.body) for i in notes] == [("note", "Spoke to the CTO")]


# --- sidebar ----------------------------------------------------------------------------


def test_the_sidebar_offers_managers_reports_and_alerts_and_everyone_the_event_catalog(
    login, agent_a, manager
):
    alerts = reverse("admin:analytics_alert_changelist")
    rules = reverse("admin:analytics_alertrule_changelist")
    catalog = reverse("workspace:event_catalog")
    reports = reverse("workspace:reports")

    as_manager = login(manager).get(reverse("admin:index")).content.decode()
    assert f'href="{alerts}"' in as_manager
    assert f'href="{rules}"' in as_manager
    assert f'href="{catalog}"' in as_manager
    assert f'href="{reports}"' in as_manager

    as_agent = login(agent_a).get(reverse("admin:index")).content.decode()
    assert f'href="{catalog}"' in as_agent
    assert f'href="{alerts}"' not in as_agent
    assert f'href="{rules}"' not in as_agent
    assert f'href="{reports}"' not in as_agent

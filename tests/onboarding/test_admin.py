"""The admin shows every model to staff and is never a side door into the state machines:
state fields are never form fields, cases/tasks/events cannot be added or edited, and
the only way to change a state is a button that calls the service."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from analytics.admin import CappedCountPaginator
from analytics.models import Event
from onboarding import services
from onboarding.actors import Actor
from onboarding.models import (
    Account,
    Case,
    ContextEntry,
    Playbook,
    PlaybookVersion,
    Queue,
    Step,
    Task,
)
from tests.conftest import QueueFactory, UserFactory, task_of

pytestmark = pytest.mark.django_db


@dataclass
class Seeded:
    account: Account
    case: Case
    task: Task
    note: ContextEntry
    event: Event
    playbook: Playbook
    published: PlaybookVersion
    published_step: Step
    draft: PlaybookVersion
    draft_step: Step
    queue: Queue


@pytest.fixture
def superuser(db: None) -> User:
    return User.objects.create_superuser("root", "root@example.com", "unused-password")


@pytest.fixture
def staff(client: Client, superuser: User) -> Client:
    client.force_login(superuser)
    return client


@pytest.fixture
def seeded(
    open_case: Case,
    human_playbook: Playbook,
    make_playbook: Callable[..., Playbook],
    system: Actor,
    queue: Queue,
) -> Seeded:
    """One open case on a published playbook, a note on it, and a separate draft."""
    note = services.case_add_note(case_id=open_case.pk, actor=system, body="Called the customer")
    other = make_playbook(
        "enterprise",
        [{"key": "kickoff", "name": "Kickoff call", "kind": "human", "queue": queue}],
        publish=False,
    )
    published = human_playbook.versions.get()
    draft = other.versions.get()
    return Seeded(
        account=open_case.account,
        case=open_case,
        task=task_of(open_case, "kickoff"),
        note=note,
        event=Event.objects.filter(case=open_case).latest("id"),
        playbook=human_playbook,
        published=published,
        published_step=published.steps.get(key="kickoff"),
        draft=draft,
        draft_step=draft.steps.get(),
        queue=queue,
    )


ADMIN_MODELS = [
    "onboarding_account",
    "onboarding_playbook",
    "onboarding_playbookversion",
    "onboarding_step",
    "onboarding_queue",
    "onboarding_case",
    "onboarding_task",
    "onboarding_contextentry",
    "analytics_event",
]


def _object_of(seeded: Seeded, model: str) -> Any:
    return {
        "onboarding_account": seeded.account,
        "onboarding_playbook": seeded.playbook,
        "onboarding_playbookversion": seeded.published,
        "onboarding_step": seeded.published_step,
        "onboarding_queue": seeded.queue,
        "onboarding_case": seeded.case,
        "onboarding_task": seeded.task,
        "onboarding_contextentry": seeded.note,
        "analytics_event": seeded.event,
    }[model]


def _change_url(obj: Any) -> str:
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])


def _messages(response: Any) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


# --- everything is visible and searchable -------------------------------------------


@pytest.mark.parametrize("model", ADMIN_MODELS)
def test_every_changelist_loads_and_lists_the_seeded_rows(staff: Client, seeded: Seeded, model):
    response = staff.get(reverse(f"admin:{model}_changelist"))

    assert response.status_code == 200
    assert response.context["cl"].result_count >= 1


@pytest.mark.parametrize(
    ("model", "query"),
    [
        ("onboarding_account", "acct-1"),
        ("onboarding_playbook", "human"),
        ("onboarding_playbookversion", "human"),
        ("onboarding_step", "kickoff"),
        ("onboarding_queue", "special"),
        ("onboarding_case", "acct-1"),
        ("onboarding_task", "kickoff"),
        ("onboarding_contextentry", "customer"),
        ("analytics_event", "Case Opened"),
    ],
)
def test_every_changelist_search_finds_the_seeded_rows(staff: Client, seeded: Seeded, model, query):
    response = staff.get(reverse(f"admin:{model}_changelist"), {"q": query})

    assert response.status_code == 200
    assert response.context["cl"].result_count >= 1


def test_case_search_matches_the_account_name_and_not_other_accounts(staff: Client, seeded: Seeded):
    url = reverse("admin:onboarding_case_changelist")

    found = staff.get(url, {"q": seeded.account.name})
    missing = staff.get(url, {"q": "no such account"})

    assert list(found.context["cl"].result_list) == [seeded.case]
    assert missing.context["cl"].result_count == 0


def test_events_are_searchable_by_uuid(staff: Client, seeded: Seeded):
    response = staff.get(reverse("admin:analytics_event_changelist"), {"q": str(seeded.event.uuid)})

    assert list(response.context["cl"].result_list) == [seeded.event]


def test_the_events_list_finds_a_cases_events_by_its_number(staff: Client, seeded: Seeded):
    url = reverse("admin:analytics_event_changelist")

    by_number = staff.get(url, {"q": f"#{seeded.case.pk}"}).context["cl"].result_list
    free_text = staff.get(url, {"q": "called the customer"})

    assert {e.case_id for e in by_number} == {seeded.case.pk} and len(by_number) >= 2
    assert free_text.status_code == 200 and free_text.context["cl"].result_count == 0
    assert "Search by an event" in free_text.content.decode()  # says what it searches


def test_the_events_list_filters_by_source_and_date_range(staff: Client, seeded: Seeded):
    url = reverse("admin:analytics_event_changelist")
    day = seeded.event.occurred_at.date()

    def listed(**params: str) -> set[int]:
        response = staff.get(url, params)
        assert response.status_code == 200
        return {e.pk for e in response.context["cl"].result_list}

    everything = listed()
    assert seeded.event.pk in listed(source__icontains=seeded.event.source)
    assert listed(source__icontains="no-such-source") == set()
    that_day = {
        "occurred_at_from_0": str(day),
        "occurred_at_from_1": "00:00",
        "occurred_at_to_0": str(day),
        "occurred_at_to_1": "23:59",
    }
    assert listed(**that_day) == everything
    the_day_before = {"occurred_at_to_0": str(day - timedelta(days=1)), "occurred_at_to_1": "23:59"}
    assert listed(**the_day_before) == set()
    assert listed(occurred_at_from_0=str(day), occurred_at_to_0=str(day)) == everything
    garbage = {"occurred_at_from_0": "not a date", "occurred_at_from_1": "noon"}
    assert listed(**garbage) == everything  # refused, nothing lost


def test_the_accounts_list_counts_each_accounts_cases_and_filters_by_segment(
    staff: Client, seeded: Seeded, make_account, make_playbook, queue, system
):
    other = make_account(plan="enterprise")
    second = make_playbook(
        "expansion", [{"key": "call", "name": "Call", "kind": "human", "queue": queue}]
    )
    services.case_open(account=seeded.account, playbook=second, actor=system)
    url = reverse("admin:onboarding_account_changelist")

    page = staff.get(url)
    counts = {a.pk: a._case_count for a in page.context["cl"].result_list}
    enterprise = staff.get(url, {"plan": "enterprise"})

    assert counts[seeded.account.pk] == 2 and counts[other.pk] == 0
    assert [a.pk for a in enterprise.context["cl"].result_list] == [other.pk]
    assert '?plan=enterprise"' in page.content.decode()  # a choice from the plan index


def test_the_context_log_and_sla_timers_filter_by_date_range(staff: Client, seeded: Seeded):
    day = seeded.note.created_at.date()
    for model, field in (
        ("onboarding_contextentry", "created_at"),
        ("onboarding_slatimer", "due_at"),
    ):
        url = reverse(f"admin:{model}_changelist")
        everything = staff.get(url).context["cl"].result_count
        before = staff.get(url, {f"{field}_to_0": str(day - timedelta(days=400))})

        assert before.status_code == 200 and before.context["cl"].result_count == 0, model
        assert everything >= (1 if model == "onboarding_contextentry" else 0)


def test_the_events_list_counts_no_further_than_its_cap(staff: Client, seeded: Seeded, monkeypatch):
    monkeypatch.setattr(CappedCountPaginator, "CAP", 2)

    response = staff.get(reverse("admin:analytics_event_changelist"))

    assert Event.objects.count() > 3
    assert response.context["cl"].result_count == 3  # the cap, plus one: "more than 2"


@pytest.mark.parametrize(
    ("model", "params"),
    [
        ("onboarding_case", {"state": "active"}),
        ("onboarding_case", {"account__plan": "growth"}),
        ("onboarding_task", {"state": "queued", "escalated__exact": "0"}),
        ("onboarding_account", {"plan": "growth"}),
        ("analytics_event", {"name": "Case Opened", "actor_type": "system"}),
    ],
)
def test_changelist_filters_narrow_the_list(staff: Client, seeded: Seeded, model, params):
    response = staff.get(reverse(f"admin:{model}_changelist"), params)

    assert response.status_code == 200
    assert response.context["cl"].result_count >= 1


@pytest.mark.parametrize("model", ADMIN_MODELS)
def test_every_change_page_of_an_existing_object_loads(staff: Client, seeded: Seeded, model):
    response = staff.get(_change_url(_object_of(seeded, model)))

    assert response.status_code == 200


def test_the_case_page_shows_its_tasks_and_a_timeline_of_events_and_notes_newest_first(
    staff: Client, seeded: Seeded
):
    response = staff.get(_change_url(seeded.case))

    page = response.context["page"]
    assert [t.step_key for t in page.tasks] == ["kickoff", "review"]
    times = [item.at for item in page.timeline]
    assert times == sorted(times, reverse=True)
    events = Event.objects.filter(case=seeded.case)
    assert sorted(i.title for i in page.timeline if i.kind == "event") == sorted(
        e.name for e in events
    )
    assert [i.body for i in page.timeline if i.kind == "note"] == ["Called the customer"]


@pytest.mark.parametrize(
    "model", ["onboarding_account", "onboarding_playbook", "onboarding_queue", "onboarding_step"]
)
def test_add_pages_of_manager_edited_models_load(staff: Client, seeded: Seeded, model):
    response = staff.get(reverse(f"admin:{model}_add"))

    assert response.status_code == 200
    assert "state" not in response.context["adminform"].form.fields


# --- nothing is a side door into the state machines ---------------------------------


@pytest.mark.parametrize(
    "model",
    [
        "onboarding_case",
        "onboarding_task",
        "onboarding_contextentry",
        "onboarding_playbookversion",
        "analytics_event",
    ],
)
def test_rows_owned_by_the_write_path_cannot_be_added(staff: Client, seeded: Seeded, model):
    response = staff.get(reverse(f"admin:{model}_add"))

    assert response.status_code == 403


@pytest.mark.parametrize(
    "model", ["onboarding_case", "onboarding_task", "onboarding_contextentry", "analytics_event"]
)
def test_rows_owned_by_the_write_path_cannot_be_deleted(staff: Client, seeded: Seeded, model):
    obj = _object_of(seeded, model)
    url = reverse(f"admin:{model}_delete", args=[obj.pk])

    response = staff.post(url, {"post": "yes"})

    assert response.status_code == 403
    assert type(obj).objects.filter(pk=obj.pk).exists()


def test_posting_a_state_to_the_case_page_changes_nothing(staff: Client, seeded: Seeded):
    events_before = Event.objects.count()

    response = staff.post(
        _change_url(seeded.case),
        {"state": "cancelled", "hold_reason": "sneaky", "cancel_reason": "sneaky"},
    )

    assert response.status_code == 405
    case = Case.objects.get(pk=seeded.case.pk)
    assert case.state == Case.State.ACTIVE
    assert case.cancel_reason == ""
    assert Event.objects.count() == events_before


def test_posting_a_state_to_a_task_page_changes_nothing(staff: Client, seeded: Seeded):
    events_before = Event.objects.count()

    response = staff.post(_change_url(seeded.task), {"state": "done", "assignee": seeded.queue.pk})

    assert response.status_code == 403
    task = Task.objects.get(pk=seeded.task.pk)
    assert (task.state, task.assignee_id) == (Task.State.QUEUED, None)
    assert Event.objects.count() == events_before


def test_events_cannot_be_changed_from_their_page(staff: Client, seeded: Seeded):
    response = staff.post(_change_url(seeded.event), {"name": "Case Completed"})

    assert response.status_code == 403
    assert Event.objects.get(pk=seeded.event.pk).name == seeded.event.name


@pytest.mark.parametrize("obj_name", ["case", "task", "draft"])
def test_state_is_never_a_form_field(staff: Client, seeded: Seeded, obj_name):
    response = staff.get(_change_url(getattr(seeded, obj_name)))

    if obj_name == "case":  # the case page is the workspace: actions, no model form
        assert "adminform" not in response.context
        assert 'name="state"' not in response.content.decode()
    else:
        assert "state" not in response.context["adminform"].form.fields


def test_saving_a_draft_version_keeps_its_state_whatever_is_posted(staff: Client, seeded: Seeded):
    events_before = Event.objects.count()
    page = staff.get(_change_url(seeded.draft))
    data = _form_data(page)
    data.update({"changelog": "Shorter kickoff", "state": "published"})

    response = staff.post(_change_url(seeded.draft), data)

    assert response.status_code == 302, _errors(response)
    draft = PlaybookVersion.objects.get(pk=seeded.draft.pk)
    assert (draft.state, draft.changelog) == (PlaybookVersion.State.DRAFT, "Shorter kickoff")
    assert Event.objects.count() == events_before


# --- playbooks: drafts are editable, published versions are frozen -------------------


def test_a_published_versions_page_and_steps_are_read_only(staff: Client, seeded: Seeded):
    response = staff.get(_change_url(seeded.published))

    steps = response.context["inline_admin_formsets"][0]
    assert not response.context["has_change_permission"]
    assert not (steps.has_add_permission or steps.has_change_permission)
    assert not steps.has_delete_permission


def test_a_published_step_cannot_be_changed(staff: Client, seeded: Seeded):
    response = staff.post(_change_url(seeded.published_step), {"name": "Renamed"})

    assert response.status_code == 403
    assert Step.objects.get(pk=seeded.published_step.pk).name == "Kickoff"


def test_a_draft_versions_steps_are_editable_inline(staff: Client, seeded: Seeded):
    response = staff.get(_change_url(seeded.draft))

    steps = response.context["inline_admin_formsets"][0]
    assert steps.has_add_permission and steps.has_change_permission
    depends_on = steps.formset.forms[0].fields["depends_on"]
    assert list(depends_on.queryset) == [seeded.draft_step]  # only steps of this version


def test_a_draft_step_is_renamed_from_its_page(staff: Client, seeded: Seeded):
    url = _change_url(seeded.draft_step)
    data = _form_data(staff.get(url))
    data["name"] = "Welcome call"

    response = staff.post(url, data)

    assert response.status_code == 302, _errors(response)
    assert Step.objects.get(pk=seeded.draft_step.pk).name == "Welcome call"


def test_a_human_step_without_a_queue_is_a_form_error_not_a_crash(staff: Client, seeded: Seeded):
    url = _change_url(seeded.draft_step)
    data = _form_data(staff.get(url))
    data["queue"] = ""

    response = staff.post(url, data)

    assert response.status_code == 200
    assert "queue" in response.context["adminform"].form.errors
    assert Step.objects.get(pk=seeded.draft_step.pk).queue_id == seeded.queue.pk


def test_publishing_a_draft_from_its_page_goes_through_the_service(staff: Client, seeded: Seeded):
    url = reverse("admin:onboarding_playbookversion_publish", args=[seeded.draft.pk])

    response = staff.post(url, {"_form_submitted": "on"}, HTTP_HX_REQUEST="true")

    assert response.status_code == 200
    assert response["HX-Redirect"] == _change_url(seeded.draft)
    assert PlaybookVersion.objects.get(pk=seeded.draft.pk).state == "published"
    event = Event.objects.latest("id")
    assert (event.name, event.actor_type, event.source) == (
        "Playbook Version Published",
        "agent",
        "admin",
    )


def test_publishing_an_empty_draft_shows_the_services_refusal(
    staff: Client, seeded: Seeded, system: Actor
):
    playbook = services.playbook_create(key="empty", name="Empty", actor=system)
    draft = playbook.versions.get()
    events_before = Event.objects.count()

    response = staff.post(
        reverse("admin:onboarding_playbookversion_publish", args=[draft.pk]),
        {"_form_submitted": "on"},
    )

    assert response.status_code == 302
    assert any("has no steps" in m for m in _messages(response))
    assert PlaybookVersion.objects.get(pk=draft.pk).state == "draft"
    assert Event.objects.count() == events_before


def test_a_new_playbook_from_the_admin_comes_with_a_draft_v1(staff: Client, seeded: Seeded):
    response = staff.post(
        reverse("admin:onboarding_playbook_add"),
        {"key": "partner", "name": "Partner", "description": ""},
    )

    assert response.status_code == 302, _errors(response)
    playbook = Playbook.objects.get(key="partner")
    assert list(playbook.versions.values_list("number", "state")) == [(1, "draft")]
    assert Event.objects.filter(name="Playbook Version Drafted", playbook_key="partner").exists()


def test_drafting_a_new_version_copies_the_published_steps(staff: Client, seeded: Seeded):
    url = reverse("admin:onboarding_playbook_draft_new_version", args=[seeded.playbook.pk])

    response = staff.post(url, {"_form_submitted": "on", "changelog": "v2"})

    draft = seeded.playbook.versions.get(number=2)
    assert response.status_code == 302
    assert response["Location"] == _change_url(draft)
    assert list(draft.steps.values_list("key", flat=True)) == ["kickoff", "review"]


# --- accounts are saved through the upsert service -----------------------------------


def test_editing_an_account_records_account_updated(staff: Client, seeded: Seeded):
    url = _change_url(seeded.account)
    data = _form_data(staff.get(url))
    data["plan"] = "enterprise"

    response = staff.post(url, data)

    assert response.status_code == 302, _errors(response)
    assert Account.objects.get(pk=seeded.account.pk).plan == "enterprise"
    event = Event.objects.latest("id")
    assert (event.name, event.properties, event.actor_type) == (
        "Account Updated",
        {"changed_fields": ["plan"]},
        "agent",
    )


def test_adding_an_account_records_account_created(staff: Client, seeded: Seeded):
    response = staff.post(
        reverse("admin:onboarding_account_add"),
        {
            "external_id": "crm-42",
            "name": "Acme",
            "plan": "pro",
            "segment": "",
            "region": "",
            "channel": "",
            "properties": "{}",
        },
    )

    assert response.status_code == 302, _errors(response)
    account = Account.objects.get(external_id="crm-42")
    assert Event.objects.filter(name="Account Created", account=account).count() == 1


# --- case buttons call the services -------------------------------------------------


def test_put_on_hold_button_holds_the_case_through_the_service(staff: Client, seeded: Seeded):
    events_before = Event.objects.count()

    response = staff.post(
        _act_url(seeded.case),
        {
            "action": "put_on_hold",
            "seen_state": "active",
            f"put_on_hold-{seeded.case.pk}-reason": "Customer on vacation",
        },
    )

    assert response.status_code == 302
    assert response.url == _change_url(seeded.case)
    case = Case.objects.get(pk=seeded.case.pk)
    assert (case.state, case.hold_reason) == ("on_hold", "Customer on vacation")
    assert Event.objects.count() == events_before + 1
    event = Event.objects.latest("id")
    assert (event.name, event.actor_type, event.source) == ("Case Put On Hold", "agent", "admin")


def test_put_on_hold_without_a_reason_keeps_the_form_open_with_its_error(
    staff: Client, seeded: Seeded
):
    events_before = Event.objects.count()

    response = staff.post(
        _act_url(seeded.case),
        {
            "action": "put_on_hold",
            "seen_state": "active",
            f"put_on_hold-{seeded.case.pk}-reason": "  ",
        },
    )

    assert response.status_code == 400
    (hold,) = [a for a in response.context["case_actions"] if a.spec.name == "put_on_hold"]
    assert hold.open and "reason" in hold.form.errors
    assert Case.objects.get(pk=seeded.case.pk).state == "active"
    assert Event.objects.count() == events_before


def test_a_transition_not_possible_now_is_refused_by_the_service(staff: Client, seeded: Seeded):
    response = staff.post(_act_url(seeded.case), {"action": "resume_case"})  # it is active

    assert response.status_code == 409
    assert any("refused" in m for m in _messages(response))
    assert Case.objects.get(pk=seeded.case.pk).state == "active"


def test_a_concurrent_change_shows_the_services_error_as_a_message(
    staff: Client, seeded: Seeded, monkeypatch: pytest.MonkeyPatch
):
    real = services.case_put_on_hold

    def someone_else_first(**kwargs: Any) -> Case:
        real(case_id=kwargs["case_id"], actor=Actor.integration("crm"), reason="CRM said so")
        return real(**kwargs)

    monkeypatch.setattr(services, "case_put_on_hold", someone_else_first)

    response = staff.post(
        _act_url(seeded.case),
        {
            "action": "put_on_hold",
            "seen_state": "active",
            f"put_on_hold-{seeded.case.pk}-reason": "Mine",
        },
    )

    assert response.status_code == 409
    assert any("cannot put on hold" in m for m in _messages(response))
    case = Case.objects.get(pk=seeded.case.pk)
    assert (case.state, case.hold_reason) == ("on_hold", "CRM said so")
    assert Event.objects.filter(case=case, name="Case Put On Hold").count() == 1


def test_case_buttons_show_only_what_this_user_may_do_now(staff: Client, seeded: Seeded):
    active = staff.get(_change_url(seeded.case))
    services.case_put_on_hold(
        case_id=seeded.case.pk, actor=Actor.integration("crm"), reason="Paused"
    )
    held = staff.get(_change_url(seeded.case))

    assert _buttons(active) == ["Add note", "Put on hold", "Cancel case"]
    assert _buttons(held) == ["Add note", "Resume case", "Cancel case"]


def test_an_agent_who_may_only_look_sees_no_case_buttons(client: Client, seeded: Seeded):
    agent = UserFactory(username="viewer")
    agent.user_permissions.add(
        Permission.objects.get(codename="view_case"), Permission.objects.get(codename="work_tasks")
    )
    for task in seeded.case.tasks.exclude(queue=None):  # an agent of the case's queues
        task.queue.members.add(agent)
    client.force_login(agent)

    page = client.get(_change_url(seeded.case))
    attempt = client.post(
        _act_url(seeded.case),
        {
            "action": "put_on_hold",
            "seen_state": "active",
            f"put_on_hold-{seeded.case.pk}-reason": "Nope",
        },
    )

    assert page.status_code == 200
    assert _buttons(page) == ["Add note"]
    assert attempt.status_code == 403
    assert Case.objects.get(pk=seeded.case.pk).state == "active"


# --- changelists do not query per row ------------------------------------------------


@pytest.mark.parametrize("model", ADMIN_MODELS)
def test_changelist_queries_do_not_grow_with_rows(
    staff: Client,
    seeded: Seeded,
    model,
    make_account: Callable[..., Account],
    make_playbook: Callable[..., Playbook],
    system: Actor,
):
    url = reverse(f"admin:{model}_changelist")
    staff.get(url)  # warm caches (content types, session)
    few = _count_queries(staff, url)
    for n in range(3):
        case = services.case_open(account=make_account(), playbook=seeded.playbook, actor=system)
        services.case_add_note(case_id=case.pk, actor=system, body="Hello")
        queue = QueueFactory(key=f"more-{n}")
        make_playbook(f"more-{n}", [{"key": "a", "name": "A", "kind": "human", "queue": queue}])

    many = _count_queries(staff, url)

    assert many == few


def test_case_page_queries_do_not_grow_with_its_log(staff: Client, seeded: Seeded, system: Actor):
    url = _change_url(seeded.case)
    staff.get(url)
    few = _count_queries(staff, url)
    for n in range(5):
        services.case_add_note(case_id=seeded.case.pk, actor=system, body=f"Note {n}")

    many = _count_queries(staff, url)

    assert many == few


# --- helpers ---------------------------------------------------------------------------


def _count_queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


def _buttons(response: Any) -> list[str]:
    return [a.spec.label for a in response.context["case_actions"]]


def _act_url(case: Case) -> str:
    return reverse("admin:onboarding_case_act", args=[case.pk])


def _form_data(response: Any) -> dict[str, Any]:
    """The POST body the change page would send back unchanged (form and inlines)."""
    data: dict[str, Any] = {}
    forms = [response.context["adminform"].form]
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        forms.append(formset.management_form)
        forms.extend(formset.forms)
    for form in forms:
        for name in form.fields:
            bound = form[name]
            value = bound.value()
            key = bound.html_name
            if value is None:
                data[key] = ""
            elif isinstance(value, list | tuple):
                data[key] = [str(v) for v in value]
            elif isinstance(value, bool):
                if value:
                    data[key] = "on"
            else:
                data[key] = str(value)
    return data


def _errors(response: Any) -> Any:
    context = getattr(response, "context", None)
    if not context or "adminform" not in context:
        return response.status_code
    return context["adminform"].form.errors, [
        f.formset.errors for f in context.get("inline_admin_formsets", [])
    ]

"""The agent workspace in a real browser: claim, note, hand off, complete, visibility, hold.

One story across four people, as the issue tells it. Each step checks what the person
sees on the page and what the database holds afterwards.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from analytics.models import Event
from onboarding import services
from onboarding.actors import Actor
from onboarding.models import Case, ContextEntry, SlaPolicy, Task
from tests.browser.conftest import make_person
from tests.conftest import QueueFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def world(make_playbook, make_account):
    system = Actor.system("test", source="test")
    specialists = QueueFactory(key="specialists", name="Specialists")
    technical = QueueFactory(key="technical", name="Technical")
    billing = QueueFactory(key="billing", name="Billing")
    clock = SlaPolicy.objects.create(
        key="first-response",
        name="First response",
        target=timedelta(hours=8),
        pause_states=["waiting"],
    )
    specialists.default_sla_policy = clock
    specialists.save()
    technical.default_sla_policy = clock
    technical.save()
    people = {
        "ada": make_person("ada", full_name="Ada Kowalski", role="agent"),
        "ben": make_person("ben", full_name="Ben Okafor", role="agent"),
        "cat": make_person("cat", full_name="Cat Moreau", role="agent"),
        "mia": make_person("mia", full_name="Mia Manager", role="manager"),
    }
    specialists.members.add(people["ada"])
    technical.members.add(people["ben"])
    billing.members.add(people["cat"])
    playbook = make_playbook(
        "browser",
        [
            {"key": "kickoff", "name": "Kickoff call", "kind": "human", "queue": specialists},
            {
                "key": "review",
                "name": "Usage review",
                "kind": "human",
                "queue": specialists,
                "depends_on": ["kickoff"],
            },
        ],
    )
    case = services.case_open(
        account=make_account(name="Acme Browser Co"),
        playbook=playbook,
        actor=system,
    )
    return people, case


def _task(case: Case, key: str) -> Task:
    return Task.objects.get(case=case, step_key=key)


def test_claim_note_hand_off_complete_hide_and_hold(open_page, world):
    people, case = world
    kickoff = _task(case, "kickoff")

    # --- Ada claims the most urgent task of her queue and lands on its case --------------
    ada = open_page(people["ada"])
    row = ada.locator("[data-queue=specialists]")
    expect(row.locator("[data-count=queued]")).to_contain_text("1")
    row.get_by_role("button", name="Claim next").click()
    ada.wait_for_url(re.compile(rf".*/admin/onboarding/case/{case.pk}/change/$"))
    expect(ada.locator(".messagelist, #messages, body")).to_contain_text("You claimed kickoff")
    step = ada.locator("[data-testid=task][data-step=kickoff]")
    expect(step).to_have_attribute("data-state", "in_progress")
    expect(step.locator("[data-testid=task-assignee]")).to_have_text("you")
    expect(step.locator("[data-testid=sla]")).to_contain_text("left")

    # --- she adds a note to the case --------------------------------------------------------
    note = ada.locator("[data-testid=case-actions] details[data-action=add_note]")
    note.locator("summary").click()
    note.locator("textarea").fill("Customer wants SSO before the kickoff.")
    note.get_by_role("button", name="Add note").click()
    timeline = ada.locator("[data-testid=timeline]")
    expect(timeline.locator("li[data-kind=note]").first).to_contain_text(
        "Customer wants SSO before the kickoff."
    )

    # --- and hands the step off to the technical queue with a note --------------------------
    step = ada.locator("[data-testid=task][data-step=kickoff]")
    hand_off = step.locator("details[data-action=hand_off]")
    hand_off.locator("summary").click()
    hand_off.locator("select[name$=to_queue]").select_option(label="Technical")
    # only Technical's people are offered to reserve it for
    agents = hand_off.locator("select[name$=to_assignee] option:not([disabled])")
    expect(agents).to_have_text(["— anyone in the queue —", "Ben Okafor"])
    hand_off.locator("textarea[name$=note]").fill("SSO is set up on their side; please verify.")
    hand_off.get_by_role("button", name="Hand off").click()
    expect(ada.locator("body")).to_contain_text("kickoff was handed off.")
    kickoff.refresh_from_db()
    assert (kickoff.state, kickoff.queue.key, kickoff.assignee_id) == ("queued", "technical", None)

    # --- Ben (technical) sees it, reads the handoff note, completes it ----------------------
    ben = open_page(people["ben"])
    ben.locator("[data-queue=technical]").get_by_role("button", name="Claim next").click()
    ben.wait_for_url(re.compile(rf".*/admin/onboarding/case/{case.pk}/change/$"))
    handoff_note = ben.locator("[data-testid=timeline] li[data-kind=handoff]").first
    expect(handoff_note).to_contain_text("SSO is set up on their side; please verify.")
    expect(handoff_note.locator("[data-testid=who]")).to_have_text("Ada Kowalski")
    step = ben.locator("[data-testid=task][data-step=kickoff]")
    complete = step.locator("details[data-action=complete]")
    complete.locator("summary").click()
    complete.locator("textarea[name$=note]").fill("Verified SSO with their admin.")
    complete.get_by_role("button", name="Complete").click()
    expect(ben.locator("[data-testid=task][data-step=kickoff]")).to_have_attribute(
        "data-state", "done"
    )
    kickoff.refresh_from_db()
    assert (kickoff.state, kickoff.assignee_id) == ("done", people["ben"].pk)
    assert Event.objects.filter(task=kickoff, name="Step Completed").count() == 1
    assert ContextEntry.objects.filter(task=kickoff, body="Verified SSO with their admin.").exists()

    # --- Cat (billing only) can neither list, find nor open the case ------------------------
    cat = open_page(people["cat"])
    base = open_page.base_url
    cat.goto(f"{base}/admin/onboarding/case/")
    expect(cat.locator("#result_list, body")).not_to_contain_text("Acme Browser Co")
    cat.goto(f"{base}/admin/onboarding/case/?q=Acme")
    expect(cat.locator("body")).not_to_contain_text("Acme Browser Co")
    cat.goto(f"{base}/admin/onboarding/case/{case.pk}/change/")
    expect(cat.locator("body")).to_contain_text("does not exist or is not in your queues")
    expect(cat.locator("body")).not_to_contain_text("Acme Browser Co")
    cat.goto(f"{base}/admin/onboarding/task/?q=Acme")
    expect(cat.locator("body")).not_to_contain_text("Acme Browser Co")

    # --- Mia (manager) puts the case on hold: the next step's clock shows paused ------------
    mia = open_page(people["mia"])
    mia.goto(f"{base}/admin/onboarding/case/{case.pk}/change/")
    review = mia.locator("[data-testid=task][data-step=review]")
    expect(review.locator("[data-testid=sla]")).to_contain_text("left")
    hold = mia.locator("[data-testid=case-actions] details[data-action=put_on_hold]")
    hold.locator("summary").click()
    hold.locator("textarea[name$=reason]").fill("Customer asked to pause for two weeks.")
    hold.get_by_role("button", name="Put on hold").click()
    expect(mia.locator("[data-testid=case-state]")).to_contain_text("On hold")
    expect(mia.locator("[data-testid=task][data-step=review] [data-testid=sla]")).to_contain_text(
        "Paused"
    )
    case.refresh_from_db()
    assert case.state == "on_hold"


def test_a_reassigned_task_moves_desks_and_a_stale_page_says_so(open_page, world):
    people, case = world
    kickoff = _task(case, "kickoff")
    specialists = kickoff.queue
    specialists.members.add(people["ben"])
    services.task_claim(task_id=kickoff.pk, actor=Actor.for_user(people["ada"]))

    # Ada has the case open, with her work buttons.
    ada = open_page(people["ada"])
    ada.goto(f"{open_page.base_url}/admin/onboarding/case/{case.pk}/change/")
    expect(ada.locator("[data-step=kickoff] details[data-action=complete]")).to_be_visible()

    # Meanwhile Mia reassigns the step to Ben.
    mia = open_page(people["mia"])
    mia.goto(f"{open_page.base_url}/admin/onboarding/case/{case.pk}/change/")
    reassign = mia.locator("[data-step=kickoff] details[data-action=reassign]")
    reassign.locator("summary").click()
    reassign.locator("select[name$=to_assignee]").select_option(label="Ben Okafor")
    reassign.locator("textarea[name$=note]").fill("Ada is out this afternoon.")
    reassign.get_by_role("button", name="Reassign").click()
    expect(mia.locator("body")).to_contain_text("kickoff was reassigned.")
    expect(mia.locator("[data-step=kickoff] [data-testid=task-assignee]")).to_have_text(
        "Ben Okafor"
    )

    # Ada's page is stale: completing from it changes nothing and says why.
    complete = ada.locator("[data-step=kickoff] details[data-action=complete]")
    complete.locator("summary").click()
    complete.locator("textarea[name$=note]").fill("Done (I thought).")
    complete.get_by_role("button", name="Complete").click()
    expect(ada.locator("body")).to_contain_text("changed while you had the page open")
    kickoff.refresh_from_db()
    assert (kickoff.state, kickoff.assignee_id) == ("queued", people["ben"].pk)

    # Ben finds it on his desk, reserved for him, and claims it from the case page.
    ben = open_page(people["ben"])
    mine = ben.locator("[data-testid=my-work-table]")
    expect(mine).to_contain_text("Kickoff call")
    expect(mine).to_contain_text("reserved for you")
    mine.get_by_role("link", name="Kickoff call").click()
    ben.locator("[data-step=kickoff]").get_by_role("button", name="Claim").click()
    expect(ben.locator("[data-step=kickoff]")).to_have_attribute("data-state", "in_progress")
    handoff = ben.locator("[data-testid=timeline] li[data-kind=handoff]").first
    expect(handoff).to_contain_text("Ada is out this afternoon.")

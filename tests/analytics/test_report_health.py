"""Account health: each open onboarding on track, behind, stuck or on hold, from its pace
against the playbook's expected durations.

The "paced" playbook: kickoff (human, expected within 2 days) → setup (human, 5 days)
→ connect (signal, 10 days) → report (signal, no expectation). The "relaxed" playbook
has the same two human steps and no expectations at all. "Now" is NOW; `stall_days`
is 7 unless a test says otherwise. Days are counted from NOW (-6: six days before).

    case  playbook  plan        opened  what happened                           status
    1     paced     growth      -4      kickoff -3                             → on track
    2     paced     growth      -6      kickoff -5; setup due -1, open         → behind (setup, 1 d)
    3     paced     growth      -20     kickoff -19, setup -18; connect due -10 → stuck
    4     paced     growth      -30     everything done by -26: completed      → not counted
    5     paced     enterprise  -6      kickoff skipped -5, setup -3           → on track (2 of 2)
    6     paced     enterprise  -12     all done by -6 (completed), reopened on
                                        connect -1 (due -2)                    → behind (2 d)
    7     paced     enterprise  -20     nothing; put on hold -15               → on hold
    8     relaxed   starter     -15     kickoff -2; nothing is ever expected   → on track
    9     paced     starter     -10     cancelled -9                           → not counted
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from analytics.metrics import REPORTS, run
from analytics.metrics.base import Filters
from analytics.metrics.replay import differences, replay
from onboarding import clock, services
from onboarding.errors import Conflict
from onboarding.models import Playbook, Step
from tests.conftest import act, task_of

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 10, 7, 9, 0, tzinfo=UTC)
D = 86400.0
ALL = Filters.default(NOW.date())


def days(n: float) -> timedelta:
    return timedelta(days=n)


@pytest.fixture
def accounts(make_playbook, make_account, system, queue, agent_a, manager):
    human = [
        {"key": "kickoff", "name": "Kickoff", "kind": "human", "queue": queue},
        {"key": "setup", "name": "Set-up", "kind": "human", "queue": queue},
    ]
    make_playbook(
        "paced",
        [
            {**human[0], "expected_within": days(2)},
            {**human[1], "expected_within": days(5)},
            {"key": "connect", "name": "Connect", "kind": "signal", "signal_name": "Connected",
             "expected_within": days(10)},
            {"key": "report", "name": "Report", "kind": "signal", "signal_name": "Reported"},
        ],
    )  # fmt: skip
    make_playbook("relaxed", human)
    agent, boss = act(agent_a), act(manager)
    cases = {}

    def at(moment, service, **kwargs):
        with clock.travel_to(moment):
            return service(**kwargs)

    def done(n, key, day):
        task = task_of(cases[n], key)
        if task.kind == "signal":
            at(NOW + days(day), services.task_complete_by_signal, task_id=task.pk, actor=system,
               signal_name=key)  # fmt: skip
            return
        at(NOW + days(day), services.task_claim, task_id=task.pk, actor=agent)
        at(NOW + days(day), services.task_complete, task_id=task.pk, actor=agent)

    for n, playbook, plan, opened in [
        (1, "paced", "growth", -4),
        (2, "paced", "growth", -6),
        (3, "paced", "growth", -20),
        (4, "paced", "growth", -30),
        (5, "paced", "enterprise", -6),
        (6, "paced", "enterprise", -12),
        (7, "paced", "enterprise", -20),
        (8, "relaxed", "starter", -15),
        (9, "paced", "starter", -10),
    ]:
        cases[n] = at(
            NOW + days(opened),
            services.case_open,
            account=make_account(plan=plan),
            playbook=Playbook.objects.get(key=playbook),
            actor=system,
        )
    done(1, "kickoff", -3)
    done(2, "kickoff", -5)
    done(3, "kickoff", -19), done(3, "setup", -18)
    for key, day in (("kickoff", -29), ("setup", -28), ("connect", -27), ("report", -26)):
        done(4, key, day)
    at(NOW - days(5), services.task_skip, task_id=task_of(cases[5], "kickoff").pk, actor=boss,
       reason="Met at the conference")  # fmt: skip
    done(5, "setup", -3)
    for key, day in (("kickoff", -11), ("setup", -10), ("connect", -7), ("report", -6)):
        done(6, key, day)
    at(NOW - days(1), services.case_reopen, case_id=cases[6].pk, actor=boss, step_key="connect",
       reason="The connection broke")  # fmt: skip
    at(NOW - days(15), services.case_put_on_hold, case_id=cases[7].pk, actor=boss,
       reason="Merger")  # fmt: skip
    done(8, "kickoff", -2)
    at(NOW - days(9), services.case_cancel, case_id=cases[9].pk, actor=boss, reason="Churned")
    for case in cases.values():
        case.refresh_from_db()
    return cases


def health(filters: Filters = ALL, *, limit: int | None = 100):
    return run("health", filters, now=NOW, limit=limit).tables


def statuses(filters: Filters = ALL) -> dict[int, str]:
    table = health(filters)["cases"]
    return dict(zip(table.column("case_id"), table.column("status"), strict=True))


def test_the_stories_come_out_as_told(accounts):
    assert accounts[4].state == "completed" and accounts[6].state == "active"

    cases = health()["cases"]

    c = accounts
    assert cases.column("case_id") == [c[3].pk, c[6].pk, c[2].pk, c[7].pk, c[1].pk, c[5].pk,
                                       c[8].pk]  # fmt: skip
    assert cases.total == 7
    rows = {row["case_id"]: row for row in cases.as_dicts()}
    # expected by now, done of them, most overdue step, overdue by, status
    facts = {
        n: (rows[c[n].pk]["expected"], rows[c[n].pk]["done"], rows[c[n].pk]["worst_step"],
            rows[c[n].pk]["overdue_by"], rows[c[n].pk]["status"])
        for n in (1, 2, 3, 5, 6, 7, 8)
    }  # fmt: skip
    assert facts == {
        1: (1, 1, None, None, "on_track"),
        2: (2, 1, "setup", 1 * D, "behind"),
        3: (3, 2, "connect", 10 * D, "stuck"),
        5: (2, 2, None, None, "on_track"),  # the skipped kickoff counts as done
        6: (3, 2, "connect", 2 * D, "behind"),  # the reopened connect is not done
        7: (3, 0, "kickoff", 18 * D, "on_hold"),
        8: (0, 0, None, None, "on_track"),  # nothing expected: never behind
    }
    assert rows[c[3].pk]["last_progress"] == NOW - days(18)
    assert rows[c[6].pk]["last_progress"] == NOW - days(6)  # report, still done
    assert rows[c[7].pk]["last_progress"] == NOW - days(20)  # nothing: the opening
    assert rows[c[2].pk]["open_for"] == 6 * D
    assert (rows[c[2].pk]["playbook"], rows[c[2].pk]["version"]) == ("paced", 1)
    assert rows[c[8].pk]["account"] == c[8].account.name
    assert rows[c[8].pk]["external_id"] == c[8].account.external_id


def test_the_summary_counts_each_status_and_its_pace(accounts):
    summary = health()["summary"]

    # status, cases, share, steps expected by now, done of them, pace
    assert summary.comparable() == [
        ("stuck", 1, 1 / 7, 3, 2, 2 / 3),
        ("behind", 2, 2 / 7, 5, 3, 3 / 5),
        ("on_hold", 1, 1 / 7, 3, 0, 0.0),
        ("on_track", 3, 3 / 7, 3, 3, 1.0),
        ("all", 7, 1.0, 14, 8, 8 / 14),
    ]


def test_the_breakdown_splits_the_statuses_by_segment(accounts):
    by_plan = health()["breakdown"]

    # plan, cases, stuck, behind, on hold, on track, expected, done, pace
    assert by_plan.comparable() == [
        ("enterprise", 3, 0, 1, 1, 1, 8, 4, 0.5),
        ("growth", 3, 1, 1, 0, 1, 6, 4, 4 / 6),
        ("starter", 1, 0, 0, 0, 1, 0, 0, None),
    ]
    by_version = health(ALL.but(by="version"))["breakdown"]
    assert by_version.column("segment") == ["paced v1", "relaxed v1"]
    assert by_version.column("cases") == [6, 1]


def test_stuck_means_no_step_finished_for_more_than_the_stall(accounts):
    c = accounts
    three_days = statuses(ALL.but(stall_days=3))

    assert three_days[c[2].pk] == "stuck"  # last progress 5 days ago
    assert three_days[c[6].pk] == "stuck"  # 6 days ago
    assert three_days[c[1].pk] == "on_track"  # exactly 3 days ago: not more than 3
    assert three_days[c[5].pk] == "on_track"
    assert three_days[c[8].pk] == "on_track"
    assert three_days[c[7].pk] == "on_hold"  # held, not stuck, however long


def test_the_pace_moves_with_now(accounts):
    c = accounts
    later = run("health", ALL, now=NOW + days(2), limit=None).tables["cases"]
    rows = {row["case_id"]: row for row in later.as_dicts()}

    # case 1's setup is due on day 5 after its opening: NOW + 1 day
    assert (rows[c[1].pk]["expected"], rows[c[1].pk]["status"]) == (2, "behind")
    assert rows[c[1].pk]["overdue_by"] == 1 * D


def test_filters_by_playbook_version_and_segment(accounts):
    c = accounts
    assert set(statuses(ALL.but(playbook="relaxed"))) == {c[8].pk}
    assert set(statuses(ALL.but(playbook="paced", version=1))) == {
        c[n].pk for n in (1, 2, 3, 5, 6, 7)
    }
    assert statuses(ALL.but(playbook="paced", version=2)) == {}
    assert set(statuses(ALL.but(plan="enterprise"))) == {c[n].pk for n in (5, 6, 7)}
    # the date range does not apply: open now is open now
    assert set(statuses(Filters(start=NOW.date(), end=NOW.date()))) == set(statuses())


def test_the_list_is_cut_at_the_limit_and_keeps_the_total(accounts):
    c = accounts
    cases = health(limit=2)["cases"]

    assert cases.column("case_id") == [c[3].pk, c[6].pk]  # the worst two
    assert cases.total == 7
    assert health(limit=2)["summary"].rows == health(limit=None)["summary"].rows


def test_the_same_numbers_come_back_from_the_raw_events(accounts):
    for filters in (
        ALL,
        ALL.but(stall_days=3, by="version"),
        ALL.but(playbook="paced", version=1, by="region"),
        ALL.but(plan="enterprise", by="channel"),
    ):
        for now in (NOW, NOW + days(2), NOW - days(8)):
            report = run("health", filters, now=now, limit=None)
            assert differences(report, replay("health", filters, now=now)) == []


def test_the_report_is_registered_with_its_definition():
    spec = REPORTS["health"]

    assert spec.title == "Account health"
    assert "stuck" in spec.definition and "expected_within" in spec.definition


# --- the expectations on the playbook --------------------------------------------------------


def test_expectations_are_edited_on_drafts_copied_to_new_drafts_and_frozen_when_published(
    accounts, system
):
    paced = Playbook.objects.get(key="paced")
    published = Step.objects.get(version__playbook=paced, version__number=1, key="setup")

    published.expected_within = days(4)
    with pytest.raises(Conflict):
        published.save()

    draft = services.playbook_draft_new_version(playbook=paced, actor=system)
    copied = {s.key: s.expected_within for s in draft.steps.all()}
    assert copied == {"kickoff": days(2), "setup": days(5), "connect": days(10), "report": None}
    setup = draft.steps.get(key="setup")
    setup.expected_within = days(4)
    setup.save()
    services.playbook_version_publish(version=draft, actor=system)

    # cases keep the expectations of the version they started on
    assert statuses(ALL.but(playbook="paced", version=1))[accounts[1].pk] == "on_track"
    assert Step.objects.get(version=draft, key="setup").expected_within == days(4)


def test_an_expected_duration_is_set_on_a_draft_step_inline_in_the_admin(
    client, django_user_model, make_playbook, queue
):
    from tests.onboarding.test_admin import _errors, _form_data

    draft = make_playbook(
        "draft", [{"key": "kickoff", "name": "Kickoff", "kind": "human", "queue": queue}],
        publish=False,
    ).versions.get()  # fmt: skip
    client.force_login(django_user_model.objects.create_superuser("root", "", "x"))
    url = f"/admin/onboarding/playbookversion/{draft.pk}/change/"
    page = client.get(url)
    assert "expected_within" in page.context["inline_admin_formsets"][0].formset.forms[0].fields
    data = _form_data(page)
    data["steps-0-expected_within"] = "3 12:00:00"

    response = client.post(url, data)

    assert response.status_code == 302, _errors(response)
    assert draft.steps.get().expected_within == timedelta(days=3, hours=12)

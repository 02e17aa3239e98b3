"""Product signals complete the steps waiting for them, once per signal id; reminders
nudge the customer while a step waits, once per window."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.db import connections, transaction
from django.urls import reverse

from analytics.models import Event
from onboarding import clock, services
from onboarding.actors import Actor
from onboarding.errors import Conflict, Forbidden, InvalidInput, NotFound
from onboarding.models import Case, Reminder, Signal, Task
from onboarding.reminders import send_due_reminders
from onboarding.services.signals import signal_receive, signals_receive_batch
from tests.conftest import act, race, task_of

CONNECTED = "Data Source Connected"
T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


@pytest.fixture
def integration() -> Actor:
    return Actor.integration("token-1", source="test")


@pytest.fixture
def signal_playbook(make_playbook, queue):
    """connect (waits for "Data Source Connected", nudges daily, twice at most) → review."""
    return make_playbook(
        "self-serve",
        [
            {
                "key": "connect",
                "name": "Connect your data source",
                "kind": "signal",
                "signal_name": CONNECTED,
                "reminder_interval": timedelta(hours=24),
                "max_reminders": 2,
            },
            {"key": "review", "name": "Review", "kind": "human", "queue": queue},
        ],
    )


@pytest.fixture
def open_signal_case(signal_playbook, make_account, system) -> Callable[..., Case]:
    """A case opened at T0, so its connect step has waited since T0."""

    def build(**account: Any) -> Case:
        with clock.travel_to(T0):
            return services.case_open(
                account=make_account(**account), playbook=signal_playbook, actor=system
            )

    return build


def receive(case: Case, actor: Actor, signal_id: str = "sig-1", **kwargs: Any):
    kwargs.setdefault("name", CONNECTED)
    return signal_receive(
        account_external_id=case.account.external_id, signal_id=signal_id, actor=actor, **kwargs
    )


def events(name: str, **filters: Any) -> list[Event]:
    return list(Event.objects.filter(name=name, **filters).order_by("id"))


# --- receiving a signal ----------------------------------------------------------------


@pytest.mark.django_db
def test_a_signal_completes_the_waiting_step_and_the_case_moves_on(open_signal_case, integration):
    case = open_signal_case()
    connect = task_of(case, "connect")
    assert connect.state == "waiting"

    signal, created = receive(
        case, integration, properties={"connector": "postgres", "user_email": "ann@customer.io"}
    )

    assert created is True
    assert (signal.name, signal.account_id, signal.completed_tasks) == (
        CONNECTED,
        case.account_id,
        1,
    )
    assert Signal.objects.get().properties["connector"] == "postgres"
    connect.refresh_from_db()
    assert connect.state == "done" and connect.completed_at is not None
    assert task_of(case, "review").state == "queued"

    [received] = events("Signal Received")
    assert received.account_id == case.account_id
    assert (received.actor_type, received.actor_id) == ("api", "token-1")
    assert received.properties == {"signal": CONNECTED, "signal_id": "sig-1", "completed_tasks": 1}
    [completed] = events("Step Completed", task=connect)
    assert completed.properties["completed_by"] == "signal"
    assert events("Step Activated", task=task_of(case, "review"))
    assert connect.context_entries.get(kind="signal").body == f"Signal: {CONNECTED}"


@pytest.mark.django_db
def test_the_signal_properties_stay_out_of_the_event_stream(open_signal_case, integration):
    case = open_signal_case()

    receive(case, integration, properties={"user_email": "ann@customer.io"})

    assert not Event.objects.filter(properties__icontains="ann@customer.io").exists()
    assert "ann@customer.io" not in str(list(Event.objects.values_list("properties", flat=True)))


@pytest.mark.django_db
def test_a_duplicate_signal_id_changes_nothing(open_signal_case, integration):
    case = open_signal_case()
    first, _ = receive(case, integration)
    event_count, task_states = Event.objects.count(), dict(case.tasks.values_list("id", "state"))

    again, created = receive(case, integration, properties={"retry": True})

    assert created is False
    assert again.pk == first.pk and again.properties == {}
    assert Signal.objects.count() == 1
    assert Event.objects.count() == event_count
    assert dict(case.tasks.values_list("id", "state")) == task_states


@pytest.mark.django_db
def test_a_signal_id_reused_for_another_signal_is_a_conflict(open_signal_case, integration):
    case, other = open_signal_case(), open_signal_case()
    receive(case, integration)
    event_count = Event.objects.count()

    with pytest.raises(Conflict):
        receive(other, integration)
    with pytest.raises(Conflict):
        receive(case, integration, name="Report Shared")

    assert Signal.objects.count() == 1
    assert Event.objects.count() == event_count
    assert task_of(other, "connect").state == "waiting"


@pytest.mark.django_db
def test_a_signal_for_another_account_or_name_completes_nothing_but_is_stored(
    open_signal_case, make_account, integration
):
    case = open_signal_case()
    bystander = make_account()

    for_other_account, _ = signal_receive(
        name=CONNECTED, account_external_id=bystander.external_id, signal_id="a", actor=integration
    )
    other_name, _ = receive(case, integration, signal_id="b", name="Report Shared")

    assert task_of(case, "connect").state == "waiting"
    assert for_other_account.completed_tasks == other_name.completed_tasks == 0
    assert Signal.objects.count() == 2
    assert [e.properties["completed_tasks"] for e in events("Signal Received")] == [0, 0]
    assert not events("Step Completed")


@pytest.mark.django_db
def test_a_signal_completes_the_waiting_steps_of_every_open_case_of_the_account(
    make_playbook, signal_playbook, make_account, system, integration
):
    other_playbook = make_playbook(
        "enterprise",
        [{"key": "connect", "name": "Connect", "kind": "signal", "signal_name": CONNECTED}],
    )
    account = make_account()
    first = services.case_open(account=account, playbook=signal_playbook, actor=system)
    second = services.case_open(account=account, playbook=other_playbook, actor=system)

    signal, _ = signal_receive(
        name=CONNECTED, account_external_id=account.external_id, signal_id="s", actor=integration
    )

    assert signal.completed_tasks == 2
    assert task_of(first, "connect").state == task_of(second, "connect").state == "done"
    second.refresh_from_db()
    assert second.state == "completed"  # its only step is done


@pytest.mark.django_db
def test_a_signal_resumes_a_human_task_waiting_on_the_customer_only_if_its_step_names_it(
    make_playbook, queue, make_account, system, agent_a, integration
):
    playbook = make_playbook(
        "branding",
        [
            {
                "key": "logo",
                "name": "Logo",
                "kind": "human",
                "queue": queue,
                "signal_name": "Logo Uploaded",
            },
            {"key": "call", "name": "Call", "kind": "human", "queue": queue, "depends_on": []},
        ],
    )
    account = make_account()
    case = services.case_open(account=account, playbook=playbook, actor=system)
    agent = act(agent_a)
    for key in ("logo", "call"):
        task = services.task_claim(task_id=task_of(case, key).pk, actor=agent)
        services.task_wait_on_customer(task_id=task.pk, actor=agent, reason="asked the customer")

    signal, _ = signal_receive(
        name="Logo Uploaded",
        account_external_id=account.external_id,
        signal_id="logo-1",
        actor=integration,
    )

    logo, call = task_of(case, "logo"), task_of(case, "call")
    assert (logo.state, logo.assignee_id) == ("in_progress", agent_a.pk)
    assert call.state == "waiting"  # its step waits for no particular signal
    assert signal.completed_tasks == 0  # resumed, not completed
    assert len(events("Step Resumed", task=logo)) == 1
    assert logo.context_entries.filter(kind="signal").count() == 1


@pytest.mark.django_db
def test_a_step_that_moved_on_is_left_alone(open_signal_case, manager, integration):
    case = open_signal_case()
    services.task_skip(task_id=task_of(case, "connect").pk, actor=act(manager), reason="n/a")

    signal, created = receive(case, integration)

    assert created and signal.completed_tasks == 0
    assert task_of(case, "connect").state == "skipped"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": "  "}, "name"),
        ({"name": "x" * 81}, "name"),
        ({"signal_id": ""}, "signal_id"),
        ({"signal_id": None}, "signal_id"),
        ({"account_external_id": ""}, "account_external_id"),
        ({"properties": ["not", "a", "dict"]}, "properties"),
        ({"properties": {"at": datetime(2025, 1, 1, tzinfo=UTC)}}, "properties"),
        ({"properties": {"ratio": float("nan")}}, "properties"),  # not JSON
        ({"properties": {"note": "a\x00b"}}, "properties"),  # jsonb cannot store it
        ({"signal_id": "a\x00b"}, "signal_id"),
        ({"occurred_at": datetime(2025, 1, 1)}, "occurred_at"),  # naive
        ({"occurred_at": "2025-01-01"}, "occurred_at"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_stored(open_signal_case, integration, changes, field):
    case = open_signal_case()
    event_count = Event.objects.count()
    args = {
        "name": CONNECTED,
        "account_external_id": case.account.external_id,
        "signal_id": "sig-1",
        **changes,
    }

    with pytest.raises(InvalidInput) as refused:
        signal_receive(actor=integration, **args)

    assert refused.value.details["field"] == field
    assert not Signal.objects.exists()
    assert Event.objects.count() == event_count
    assert task_of(case, "connect").state == "waiting"


@pytest.mark.django_db
def test_a_signal_for_an_unknown_account_is_not_found(integration):
    with pytest.raises(NotFound):
        signal_receive(
            name=CONNECTED, account_external_id="nobody", signal_id="s", actor=integration
        )

    assert not Signal.objects.exists()
    assert not events("Signal Received")


@pytest.mark.django_db
def test_an_agent_may_not_send_signals_a_manager_may(open_signal_case, agent_a, manager):
    case = open_signal_case()

    with pytest.raises(Forbidden):
        receive(case, act(agent_a))
    assert not Signal.objects.exists()
    assert task_of(case, "connect").state == "waiting"

    _, created = receive(case, act(manager))
    assert created and task_of(case, "connect").state == "done"


@pytest.mark.django_db
def test_occurred_at_is_kept_and_received_at_is_the_clock(open_signal_case, integration):
    case = open_signal_case()
    happened = T0 + timedelta(hours=1)

    with clock.travel_to(T0 + timedelta(hours=2)):
        signal, _ = receive(case, integration, occurred_at=happened)

    assert (signal.occurred_at, signal.received_at) == (happened, T0 + timedelta(hours=2))


# --- batches ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_batch_applies_the_good_items_and_reports_the_bad_ones(open_signal_case, integration):
    first, second = open_signal_case(), open_signal_case()
    receive(second, integration, signal_id="already-here")
    items: list[Any] = [
        {"name": CONNECTED, "account_external_id": first.account.external_id, "signal_id": "b1"},
        {"name": CONNECTED, "account_external_id": "nobody", "signal_id": "b2"},
        {"name": "", "account_external_id": first.account.external_id, "signal_id": "b3"},
        "not an object",
        {"name": CONNECTED, "account_external_id": "x", "signal_id": "b5", "colour": "red"},
        {
            "name": CONNECTED,
            "account_external_id": second.account.external_id,
            "signal_id": "already-here",
        },
        {"name": CONNECTED, "account_external_id": first.account.external_id, "signal_id": "b1"},
    ]

    results = signals_receive_batch(signals=items, actor=integration)

    outcomes = [
        (type(error).__name__ if error else None, created, signal.signal_id if signal else None)
        for signal, created, error in results
    ]
    assert outcomes == [
        (None, True, "b1"),
        ("NotFound", False, None),
        ("InvalidInput", False, None),
        ("InvalidInput", False, None),
        ("InvalidInput", False, None),
        (None, False, "already-here"),
        (None, False, "b1"),  # the same id twice in one batch is applied once
    ]
    assert task_of(first, "connect").state == "done"
    assert Signal.objects.count() == 2
    assert len(events("Signal Received")) == 2


@pytest.mark.django_db
def test_a_replayed_batch_costs_a_few_queries_and_changes_nothing(
    open_signal_case, integration, django_assert_max_num_queries
):
    cases = [open_signal_case() for _ in range(5)]
    items = [
        {"name": CONNECTED, "account_external_id": c.account.external_id, "signal_id": f"s{i}"}
        for i, c in enumerate(cases)
    ]
    signals_receive_batch(signals=items, actor=integration)
    event_count = Event.objects.count()

    with django_assert_max_num_queries(2):
        results = signals_receive_batch(signals=items, actor=integration)

    assert [created for _, created, _ in results] == [False] * 5
    assert Event.objects.count() == event_count


@pytest.mark.django_db
def test_a_batch_is_refused_whole_for_a_forbidden_actor_or_when_too_large(
    open_signal_case, agent_a, integration
):
    case = open_signal_case()
    item = {"name": CONNECTED, "account_external_id": case.account.external_id, "signal_id": "s"}

    with pytest.raises(Forbidden):
        signals_receive_batch(signals=[item], actor=act(agent_a))
    with pytest.raises(InvalidInput):
        signals_receive_batch(signals=[item] * 501, actor=integration)

    assert not Signal.objects.exists()


def _items(signals: list[tuple[str, str, str]]) -> list[dict[str, Any]]:
    """(signal id, account external id, name) → batch items."""
    return [
        {"signal_id": sid, "account_external_id": account, "name": name}
        for sid, account, name in signals
    ]


@pytest.mark.django_db
def test_a_batch_of_new_signals_is_one_transaction_whatever_its_size(
    make_account, integration, django_assert_max_num_queries
):
    accounts = [make_account() for _ in range(5)]
    items = _items([(f"s{i}", accounts[i % 5].external_id, "User Invited") for i in range(200)])

    # accounts, stored ids, then in one transaction (a savepoint here): insert the
    # signals, look for the steps they move, insert their events
    with django_assert_max_num_queries(7):
        results = signals_receive_batch(signals=items, actor=integration)

    assert [created for _, created, _ in results] == [True] * 200
    assert Signal.objects.count() == 200
    assert sorted(e.properties["signal_id"] for e in events("Signal Received")) == sorted(
        f"s{i}" for i in range(200)
    )
    assert {e.account_id for e in events("Signal Received")} == {a.pk for a in accounts}


def _history(account_ids: list[int]) -> list[tuple[Any, ...]]:
    """What happened to these accounts, in write order, without ids or times."""
    rank = {pk: n for n, pk in enumerate(account_ids)}
    return [
        (rank[e.account_id], e.name, e.step_key, e.properties.get("completed_tasks"))
        for e in Event.objects.filter(account_id__in=account_ids).order_by("id")
        if e.name not in ("Account Created",)
    ]


@pytest.mark.django_db
def test_a_batch_does_what_the_same_signals_sent_one_by_one_do(
    make_playbook, make_account, system, integration
):
    """Chained steps (b waits for "B Done" once a is done), a step two signals of the
    batch match, signals for no step, the same id twice: the batch leaves the same
    steps, signals and events, in the same order, as sending its items one at a time."""
    playbook = make_playbook(
        "chain",
        [
            {"key": "a", "name": "A", "kind": "signal", "signal_name": "A Done"},
            {"key": "b", "name": "B", "kind": "signal", "signal_name": "B Done"},
            {"key": "c", "name": "C", "kind": "signal", "signal_name": "C Done", "depends_on": []},
        ],
    )
    worlds = []
    for _ in range(2):
        forward, backward = make_account(), make_account()
        for account in (forward, backward):
            services.case_open(account=account, playbook=playbook, actor=system)
        worlds.append((forward, backward))

    def items(forward: Any, backward: Any, tag: str) -> list[dict[str, Any]]:
        f, b = forward.external_id, backward.external_id
        return _items(
            [
                (f"{tag}1", f, "A Done"),  # completes a, which starts b
                (f"{tag}2", f, "B Done"),  # completes b (started by the signal before)
                (f"{tag}3", b, "B Done"),  # b not started yet: nothing
                (f"{tag}4", b, "A Done"),  # completes a; b now waits (its signal passed)
                (f"{tag}5", f, "C Done"),
                (f"{tag}6", f, "C Done"),  # c is done already: stored, completes nothing
                (f"{tag}7", b, "Heartbeat"),
                (f"{tag}1", f, "A Done"),  # the same id again: a duplicate
            ]
        )

    one_by_one = [signal_receive(actor=integration, **item) for item in items(*worlds[0], tag="x")]
    batch = signals_receive_batch(signals=items(*worlds[1], tag="y"), actor=integration)

    assert [(s.completed_tasks, created) for s, created in one_by_one] == [
        (s.completed_tasks, created) for s, created, error in batch
    ]
    assert [created for _, created, _ in batch] == [True] * 7 + [False]
    assert _history([a.pk for a in worlds[0]]) == _history([a.pk for a in worlds[1]])
    for (forward, backward), _ in zip(worlds, range(2), strict=True):
        assert Case.objects.get(account=forward).state == "completed"
        case = Case.objects.get(account=backward)
        assert (task_of(case, "a").state, task_of(case, "b").state) == ("done", "waiting")


@pytest.mark.django_db
def test_a_nul_character_is_refused_for_its_item_only(open_signal_case, integration):
    case = open_signal_case()
    account = case.account.external_id
    items = [
        {"signal_id": "ok", "account_external_id": account, "name": CONNECTED},
        {"signal_id": "bad", "account_external_id": account, "name": "Nul\x00"},
        {
            "signal_id": "bad-props",
            "account_external_id": account,
            "name": "X",
            "properties": {"k": ["a\x00"]},
        },
    ]

    results = signals_receive_batch(signals=items, actor=integration)

    assert [type(error).__name__ if error else created for _, created, error in results] == [
        True,
        "InvalidInput",
        "InvalidInput",
    ]
    assert [r[2].details["field"] for r in results[1:]] == ["name", "properties"]
    assert list(Signal.objects.values_list("signal_id", flat=True)) == ["ok"]


@pytest.mark.django_db
def test_when_the_batch_transaction_fails_its_items_are_received_one_by_one(
    open_signal_case, integration, monkeypatch
):
    from django.db import DatabaseError

    from onboarding.services import signals as signals_service

    first, second = open_signal_case(), open_signal_case()

    def fail(events: list[Event]) -> None:
        if events:
            raise DatabaseError("the batch transaction broke after its inserts")

    monkeypatch.setattr(signals_service, "_insert_events", fail)
    results = signals_receive_batch(
        signals=_items(
            [
                ("one", first.account.external_id, CONNECTED),
                ("two", "nobody", CONNECTED),
                ("three", second.account.external_id, CONNECTED),
                ("one", first.account.external_id, CONNECTED),
            ]
        ),
        actor=integration,
    )

    outcomes = [
        (type(error).__name__ if error else created, signal.completed_tasks if signal else None)
        for signal, created, error in results
    ]
    assert outcomes == [(True, 1), ("NotFound", None), (True, 1), (False, 1)]
    assert Signal.objects.count() == 2
    assert len(events("Signal Received")) == 2
    assert task_of(first, "connect").state == task_of(second, "connect").state == "done"
    assert len(events("Step Completed")) == 2


# --- concurrency -----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_same_signal_sent_concurrently_is_stored_and_applied_once(
    open_signal_case, integration
):
    case = open_signal_case()
    connect = task_of(case, "connect")

    results = race(*[lambda: receive(case, integration, signal_id="dup") for _ in range(4)])

    assert not [r for r in results if isinstance(r, Exception)], results
    assert sorted(created for _, created in results) == [False, False, False, True]
    assert len({signal.pk for signal, _ in results}) == 1
    assert Signal.objects.count() == 1 and Signal.objects.get().completed_tasks == 1
    assert len(events("Signal Received")) == 1
    assert len(events("Step Completed", task=connect)) == 1
    assert len(events("Step Activated", task=task_of(case, "review"))) == 1


@pytest.mark.django_db(transaction=True)
def test_two_different_signals_for_one_account_complete_its_steps_without_deadlock(
    make_playbook, make_account, system, integration
):
    playbook = make_playbook(
        "two-signals",
        [
            {"key": "a", "name": "A", "kind": "signal", "signal_name": "A Done"},
            {"key": "b", "name": "B", "kind": "signal", "signal_name": "B Done", "depends_on": []},
        ],
    )
    account = make_account()
    case = services.case_open(account=account, playbook=playbook, actor=system)

    def send(name: str, signal_id: str):
        return signal_receive(
            name=name,
            account_external_id=account.external_id,
            signal_id=signal_id,
            actor=integration,
        )

    results = race(lambda: send("A Done", "a"), lambda: send("B Done", "b"))

    assert all(isinstance(r, tuple) and r[1] for r in results), results
    assert Case.objects.get(pk=case.pk).state == "completed"


@pytest.mark.django_db(transaction=True)
def test_batches_racing_with_overlapping_ids_store_and_apply_each_id_once(
    open_signal_case, integration
):
    cases = [open_signal_case() for _ in range(24)]
    items = _items([(f"s{i:02d}", c.account.external_id, CONNECTED) for i, c in enumerate(cases)])
    batches = [items[:16], list(reversed(items[8:])), items[::2] + items[1::2]]

    results = race(
        *[lambda b=b: signals_receive_batch(signals=b, actor=integration) for b in batches],
        timeout=60,
    )

    assert not [r for r in results if isinstance(r, Exception)], results
    outcomes = [item for result in results for item in result]
    assert not [error for _, _, error in outcomes if error is not None]
    created = sorted(signal.signal_id for signal, was_created, _ in outcomes if was_created)
    assert created == [f"s{i:02d}" for i in range(24)]  # each id created by one batch
    assert Signal.objects.count() == 24
    assert set(Signal.objects.values_list("completed_tasks", flat=True)) == {1}
    received = [e.properties["signal_id"] for e in events("Signal Received")]
    assert sorted(received) == created
    for case in cases:
        connect = task_of(case, "connect")
        assert connect.state == "done"
        assert len(events("Step Completed", task=connect)) == 1


@pytest.mark.django_db(transaction=True)
def test_batches_for_the_same_accounts_in_opposite_orders_move_every_step(
    make_playbook, make_account, system, integration
):
    """Each case has two steps waiting for two signals; one batch sends the first to
    every account in one order, another the second in the opposite order. A batch
    keeps its case locks to its end, so taking them as it goes would deadlock, and
    the victim would leave its step waiting; it locks them in id order first."""
    playbook = make_playbook(
        "pair",
        [
            {"key": "a", "name": "A", "kind": "signal", "signal_name": "A Done"},
            {"key": "c", "name": "C", "kind": "signal", "signal_name": "C Done", "depends_on": []},
        ],
    )
    cases = [
        services.case_open(account=make_account(), playbook=playbook, actor=system)
        for _ in range(12)
    ]
    accounts = [c.account.external_id for c in cases]
    forward = _items([(f"a{i}", x, "A Done") for i, x in enumerate(accounts)])
    backward = _items([(f"c{i}", x, "C Done") for i, x in reversed(list(enumerate(accounts)))])

    results = race(
        lambda: signals_receive_batch(signals=forward, actor=integration),
        lambda: signals_receive_batch(signals=backward, actor=integration),
        timeout=60,
    )

    assert not [r for r in results if isinstance(r, Exception)], results
    assert not [e for result in results for _, _, e in result if e is not None]
    assert set(Signal.objects.values_list("completed_tasks", flat=True)) == {1}
    assert len(events("Signal Received")) == 24
    for case in cases:
        assert Case.objects.get(pk=case.pk).state == "completed"
        for key in ("a", "c"):
            assert len(events("Step Completed", task=task_of(case, key))) == 1


# --- reminders -------------------------------------------------------------------------


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def sent_windows(task: Task) -> list[int]:
    return list(
        Reminder.objects.filter(task=task).order_by("window").values_list("window", flat=True)
    )


@pytest.mark.django_db
def test_reminders_follow_the_schedule_once_per_window_up_to_the_maximum(
    open_signal_case, mailoutbox, django_capture_on_commit_callbacks
):
    case = open_signal_case(properties={"contact_email": "ops@customer.example"})
    connect = task_of(case, "connect")

    def sweep(hours: float) -> int:
        with django_capture_on_commit_callbacks(execute=True):
            return send_due_reminders(now=at(hours))

    assert sweep(23.9) == 0
    assert sweep(25) == 1
    assert sent_windows(connect) == [1]
    [reminded] = events("Reminder Sent", task=connect)
    assert reminded.properties == {"kind": "signal_nudge", "window": 1, "channel": "email"}
    assert (reminded.actor_type, reminded.actor_id, reminded.source) == (
        "system",
        "reminders",
        "sweeper",
    )
    [email] = mailoutbox
    assert email.to == ["ops@customer.example"]
    assert email.extra_headers["Idempotency-Key"] == f"reminder-{connect.pk}-1"
    assert "Connect your data source" in email.body

    assert sweep(26) == 0  # same window: nothing new
    assert sweep(49) == 1
    assert sent_windows(connect) == [1, 2]
    assert sweep(100) == 0  # max_reminders reached
    assert sent_windows(connect) == [1, 2]
    assert len(events("Reminder Sent", task=connect)) == 2
    assert len(mailoutbox) == 2
    assert connect.reminders.get(window=2).sent_at == at(49)


@pytest.mark.django_db
def test_after_an_outage_only_the_latest_due_window_is_sent(
    open_signal_case, mailoutbox, django_capture_on_commit_callbacks
):
    case = open_signal_case()
    connect = task_of(case, "connect")

    with django_capture_on_commit_callbacks(execute=True):
        assert send_due_reminders(now=at(60)) == 1

    assert sent_windows(connect) == [2]
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == [f"owner+{case.account.external_id}@example.com"]


@pytest.mark.django_db
def test_a_completed_step_gets_no_reminders(
    open_signal_case, integration, mailoutbox, django_capture_on_commit_callbacks
):
    case = open_signal_case()
    receive(case, integration)

    with django_capture_on_commit_callbacks(execute=True):
        assert send_due_reminders(now=at(30)) == 0

    assert not Reminder.objects.exists()
    assert not events("Reminder Sent")
    assert mailoutbox == []


@pytest.mark.django_db
def test_no_reminders_while_the_case_is_on_hold_or_for_steps_without_an_interval(
    open_signal_case,
    make_playbook,
    make_account,
    system,
    manager,
    mailoutbox,
    django_capture_on_commit_callbacks,
):
    held = open_signal_case()
    services.case_put_on_hold(case_id=held.pk, actor=act(manager), reason="contract")
    quiet = make_playbook(
        "quiet", [{"key": "connect", "name": "C", "kind": "signal", "signal_name": CONNECTED}]
    )
    with clock.travel_to(T0):
        services.case_open(account=make_account(), playbook=quiet, actor=system)

    with django_capture_on_commit_callbacks(execute=True):
        assert send_due_reminders(now=at(30)) == 0

    assert not Reminder.objects.exists()
    assert mailoutbox == []


@pytest.mark.django_db
def test_nothing_is_emailed_when_the_transaction_rolls_back(
    open_signal_case, mailoutbox, django_capture_on_commit_callbacks
):
    open_signal_case()

    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        assert send_due_reminders(now=at(25)) == 1
        raise RuntimeError("the sweep crashed after sending")

    assert callbacks == []
    assert mailoutbox == []
    assert not Reminder.objects.exists()
    assert not events("Reminder Sent")


@pytest.mark.django_db
def test_a_batch_takes_the_longest_overdue_first(open_signal_case):
    early = open_signal_case()
    late = open_signal_case()
    # the later one started waiting 10 h after the first
    Task.objects.filter(pk=task_of(late, "connect").pk).update(activated_at=at(10))

    assert send_due_reminders(now=at(40), batch_size=1) == 1
    assert sent_windows(task_of(early, "connect")) == [1]
    assert sent_windows(task_of(late, "connect")) == []
    assert send_due_reminders(now=at(40), batch_size=1) == 1
    assert sent_windows(task_of(late, "connect")) == [1]


@pytest.mark.django_db(transaction=True)
def test_concurrent_senders_send_each_window_exactly_once(open_signal_case, mailoutbox):
    tasks = [task_of(open_signal_case(), "connect") for _ in range(6)]

    for hours in (25, 49):
        results = race(*[lambda h=hours: send_due_reminders(now=at(h)) for _ in range(4)])
        assert not [r for r in results if isinstance(r, Exception)], results
        assert sum(results) == len(tasks)

    for task in tasks:
        assert sent_windows(task) == [1, 2]
        assert len(events("Reminder Sent", task=task)) == 2
    keys = sorted(m.extra_headers["Idempotency-Key"] for m in mail.outbox)
    assert keys == sorted(f"reminder-{t.pk}-{w}" for t in tasks for w in (1, 2))


@pytest.mark.django_db(transaction=True)
def test_a_sender_that_loses_the_insert_race_sends_nothing(open_signal_case, mailoutbox):
    connect = task_of(open_signal_case(), "connect")
    inserted = threading.Event()

    def other_sender() -> None:
        # Another sweeper got to the same window first and has not committed yet.
        try:
            with transaction.atomic():
                Reminder.objects.create(task_id=connect.pk, window=1, sent_at=at(25))
                inserted.set()
                time.sleep(0.5)
        finally:
            connections.close_all()

    thread = threading.Thread(target=other_sender)
    thread.start()
    assert inserted.wait(10)

    sent = send_due_reminders(now=at(25))  # waits on the unique index, then loses

    thread.join(10)
    assert not thread.is_alive()
    assert sent == 0
    assert sent_windows(connect) == [1]
    assert not events("Reminder Sent")
    assert mail.outbox == []


# --- admin -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_admin_shows_signals_and_reminders_read_only(
    client, open_signal_case, integration, django_capture_on_commit_callbacks
):
    case = open_signal_case()
    other = open_signal_case()
    signal, _ = receive(case, integration, signal_id="admin-1", properties={"connector": "pg"})
    with django_capture_on_commit_callbacks(execute=True):
        send_due_reminders(now=at(25))
    reminder = Reminder.objects.get(task=task_of(other, "connect"))
    client.force_login(User.objects.create_superuser("root", "root@example.com", "x"))

    for model, obj, query in (
        ("signal", signal, "admin-1"),
        ("reminder", reminder, other.account.external_id),
    ):
        changelist = reverse(f"admin:onboarding_{model}_changelist")
        assert client.get(changelist).status_code == 200
        found = client.get(changelist, {"q": query})
        assert found.status_code == 200 and found.context["cl"].result_count == 1
        page = client.get(reverse(f"admin:onboarding_{model}_change", args=[obj.pk]))
        assert page.status_code == 200
        assert b'name="_save"' not in page.content  # view-only
        assert client.get(reverse(f"admin:onboarding_{model}_add")).status_code == 403

    filtered = client.get(reverse("admin:onboarding_signal_changelist"), {"name": CONNECTED})
    assert filtered.context["cl"].result_count == 1
    assert b"pg" in client.get(reverse("admin:onboarding_signal_change", args=[signal.pk])).content

"""`manage.py seed_demo`: demo queues, logins, playbooks and ~90 days of history."""

from __future__ import annotations

import heapq
import itertools
import random
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.db.models import Count
from django.utils import timezone
from tqdm import tqdm

from analytics.models import Event
from onboarding import clock, demo, services
from onboarding.actors import Actor
from onboarding.automation import dispatch_suppressed
from onboarding.errors import DomainError
from onboarding.models import Account, Case, Queue, SlaTimer, Task
from onboarding.models.cases import FINAL_TASK_STATES, CaseState, TaskState
from onboarding.services import sla

AUTOMATION = Actor.system("automation", source="seed")
SWEEPER = Actor.system("sla", source="seed")
LIVE_CASES = 6
PRODUCT = Actor.system("product", source="seed")

# A script is a generator of (delay, action): the walker runs each action at its time.
Action = Callable[[], Any]
Script = Iterator[tuple[timedelta, Action]]


def minutes(value: float) -> timedelta:
    return timedelta(minutes=value)


def hours(value: float) -> timedelta:
    return timedelta(hours=value)


def days(value: float) -> timedelta:
    return timedelta(days=value)


# --- what people and systems say --------------------------------------------------------------

AUTOMATION_ERRORS = {
    "provision_workspace": [
        ("TimeoutError", "Provisioning API timed out after 30 s."),
        ("QuotaExceeded", "Region capacity quota exceeded; no workspace slot free."),
    ],
    "send_welcome_email": [("SMTPServerDisconnected", "Mail relay closed the connection.")],
    "create_crm_record": [
        ("HTTPError", "CRM API returned 503 Service Unavailable."),
        ("ValidationError", "CRM rejected the record: owner is not an active user."),
    ],
    "send_activation_nudge": [("HTTPError", "Messaging API returned 429 Too Many Requests.")],
}
AUTOMATION_RESULTS = {
    "provision_workspace": "Workspace ws-{n:05d} provisioned.",
    "send_welcome_email": "Welcome email queued (message id msg-{n:06d}).",
    "create_crm_record": "CRM account record CRM-{n:06d} created.",
    "send_activation_nudge": "Activation nudge sent in-app and by email.",
}
EXCEPTION_FIXES = [
    "Cleared the stuck job and re-ran it by hand; verified the result.",
    "Root cause was an expired API credential; rotated it and completed the step manually.",
    "Done manually after the provider's outage ended.",
]
NOTES = [
    "Customer prefers email over calls; main contact is the head of operations.",
    "Walked through the dashboard basics; they want a follow-up on permissions.",
    "They are evaluating a competitor in parallel; keep momentum.",
    "Asked about data retention and the security questionnaire; sent the trust page.",
    "Champion is out next week; scheduled around it.",
    "Customer has a hard go-live date at the end of the quarter.",
]
HANDOFF_NOTES = {
    demo.SPECIALISTS: [
        "Questions about API rate limits and webhooks: needs an engineer.",
        "Their warehouse sits behind a VPN; technical team to advise on connectivity.",
    ],
    demo.TECHNICAL: [
        "Technical questions answered; the remaining work is a product walkthrough.",
        "Customer asked for a commercial review; back to the specialists.",
    ],
}
WAIT_REASONS = [
    "Waiting for the customer to pick a time for the call.",
    "Waiting for the customer's IT team to allow-list our IP ranges.",
    "Waiting for the customer to send a sample export.",
    "Waiting for the customer's security review sign-off.",
]
COMPLETE_NOTES = [
    "Done; customer happy with the set-up.",
    "Completed on a call; recording shared with the customer.",
    "",
    "",
]
SKIP_REASONS = {
    "sso_configuration": "Customer does not use SSO; password login with MFA agreed.",
    "onboarding_check_in": "Customer declined the check-in; fully self-sufficient.",
    "training_session": "Customer's team already trained on a previous contract.",
    "invite_teammates": "Single-user account; nobody to invite.",
}
HOLD_REASONS = [
    "Customer paused the project during a reorganisation.",
    "Contract amendment under legal review.",
    "Customer's main contact on leave for two weeks.",
]
CANCEL_REASONS = [
    "Customer churned during the trial.",
    "Deal was lost after procurement review.",
    "Duplicate account; onboarding continues on the parent account.",
]

# Median hours until a product signal arrives (log-normal around it).
SIGNAL_HOURS = {
    "connect_data_source": 36,
    "build_first_report": 60,
    "sso_configuration": 96,
    "invite_teammates": 72,
}
SIGNAL_NAMES = {
    step.key: step.signal_name
    for definition in (demo.SELF_SERVE, demo.ENTERPRISE)
    for step in definition.steps
    if step.signal_name
}
SKIP_PROBABILITY = {
    "sso_configuration": 0.2,
    "onboarding_check_in": 0.06,
    "training_session": 0.05,
    "invite_teammates": 0.04,
}


@dataclass
class Cast:
    """The demo's actors, resolved once per run."""

    manager: Actor
    by_user_id: dict[int, Actor]
    members: dict[int, list[Actor]]  # queue id → agents who work it (manager excluded)
    human_queues: list[Queue]  # hand-off targets


@dataclass(frozen=True)
class TaskRow:
    state: str
    kind: str
    step_key: str
    queue_id: int | None
    assignee_id: int | None


class CaseWalker:
    """Replays one case from its opening until `end` through the real services.

    Each activated task gets a script; the walker runs the earliest action next at its
    own time (`clock.travel_to`), then re-reads the case's tasks to script the ones the
    workflow activated. Time only moves forward, and nothing happens after `end`.
    """

    def __init__(
        self, case: Case, *, cast: Cast, rng: random.Random, end: datetime, pace: float
    ) -> None:
        self.case_id = case.pk
        self.cast = cast
        self.rng = rng
        self.end = end
        self.pace = pace  # this customer's speed: delays scale with it
        self.now = case.opened_at
        self.agenda: list[tuple[datetime, int, int | None, Script | None, Action]] = []
        self.seq = itertools.count()
        self.tasks: dict[int, TaskRow] = {}
        self.scripted: set[int] = set()
        self.case_state = case.state
        self.current: dict[int, Script] = {}  # the live script of each task
        self.hold_started: datetime | None = None
        self.resume_at: datetime | None = None

    # --- the loop ---------------------------------------------------------------------------

    def walk(self) -> None:
        self._plan_case_fate()
        self._refresh()
        while self.agenda:
            due, _, task_id, script, action = heapq.heappop(self.agenda)
            if due > self.end:
                break
            self._fire_timers(min(due, self.end))
            if (
                task_id is not None
                and script is not None
                and self.current.get(task_id) is not script
            ):
                continue  # an SLA escalation replaced this task's script
            if task_id is not None:
                if self.case_state in (CaseState.COMPLETED, CaseState.CANCELLED):
                    continue
                if self.tasks[task_id].state in FINAL_TASK_STATES:
                    continue
                if self.case_state == CaseState.ON_HOLD:
                    # Nobody works a held case: the rest of this script slides past the hold.
                    if self.resume_at is not None and self.hold_started is not None:
                        later = self.resume_at + (due - self.hold_started)
                        self._push(later, task_id, script, action)
                    continue
            at = max(due, self.now + timedelta(seconds=1))
            if at > self.end:
                break
            with clock.travel_to(at):
                action()
            self.now = at
            self._refresh()
            if script is not None:
                self._next(script, task_id, at)

    def _fire_timers(self, until: datetime) -> None:
        """Do the sweep's job for this case up to `until`, each at its own moment."""
        while True:
            moments = []
            for timer in SlaTimer.objects.filter(case_id=self.case_id, state="running"):
                if timer.warned_at is None and timer.warn_at and timer.warn_at <= until:
                    moments.append((timer.warn_at, timer.pk))
                elif timer.due_at and timer.due_at <= until:
                    moments.append((timer.due_at, timer.pk))
            if not moments:
                return
            moment, timer_id = min(moments)
            at = max(moment, self.now)
            with clock.travel_to(at):
                sla.breach_overdue(timer_id, actor=SWEEPER, now=at)
            self.now = at
            escalated_before = {t for t, row in self.tasks.items() if row.state == TaskState.QUEUED}
            self._refresh()
            for task_id, row in self.tasks.items():
                if row.state == TaskState.QUEUED and task_id not in escalated_before:
                    # the breach sent it (back) to a queue: someone picks it up from there
                    script = self._human(task_id, can_wait=row.kind == "human")
                    self.current[task_id] = script
                    self._next(script, task_id, at)

    def _push(
        self, at: datetime, task_id: int | None, script: Script | None, action: Action
    ) -> None:
        heapq.heappush(self.agenda, (at, next(self.seq), task_id, script, action))

    def _next(self, script: Script, task_id: int, after: datetime) -> None:
        try:
            delay, action = next(script)
        except StopIteration:
            return
        self._push(after + delay * self.pace, task_id, script, action)

    def _refresh(self) -> None:
        """Re-read the case's tasks; script every task the workflow has activated."""
        self.case_state = Case.objects.values_list("state", flat=True).get(pk=self.case_id)
        rows = Task.objects.filter(case_id=self.case_id).order_by("id")
        for task_id, *values in rows.values_list(
            "id", "state", "kind", "step_key", "queue_id", "assignee_id"
        ):
            self.tasks[task_id] = TaskRow(*values)
        for task_id, row in self.tasks.items():
            if row.state == TaskState.PENDING or task_id in self.scripted:
                continue
            self.scripted.add(task_id)
            if row.state not in FINAL_TASK_STATES:
                script = self._script(task_id, row)
                self.current[task_id] = script
                self._next(script, task_id, self.now)

    # --- the case's fate: most run their course, a few are held or cancelled ------------

    def _plan_case_fate(self) -> None:
        rng = self.rng
        roll = rng.random()
        if roll < 0.04:
            at = self.now + days(rng.uniform(1, 20))
            self._push(at, None, None, self._cancel)
        elif roll < 0.10:
            hold_at = self.now + days(rng.uniform(0.5, 8))
            self._push(hold_at, None, None, self._hold)
            if rng.random() < 0.6:
                self.resume_at = hold_at + days(rng.uniform(2, 12))
                self._push(self.resume_at, None, None, self._resume)

    def _hold(self) -> None:
        if self.case_state != CaseState.ACTIVE:
            self.resume_at = None  # completed or cancelled first: nothing to resume
            return
        services.case_put_on_hold(
            case_id=self.case_id, actor=self.cast.manager, reason=self.rng.choice(HOLD_REASONS)
        )
        self.hold_started = clock.now()

    def _resume(self) -> None:
        if self.case_state == CaseState.ON_HOLD:
            services.case_resume(case_id=self.case_id, actor=self.cast.manager)

    def _cancel(self) -> None:
        if self.case_state in (CaseState.ACTIVE, CaseState.ON_HOLD):
            services.case_cancel(
                case_id=self.case_id,
                actor=self.cast.manager,
                reason=self.rng.choice(CANCEL_REASONS),
            )

    # --- task scripts -----------------------------------------------------------------------

    def _script(self, task_id: int, row: TaskRow) -> Script:
        skip = SKIP_PROBABILITY.get(row.step_key, 0.0)
        if row.kind != "automated" and self.rng.random() < skip:
            return self._skipped(task_id, row)
        if row.kind == "automated":
            return self._automated(task_id, row)
        if row.kind == "human":
            return self._human(task_id)
        return self._signal(task_id, row)

    def _skipped(self, task_id: int, row: TaskRow) -> Script:
        reason = SKIP_REASONS.get(row.step_key, "Not needed for this customer.")
        skip = partial(services.task_skip, task_id=task_id, actor=self.cast.manager, reason=reason)
        yield hours(self.rng.uniform(2, 36)), skip

    def _automated(self, task_id: int, row: TaskRow) -> Script:
        """Lease and succeed; sometimes fail and retry; rarely exhaust the attempts."""
        rng = self.rng
        roll = rng.random()
        failures = 0 if roll < 0.84 else 1 if roll < 0.93 else 2 if roll < 0.97 else 99
        handler = row.step_key
        start = partial(services.task_start, task_id=task_id, actor=AUTOMATION)
        for attempt in itertools.count(1):
            backoff = minutes(rng.uniform(0.2, 6) if attempt == 1 else 2**attempt + rng.random())
            yield backoff, start
            if attempt > failures:
                summary = AUTOMATION_RESULTS.get(handler, "Done.").format(n=rng.randrange(10**6))
                succeed = partial(
                    services.task_succeed, task_id=task_id, actor=AUTOMATION, summary=summary
                )
                yield minutes(rng.uniform(0.1, 3)), succeed
                return
            error_type, error = rng.choice(AUTOMATION_ERRORS.get(handler, [("Error", "Failed.")]))
            fail = partial(
                services.task_fail,
                task_id=task_id,
                actor=AUTOMATION,
                error=error,
                error_type=error_type,
            )
            yield minutes(rng.uniform(0.1, 2)), fail
            if self.tasks[task_id].state != TaskState.SCHEDULED:
                break  # attempts exhausted: escalated to the exceptions queue
        # A person in the exceptions queue (or the manager) finishes it by hand.
        yield hours(rng.uniform(0.5, 16)), partial(self._claim, task_id, manager_share=0.3)
        fix = rng.choice(EXCEPTION_FIXES)
        yield (
            hours(rng.uniform(0.3, 4)),
            self._as_assignee(services.task_complete, task_id, note=fix),
        )

    def _human(self, task_id: int, *, can_wait: bool = True) -> Script:
        """Claim; maybe a note, one hand-off, a wait on the customer; complete."""
        rng = self.rng
        handed_off = False
        while True:
            yield hours(rng.lognormvariate(2.8, 1.0)), partial(self._claim, task_id)
            if rng.random() < 0.35:
                note = self._as_assignee(
                    services.case_add_note, task_id, case_id=self.case_id, body=rng.choice(NOTES)
                )
                yield minutes(rng.uniform(5, 90)), note
            if not handed_off and rng.random() < 0.12:
                handed_off = True
                yield hours(rng.uniform(0.5, 6)), partial(self._hand_off, task_id)
                continue
            if can_wait and rng.random() < 0.2:
                wait = self._as_assignee(
                    services.task_wait_on_customer, task_id, reason=rng.choice(WAIT_REASONS)
                )
                yield hours(rng.uniform(0.5, 6)), wait
                yield days(rng.uniform(0.5, 5)), self._as_assignee(services.task_resume, task_id)
            complete = self._as_assignee(
                services.task_complete, task_id, note=rng.choice(COMPLETE_NOTES)
            )
            yield hours(rng.lognormvariate(2.5, 0.9)), complete
            return

    def _signal(self, task_id: int, row: TaskRow) -> Script:
        """The product reports the signal after a while; some customers stall for weeks."""
        rng = self.rng
        delay = hours(rng.lognormvariate(0, 0.9) * SIGNAL_HOURS.get(row.step_key, 24))
        if rng.random() < 0.07:
            delay = days(rng.uniform(15, 60))
        signal = partial(
            services.task_complete_by_signal,
            task_id=task_id,
            actor=PRODUCT,
            signal_name=SIGNAL_NAMES.get(row.step_key, row.step_key),
        )
        yield delay, signal

    # --- helpers for the people ---------------------------------------------------------------

    def _as_assignee(self, service: Callable[..., Any], task_id: int, **kwargs: Any) -> Action:
        """The service call, made by whoever holds the task when it runs."""
        return lambda: service(task_id=task_id, actor=self._assignee(task_id), **kwargs)

    def _assignee(self, task_id: int) -> Actor:
        assignee_id = self.tasks[task_id].assignee_id
        return self.cast.by_user_id.get(assignee_id, self.cast.manager)

    def _claim(self, task_id: int, manager_share: float = 0.05) -> None:
        row = self.tasks[task_id]
        if row.assignee_id is not None:  # reserved for someone by a hand-off
            actor = self._assignee(task_id)
        else:
            members = self.cast.members.get(row.queue_id, [])
            if not members or self.rng.random() < manager_share:
                actor = self.cast.manager
            else:
                actor = self.rng.choice(members)
        services.task_claim(task_id=task_id, actor=actor)

    def _hand_off(self, task_id: int) -> None:
        row = self.tasks[task_id]
        targets = [q for q in self.cast.human_queues if q.pk != row.queue_id]
        target = self.rng.choice(targets)
        reserve = self.rng.random() < 0.3 and self.cast.members.get(target.pk)
        to_assignee = self.rng.choice(self.cast.members[target.pk]) if reserve else None
        from_key = next((q.key for q in self.cast.human_queues if q.pk == row.queue_id), "")
        note = self.rng.choice(HANDOFF_NOTES.get(from_key, ["Needs another team."]))
        services.task_hand_off(
            task_id=task_id,
            actor=self._assignee(task_id),
            note=note,
            to_queue_id=target.pk,
            to_assignee_id=to_assignee.user.pk if to_assignee and to_assignee.user else None,
        )


class Command(BaseCommand):
    """Seed the demo: queues, groups, logins, two playbooks and ~90 days of history.

    Idempotent: everything is found again by a stable key (queue key, group name,
    username, playbook key, account external_id `demo-0001`…), so a second run creates
    nothing and only prints what exists. Each account's history is replayed through the
    real services (`onboarding.services`) with `clock.travel_to`, in one transaction per
    account, so every task and case transition has its analytics event. Deterministic
    for a given `--seed`, relative to the moment the command runs. The printed logins
    are for a local demo only, so it refuses to run with DEBUG off unless told to.
    """

    help = (
        "Create demo queues, logins (demo passwords), the Self-serve and Enterprise "
        "playbooks and accounts with ~90 days of onboarding history. Safe to re-run."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--accounts", type=int, default=300, help="Accounts (default 300).")
        parser.add_argument("--seed", type=int, default=42, help="Random seed (default 42).")
        parser.add_argument(
            "--days", type=int, default=90, help="Spread histories over this many days (90)."
        )
        parser.add_argument(
            "--no-progress", action="store_true", help="Do not show the progress bar."
        )
        parser.add_argument(
            "--live",
            type=int,
            default=LIVE_CASES,
            help=f"Cases opened now and left to the worker ({LIVE_CASES}).",
        )
        parser.add_argument(
            "--allow-without-debug",
            action="store_true",
            help="Seed even though DEBUG is off (the demo logins have published passwords).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        count, seed, span = options["accounts"], options["seed"], options["days"]
        if count < 0 or span < 1:
            raise CommandError("--accounts must be >= 0 and --days >= 1.")
        if not settings.DEBUG and not options["allow_without_debug"]:
            raise CommandError(
                "DEBUG is off, so this looks like a real deployment; the demo creates logins "
                "with published passwords (e.g. admin / demo-admin-pass). "
                "Pass --allow-without-debug to seed anyway."
            )
        end = timezone.now().replace(microsecond=0)
        start = end - days(span)
        events_before = Event.objects.count()

        queues, queues_created = demo.ensure_queues()
        groups_created = demo.ensure_groups()
        users, users_created = demo.ensure_users(queues)
        sla_created = demo.ensure_sla(queues, years=tuple(range(start.year - 1, end.year + 2)))
        playbooks = demo.ensure_playbooks(
            queues, start=start - days(2), v2_at=end - days(round(span * 0.35))
        )
        cast = self._cast(users, queues)

        specs = demo.generate_accounts(count, seed)
        existing = set(
            Account.objects.filter(external_id__in=[s.external_id for s in specs]).values_list(
                "external_id", flat=True
            )
        )
        todo = [s for s in specs if s.external_id not in existing]
        show = not options["no_progress"] and options["verbosity"] > 0 and sys.stderr.isatty()
        # The seeder plays the worker itself; what it leaves scheduled, the sweep dispatches.
        for spec in tqdm(todo, desc="Demo accounts", unit="account", disable=not show):
            try:
                with dispatch_suppressed():
                    self._seed_account(
                        spec,
                        seed=seed,
                        start=start,
                        end=end,
                        span=span,
                        playbooks=playbooks,
                        cast=cast,
                    )
            except DomainError as exc:
                raise CommandError(
                    f"{spec.external_id}: {exc.message} {exc.details or ''}".strip()
                ) from exc

        created = {
            "queues": queues_created,
            "groups": groups_created,
            "users": users_created,
            "playbooks": playbooks.created,
            "calendars and SLA policies": sla_created,
            "accounts": len(todo),
            "live cases": self._open_live_cases(playbooks, count=max(options["live"], 0)),
        }
        self._report(created, len(existing), Event.objects.count() - events_before)

    # --- pieces ---------------------------------------------------------------------------------

    @staticmethod
    def _open_live_cases(playbooks: Any, *, count: int) -> int:
        """Cases opened just now and left to the running worker: the demo moves by itself."""
        opened = 0
        for n in range(1, count + 1):
            external_id = f"{demo.ACCOUNT_PREFIX}live-{n:02d}"
            if Account.objects.filter(external_id=external_id).exists():
                continue
            account, _ = services.account_upsert(
                external_id=external_id,
                actor=demo.SEED_ACTOR,
                name=f"Live Demo {n:02d}",
                plan="enterprise" if n % 3 == 0 else "growth",
                segment="mid-market",
                region=("emea", "na", "apac")[n % 3],
                channel="sales" if n % 3 == 0 else "self-serve",
            )
            playbook = playbooks.enterprise if n % 3 == 0 else playbooks.self_serve
            services.case_open(account=account, playbook=playbook, actor=demo.SEED_ACTOR)
            opened += 1
        return opened

    @staticmethod
    def _cast(users: dict[str, Any], queues: dict[str, Queue]) -> Cast:
        actors = {name: Actor.for_user(user, source="seed") for name, user in users.items()}
        members: dict[int, list[Actor]] = {}
        for login in demo.LOGINS:
            if login.role != "agent":
                continue
            for key in login.queues:
                members.setdefault(queues[key].pk, []).append(actors[login.username])
        return Cast(
            manager=actors["manager"],
            by_user_id={user.pk: actors[name] for name, user in users.items()},
            members=members,
            human_queues=[q for q in queues.values() if not q.is_exceptions],
        )

    @staticmethod
    def _seed_account(
        spec: demo.AccountSpec,
        *,
        seed: int,
        start: datetime,
        end: datetime,
        span: int,
        playbooks: demo.DemoPlaybooks,
        cast: Cast,
    ) -> None:
        rng = random.Random(f"{seed}:history:{spec.external_id}")
        # Skewed towards recent days: the business is growing.
        opened_at = end - days(span * rng.random() ** 1.3) + minutes(1)
        opened_at = min(max(opened_at, start + hours(1)), end - minutes(5))
        playbook, version = playbooks.version_for(spec.plan, opened_at)
        pace = rng.lognormvariate(0, 0.35) * (1.4 if spec.plan == "enterprise" else 1.0)
        with transaction.atomic():
            with clock.travel_to(opened_at - minutes(rng.uniform(2, 240))):
                account, _ = services.account_upsert(
                    external_id=spec.external_id, actor=demo.SEED_ACTOR, **spec.attrs()
                )
            with clock.travel_to(opened_at):
                case = services.case_open(
                    account=account, playbook=playbook, version=version, actor=demo.SEED_ACTOR
                )
            CaseWalker(case, cast=cast, rng=rng, end=end, pace=pace).walk()

    def _report(self, created: dict[str, int], existing_accounts: int, new_events: int) -> None:
        out = self.stdout
        demo_accounts = Account.objects.filter(external_id__startswith=demo.ACCOUNT_PREFIX)
        if not any(created.values()):
            out.write(self.style.SUCCESS("The demo data already exists; nothing was created."))
        else:
            made = ", ".join(f"{n} {what}" for what, n in created.items() if n)
            out.write(self.style.SUCCESS(f"Created {made}."))
        out.write(
            f"Accounts: {demo_accounts.count()} demo accounts "
            f"({created['accounts']} created, {existing_accounts} already there)."
        )
        cases = Case.objects.filter(account__in=demo_accounts)
        tasks = Task.objects.filter(case__account__in=demo_accounts)
        out.write(f"Cases by state: {self._by_state(cases)}")
        out.write(f"Tasks by state: {self._by_state(tasks)}")
        out.write(f"Events: {new_events} recorded by this run, {Event.objects.count()} in total.")
        out.write("")
        out.write("Demo logins (local demo only; change them before exposing the app):")
        width = max(len("username"), *(len(login.username) for login in demo.LOGINS))
        pw_width = max(len(login.password) for login in demo.LOGINS)
        out.write(f"  {'username'.ljust(width)}  {'password'.ljust(pw_width)}  role")
        for login in demo.LOGINS:
            out.write(
                f"  {login.username.ljust(width)}  {login.password.ljust(pw_width)}  {login.role}"
            )

    @staticmethod
    def _by_state(queryset: Any) -> str:
        rows = queryset.order_by().values("state").annotate(n=Count("id"))
        counts = Counter({row["state"]: row["n"] for row in rows})
        return ", ".join(f"{state} {n}" for state, n in counts.most_common()) or "none"

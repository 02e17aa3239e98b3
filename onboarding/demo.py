"""What the demo contains: queues, groups, logins, playbooks and accounts.

`manage.py seed_demo` builds these idempotently (every row is found again by a stable
key: queue key, group name, username, playbook key, account `external_id`) and then
replays each account's history through the real services. The passwords below are
for a local demo only; never run the seeder against a real deployment.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, Group, Permission
from django.db import transaction

from onboarding import clock, services
from onboarding.actors import MANAGE_PERM, WORK_PERM, Actor
from onboarding.models import (
    BusinessCalendar,
    CalendarDay,
    Playbook,
    PlaybookVersion,
    Queue,
    SlaPolicy,
)

ACCOUNT_PREFIX = "demo-"
SEED_ACTOR = Actor.system("seed", source="seed")

# --- queues, groups, logins ---------------------------------------------------------------

SPECIALISTS = "onboarding-specialists"
TECHNICAL = "technical-onboarding"
EXCEPTIONS = "exceptions"

QUEUES: list[dict[str, Any]] = [
    {
        "key": SPECIALISTS,
        "name": "Onboarding specialists",
        "description": "Kickoffs, check-ins, training and handovers.",
    },
    {
        "key": TECHNICAL,
        "name": "Technical onboarding",
        "description": "Integrations, SSO and data set-up that need an engineer.",
        # Work is dealt out in turn to the engineers instead of waiting to be claimed.
        "assignment": Queue.Assignment.ROUND_ROBIN,
    },
    {
        "key": EXCEPTIONS,
        "name": "Exceptions",
        "description": "Automated steps whose attempts are exhausted land here.",
        "is_exceptions": True,
    },
]

AGENTS_GROUP = "Onboarding agents"
MANAGERS_GROUP = "Onboarding managers"


@dataclass(frozen=True)
class Login:
    username: str
    password: str
    role: str
    first_name: str = ""
    last_name: str = ""
    group: str | None = None
    queues: tuple[str, ...] = ()
    is_superuser: bool = False


# Demo-only credentials, printed by the seeder at the end of every run.
LOGINS: list[Login] = [
    Login("manager", "demo-manager-pass", "manager", "Morgan", "Reyes", MANAGERS_GROUP),
    Login("agent1", "demo-agent-pass", "agent", "Ada", "Kowalski", AGENTS_GROUP, (SPECIALISTS,)),
    Login(
        "agent2",
        "demo-agent-pass",
        "agent",
        "Bo",
        "Lindqvist",
        AGENTS_GROUP,
        (SPECIALISTS, TECHNICAL),
    ),
    Login(
        "agent3",
        "demo-agent-pass",
        "agent",
        "Chen",
        "Okafor",
        AGENTS_GROUP,
        (TECHNICAL, EXCEPTIONS),
    ),
    Login("admin", "demo-admin-pass", "superuser", "Sam", "Admin", is_superuser=True),
]


def _codename(perm: str) -> str:
    return perm.split(".", 1)[1]


def ensure_queues() -> tuple[dict[str, Queue], int]:
    """The demo queues by key, and how many were created now."""
    created = 0
    queues: dict[str, Queue] = {}
    for spec in QUEUES:
        queue, was_created = Queue.objects.get_or_create(
            key=spec["key"], defaults={k: v for k, v in spec.items() if k != "key"}
        )
        queues[queue.key] = queue
        created += was_created
    return queues, created


def ensure_groups() -> int:
    """Agents work tasks and see everything; managers also manage and change."""
    view = Permission.objects.filter(
        content_type__app_label__in=["onboarding", "analytics"], codename__startswith="view_"
    )
    change = Permission.objects.filter(
        content_type__app_label="onboarding", codename__startswith="change_"
    )
    work = Permission.objects.get(
        content_type__app_label="onboarding", codename=_codename(WORK_PERM)
    )
    manage = Permission.objects.get(
        content_type__app_label="onboarding", codename=_codename(MANAGE_PERM)
    )
    created = 0
    agents, was_created = Group.objects.get_or_create(name=AGENTS_GROUP)
    created += was_created
    agents.permissions.add(work, *view)
    managers, was_created = Group.objects.get_or_create(name=MANAGERS_GROUP)
    created += was_created
    managers.permissions.add(manage, *view, *change)
    return created


def ensure_users(queues: dict[str, Queue]) -> tuple[dict[str, AbstractUser], int]:
    """The demo logins (passwords are set only when the user is created)."""
    User = get_user_model()
    users: dict[str, AbstractUser] = {}
    created = 0
    for login in LOGINS:
        user, was_created = User.objects.get_or_create(
            username=login.username,
            defaults={
                "first_name": login.first_name,
                "last_name": login.last_name,
                "email": f"{login.username}@demo.invalid",
                "is_staff": True,
                "is_superuser": login.is_superuser,
            },
        )
        if was_created:
            user.set_password(login.password)
            user.save(update_fields=["password"])
            created += 1
        if login.group:
            user.groups.add(Group.objects.get(name=login.group))
        for key in login.queues:
            queues[key].members.add(user)
        # Fresh instance: no stale permission cache for the actors built from it.
        users[login.username] = User.objects.get(pk=user.pk)
    return users, created


# --- business calendars and SLA policies -----------------------------------------------------

CALENDARS: list[dict[str, Any]] = [
    {
        "key": "emea-office",
        "name": "EMEA office (Berlin)",
        "tz": "Europe/Berlin",
        "week": {d: ["09:00-12:30", "13:30-18:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
        "country": "DE",
        "subdivision": "BE",
    },
    {
        "key": "americas-office",
        "name": "Americas office (New York)",
        "tz": "America/New_York",
        "week": {d: ["09:00-18:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
        "country": "US",
        "subdivision": "",
    },
]

# (key, name, target, warn %, calendar key or None for 24/7, pause states, on breach)
POLICIES: list[tuple[str, str, timedelta, int, str | None, list[str], str]] = [
    ("first-response", "Human step: 2 business days", timedelta(hours=17), 75, "emea-office",
     ["waiting"], "escalate"),
    ("technical-setup", "Technical step: 4 business days", timedelta(hours=34), 75,
     "americas-office", ["waiting"], "escalate"),
    ("signal-check-in", "Customer action within 7 days", timedelta(days=7), 70, None, [],
     "escalate"),
    ("automation", "Automation within 30 minutes", timedelta(minutes=30), 80, None, [],
     "notify"),
    ("exceptions", "Exceptions: 1 business day", timedelta(hours=8.5), 75, "emea-office",
     ["waiting"], "escalate"),
    ("self-serve-ttl", "Self-serve live in 21 days", timedelta(days=21), 75, None, [], "notify"),
    ("enterprise-ttl", "Enterprise live in 45 days", timedelta(days=45), 75, None, [], "notify"),
]  # fmt: skip

SLA_BY_STEP = {
    "provision_workspace": "automation",
    "kickoff_call": "first-response",
    "onboarding_check_in": "first-response",
    "training_session": "first-response",
    "handover_to_csm": "first-response",
    "technical_setup": "technical-setup",
    "sso_configuration": "technical-setup",
    "connect_data_source": "signal-check-in",
    "build_first_report": "signal-check-in",
}
CASE_SLA = {"self-serve": "self-serve-ttl", "enterprise": "enterprise-ttl"}
REMINDERS = {"connect_data_source": timedelta(days=2), "build_first_report": timedelta(days=3)}


def ensure_sla(queues: dict[str, Queue], *, years: tuple[int, ...]) -> int:
    """Calendars (holidays seeded from the `holidays` package) and policies; idempotent."""
    created = 0
    calendars: dict[str, BusinessCalendar] = {}
    for spec in CALENDARS:
        calendar, made = BusinessCalendar.objects.get_or_create(key=spec["key"], defaults=spec)
        calendars[spec["key"]] = calendar
        created += made
        if made and calendar.country:
            names = holiday_names(calendar.country, calendar.subdivision or None, years)
            CalendarDay.objects.bulk_create(
                CalendarDay(calendar=calendar, date=day, name=name, source="holidays")
                for day, name in sorted(names.items())
            )
    for key, name, target, warn, calendar_key, pauses, on_breach in POLICIES:
        _, made = SlaPolicy.objects.get_or_create(
            key=key,
            version=1,
            defaults={
                "name": name,
                "target": target,
                "warn_percent": warn,
                "calendar": calendars.get(calendar_key) if calendar_key else None,
                "pause_states": pauses,
                "on_breach": on_breach,
            },
        )
        created += made
    exceptions = queues[EXCEPTIONS]
    if exceptions.default_sla_policy_id is None:
        exceptions.default_sla_policy = current_policy("exceptions")
        exceptions.save(update_fields=["default_sla_policy"])
    return created


def holiday_names(country: str, subdivision: str | None, years: tuple[int, ...]) -> dict:
    import holidays

    return dict(holidays.country_holidays(country, subdiv=subdivision, years=list(years)))


def current_policy(key: str | None) -> SlaPolicy | None:
    if key is None:
        return None
    return SlaPolicy.objects.filter(key=key, is_current=True).first()


# --- playbooks -----------------------------------------------------------------------------


@dataclass(frozen=True)
class StepDef:
    key: str
    name: str
    kind: str
    depends_on: tuple[str, ...] | None = None  # None: the previous step
    queue: str | None = None
    handler: str = ""
    signal_name: str = ""
    is_milestone: bool = False
    is_first_value: bool = False
    required: bool = True
    max_attempts: int = 3
    # How long after the opening the step is expected done: the health report's pace.
    expected_within: timedelta | None = None
    description: str = ""


@dataclass(frozen=True)
class PlaybookDef:
    key: str
    name: str
    description: str
    steps: list[StepDef] = field(default_factory=list)


SELF_SERVE = PlaybookDef(
    "self-serve",
    "Self-serve",
    "Product-led onboarding: automation and product signals, one human check-in.",
    [
        StepDef(
            "provision_workspace",
            "Provision workspace",
            "automated",
            handler="provision_workspace",
            is_milestone=True,
            description="Milestone: Account Provisioned.",
            expected_within=timedelta(days=1),
        ),
        StepDef(
            "send_welcome_email", "Send welcome email", "automated", handler="send_welcome_email"
        ),
        StepDef(
            "connect_data_source",
            "Connect a data source",
            "signal",
            depends_on=("provision_workspace",),
            signal_name="Data Source Connected",
            is_milestone=True,
            description="Milestone: Data Source Connected.",
            expected_within=timedelta(days=3),
        ),
        StepDef(
            "build_first_report",
            "Build the first report",
            "signal",
            signal_name="First Report Generated",
            is_first_value=True,
            description="Milestone and first value: First Report Generated.",
            expected_within=timedelta(days=6),
        ),
        StepDef(
            "onboarding_check_in",
            "Onboarding check-in",
            "human",
            queue=SPECIALISTS,
            description="A specialist reviews usage and offers help.",
            expected_within=timedelta(days=9),
        ),
        StepDef(
            "invite_teammates",
            "Invite teammates",
            "signal",
            depends_on=("build_first_report",),
            signal_name="Teammate Invited",
            required=False,
            description="Optional: cancelled if the case completes first.",
        ),
    ],
)

# Version 2 of Self-serve adds one step; cases opened before it was published keep v1.
SELF_SERVE_V2_CHANGELOG = "Add an automated activation nudge before the first report."
SELF_SERVE_V2_STEP = StepDef(
    "send_activation_nudge",
    "Send activation nudge",
    "automated",
    depends_on=("connect_data_source",),
    handler="send_activation_nudge",
    required=False,
    description="In-app and email tips on building the first report.",
)

ENTERPRISE = PlaybookDef(
    "enterprise",
    "Enterprise",
    "Sales-led onboarding with a kickoff, parallel technical tracks, training and handover.",
    [
        StepDef(
            "provision_workspace",
            "Provision workspace",
            "automated",
            handler="provision_workspace",
            is_milestone=True,
            description="Milestone: Account Provisioned.",
            expected_within=timedelta(days=1),
        ),
        StepDef(
            "create_crm_record",
            "Create CRM record",
            "automated",
            depends_on=("provision_workspace",),
            handler="create_crm_record",
        ),
        StepDef(
            "send_welcome_email",
            "Send welcome email",
            "automated",
            depends_on=("provision_workspace",),
            handler="send_welcome_email",
        ),
        StepDef(
            "kickoff_call",
            "Kickoff call",
            "human",
            depends_on=("provision_workspace",),
            queue=SPECIALISTS,
            is_milestone=True,
            description="Milestone: Kickoff Held.",
            expected_within=timedelta(days=3),
        ),
        StepDef(
            "technical_setup",
            "Technical set-up",
            "human",
            depends_on=("kickoff_call",),
            queue=TECHNICAL,
            expected_within=timedelta(days=7),
        ),
        StepDef(
            "sso_configuration",
            "Configure SSO",
            "signal",
            depends_on=("kickoff_call",),
            signal_name="SSO Configured",
            expected_within=timedelta(days=10),
        ),
        StepDef(
            "connect_data_source",
            "Connect a data source",
            "signal",
            depends_on=("technical_setup", "sso_configuration"),
            signal_name="Data Source Connected",
            is_milestone=True,
            description="Milestone: Data Source Connected.",
            expected_within=timedelta(days=14),
        ),
        StepDef(
            "build_first_report",
            "Build the first report",
            "signal",
            signal_name="First Report Generated",
            is_first_value=True,
            description="Milestone and first value: First Report Generated.",
            expected_within=timedelta(days=19),
        ),
        StepDef(
            "training_session",
            "Training session",
            "human",
            queue=SPECIALISTS,
            expected_within=timedelta(days=24),
        ),
        StepDef(
            "handover_to_csm",
            "Hand over to customer success",
            "human",
            depends_on=("training_session", "create_crm_record"),
            queue=SPECIALISTS,
            is_milestone=True,
            description="Milestone: Handed Over.",
            expected_within=timedelta(days=28),
        ),
    ],
)


@dataclass
class DemoPlaybooks:
    self_serve: Playbook
    enterprise: Playbook
    self_serve_v1: PlaybookVersion
    self_serve_v2: PlaybookVersion | None
    enterprise_v1: PlaybookVersion
    created: int = 0

    def version_for(self, plan: str, opened_at: datetime) -> tuple[Playbook, PlaybookVersion]:
        """Enterprise plans get Enterprise; others the Self-serve version live at the time."""
        if plan == "enterprise":
            return self.enterprise, self.enterprise_v1
        v2 = self.self_serve_v2
        if v2 is not None and v2.published_at is not None and opened_at >= v2.published_at:
            return self.self_serve, v2
        return self.self_serve, self.self_serve_v1


def _add_step(version: PlaybookVersion, step: StepDef, queues: dict[str, Queue]) -> None:
    services.playbook_version_add_step(
        version=version,
        actor=SEED_ACTOR,
        key=step.key,
        name=step.name,
        kind=step.kind,
        depends_on=list(step.depends_on) if step.depends_on is not None else None,
        queue=queues[step.queue] if step.queue else None,
        handler=step.handler,
        signal_name=step.signal_name,
        is_milestone=step.is_milestone,
        is_first_value=step.is_first_value,
        required=step.required,
        max_attempts=step.max_attempts,
        expected_within=step.expected_within,
        sla_policy=current_policy(SLA_BY_STEP.get(step.key)),
        reminder_interval=REMINDERS.get(step.key),
        description=step.description,
    )


def _build(definition: PlaybookDef, queues: dict[str, Queue], at: datetime) -> Playbook:
    with clock.travel_to(at):
        playbook = services.playbook_create(
            key=definition.key,
            name=definition.name,
            description=definition.description,
            actor=SEED_ACTOR,
        )
    version = playbook.versions.get(number=1)
    version.case_sla_policy = current_policy(CASE_SLA.get(definition.key))
    version.save(update_fields=["case_sla_policy"])  # configuration of the draft, not state
    with clock.travel_to(at + timedelta(minutes=20)):
        for step in definition.steps:
            _add_step(version, step, queues)
    with clock.travel_to(at + timedelta(hours=1)):
        services.playbook_version_publish(version=version, actor=SEED_ACTOR)
    return playbook


def _published(playbook: Playbook, number: int) -> PlaybookVersion | None:
    return playbook.versions.filter(number=number, state=PlaybookVersion.State.PUBLISHED).first()


def ensure_playbooks(
    queues: dict[str, Queue], *, start: datetime, v2_at: datetime
) -> DemoPlaybooks:
    """Both playbooks, published `start`; Self-serve v2 drafted and published `v2_at`."""
    created = 0
    with transaction.atomic():
        self_serve = Playbook.objects.filter(key=SELF_SERVE.key).first()
        if self_serve is None:
            self_serve = _build(SELF_SERVE, queues, start)
            created += 1
            with clock.travel_to(v2_at - timedelta(hours=2)):
                draft = services.playbook_draft_new_version(
                    playbook=self_serve, actor=SEED_ACTOR, changelog=SELF_SERVE_V2_CHANGELOG
                )
                _add_step(draft, SELF_SERVE_V2_STEP, queues)
            with clock.travel_to(v2_at):
                services.playbook_version_publish(version=draft, actor=SEED_ACTOR)
        enterprise = Playbook.objects.filter(key=ENTERPRISE.key).first()
        if enterprise is None:
            enterprise = _build(ENTERPRISE, queues, start + timedelta(hours=3))
            created += 1
    ss_v1 = _published(self_serve, 1) or self_serve.latest_published()
    ent_v1 = _published(enterprise, 1) or enterprise.latest_published()
    if ss_v1 is None or ent_v1 is None:
        raise RuntimeError("The demo playbooks exist but have no published version.")
    return DemoPlaybooks(
        self_serve=self_serve,
        enterprise=enterprise,
        self_serve_v1=ss_v1,
        self_serve_v2=_published(self_serve, 2),
        enterprise_v1=ent_v1,
        created=created,
    )


# --- accounts --------------------------------------------------------------------------------

_NAME_FIRST = [
    "Acme", "Apex", "Aurora", "Beacon", "Birch", "Blue Harbor", "Bright", "Cedar", "Cobalt",
    "Copper", "Crescent", "Delta", "Ember", "Evergreen", "Falcon", "Fjord", "Granite", "Harbor",
    "Helix", "Horizon", "Indigo", "Ironwood", "Juniper", "Keystone", "Lumen", "Maple", "Meridian",
    "Nimbus", "Northwind", "Nova", "Oakridge", "Onyx", "Orbit", "Pacific", "Pinnacle", "Quartz",
    "Redwood", "Riverstone", "Saffron", "Sierra", "Silverline", "Summit", "Tandem", "Terra",
    "Tidewater", "Trident", "Vantage", "Vertex", "Willow", "Zenith",
]  # fmt: skip
_NAME_SECOND = [
    ("Analytics", "technology"), ("Logistics", "logistics"), ("Health", "healthcare"),
    ("Foods", "retail"), ("Robotics", "manufacturing"), ("Capital", "financial services"),
    ("Software", "technology"), ("Media", "media"), ("Energy", "energy"),
    ("Retail", "retail"), ("Biotech", "healthcare"), ("Labs", "technology"),
    ("Freight", "logistics"), ("Insurance", "financial services"), ("Studios", "media"),
    ("Manufacturing", "manufacturing"), ("Learning", "education"), ("Travel", "travel"),
    ("Payments", "financial services"), ("Security", "technology"),
]  # fmt: skip
_NAME_SUFFIX = ["", "", "", "Inc.", "Ltd", "GmbH", "Group", "Co.", "Systems", "Partners"]

_PLANS = [("free", 28), ("starter", 30), ("growth", 27), ("enterprise", 15)]
_SEGMENTS = {
    "free": [("smb", 90), ("mid-market", 10)],
    "starter": [("smb", 75), ("mid-market", 25)],
    "growth": [("smb", 30), ("mid-market", 60), ("enterprise", 10)],
    "enterprise": [("mid-market", 25), ("enterprise", 75)],
}
_CHANNELS = {
    "free": [("self-serve", 80), ("referral", 15), ("partner", 5)],
    "starter": [("self-serve", 60), ("referral", 20), ("partner", 10), ("sales", 10)],
    "growth": [("self-serve", 25), ("sales", 40), ("partner", 20), ("referral", 15)],
    "enterprise": [("sales", 70), ("partner", 25), ("referral", 5)],
}
_REGIONS = [("na", 40), ("emea", 32), ("apac", 18), ("latam", 10)]
_EMPLOYEES = {"smb": (3, 80), "mid-market": (80, 1500), "enterprise": (1500, 40000)}


def _pick(rng: random.Random, weighted: list[tuple[str, int]]) -> str:
    values, weights = zip(*weighted, strict=True)
    return rng.choices(values, weights=weights)[0]


@dataclass(frozen=True)
class AccountSpec:
    external_id: str
    name: str
    plan: str
    segment: str
    region: str
    channel: str
    properties: dict[str, Any]

    def attrs(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "plan": self.plan,
            "segment": self.segment,
            "region": self.region,
            "channel": self.channel,
            "properties": self.properties,
        }


def generate_accounts(count: int, seed: int) -> list[AccountSpec]:
    """`count` accounts; the first N are the same whatever the count (one RNG stream)."""
    rng = random.Random(seed)
    used: set[str] = set()
    specs = []
    for n in range(1, count + 1):
        while True:
            second, industry = rng.choice(_NAME_SECOND)
            suffix = rng.choice(_NAME_SUFFIX)
            name = " ".join(part for part in (rng.choice(_NAME_FIRST), second, suffix) if part)
            if name not in used:
                used.add(name)
                break
        plan = _pick(rng, _PLANS)
        segment = _pick(rng, _SEGMENTS[plan])
        low, high = _EMPLOYEES[segment]
        specs.append(
            AccountSpec(
                external_id=f"{ACCOUNT_PREFIX}{n:04d}",
                name=name,
                plan=plan,
                segment=segment,
                region=_pick(rng, _REGIONS),
                channel=_pick(rng, _CHANNELS[plan]),
                properties={
                    "industry": industry,
                    "employees": rng.randint(low, high),
                    "demo": True,
                },
            )
        )
    return specs

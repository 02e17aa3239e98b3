"""Cases and tasks: the two state machines agents and automation move forward.

Transitions here only change memory. The services in `onboarding.services` are the
only callers: they lock, check `permission=`, call the method, save and record the
event named in `custom["event"]`.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from onboarding import clock, rules
from onboarding.models.playbooks import StepKind


class CaseState(models.TextChoices):
    ACTIVE = "active", "Active"
    ON_HOLD = "on_hold", "On hold"
    COMPLETED = "completed", "Completed"
    CANCELLED = "cancelled", "Cancelled"


OPEN_CASE_STATES = (CaseState.ACTIVE, CaseState.ON_HOLD)


class Case(ConcurrentTransitionMixin, models.Model):
    """One onboarding of one account on one pinned playbook version."""

    State = CaseState

    account = models.ForeignKey(
        "onboarding.Account", on_delete=models.PROTECT, related_name="cases"
    )
    playbook = models.ForeignKey(
        "onboarding.Playbook", on_delete=models.PROTECT, related_name="cases"
    )
    playbook_version = models.ForeignKey(
        "onboarding.PlaybookVersion", on_delete=models.PROTECT, related_name="cases"
    )
    state = FSMField(default=CaseState.ACTIVE, choices=CaseState.choices, protected=True)
    opened_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField()
    hold_reason = models.TextField(blank=True)
    cancel_reason = models.TextField(blank=True)
    reopen_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-opened_at"]
        permissions = [
            ("work_tasks", "Can claim and work onboarding tasks in own queues"),
            ("manage_onboarding", "Can manage every onboarding case, queue and playbook"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "playbook"],
                condition=models.Q(state__in=["active", "on_hold"]),
                name="one_open_case_per_account_playbook",
            )
        ]
        indexes = [models.Index(fields=["state", "opened_at"], name="case_state_opened")]

    def __str__(self) -> str:
        return f"Case #{self.pk} · {self.account.name if self.account_id else '?'}"

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_CASE_STATES

    def _no_required_task_open(self) -> bool:
        return not self.tasks.filter(required=True).exclude(state__in=FINAL_TASK_STATES).exists()

    @transition(
        field=state,
        source=CaseState.ACTIVE,
        target=CaseState.ON_HOLD,
        permission=rules.allow(rules.manager, rules.integration),
        custom={"event": "Case Put On Hold"},
    )
    def put_on_hold(self) -> None:
        pass

    @transition(
        field=state,
        source=CaseState.ON_HOLD,
        target=CaseState.ACTIVE,
        permission=rules.allow(rules.manager, rules.integration),
        custom={"event": "Case Resumed"},
    )
    def resume(self) -> None:
        self.hold_reason = ""

    @transition(
        field=state,
        source=CaseState.ACTIVE,
        target=CaseState.COMPLETED,
        conditions=[_no_required_task_open],
        permission=rules.allow(rules.system),
        custom={"event": "Case Completed"},
    )
    def complete(self) -> None:
        pass

    @transition(
        field=state,
        source=[CaseState.ACTIVE, CaseState.ON_HOLD],
        target=CaseState.CANCELLED,
        permission=rules.allow(rules.manager, rules.integration),
        custom={"event": "Case Cancelled"},
    )
    def cancel(self) -> None:
        pass

    @transition(
        field=state,
        source=CaseState.COMPLETED,
        target=CaseState.ACTIVE,
        permission=rules.allow(rules.manager),
        custom={"event": "Case Reopened"},
    )
    def reopen(self) -> None:
        self.completed_at = None
        self.reopen_count += 1


class TaskState(models.TextChoices):
    PENDING = "pending", "Pending"
    SCHEDULED = "scheduled", "Scheduled"
    RUNNING = "running", "Running"
    QUEUED = "queued", "Queued"
    IN_PROGRESS = "in_progress", "In progress"
    WAITING = "waiting", "Waiting"
    DONE = "done", "Done"
    SKIPPED = "skipped", "Skipped"
    CANCELLED = "cancelled", "Cancelled"


FINAL_TASK_STATES = (TaskState.DONE, TaskState.SKIPPED, TaskState.CANCELLED)
# A dependency is satisfied when its task is done or deliberately skipped.
SATISFIED_TASK_STATES = (TaskState.DONE, TaskState.SKIPPED)
NON_FINAL_TASK_STATES = tuple(s for s in TaskState if s not in FINAL_TASK_STATES)


def _case_is_active(task: Task) -> bool:
    return task.case.state == CaseState.ACTIVE


def _is_human(task: Task) -> bool:
    return task.kind == StepKind.HUMAN


def _is_signal(task: Task) -> bool:
    return task.kind == StepKind.SIGNAL


def _is_automated(task: Task) -> bool:
    return task.kind == StepKind.AUTOMATED


def _is_due(task: Task) -> bool:
    return task.not_before is None or task.not_before <= clock.now()


def _attempts_left(task: Task) -> bool:
    return task.attempts < task.max_attempts


class Task(ConcurrentTransitionMixin, models.Model):
    """One step of one case. Also the fact row reports read: one row per step per case."""

    State = TaskState

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="tasks")
    step = models.ForeignKey("onboarding.Step", on_delete=models.PROTECT, related_name="tasks")
    # Copied from the step so queues and reports filter without a join.
    step_key = models.SlugField(max_length=60)
    kind = models.CharField(max_length=20, choices=StepKind.choices)
    required = models.BooleanField(default=True)
    max_attempts = models.PositiveSmallIntegerField(default=3)

    state = FSMField(default=TaskState.PENDING, choices=TaskState.choices, protected=True)
    queue = models.ForeignKey(
        "onboarding.Queue", on_delete=models.PROTECT, null=True, blank=True, related_name="tasks"
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="onboarding_tasks",
    )
    priority = models.SmallIntegerField(default=0, help_text="Higher is more urgent.")
    attempts = models.PositiveSmallIntegerField(default=0)
    handoff_count = models.PositiveSmallIntegerField(default=0)
    escalated = models.BooleanField(default=False)
    last_error = models.TextField(blank=True)
    skip_reason = models.TextField(blank=True)
    # Automation bookkeeping: the database, not the broker, says what is due.
    not_before = models.DateTimeField(
        null=True, blank=True, help_text="A scheduled step may not start before this."
    )
    lease_expires_at = models.DateTimeField(
        null=True, blank=True, help_text="A running attempt not finished by then is lost."
    )
    dispatched_at = models.DateTimeField(
        null=True, blank=True, help_text="Last time a worker was asked to run it."
    )
    sla_due_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the step's running SLA clock breaches (empty: no clock, or paused).",
    )
    sla_policy = models.ForeignKey(
        "onboarding.SlaPolicy",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="Fixed when the step becomes live: the step's policy or its queue's default.",
    )

    created_at = models.DateTimeField()
    activated_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["case", "step__position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["case", "step"], name="one_task_per_step_per_case")
        ]
        indexes = [
            # Claim-next reads the head of this index for one queue.
            # Claim-next reads the head of this index for one queue: SLA due soonest,
            # then priority, then age.
            models.Index(
                fields=["queue", "sla_due_at", "-priority", "activated_at"],
                condition=models.Q(state="queued"),
                name="task_claim_order",
            ),
            models.Index(
                fields=["assignee", "state"],
                condition=models.Q(assignee__isnull=False),
                name="task_assignee_state",
            ),
            models.Index(fields=["step_key", "state"], name="task_step_state"),
            # The sweep reads only the due rows of these two: cost follows what is due.
            models.Index(
                fields=["not_before"],
                condition=models.Q(state="scheduled"),
                name="task_scheduled_due",
            ),
            models.Index(
                fields=["lease_expires_at"],
                condition=models.Q(state="running"),
                name="task_lease_expiry",
            ),
            models.Index(
                fields=["activated_at"],
                condition=models.Q(state="waiting", kind="signal"),
                name="task_awaiting_signal",
            ),
            models.Index(
                fields=["updated_at"],
                condition=models.Q(state="in_progress"),
                name="task_claimed_since",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.step_key} · case #{self.case_id}"

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_TASK_STATES

    # --- activation (pending → first live state), by the workflow engine ---------

    @transition(
        field=state,
        source=TaskState.PENDING,
        target=TaskState.SCHEDULED,
        conditions=[_is_automated],
        permission=rules.allow(rules.system),
        custom={"event": "Step Activated"},
    )
    def schedule(self) -> None:
        pass

    @transition(
        field=state,
        source=TaskState.PENDING,
        target=TaskState.QUEUED,
        conditions=[_is_human],
        permission=rules.allow(rules.system),
        custom={"event": "Step Activated"},
    )
    def enqueue(self) -> None:
        pass

    @transition(
        field=state,
        source=TaskState.PENDING,
        target=TaskState.WAITING,
        conditions=[_is_signal],
        permission=rules.allow(rules.system),
        custom={"event": "Step Activated"},
    )
    def await_signal(self) -> None:
        pass

    # --- automation ----------------------------------------------------------------

    @transition(
        field=state,
        source=TaskState.SCHEDULED,
        target=TaskState.RUNNING,
        conditions=[_case_is_active, _is_due],
        permission=rules.allow(rules.system),
        custom={"event": "Step Started"},
    )
    def start(self) -> None:
        self.attempts += 1

    @transition(
        field=state,
        source=TaskState.RUNNING,
        target=TaskState.DONE,
        permission=rules.allow(rules.system),
        custom={"event": "Step Completed"},
    )
    def succeed(self) -> None:
        self.last_error = ""
        self.lease_expires_at = None

    @transition(
        field=state,
        source=TaskState.RUNNING,
        target=TaskState.SCHEDULED,
        conditions=[_attempts_left],
        permission=rules.allow(rules.system),
        custom={"event": "Step Failed"},
    )
    def fail(self) -> None:
        self.lease_expires_at = None

    @transition(
        field=state,
        source=TaskState.RUNNING,
        target=TaskState.SCHEDULED,
        conditions=[_attempts_left],
        permission=rules.allow(rules.system),
        custom={"event": "Step Lease Expired"},
    )
    def expire_lease(self) -> None:
        self.lease_expires_at = None

    # --- human work ----------------------------------------------------------------

    @transition(
        field=state,
        source=TaskState.QUEUED,
        target=TaskState.IN_PROGRESS,
        conditions=[_case_is_active],
        permission=rules.allow(rules.queue_member_unreserved, rules.manager),
        custom={"event": "Step Claimed"},
    )
    def claim(self) -> None:
        pass

    @transition(
        field=state,
        source=TaskState.IN_PROGRESS,
        target=TaskState.QUEUED,
        permission=rules.allow(rules.assignee, rules.manager, rules.system),
        custom={"event": "Step Released"},
    )
    def release(self) -> None:
        self.assignee = None

    @transition(
        field=state,
        source=[TaskState.QUEUED, TaskState.IN_PROGRESS],
        target=TaskState.QUEUED,
        permission=rules.allow(rules.assignee, rules.manager),
        custom={"event": "Step Handed Off"},
    )
    def hand_off(self) -> None:
        self.handoff_count += 1

    @transition(
        field=state,
        source=[TaskState.QUEUED, TaskState.IN_PROGRESS],
        target=TaskState.QUEUED,
        permission=rules.allow(rules.manager, rules.system),
        custom={"event": "Step Assigned"},
    )
    def assign(self) -> None:
        """Reserve the task for one agent (set `assignee` alongside); they claim it next."""

    @transition(
        field=state,
        source=[TaskState.RUNNING, TaskState.QUEUED, TaskState.IN_PROGRESS, TaskState.WAITING],
        target=TaskState.QUEUED,
        permission=rules.allow(rules.assignee, rules.manager, rules.system),
        custom={"event": "Step Escalated"},
    )
    def escalate(self) -> None:
        self.escalated = True
        self.assignee = None
        self.lease_expires_at = None

    @transition(
        field=state,
        source=TaskState.IN_PROGRESS,
        target=TaskState.WAITING,
        conditions=[_is_human, _case_is_active],
        permission=rules.allow(rules.assignee, rules.manager),
        custom={"event": "Step Awaiting Customer"},
    )
    def wait_on_customer(self) -> None:
        pass

    @transition(
        field=state,
        source=TaskState.WAITING,
        target=TaskState.IN_PROGRESS,
        conditions=[_is_human, _case_is_active],
        permission=rules.allow(rules.assignee, rules.manager, rules.integration, rules.system),
        custom={"event": "Step Resumed"},
    )
    def resume(self) -> None:
        pass

    @transition(
        field=state,
        source=TaskState.IN_PROGRESS,
        target=TaskState.DONE,
        conditions=[_case_is_active],
        permission=rules.allow(rules.assignee, rules.manager),
        custom={"event": "Step Completed"},
    )
    def complete(self) -> None:
        pass

    @transition(
        field=state,
        source=TaskState.WAITING,
        target=TaskState.DONE,
        conditions=[_is_signal],
        permission=rules.allow(rules.system, rules.integration, rules.manager),
        custom={"event": "Step Completed"},
    )
    def complete_by_signal(self) -> None:
        pass

    # --- ending and reopening --------------------------------------------------------

    @transition(
        field=state,
        source=NON_FINAL_TASK_STATES,
        target=TaskState.SKIPPED,
        permission=rules.allow(rules.manager, rules.system),
        custom={"event": "Step Skipped"},
    )
    def skip(self) -> None:
        self.assignee = None

    @transition(
        field=state,
        source=NON_FINAL_TASK_STATES,
        target=TaskState.CANCELLED,
        permission=rules.allow(rules.system),
        custom={"event": "Step Cancelled"},
    )
    def cancel(self) -> None:
        pass

    @transition(
        field=state,
        source=[TaskState.DONE, TaskState.SKIPPED],
        target=TaskState.PENDING,
        permission=rules.allow(rules.manager),
        custom={"event": "Step Reopened"},
    )
    def reopen(self) -> None:
        self.completed_at = None
        self.escalated = False
        self.skip_reason = ""
        self.attempts = 0


class ContextEntry(models.Model):
    """The case's log for humans; the case page merges it with the case's events."""

    class Kind(models.TextChoices):
        NOTE = "note", "Note"
        HANDOFF = "handoff", "Handoff note"
        AUTOMATION = "automation", "Automation result"
        ERROR = "error", "Automation error"
        SIGNAL = "signal", "Signal received"
        SYSTEM = "system", "System"

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="context_entries")
    task = models.ForeignKey(
        Task, on_delete=models.CASCADE, null=True, blank=True, related_name="context_entries"
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    body = models.TextField()
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    actor_type = models.CharField(max_length=10)
    actor_id = models.CharField(max_length=64)
    properties = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "context entries"
        indexes = [models.Index(fields=["case", "-created_at"], name="context_case_created")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} on case #{self.case_id}"

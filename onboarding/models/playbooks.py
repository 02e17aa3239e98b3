"""Playbooks: versioned onboarding plans. A published version is frozen."""

from __future__ import annotations

from datetime import timedelta

from django.db import models
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from onboarding import rules
from onboarding.errors import Conflict


class Playbook(models.Model):
    key = models.SlugField(max_length=60, unique=True)
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def latest_published(self) -> PlaybookVersion | None:
        return (
            self.versions.filter(state=PlaybookVersion.State.PUBLISHED).order_by("-number").first()
        )


class PlaybookVersion(ConcurrentTransitionMixin, models.Model):
    """One edition of a playbook. Cases pin the version they started on."""

    class State(models.TextChoices):
        DRAFT = "draft", "Draft"
        PUBLISHED = "published", "Published"
        RETIRED = "retired", "Retired"

    playbook = models.ForeignKey(Playbook, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    state = FSMField(default=State.DRAFT, choices=State.choices, protected=True)
    changelog = models.TextField(blank=True)
    case_sla_policy = models.ForeignKey(
        "onboarding.SlaPolicy",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="Time to live: a clock on the whole case.",
    )
    created_at = models.DateTimeField()
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["playbook", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["playbook", "number"], name="unique_version_number"),
            models.UniqueConstraint(
                fields=["playbook"],
                condition=models.Q(state="draft"),
                name="one_draft_per_playbook",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.playbook.key} v{self.number}"

    @property
    def is_frozen(self) -> bool:
        return self.state != self.State.DRAFT

    @transition(
        field=state,
        source=State.DRAFT,
        target=State.PUBLISHED,
        permission=rules.allow(rules.manager, rules.system),
        custom={"event": "Playbook Version Published"},
    )
    def publish(self) -> None:
        pass

    @transition(
        field=state,
        source=State.PUBLISHED,
        target=State.RETIRED,
        permission=rules.allow(rules.manager, rules.system),
        custom={"event": "Playbook Version Retired"},
    )
    def retire(self) -> None:
        pass


class StepKind(models.TextChoices):
    AUTOMATED = "automated", "Automated"
    HUMAN = "human", "Human"
    SIGNAL = "signal", "Signal"


class Step(models.Model):
    """One step definition of a playbook version; tasks are its instances."""

    version = models.ForeignKey(PlaybookVersion, on_delete=models.CASCADE, related_name="steps")
    key = models.SlugField(max_length=60, help_text="Stable across versions; reports group by it.")
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=20, choices=StepKind.choices)
    position = models.PositiveSmallIntegerField(default=0)
    depends_on = models.ManyToManyField(
        "self", symmetrical=False, blank=True, related_name="dependents"
    )
    queue = models.ForeignKey(
        "onboarding.Queue",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="steps",
        help_text="Human steps wait here.",
    )
    handler = models.CharField(
        max_length=80, blank=True, help_text="Registered automation handler (automated steps)."
    )
    signal_name = models.CharField(
        max_length=80, blank=True, help_text="Product signal that completes it (signal steps)."
    )
    is_milestone = models.BooleanField(default=False)
    is_first_value = models.BooleanField(
        default=False, help_text="Reaching this milestone is the account's first value."
    )
    required = models.BooleanField(
        default=True, help_text="The case completes when every required step is final."
    )
    max_attempts = models.PositiveSmallIntegerField(default=3)
    retry_backoff_seconds = models.PositiveIntegerField(
        default=30, help_text="First retry delay; doubles per attempt, with jitter."
    )
    retry_backoff_max_seconds = models.PositiveIntegerField(default=3600)
    lease_seconds = models.PositiveIntegerField(
        default=300,
        help_text="How long a worker may run the handler before the attempt counts as lost.",
    )
    sla_policy = models.ForeignKey(
        "onboarding.SlaPolicy",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="Clock on this step; empty: the queue's default policy, if any.",
    )
    reminder_interval = models.DurationField(
        null=True,
        blank=True,
        help_text="Signal steps: nudge the customer this often while waiting (empty: never).",
    )
    max_reminders = models.PositiveSmallIntegerField(default=3)
    expected_within = models.DurationField(
        null=True,
        blank=True,
        help_text=(
            "Expected done (or skipped) this long after the case opens, wall-clock; "
            "the account health report measures pace against it (empty: no expectation)."
        ),
    )

    class Meta:
        ordering = ["version", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["version", "key"], name="unique_step_key_per_version"),
            models.CheckConstraint(
                condition=~models.Q(kind="human") | models.Q(queue__isnull=False),
                name="human_step_has_queue",
            ),
            models.CheckConstraint(
                condition=~models.Q(kind="automated") | ~models.Q(handler=""),
                name="automated_step_has_handler",
            ),
            models.CheckConstraint(
                condition=~models.Q(kind="signal") | ~models.Q(signal_name=""),
                name="signal_step_has_signal",
            ),
            models.CheckConstraint(condition=models.Q(max_attempts__gte=1), name="attempts_gte_1"),
            models.CheckConstraint(
                condition=models.Q(expected_within__isnull=True)
                | models.Q(expected_within__gt=timedelta(0)),
                name="expected_within_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.key})"

    def save(self, *args: object, **kwargs: object) -> None:
        self._refuse_if_frozen()
        super().save(*args, **kwargs)

    def delete(self, *args: object, **kwargs: object) -> tuple[int, dict[str, int]]:
        self._refuse_if_frozen()
        return super().delete(*args, **kwargs)

    def _refuse_if_frozen(self) -> None:
        # Running cases point at these rows: editing them would rewrite history.
        state = PlaybookVersion.objects.filter(pk=self.version_id).values_list("state", flat=True)
        if state and state[0] != PlaybookVersion.State.DRAFT:
            raise Conflict(
                "This playbook version is published and frozen; create a new draft to edit it.",
                version=self.version_id,
            )

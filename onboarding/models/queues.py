from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models


class Assignment(models.TextChoices):
    MANUAL = "manual", "Manual (agents claim)"
    ROUND_ROBIN = "round_robin", "Round robin"
    LEAST_LOADED = "least_loaded", "Least loaded"


class Queue(models.Model):
    """Where human work waits to be claimed (or is assigned to its members)."""

    Assignment = Assignment

    key = models.SlugField(max_length=60, unique=True)
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="onboarding_queues"
    )
    member_groups = models.ManyToManyField(Group, blank=True, related_name="onboarding_queues")
    is_exceptions = models.BooleanField(
        default=False,
        help_text="Receives automated steps whose attempts are exhausted.",
    )
    claim_timeout_minutes = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="A claimed task idle this long (business minutes) goes back to the queue.",
    )
    calendar = models.ForeignKey(
        "onboarding.BusinessCalendar",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="Business hours for the claim timeout (empty: around the clock).",
    )
    assignment = models.CharField(
        max_length=20,
        choices=Assignment.choices,
        default=Assignment.MANUAL,
        help_text="Manual: members claim. Otherwise each task arriving unassigned is "
        "reserved for one member: the next in turn, or the one with fewest open tasks.",
    )
    # Round-robin's place in the rotation; moved only by automatic assignment.
    last_assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        editable=False,
        related_name="+",
    )
    default_sla_policy = models.ForeignKey(
        "onboarding.SlaPolicy",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="Clock on steps waiting here that have no policy of their own.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_exceptions"],
                condition=models.Q(is_exceptions=True),
                name="one_exceptions_queue",
            )
        ]

    def __str__(self) -> str:
        return self.name

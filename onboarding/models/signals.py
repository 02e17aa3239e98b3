"""Product signals from integrations, and reminders sent while waiting for them."""

from __future__ import annotations

from django.db import models


class Signal(models.Model):
    """A product event ("Data Source Connected") reported for an account.

    `signal_id` is the producer's id: the same signal sent twice is stored once and
    applied once.
    """

    signal_id = models.CharField(max_length=128, unique=True)
    name = models.CharField(max_length=80)
    account = models.ForeignKey(
        "onboarding.Account", on_delete=models.CASCADE, related_name="signals"
    )
    properties = models.JSONField(default=dict, blank=True)
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField()
    completed_tasks = models.PositiveIntegerField(
        default=0, help_text="Waiting steps this signal completed."
    )

    class Meta:
        ordering = ["-received_at"]
        indexes = [models.Index(fields=["account", "name"], name="signal_account_name")]

    def __str__(self) -> str:
        return f"{self.name} · {self.account_id}"


class Reminder(models.Model):
    """One nudge to the customer about one waiting step in one window.

    The unique (task, kind, window) row is the de-duplication: a second attempt to
    send the same reminder fails to insert and sends nothing.
    """

    task = models.ForeignKey("onboarding.Task", on_delete=models.CASCADE, related_name="reminders")
    kind = models.CharField(max_length=40, default="signal_nudge")
    window = models.PositiveIntegerField(help_text="1 for the first reminder, 2 for the next…")
    sent_at = models.DateTimeField()
    channel = models.CharField(max_length=20, default="email")

    class Meta:
        ordering = ["-sent_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["task", "kind", "window"], name="one_reminder_per_task_window"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} #{self.window} for task {self.task_id}"

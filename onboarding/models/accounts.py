from __future__ import annotations

from django.db import models

SEGMENTATION_FIELDS = ("plan", "segment", "region", "channel")


class Account(models.Model):
    """The customer organisation being onboarded."""

    external_id = models.CharField(
        max_length=128, unique=True, help_text="Id in the CRM or product; the upsert key."
    )
    name = models.CharField(max_length=200)
    plan = models.CharField(max_length=40, blank=True, db_index=True)
    segment = models.CharField(max_length=40, blank=True, db_index=True)
    region = models.CharField(max_length=40, blank=True, db_index=True)
    channel = models.CharField(
        max_length=40, blank=True, db_index=True, help_text="Acquisition channel."
    )
    properties = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.external_id})"

    def segmentation(self) -> dict[str, str]:
        """The snapshot copied onto every event about this account."""
        return {field: getattr(self, field) for field in SEGMENTATION_FIELDS}

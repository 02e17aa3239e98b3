"""Output representations shared by several endpoints, and the input fields they reuse.

Input serializers live beside their views; they only shape input for one service call.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from api import selectors
from onboarding.models import Account, Case, ContextEntry, Queue, Signal, SlaTimer, Task

EXTERNAL_ID_MAX = Account._meta.get_field("external_id").max_length


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


@extend_schema_field({"type": "object", "additionalProperties": True})
class JsonObjectField(serializers.JSONField):
    """A JSON object (free-form properties). NUL characters are refused: PostgreSQL's
    jsonb cannot store them."""

    def to_internal_value(self, data: Any) -> Any:
        value = super().to_internal_value(data)
        if not isinstance(value, dict):
            raise serializers.ValidationError("Expected a JSON object.")
        if _has_nul(value):
            raise serializers.ValidationError("NUL characters are not allowed.")
        return value


class AwareDateTimeField(serializers.DateTimeField):
    """A timestamp with a time zone; out-of-range values are input errors, not crashes."""

    def to_internal_value(self, value: Any) -> Any:
        parsed = super().to_internal_value(value)
        try:
            parsed.astimezone(UTC)
        except (OverflowError, ValueError):
            raise serializers.ValidationError("Timestamp out of range.") from None
        return parsed


# --- accounts -----------------------------------------------------------------------


class AccountSerializer(serializers.ModelSerializer):
    properties = serializers.DictField(read_only=True)

    class Meta:
        model = Account
        fields = (
            "external_id",
            "name",
            "plan",
            "segment",
            "region",
            "channel",
            "properties",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields


class AccountRefSerializer(serializers.ModelSerializer):
    class Meta:
        model = Account
        fields = ("external_id", "name", "plan", "segment", "region", "channel")
        read_only_fields = fields


# --- queues, people, timers ---------------------------------------------------------


class QueueRefSerializer(serializers.ModelSerializer):
    class Meta:
        model = Queue
        fields = ("id", "key", "name")
        read_only_fields = fields


class UserRefSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    username = serializers.CharField(read_only=True)


class SlaSerializer(serializers.ModelSerializer):
    policy = serializers.CharField(source="policy.key", read_only=True)
    state = serializers.ChoiceField(choices=SlaTimer.State.choices, read_only=True)

    class Meta:
        model = SlaTimer
        fields = ("state", "policy", "started_at", "warn_at", "due_at", "breached_at", "stopped_at")
        read_only_fields = fields


# --- tasks and cases ------------------------------------------------------------------


class TaskSerializer(serializers.ModelSerializer):
    """A step of a case: state, where it waits, who has it, its SLA clock."""

    case_id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(source="step.name", read_only=True)
    state = serializers.ChoiceField(choices=Task.State.choices, read_only=True)
    queue = QueueRefSerializer(read_only=True, allow_null=True)
    assignee = UserRefSerializer(read_only=True, allow_null=True)
    sla = serializers.SerializerMethodField()

    class Meta:
        model = Task
        fields = (
            "id",
            "case_id",
            "step_key",
            "name",
            "kind",
            "state",
            "required",
            "queue",
            "assignee",
            "priority",
            "escalated",
            "handoff_count",
            "attempts",
            "max_attempts",
            "last_error",
            "skip_reason",
            "sla",
            "activated_at",
            "started_at",
            "completed_at",
            "updated_at",
        )
        read_only_fields = fields

    @extend_schema_field(SlaSerializer(allow_null=True))
    def get_sla(self, task: Task) -> dict[str, Any] | None:
        timer = getattr(task, "api_timer", None)
        return SlaSerializer(timer).data if timer is not None else None


class ContextEntrySerializer(serializers.ModelSerializer):
    task_id = serializers.IntegerField(read_only=True, allow_null=True)
    author = serializers.CharField(source="author.username", read_only=True, allow_null=True)
    properties = serializers.DictField(read_only=True)

    class Meta:
        model = ContextEntry
        fields = (
            "id",
            "kind",
            "body",
            "task_id",
            "author",
            "actor_type",
            "actor_id",
            "properties",
            "created_at",
        )
        read_only_fields = fields


class PlaybookRefSerializer(serializers.Serializer):
    key = serializers.CharField(source="playbook.key", read_only=True)
    name = serializers.CharField(source="playbook.name", read_only=True)
    version = serializers.IntegerField(source="playbook_version.number", read_only=True)


class CaseSummarySerializer(serializers.ModelSerializer):
    state = serializers.ChoiceField(choices=Case.State.choices, read_only=True)
    account = AccountRefSerializer(read_only=True)
    playbook = serializers.SerializerMethodField()
    sla_status = serializers.ChoiceField(
        choices=selectors.SLA_STATUSES,
        read_only=True,
        source="api_sla_status",
        help_text="From the SLA clocks of the case's open work (its open tasks, and its "
        "own time to live while it is open). breached: one of them was missed or runs past "
        "due; at_risk: one runs past its warning point; on_track: neither. A completed or "
        "cancelled case has no open work: on_track.",
    )

    class Meta:
        model = Case
        fields = (
            "id",
            "state",
            "account",
            "playbook",
            "sla_status",
            "opened_at",
            "updated_at",
            "completed_at",
            "cancelled_at",
            "hold_reason",
            "cancel_reason",
            "reopen_count",
        )
        read_only_fields = fields

    @extend_schema_field(PlaybookRefSerializer)
    def get_playbook(self, case: Case) -> dict[str, Any]:
        return PlaybookRefSerializer(case).data


class CaseDetailSerializer(CaseSummarySerializer):
    """A case with its tasks (in step order), its time-to-live clock and its context log
    (newest first).

    Documents the body; `api.selectors.case_detail` renders it without serializer
    instances (tests compare the two).
    """

    tasks = TaskSerializer(many=True, read_only=True, source="api_tasks")
    time_to_live = serializers.SerializerMethodField()
    context = ContextEntrySerializer(many=True, read_only=True, source="api_context")

    class Meta(CaseSummarySerializer.Meta):
        fields = (*CaseSummarySerializer.Meta.fields, "time_to_live", "tasks", "context")
        read_only_fields = fields

    @extend_schema_field(SlaSerializer(allow_null=True))
    def get_time_to_live(self, case: Case) -> dict[str, Any] | None:
        timer = getattr(case, "api_case_timer", None)
        return SlaSerializer(timer).data if timer is not None else None


# --- signals --------------------------------------------------------------------------


class SignalSerializer(serializers.ModelSerializer):
    account_external_id = serializers.SerializerMethodField()
    properties = serializers.DictField(read_only=True)

    class Meta:
        model = Signal
        fields = (
            "signal_id",
            "name",
            "account_external_id",
            "properties",
            "occurred_at",
            "received_at",
            "completed_tasks",
        )
        read_only_fields = fields

    def get_account_external_id(self, signal: Signal) -> str:
        # The caller may know it already (a batch): no query per stored duplicate.
        known = getattr(signal, "api_account_external_id", None)
        return known if known is not None else signal.account.external_id


_DATETIME = serializers.DateTimeField()


def signal_body(signal: Signal, account_external_id: str) -> dict[str, Any]:
    """SignalSerializer's representation without building a serializer per signal (a
    batch renders hundreds; tests compare the two)."""
    return {
        "signal_id": signal.signal_id,
        "name": signal.name,
        "account_external_id": account_external_id,
        "properties": {str(key): value for key, value in signal.properties.items()},
        "occurred_at": _DATETIME.to_representation(signal.occurred_at),
        "received_at": _DATETIME.to_representation(signal.received_at),
        "completed_tasks": signal.completed_tasks,
    }

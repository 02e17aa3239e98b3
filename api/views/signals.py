"""Product signals, one at a time or in batches, de-duplicated by signal id."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from api.auth import actor_for
from api.problems import field_errors, problem_body
from api.serializers import (
    EXTERNAL_ID_MAX,
    AwareDateTimeField,
    JsonObjectField,
    SignalSerializer,
    signal_body,
)
from api.views.base import ApiView, validated
from onboarding.models import Signal
from onboarding.services.signals import MAX_BATCH_SIZE, signal_receive, signals_receive_batch


class SignalIn(serializers.Serializer):
    signal_id = serializers.CharField(
        max_length=Signal._meta.get_field("signal_id").max_length,
        help_text="Your id for this signal: the same id is applied once.",
    )
    name = serializers.CharField(
        max_length=Signal._meta.get_field("name").max_length,
        help_text='What happened, e.g. "Data Source Connected".',
    )
    account_external_id = serializers.CharField(max_length=EXTERNAL_ID_MAX)
    properties = JsonObjectField(required=False)
    occurred_at = AwareDateTimeField(required=False, help_text="Default: when received.")


class SignalOut(SignalSerializer):
    duplicate = serializers.BooleanField(
        read_only=True, help_text="The signal id was received before; nothing was applied again."
    )

    class Meta(SignalSerializer.Meta):
        fields = (*SignalSerializer.Meta.fields, "duplicate")
        read_only_fields = fields


def _signal_data(signal: Signal, created: bool) -> dict[str, Any]:
    signal.duplicate = not created
    return SignalOut(signal).data


@extend_schema(tags=["signals"])
class SignalReceive(ApiView):
    required_scopes = {"POST": "signals:write"}
    problem_statuses = (409,)

    @extend_schema(
        summary="Send one product signal",
        description="Completes the steps of the account's open cases that wait for this "
        "signal. A signal id seen before returns the stored signal (200, `duplicate: true`) "
        "and changes nothing; the same id for another name or account is a 409. An unknown "
        "account is a 404.",
        request=SignalIn,
        responses={201: SignalOut, 200: SignalOut},
    )
    def post(self, request: Request) -> Response:
        data = validated(SignalIn, request.data)
        signal, created = signal_receive(actor=actor_for(request), **data)
        return Response(_signal_data(signal, created), status=201 if created else 200)


class _Item(serializers.DictField):
    """A JSON object, taken as it is (SignalIn checks each item's fields): what
    DictField gives, without validating each value of each item on its own."""

    def run_child_validation(self, data: dict[Any, Any]) -> dict[str, Any]:
        return {str(key): value for key, value in data.items()}


class SignalBatchIn(serializers.Serializer):
    signals = serializers.ListField(child=_Item(), min_length=1, max_length=MAX_BATCH_SIZE)


class SignalBatchDoc(serializers.Serializer):
    signals = SignalIn(many=True, min_length=1, max_length=MAX_BATCH_SIZE)

    class Meta:
        ref_name = "SignalBatchRequest"


class ItemError(serializers.Serializer):
    status = serializers.IntegerField()
    code = serializers.CharField()
    detail = serializers.CharField()
    errors = serializers.ListField(child=serializers.DictField(), required=False)


class ItemResult(serializers.Serializer):
    index = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["created", "duplicate", "error"])
    signal = SignalSerializer(allow_null=True)
    error = ItemError(allow_null=True)


class SignalBatchOut(serializers.Serializer):
    created = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    errors = serializers.IntegerField()
    results = ItemResult(many=True)


def _item_error(status: int, code: str, detail: str, **kw: Any) -> dict[str, Any]:
    body = problem_body(status, code, detail, **kw)
    return {k: body[k] for k in ("status", "code", "detail", "errors") if k in body}


@extend_schema(tags=["signals"])
class SignalReceiveBatch(ApiView):
    required_scopes = {"POST": "signals:write"}

    @extend_schema(
        summary=f"Send up to {MAX_BATCH_SIZE} product signals",
        description="Every item is checked first; the good ones are then stored and "
        "applied together, each as if sent on its own (de-duplicated by signal id, the "
        "steps waiting for it moved). A bad item is reported in its result and does not "
        "stop the others. Results are in request order.",
        request=SignalBatchDoc,
        responses={200: SignalBatchOut},
    )
    def post(self, request: Request) -> Response:
        items = validated(SignalBatchIn, request.data)["signals"]
        results: list[dict[str, Any] | None] = [None] * len(items)
        valid: list[tuple[int, dict[str, Any]]] = []
        item_in = SignalIn()  # one instance for every item: its fields are built once
        for index, item in enumerate(items):
            try:
                valid.append((index, dict(item_in.run_validation(item))))
            except serializers.ValidationError as exc:
                error = _item_error(
                    422,
                    "invalid_input",
                    "Invalid signal.",
                    errors=list(field_errors(exc.detail)),
                )
                results[index] = {"index": index, "status": "error", "signal": None, "error": error}
        outcomes = signals_receive_batch(signals=[d for _, d in valid], actor=actor_for(request))
        for (index, item), (signal, created, exc) in zip(valid, outcomes, strict=True):
            if exc is not None:
                errors = None
                if exc.status == 422:
                    errors = [{"field": exc.details.get("field"), "message": exc.message}]
                error = _item_error(exc.status, exc.code, exc.message, errors=errors)
                results[index] = {"index": index, "status": "error", "signal": None, "error": error}
            else:
                results[index] = {
                    "index": index,
                    "status": "created" if created else "duplicate",
                    "signal": signal_body(signal, item["account_external_id"]),
                    "error": None,
                }
        statuses = [r["status"] for r in results if r is not None]
        return Response(
            {
                "created": statuses.count("created"),
                "duplicates": statuses.count("duplicate"),
                "errors": statuses.count("error"),
                "results": results,
            }
        )

"""The event export: `GET /api/v1/events/` with a cursor that never skips an event."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from analytics.catalog import CATALOG
from analytics.models import STREAM_START
from api.auth import actor_for
from api.events import EventFilter, EventSerializer, InvalidCursor, decode_cursor, read_page
from api.serializers import EXTERNAL_ID_MAX, AwareDateTimeField
from api.views.base import ID_SCHEMA, ApiView, validated
from onboarding.selectors import sees_everything

MAX_LIMIT = 1000


class CursorField(serializers.CharField):
    def to_internal_value(self, data: object) -> object:
        try:
            return decode_cursor(super().to_internal_value(data))
        except InvalidCursor as exc:
            raise serializers.ValidationError(str(exc)) from None


class EventQueryIn(serializers.Serializer):
    cursor = CursorField(
        required=False,
        max_length=120,
        help_text="`next_cursor` of the previous page. Leave it out to start at the "
        "oldest event still stored.",
    )
    limit = serializers.IntegerField(min_value=1, max_value=MAX_LIMIT, default=100)
    name = serializers.ListField(
        child=serializers.ChoiceField(choices=sorted(CATALOG)),
        required=False,
        help_text="Only events with this name; repeat for several.",
    )
    account = serializers.CharField(
        max_length=EXTERNAL_ID_MAX, required=False, help_text="Account external id."
    )
    case = serializers.IntegerField(
        min_value=ID_SCHEMA["minimum"], max_value=ID_SCHEMA["maximum"], required=False
    )
    occurred_after = AwareDateTimeField(
        required=False, help_text="Only events that occurred at or after this time."
    )
    occurred_before = AwareDateTimeField(
        required=False, help_text="Only events that occurred before this time."
    )


class EventPageOut(serializers.Serializer):
    results = EventSerializer(many=True)
    next_cursor = serializers.CharField(
        help_text="Send it as `cursor` to read on. Always present: when `has_more` is "
        "false you have everything so far; poll later with this cursor for what comes next."
    )
    has_more = serializers.BooleanField(
        help_text="More events are ready now: ask again with `next_cursor` straight away."
    )


@extend_schema(tags=["events"])
class EventExport(ApiView):
    required_scopes = {"GET": "events:read"}
    problem_statuses = (422,)

    @extend_schema(
        summary="Export the event stream",
        description="Every recorded event, oldest first, in pages. Keep `next_cursor` and "
        "send it back: a cursor never skips an event and never repeats one, even while "
        "events are being written (an event joins the stream once the transaction that "
        "wrote it has committed and every transaction started before it has ended, "
        "usually within milliseconds). Filters narrow what you receive; keep using the "
        "same filters with a cursor. Events are ordered by when their transaction "
        "committed, so `occurred_at` is not strictly increasing. Raw events are kept "
        "`EVENT_RETENTION_DAYS` after they are recorded (when set): an exporter must "
        "read within that window, or what it has not read yet is purged.",
        parameters=[EventQueryIn],
        responses=EventPageOut,
    )
    def get(self, request: Request) -> Response:
        query = validated(EventQueryIn, request.query_params)
        actor = actor_for(request)
        page = read_page(
            query.get("cursor", STREAM_START),
            limit=query["limit"],
            filters=EventFilter(
                names=tuple(query.get("name", ())),
                account_external_id=query.get("account"),
                case_id=query.get("case"),
                occurred_after=query.get("occurred_after"),
                occurred_before=query.get("occurred_before"),
            ),
            actor=None if sees_everything(actor) else actor,
        )
        return Response(
            {
                "results": EventSerializer(page.events, many=True).data,
                "next_cursor": page.next_cursor,
                "has_more": page.has_more,
            }
        )

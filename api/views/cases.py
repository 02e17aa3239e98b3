"""Cases: open (idempotently), read, list with filters, add notes."""

from __future__ import annotations

import django_filters
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers
from rest_framework.request import Request
from rest_framework.response import Response

from api import selectors
from api.auth import actor_for
from api.idempotency import HEADER, KEY_PATTERN, idempotent
from api.serializers import (
    EXTERNAL_ID_MAX,
    CaseDetailSerializer,
    CaseSummarySerializer,
    ContextEntrySerializer,
)
from api.views.base import ID_SCHEMA, ApiView, NewestFirstCursorPagination, validated
from onboarding import services
from onboarding.errors import InvalidInput, NotFound
from onboarding.models import Account, Case, Playbook

CASE_ID_PARAM = OpenApiParameter(
    "case_id", ID_SCHEMA, OpenApiParameter.PATH, description="The case id."
)


def case_response(case_id: int, *, status: int = 200) -> Response:
    """The case as it is now (the caller has just acted on it: no visibility filter)."""
    return Response(
        selectors.case_detail(case_id, actor=None),
        status=status,
        headers={"Location": f"/api/v1/cases/{case_id}"} if status == 201 else None,
    )


class CaseOpenIn(serializers.Serializer):
    account_external_id = serializers.CharField(max_length=EXTERNAL_ID_MAX)
    playbook = serializers.SlugField(max_length=60, help_text="The playbook's key.")
    playbook_version = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=2_147_483_647,
        help_text="A published version number; default: the latest published version.",
    )


class CaseFilter(django_filters.FilterSet):
    state = django_filters.MultipleChoiceFilter(choices=Case.State.choices)
    playbook = django_filters.CharFilter(field_name="playbook__key", help_text="Playbook key.")
    account = django_filters.CharFilter(
        field_name="account__external_id", help_text="Account external id."
    )
    plan = django_filters.CharFilter(field_name="account__plan")
    segment = django_filters.CharFilter(field_name="account__segment")
    region = django_filters.CharFilter(field_name="account__region")
    sla_status = django_filters.ChoiceFilter(
        choices=selectors.SLA_STATUSES, method="filter_sla_status"
    )
    updated_since = django_filters.IsoDateTimeFilter(field_name="updated_at", lookup_expr="gte")

    class Meta:
        model = Case
        fields = (
            "state",
            "playbook",
            "account",
            "plan",
            "segment",
            "region",
            "sla_status",
            "updated_since",
        )

    def filter_sla_status(self, queryset: QuerySet[Case], name: str, value: str) -> QuerySet:
        return selectors.filter_sla_status(queryset, value)


class CaseList(ApiView, generics.ListAPIView):
    required_scopes = {"GET": "cases:read", "POST": "cases:write"}
    problem_statuses = (409, 422)
    serializer_class = CaseSummarySerializer
    pagination_class = NewestFirstCursorPagination

    filterset_class = CaseFilter

    def get_queryset(self) -> QuerySet[Case]:
        return selectors.case_list(actor_for(self.request))

    @extend_schema(tags=["cases"], summary="List cases (newest first)")
    def get(self, request: Request) -> Response:
        return super().get(request)

    @extend_schema(
        tags=["cases"],
        summary="Open a case on a playbook for an account",
        description="Send an `Idempotency-Key` to make retries safe: a retry with the same "
        "key and body returns the first response (header `Idempotent-Replayed: true`) and "
        "opens nothing; the same key with another body is refused (422). An account has at "
        "most one open case per playbook (409 with `case_id`).",
        parameters=[
            OpenApiParameter(
                HEADER,
                str,
                OpenApiParameter.HEADER,
                description="Your unique id for this create, e.g. a UUID.",
                pattern=KEY_PATTERN,
            )
        ],
        request=CaseOpenIn,
        responses={201: CaseDetailSerializer},
    )
    def post(self, request: Request) -> Response:
        return idempotent(request, lambda: self._open(request))

    def _open(self, request: Request) -> Response:
        data = validated(CaseOpenIn, request.data)
        account = Account.objects.filter(external_id=data["account_external_id"]).first()
        if account is None:
            raise InvalidInput(
                f"Account {data['account_external_id']!r} does not exist; upsert it first.",
                field="account_external_id",
            )
        playbook = Playbook.objects.filter(key=data["playbook"]).first()
        if playbook is None:
            raise InvalidInput(f"Playbook {data['playbook']!r} does not exist.", field="playbook")
        version = None
        if "playbook_version" in data:
            version = playbook.versions.filter(number=data["playbook_version"]).first()
            if version is None:
                raise InvalidInput(
                    f"Playbook {playbook.key!r} has no version {data['playbook_version']}.",
                    field="playbook_version",
                )
        case = services.case_open(
            account=account, playbook=playbook, version=version, actor=actor_for(request)
        )
        return case_response(case.pk, status=201)


@extend_schema(tags=["cases"], parameters=[CASE_ID_PARAM])
class CaseDetail(ApiView):
    required_scopes = {"GET": "cases:read"}

    @extend_schema(
        summary="Read a case with its tasks, SLA clocks and context log",
        responses=CaseDetailSerializer,
    )
    def get(self, request: Request, case_id: int) -> Response:
        body = selectors.case_detail(case_id, actor_for(request))
        if body is None:
            raise NotFound(f"Case {case_id} does not exist.")
        return Response(body)


class NoteIn(serializers.Serializer):
    body = serializers.CharField(max_length=10_000)
    task_id = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=2**63 - 1,
        help_text="The task of this case the note is about.",
    )


@extend_schema(tags=["cases"], parameters=[CASE_ID_PARAM])
class CaseNotes(ApiView):
    required_scopes = {"POST": "cases:write"}

    @extend_schema(
        summary="Add a note to the case's context log",
        request=NoteIn,
        responses={201: ContextEntrySerializer},
    )
    def post(self, request: Request, case_id: int) -> Response:
        data = validated(NoteIn, request.data)
        entry = services.case_add_note(case_id=case_id, actor=actor_for(request), **data)
        return Response(ContextEntrySerializer(entry).data, status=201)

"""Accounts: upsert by external id, read, list."""

from __future__ import annotations

import django_filters
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers
from rest_framework.request import Request
from rest_framework.response import Response

from api.auth import actor_for
from api.serializers import EXTERNAL_ID_MAX, AccountSerializer, JsonObjectField
from api.views.base import ApiView, NewestFirstCursorPagination, validated
from onboarding import services
from onboarding.errors import InvalidInput, NotFound
from onboarding.models import Account
from onboarding.selectors import sees_everything, visible_cases

EXTERNAL_ID_PARAM = OpenApiParameter(
    "external_id",
    {"type": "string", "minLength": 1, "maxLength": EXTERNAL_ID_MAX, "pattern": "^[^/]+$"},
    OpenApiParameter.PATH,
    description="The account's id in your CRM or product.",
)


def visible_accounts(request: Request) -> QuerySet[Account]:
    actor = actor_for(request)
    accounts = Account.objects.all()
    if not sees_everything(actor):
        accounts = accounts.filter(pk__in=visible_cases(actor).values("account_id"))
    return accounts


def clean_external_id(external_id: str) -> str:
    if "\x00" in external_id or len(external_id) > EXTERNAL_ID_MAX:
        raise InvalidInput(
            f"external_id must be at most {EXTERNAL_ID_MAX} characters, without NUL.",
            field="external_id",
        )
    return external_id


class AccountUpsertIn(serializers.Serializer):
    """Fields you send are set; fields you leave out keep their value. A new account
    needs a name."""

    name = serializers.CharField(max_length=200, required=False)
    plan = serializers.CharField(max_length=40, required=False, allow_blank=True)
    segment = serializers.CharField(max_length=40, required=False, allow_blank=True)
    region = serializers.CharField(max_length=40, required=False, allow_blank=True)
    channel = serializers.CharField(
        max_length=40, required=False, allow_blank=True, help_text="Acquisition channel."
    )
    properties = JsonObjectField(required=False)
    contact_email = serializers.EmailField(
        required=False,
        help_text="Personal data: used to greet the customer, never stored in analytics events.",
    )


@extend_schema(tags=["accounts"], parameters=[EXTERNAL_ID_PARAM])
class AccountDetail(ApiView):
    required_scopes = {"GET": "accounts:read", "PUT": "accounts:write"}

    @extend_schema(summary="Read an account", responses=AccountSerializer)
    def get(self, request: Request, external_id: str) -> Response:
        account = None
        if "\x00" not in external_id and len(external_id) <= EXTERNAL_ID_MAX:
            account = visible_accounts(request).filter(external_id=external_id).first()
        if account is None:
            raise NotFound(f"Account {external_id!r} does not exist.")
        return Response(AccountSerializer(account).data)

    @extend_schema(
        summary="Create or update an account (upsert by external id)",
        request=AccountUpsertIn,
        responses={200: AccountSerializer, 201: AccountSerializer},
    )
    def put(self, request: Request, external_id: str) -> Response:
        data = validated(AccountUpsertIn, request.data)
        account, created = services.account_upsert(
            external_id=clean_external_id(external_id), actor=actor_for(request), **data
        )
        return Response(AccountSerializer(account).data, status=201 if created else 200)


class AccountFilter(django_filters.FilterSet):
    plan = django_filters.CharFilter()
    segment = django_filters.CharFilter()
    region = django_filters.CharFilter()
    channel = django_filters.CharFilter()
    updated_since = django_filters.IsoDateTimeFilter(field_name="updated_at", lookup_expr="gte")

    class Meta:
        model = Account
        fields = ("plan", "segment", "region", "channel", "updated_since")


@extend_schema(tags=["accounts"], summary="List accounts (newest first)")
class AccountList(ApiView, generics.ListAPIView):
    required_scopes = {"GET": "accounts:read"}
    problem_statuses = (422,)
    serializer_class = AccountSerializer
    pagination_class = NewestFirstCursorPagination
    filterset_class = AccountFilter

    def get_queryset(self) -> QuerySet[Account]:
        return visible_accounts(self.request).order_by("-id")

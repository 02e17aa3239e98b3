"""Webhook subscriptions: create (the secret is shown once), list, read, delete; and
each webhook's delivery log."""

from __future__ import annotations

import django_filters
from django.core.validators import URLValidator
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers
from rest_framework.request import Request
from rest_framework.response import Response

from analytics.catalog import CATALOG
from api import webhooks
from api.auth import actor_for, token_of
from api.models import ALL_EVENTS, WebhookDelivery, WebhookSubscription
from api.views.base import ID_SCHEMA, ApiView, NewestFirstCursorPagination, validated
from onboarding.errors import Forbidden, NotFound

WEBHOOK_ID_PARAM = OpenApiParameter(
    "webhook_id", ID_SCHEMA, OpenApiParameter.PATH, description="The webhook id."
)


class WebhookIn(serializers.Serializer):
    url = serializers.URLField(
        max_length=WebhookSubscription._meta.get_field("url").max_length,
        validators=[URLValidator(schemes=["http", "https"])],
        help_text="Where to POST deliveries (http or https).",
    )
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=[ALL_EVENTS, *sorted(CATALOG)]),
        min_length=1,
        max_length=len(CATALOG) + 1,
        help_text='Event names to receive, or ["*"] for every event.',
    )
    description = serializers.CharField(
        max_length=WebhookSubscription._meta.get_field("description").max_length,
        required=False,
        allow_blank=True,
    )


class WebhookOut(serializers.ModelSerializer):
    events = serializers.ListField(child=serializers.CharField(), source="event_names")
    consecutive_failures = serializers.IntegerField(
        read_only=True, help_text="Failed attempts in a row; at the limit the webhook is disabled."
    )

    class Meta:
        model = WebhookSubscription
        fields = (
            "id",
            "url",
            "events",
            "description",
            "is_active",
            "consecutive_failures",
            "disabled_at",
            "disabled_reason",
            "created_at",
        )
        read_only_fields = fields


class WebhookCreatedOut(WebhookOut):
    secret = serializers.CharField(
        read_only=True,
        help_text="Verify each delivery's `Onboarding-Signature` with it. Shown only now.",
    )

    class Meta(WebhookOut.Meta):
        fields = (*WebhookOut.Meta.fields, "secret")
        read_only_fields = fields


class DeliveryOut(serializers.ModelSerializer):
    event_id = serializers.IntegerField(read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = (
            "delivery_id",
            "event_id",
            "event_name",
            "status",
            "attempts",
            "redeliveries",
            "next_attempt_at",
            "last_attempt_at",
            "delivered_at",
            "response_status",
            "response_excerpt",
            "error",
            "created_at",
        )
        read_only_fields = fields


class WebhookAccess(ApiView):
    """Integrations with the scope, and managers in a browser session."""

    required_scopes = {m: "webhooks:manage" for m in ("GET", "POST", "DELETE")}

    def initial(self, request: Request, *args: object, **kwargs: object) -> None:
        super().initial(request, *args, **kwargs)
        actor = actor_for(request)
        if not (actor.is_integration or actor.is_manager):
            raise Forbidden("Only managers manage webhooks.")

    def get_webhook(self, webhook_id: int) -> WebhookSubscription:
        webhook = WebhookSubscription.objects.filter(pk=webhook_id).first()
        if webhook is None:
            raise NotFound(f"Webhook {webhook_id} does not exist.")
        return webhook


@extend_schema(tags=["webhooks"])
class WebhookList(WebhookAccess, generics.ListAPIView):
    required_scopes = {"GET": "webhooks:manage", "POST": "webhooks:manage"}
    problem_statuses = (422,)
    serializer_class = WebhookOut
    pagination_class = NewestFirstCursorPagination
    queryset = WebhookSubscription.objects.order_by("-id")

    @extend_schema(summary="List webhooks (newest first)")
    def get(self, request: Request) -> Response:
        return super().get(request)

    @extend_schema(
        summary="Subscribe a URL to events",
        description="Deliveries start with the events recorded from now on. Each is a "
        "POST of `{delivery_id, webhook_id, event}` (the event as the export shows it) "
        "with headers `Onboarding-Delivery` (the same on every retry: dedupe on it), "
        "`Onboarding-Event` and `Onboarding-Signature: t=<unix time>,v1=<hex>`, where "
        "v1 is the HMAC-SHA256 of `<t>.<raw body>` keyed with the secret in this "
        "response (shown only now). Answer 2xx within a few seconds; anything else is "
        "retried with exponential backoff, and repeated failures disable the webhook. "
        "Deliveries may arrive more than once and out of order.",
        request=WebhookIn,
        responses={201: WebhookCreatedOut},
    )
    def post(self, request: Request) -> Response:
        data = validated(WebhookIn, request.data)
        token = token_of(request)
        webhook, secret = webhooks.webhook_subscribe(
            url=data["url"],
            event_names=data["events"],
            description=data.get("description", ""),
            user=None if token is not None else request.user,
            token=token,
        )
        webhook.secret = secret
        return Response(
            WebhookCreatedOut(webhook).data,
            status=201,
            headers={"Location": f"/api/v1/webhooks/{webhook.pk}"},
        )


@extend_schema(tags=["webhooks"], parameters=[WEBHOOK_ID_PARAM])
class WebhookDetail(WebhookAccess):
    @extend_schema(summary="Read a webhook", responses=WebhookOut)
    def get(self, request: Request, webhook_id: int) -> Response:
        return Response(WebhookOut(self.get_webhook(webhook_id)).data)

    @extend_schema(
        summary="Delete a webhook and its delivery log",
        description="Nothing more is sent to it, including pending retries.",
        responses={204: None},
    )
    def delete(self, request: Request, webhook_id: int) -> Response:
        self.get_webhook(webhook_id).delete()
        return Response(status=204)


class DeliveryFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=WebhookDelivery.Status.choices)

    class Meta:
        model = WebhookDelivery
        fields = ("status",)


@extend_schema(tags=["webhooks"], parameters=[WEBHOOK_ID_PARAM])
class WebhookDeliveries(WebhookAccess, generics.ListAPIView):
    required_scopes = {"GET": "webhooks:manage"}
    serializer_class = DeliveryOut
    pagination_class = NewestFirstCursorPagination
    filterset_class = DeliveryFilter

    def get_queryset(self) -> QuerySet[WebhookDelivery]:
        if getattr(self, "swagger_fake_view", False):  # the schema generator
            return WebhookDelivery.objects.none()
        webhook = self.get_webhook(self.kwargs["webhook_id"])
        return WebhookDelivery.objects.filter(subscription=webhook).order_by("-id")

    @extend_schema(summary="A webhook's deliveries (newest first)")
    def get(self, request: Request, webhook_id: int) -> Response:
        return super().get(request)

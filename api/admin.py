"""API tokens and webhooks in the admin, for managers.

A token's secret is shown once, in the message after creation; only its SHA-256 is
stored. A webhook's signing secret is also shown once. The delivery log lists every
delivery with its attempts, and a Redeliver button sends one again.
"""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.validators import URLValidator
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from unfold.admin import ModelAdmin, TabularInline
from unfold.decorators import action, display
from unfold.enums import ActionVariant
from unfold.forms import BaseDialogForm
from unfold.widgets import UnfoldAdminCheckboxSelectMultipleWidget

from analytics.catalog import CATALOG
from api import webhooks
from api.models import (
    ALL_EVENTS,
    SCOPES,
    ApiToken,
    WebhookAttempt,
    WebhookDelivery,
    WebhookSubscription,
)
from onboarding.admin._common import change_url, is_manager, redirect_after_action
from onboarding.errors import DomainError

_RATE = re.compile(r"^\d+/(s|sec|second|m|min|minute|h|hour|d|day)$")


class ApiTokenForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=[(scope, f"{scope} — {label}") for scope, label in SCOPES.items()],
        widget=UnfoldAdminCheckboxSelectMultipleWidget,
        required=False,
        help_text="Grant only what the integration needs.",
    )

    class Meta:
        model = ApiToken
        fields = ("name", "scopes", "throttle_rate", "expires_at")

    def clean_throttle_rate(self) -> str:
        rate = self.cleaned_data["throttle_rate"].strip()
        if rate and not _RATE.match(rate):
            raise forms.ValidationError('Write it as a number per period, e.g. "100/min".')
        return rate

    def clean_scopes(self) -> list[str]:
        return sorted(self.cleaned_data["scopes"])


@admin.register(ApiToken)
class ApiTokenAdmin(ModelAdmin):
    """Managers only: a token acts for an integration across every account."""

    form = ApiTokenForm
    list_display = ("name", "prefix", "scope_list", "status", "last_used_at", "created_by")
    list_filter = ("revoked_at",)
    search_fields = ("name", "prefix")
    readonly_fields = ("prefix", "created_by", "created_at", "last_used_at", "revoked_at")
    actions_detail = ("revoke",)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return is_manager(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_manager(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return is_manager(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_manager(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_manager(request)

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApiToken]:
        return super().get_queryset(request).select_related("created_by")

    @display(description="Scopes")
    def scope_list(self, token: ApiToken) -> str:
        return ", ".join(token.scopes) or "—"

    @display(
        description="Status",
        label={"active": "success", "revoked": "danger", "expired": "warning"},
    )
    def status(self, token: ApiToken) -> str:
        if token.revoked_at is not None:
            return "revoked"
        if token.expires_at is not None and token.expires_at <= timezone.now():
            return "expired"
        return "active"

    def save_model(self, request: HttpRequest, obj: ApiToken, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        token, secret = ApiToken.issue(
            name=obj.name,
            scopes=obj.scopes,
            throttle_rate=obj.throttle_rate,
            expires_at=obj.expires_at,
            created_by=request.user,
        )
        obj.pk, obj.prefix, obj.created_at = token.pk, token.prefix, token.created_at
        obj._state.adding = False
        messages.warning(
            request,
            f"Copy the token now; it is not shown again: {secret}",
        )

    def has_revoke_permission(self, request: HttpRequest, object_id: str | None = None) -> bool:
        token = ApiToken.objects.filter(pk=object_id).first() if object_id else None
        return is_manager(request) and token is not None and token.revoked_at is None

    @action(
        description="Revoke",
        icon="block",
        variant=ActionVariant.DANGER,
        permissions=["revoke"],
        dialog={
            "title": "Revoke this token",
            "description": "Requests with it are refused (401) from now on. This cannot be "
            "undone: issue a new token instead.",
            "form_class": None,
            "form_submit_text": "Revoke",
        },
    )
    def revoke(self, request: HttpRequest, form: BaseDialogForm, object_id: str) -> HttpResponse:
        token = ApiToken.objects.get(pk=object_id)
        ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        messages.success(request, f"{token} is revoked.")
        return redirect_after_action(request, change_url(token))


# --- webhooks -------------------------------------------------------------------------

_EVENT_CHOICES = [(ALL_EVENTS, "* — every event")] + [(name, name) for name in sorted(CATALOG)]
_STATUS_COLOURS = {
    WebhookDelivery.Status.PENDING: "warning",
    WebhookDelivery.Status.DELIVERED: "success",
    WebhookDelivery.Status.FAILED: "danger",
}


class ManagersOnly:
    """Webhooks send data out of the product: managers only, like API tokens."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return is_manager(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_manager(request)


class WebhookForm(forms.ModelForm):
    url = forms.URLField(
        label="URL",
        max_length=WebhookSubscription._meta.get_field("url").max_length,
        assume_scheme="https",
        validators=[URLValidator(schemes=["http", "https"])],
        help_text="Where deliveries are POSTed.",
    )
    event_names = forms.MultipleChoiceField(
        label="Events",
        choices=_EVENT_CHOICES,
        widget=UnfoldAdminCheckboxSelectMultipleWidget,
        help_text="Send only what the receiver needs; * sends every event.",
    )

    class Meta:
        model = WebhookSubscription
        fields = ("url", "event_names", "description")

    def clean_url(self) -> str:
        try:
            return webhooks.clean_target_url(self.cleaned_data["url"])
        except DomainError as exc:
            raise forms.ValidationError(exc.message) from None

    def clean_event_names(self) -> list[str]:
        try:
            return webhooks.clean_event_names(self.cleaned_data["event_names"])
        except DomainError as exc:
            raise forms.ValidationError(exc.message) from None


class RecentDeliveries(TabularInline):
    model = WebhookDelivery
    verbose_name_plural = "Recent deliveries"
    fields = ("delivery_link", "event_name", "status_label", "attempts", "response_status")
    readonly_fields = fields
    ordering = ("-id",)
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = False
    per_page = 20

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_manager(request)

    @display(description="Delivery")
    def delivery_link(self, delivery: WebhookDelivery) -> str:
        return format_html('<a href="{}">{}</a>', change_url(delivery), delivery.delivery_id)

    @display(description="Status", label=_STATUS_COLOURS)
    def status_label(self, delivery: WebhookDelivery) -> str:
        return delivery.status


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(ManagersOnly, ModelAdmin):
    form = WebhookForm
    list_display = (
        "url",
        "event_list",
        "status",
        "consecutive_failures",
        "delivery_counts",
        "created_at",
    )
    list_filter = ("is_active",)
    search_fields = ("url", "description")
    readonly_fields = (
        "is_active",
        "consecutive_failures",
        "disabled_at",
        "disabled_reason",
        "created_by",
        "created_by_token",
        "created_at",
    )
    inlines = (RecentDeliveries,)
    actions_detail = ("enable", "disable", "show_deliveries")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return is_manager(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_manager(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_manager(request)

    def get_inlines(self, request: HttpRequest, obj: Any = None) -> tuple:
        return self.inlines if obj is not None else ()  # a new webhook has no deliveries

    def get_queryset(self, request: HttpRequest) -> QuerySet[WebhookSubscription]:
        counts = {
            f"_{status}": Count("deliveries", filter=Q(deliveries__status=status))
            for status in WebhookDelivery.Status.values
        }
        return super().get_queryset(request).annotate(**counts)

    @display(description="Events")
    def event_list(self, webhook: WebhookSubscription) -> str:
        names = webhook.event_names
        return "every event" if ALL_EVENTS in names else ", ".join(names)

    @display(description="Status", label={"active": "success", "disabled": "danger"})
    def status(self, webhook: WebhookSubscription) -> str:
        return "active" if webhook.is_active else "disabled"

    @display(description="Delivered · pending · failed")
    def delivery_counts(self, webhook: WebhookSubscription) -> str:
        return f"{webhook._delivered} · {webhook._pending} · {webhook._failed}"

    def save_model(
        self, request: HttpRequest, obj: WebhookSubscription, form: Any, change: bool
    ) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        webhook, secret = webhooks.webhook_subscribe(
            url=obj.url,
            event_names=obj.event_names,
            description=obj.description,
            user=request.user,
        )
        obj.pk, obj.secret, obj.created_at = webhook.pk, webhook.secret, webhook.created_at
        obj._state.adding = False
        messages.warning(
            request,
            f"Copy the signing secret now; it is not shown again: {secret}",
        )

    def _webhook(self, object_id: str | None) -> WebhookSubscription | None:
        return WebhookSubscription.objects.filter(pk=object_id).first() if object_id else None

    def has_enable_permission(self, request: HttpRequest, object_id: str | None = None) -> bool:
        webhook = self._webhook(object_id)
        return is_manager(request) and webhook is not None and not webhook.is_active

    def has_disable_permission(self, request: HttpRequest, object_id: str | None = None) -> bool:
        webhook = self._webhook(object_id)
        return is_manager(request) and webhook is not None and webhook.is_active

    @action(
        description="Enable",
        icon="play_arrow",
        variant=ActionVariant.PRIMARY,
        permissions=["enable"],
        dialog={
            "title": "Enable this webhook",
            "description": "It catches up from where it stopped: pending deliveries are "
            "sent and every event recorded meanwhile is delivered.",
            "form_class": None,
            "form_submit_text": "Enable",
        },
    )
    def enable(self, request: HttpRequest, form: BaseDialogForm, object_id: str) -> HttpResponse:
        webhook = webhooks.webhook_enable(int(object_id))
        messages.success(request, f"{webhook} is enabled.")
        return redirect_after_action(request, change_url(webhook))

    @action(
        description="Disable",
        icon="pause",
        permissions=["disable"],
        dialog={
            "title": "Disable this webhook",
            "description": "Nothing is sent until you enable it again; events recorded "
            "meanwhile are delivered then.",
            "form_class": None,
            "form_submit_text": "Disable",
        },
    )
    def disable(self, request: HttpRequest, form: BaseDialogForm, object_id: str) -> HttpResponse:
        webhook = webhooks.webhook_disable(int(object_id), f"Disabled by {request.user}.")
        messages.success(request, f"{webhook} is disabled.")
        return redirect_after_action(request, change_url(webhook))

    @action(description="Delivery log", icon="list_alt")
    def show_deliveries(self, request: HttpRequest, object_id: str) -> HttpResponse:
        url = reverse("admin:api_webhookdelivery_changelist")
        return redirect_after_action(request, f"{url}?subscription__id__exact={object_id}")


class AttemptLog(TabularInline):
    model = WebhookAttempt
    verbose_name_plural = "Attempts"
    fields = ("number", "attempted_at", "duration_ms", "response_status", "error", "excerpt")
    readonly_fields = fields
    ordering = ("-attempted_at", "-id")
    extra = 0
    max_num = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_manager(request)

    @display(description="Response")
    def excerpt(self, attempt: WebhookAttempt) -> str:
        return attempt.response_excerpt[:200]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ManagersOnly, ModelAdmin):
    """The delivery log: what was sent where, how it went, and a Redeliver button."""

    list_display = (
        "delivery_id",
        "subscription",
        "event_name",
        "status_label",
        "attempts",
        "response_status",
        "last_attempt_at",
        "next_attempt_at",
        "delivered_at",
    )
    list_filter = ("status", "subscription", "event_name")
    search_fields = ("delivery_id", "event_name")
    list_select_related = ("subscription",)
    readonly_fields = (
        "delivery_id",
        "subscription",
        "event_link",
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
    fields = readonly_fields
    inlines = (AttemptLog,)
    actions = ("redeliver_selected",)
    actions_detail = ("redeliver",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @display(description="Status", label=_STATUS_COLOURS)
    def status_label(self, delivery: WebhookDelivery) -> str:
        return delivery.status

    @display(description="Event")
    def event_link(self, delivery: WebhookDelivery) -> str:
        url = reverse("admin:analytics_event_change", args=[delivery.event_id])
        return format_html('<a href="{}">{} #{}</a>', url, delivery.event_name, delivery.event_id)

    def has_redeliver_permission(self, request: HttpRequest, object_id: str | None = None) -> bool:
        return is_manager(request)

    def _redeliver(self, request: HttpRequest, deliveries: list[int]) -> int:
        queued = 0
        for pk in deliveries:
            try:
                webhooks.redeliver(pk)
            except DomainError as exc:
                messages.error(request, exc.message)
            else:
                queued += 1
        return queued

    @action(
        description="Redeliver",
        icon="send",
        variant=ActionVariant.PRIMARY,
        permissions=["redeliver"],
        dialog={
            "title": "Send this delivery again",
            "description": "It is sent now with the same delivery id, and retried as usual "
            "if the receiver fails.",
            "form_class": None,
            "form_submit_text": "Redeliver",
        },
    )
    def redeliver(self, request: HttpRequest, form: BaseDialogForm, object_id: str) -> HttpResponse:
        if self._redeliver(request, [int(object_id)]):
            messages.success(request, "Queued for redelivery.")
        url = reverse("admin:api_webhookdelivery_change", args=[object_id])
        return redirect_after_action(request, url)

    @action(description="Redeliver selected", permissions=["redeliver"])
    def redeliver_selected(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        queued = self._redeliver(request, list(queryset.values_list("pk", flat=True)))
        if queued:
            messages.success(request, f"{queued} deliveries queued for redelivery.")

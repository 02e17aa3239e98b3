"""API tokens in the admin: managers create, scope and revoke them.

The secret is shown once, in the message after creation; only its SHA-256 is stored.
"""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from unfold.admin import ModelAdmin
from unfold.decorators import action, display
from unfold.enums import ActionVariant
from unfold.forms import BaseDialogForm
from unfold.widgets import UnfoldAdminCheckboxSelectMultipleWidget

from api.models import SCOPES, ApiToken
from onboarding.admin._common import change_url, is_manager, redirect_after_action

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

"""Admin for the raw event stream and for alerts.

Events: look, search, filter; never add, edit or delete. Events are append-only
(`Event.save`/`delete` refuse); the admin agrees by denying every write permission,
so no form, bulk action or inline can even try.

Alerts (managers only): rules are written here (the model's `clean` refuses a rule
that could not be judged, field by field); alerts are read-only, written only by
`analytics.alerts`, and link to the cases behind them and to the report.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Exists, Model, OuterRef, QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from unfold.admin import ModelAdmin, TabularInline
from unfold.contrib.filters.admin import FieldTextFilter
from unfold.decorators import action, display
from unfold.forms import BaseDialogForm
from unfold.widgets import UnfoldAdminSelectWidget

from analytics.catalog import CATALOG
from analytics.metrics.base import SEGMENT_FIELDS
from analytics.models import Alert, AlertRule, Event, format_measure
from onboarding.actors import Actor
from onboarding.admin._common import AwareRangeDateTimeFilter, CappedCountPaginator
from onboarding.admin.filters import ActorTypeFilter
from onboarding.admin_scope import AgentScopeMixin


def pretty_json(value: Any) -> SafeString:
    """JSON as an indented, escaped `<pre>` block (stable key order for diffing by eye)."""
    if not value:
        return format_html('<span class="text-base-400">{}</span>', "—")
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    return format_html('<pre class="whitespace-pre-wrap text-xs leading-relaxed">{}</pre>', text)


def admin_link(obj: Model | None, label: str | None = None) -> SafeString | str:
    """A link to `obj`'s admin change page, or its text when it has none."""
    if obj is None:
        return "—"
    opts = obj._meta
    try:
        url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
    except NoReverseMatch:
        return label or str(obj)
    return format_html('<a href="{}" class="text-primary-600">{}</a>', url, label or str(obj))


class ReadOnlyAdminMixin:
    """No add, change or delete, whoever asks: the admin is a window, not a write path."""

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


class EventNameFilter(admin.SimpleListFilter):
    """Choices come from the catalog, so the filter never scans the table for names."""

    title = "event"
    parameter_name = "name"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(name, name) for name in sorted(CATALOG)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Event]) -> QuerySet[Event]:
        if self.value():
            return queryset.filter(name=self.value())
        return queryset


@admin.register(Event)
class EventAdmin(AgentScopeMixin, ReadOnlyAdminMixin, ModelAdmin):
    case_path = "case"  # agents: events of cases they may see

    list_display = (
        "name",
        "occurred_at",
        "account_link",
        "case_link",
        "step_key",
        "actor",
        "source",
    )
    # Nothing here reads the whole table (tens of millions of rows): names come from
    # the catalog, the source is typed, dates are a range (a date hierarchy would
    # scan for the distinct years), and the page is read through `event_occurred`.
    list_filter = (
        EventNameFilter,
        ActorTypeFilter,
        ("source", FieldTextFilter),
        ("occurred_at", AwareRangeDateTimeFilter),
    )
    list_filter_submit = True
    search_fields = ("uuid",)  # see get_search_results: exact lookups through indexes
    search_help_text = "An event's uuid, a case number or an event name."
    paginator = CappedCountPaginator
    list_select_related = ("account", "case__account")
    ordering = ("-occurred_at", "-id")
    # The table grows without bound: skip the unfiltered COUNT(*) on every page.
    show_full_result_count = False
    list_per_page = 50
    fieldsets = (
        (None, {"fields": ("name", "schema_version", "uuid", "occurred_at", "recorded_at")}),
        (
            "About",
            {
                "fields": (
                    "account_link",
                    "case_link",
                    "task_link",
                    "step_key",
                    "playbook_key",
                    "playbook_version",
                )
            },
        ),
        ("Who", {"fields": ("actor_type", "actor_id", "source")}),
        ("Data", {"fields": ("properties_pretty", "segmentation_pretty")}),
    )
    readonly_fields = (
        "name",
        "schema_version",
        "uuid",
        "occurred_at",
        "recorded_at",
        "account_link",
        "case_link",
        "task_link",
        "step_key",
        "playbook_key",
        "playbook_version",
        "actor_type",
        "actor_id",
        "source",
        "properties_pretty",
        "segmentation_pretty",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Event]:
        return super().get_queryset(request).select_related("account", "case__account", "task")

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Event], search_term: str
    ) -> tuple[QuerySet[Event], bool]:
        """A uuid finds its event, a number (with or without #) the case's events, an
        event name its events; each through an index. Free text would scan every event."""
        term = search_term.strip().lstrip("#")
        if not term:
            return queryset, False
        try:
            return queryset.filter(uuid=uuid.UUID(term)), False
        except ValueError:
            pass
        if term.isdigit() and int(term) < 2**63:
            return queryset.filter(case_id=int(term)), False
        names = {name.lower(): name for name in CATALOG}
        if term.lower() in names:
            return queryset.filter(name=names[term.lower()]), False
        messages.info(request, "Search by an event's uuid, a case number or an event name.")
        return queryset.none(), False

    @admin.display(description="Account", ordering="account__name")
    def account_link(self, event: Event) -> SafeString | str:
        return admin_link(event.account)

    @admin.display(description="Case", ordering="case_id")
    def case_link(self, event: Event) -> SafeString | str:
        return admin_link(event.case)

    @admin.display(description="Task")
    def task_link(self, event: Event) -> SafeString | str:
        return admin_link(event.task)

    @admin.display(description="Actor", ordering="actor_type")
    def actor(self, event: Event) -> str:
        return f"{event.actor_type}:{event.actor_id}"

    @admin.display(description="Properties")
    def properties_pretty(self, event: Event) -> SafeString:
        return pretty_json(event.properties)

    @admin.display(description="Segmentation (at the time)")
    def segmentation_pretty(self, event: Event) -> SafeString:
        return pretty_json(event.segmentation)


class EventInline(ReadOnlyAdminMixin, TabularInline):
    """The events of one case or task, newest first, a page at a time."""

    model = Event
    fk_name = "case"
    extra = 0
    per_page = 20
    can_delete = False
    show_change_link = True
    ordering = ("-occurred_at", "-id")
    verbose_name = "event"
    verbose_name_plural = "analytics events (newest first)"
    fields = ("occurred_at", "name", "step_key", "actor", "source", "properties_pretty")
    readonly_fields = fields

    @admin.display(description="Actor")
    def actor(self, event: Event) -> str:
        return f"{event.actor_type}:{event.actor_id}"

    @admin.display(description="Properties")
    def properties_pretty(self, event: Event) -> SafeString:
        return pretty_json(event.properties)


class CaseEventInline(EventInline):
    fk_name = "case"


class TaskEventInline(EventInline):
    fk_name = "task"


# --- alerts -------------------------------------------------------------------------------


def _is_manager(request: HttpRequest) -> bool:
    return Actor.for_user(request.user, source="admin").is_manager


class ManagersOnlyMixin:
    """Alert rules watch the whole operation: managers only, to see as to write."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return _is_manager(request)

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return _is_manager(request)

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return _is_manager(request)

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return _is_manager(request)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return _is_manager(request)


EVALUATION_OUTCOMES = {
    "fired": "The condition holds: an alert fired and its recipients are notified.",
    "firing": "The condition still holds; its alert is open (notified when it fired).",
    "resolved": "The condition cleared: its alert is resolved.",
    "ok": "The condition does not hold.",
    "no_data": "Nothing to judge: too few cases (or clocks) in the period, or no baseline.",
    "disabled": "The rule is disabled.",
    "busy": "Another evaluation of this rule is running; try again in a moment.",
    "gone": "The rule was deleted.",
    "unsupported": "Alerts are evaluated on PostgreSQL only.",
}
ALERT_STATE_COLOURS = {Alert.State.FIRING: "danger", Alert.State.RESOLVED: "success"}


def _case_links(case_ids: list[int], total: int) -> SafeString | str:
    if not case_ids:
        return "—"
    links = format_html_join(
        " ",
        '<a href="{}" class="text-primary-600">#{}</a>',
        ((reverse("admin:onboarding_case_change", args=[c]), c) for c in case_ids),
    )
    more = total - len(case_ids)
    if more > 0:
        return format_html('{} <span class="text-base-400">and {} more</span>', links, more)
    return links


class AlertRuleForm(forms.ModelForm):
    """Plan, region and channel offer the values accounts have (as the Reports page
    does); the rule's own value stays selectable even if no account has it any more."""

    class Meta:
        model = AlertRule
        fields = (
            "name",
            "enabled",
            "metric",
            "step_key",
            "playbook",
            "version",
            "plan",
            "region",
            "channel",
            "queue",
            "agent",
            "kind",
            "direction",
            "threshold",
            "change_pct",
            "window_days",
            "baseline_windows",
            "lag_days",
            "conversion_days",
            "min_sample",
            "recipients",
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from analytics.views.filters import Options

        segments = Options.load().segments
        for name in SEGMENT_FIELDS:
            values = list(segments[name])
            current = getattr(self.instance, name, "")
            if current and current not in values:
                values.append(current)
            self.fields[name] = forms.ChoiceField(
                label=name.title(),
                required=False,
                choices=[("", "All"), *((v, v) for v in values)],
                widget=UnfoldAdminSelectWidget,
            )


@admin.register(AlertRule)
class AlertRuleAdmin(ManagersOnlyMixin, ModelAdmin):
    form = AlertRuleForm
    list_display = (
        "name",
        "enabled",
        "metric",
        "condition",
        "scope",
        "last_value_display",
        "status",
        "last_evaluated_at",
    )
    list_filter = ("enabled", "metric", "kind")
    search_fields = ("name",)
    list_select_related = ("playbook", "queue", "agent")
    actions_detail = ("evaluate_now",)
    fieldsets = (
        (None, {"fields": ("name", "enabled", "metric", "step_key")}),
        (
            "Scope",
            {"fields": ("playbook", "version", "plan", "region", "channel", "queue", "agent")},
        ),
        (
            "Condition",
            {
                "fields": (
                    "kind",
                    "direction",
                    "threshold",
                    "change_pct",
                    "window_days",
                    "baseline_windows",
                    "lag_days",
                    "conversion_days",
                    "min_sample",
                )
            },
        ),
        ("Notify", {"fields": ("recipients",)}),
        (
            "Last evaluation",
            {
                "fields": (
                    "last_evaluated_at",
                    "last_value_display",
                    "last_baseline_display",
                    "last_sample",
                    "created_by",
                    "created_at",
                    "alerts_link",
                )
            },
        ),
    )
    readonly_fields = (
        "last_evaluated_at",
        "last_value_display",
        "last_baseline_display",
        "last_sample",
        "created_by",
        "created_at",
        "alerts_link",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[AlertRule]:
        firing = Alert.objects.firing().filter(rule=OuterRef("pk"))
        return (
            super()
            .get_queryset(request)
            .select_related("playbook", "queue", "agent")
            .annotate(is_firing=Exists(firing))
        )

    def save_model(self, request: HttpRequest, obj: AlertRule, form: Any, change: bool) -> None:
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    @admin.display(description="Condition")
    def condition(self, rule: AlertRule) -> str:
        return rule.condition_text()

    @admin.display(description="Scope")
    def scope(self, rule: AlertRule) -> str:
        parts = [
            str(rule.playbook) if rule.playbook_id else "",
            f"v{rule.version}" if rule.version is not None else "",
            rule.step_key,
            rule.plan,
            rule.region,
            rule.channel,
            f"queue {rule.queue}" if rule.queue_id else "",
            f"agent {rule.agent}" if rule.agent_id else "",
        ]
        return " · ".join(p for p in parts if p) or "everything"

    @admin.display(description="Last value")
    def last_value_display(self, rule: AlertRule) -> str:
        return format_measure(rule.last_value, rule.unit)

    @admin.display(description="Last baseline")
    def last_baseline_display(self, rule: AlertRule) -> str:
        return format_measure(rule.last_baseline, rule.unit)

    @display(description="Status", label={"firing": "danger", "ok": "success", "off": ""})
    def status(self, rule: AlertRule) -> str:
        firing = getattr(rule, "is_firing", None)
        if firing is None:
            firing = rule.alerts.firing().exists()
        if firing:  # a disabled rule's alert resolves at the next evaluation
            return "firing"
        return "ok" if rule.enabled else "off"

    @admin.display(description="Alerts")
    def alerts_link(self, rule: AlertRule) -> SafeString | str:
        if rule.pk is None:
            return "—"
        url = reverse("admin:analytics_alert_changelist") + f"?rule__id__exact={rule.pk}"
        return format_html(
            '<a href="{}" class="text-primary-600">{}</a>', url, "This rule's alerts"
        )

    def has_evaluate_now_permission(self, request: HttpRequest, object_id: Any = None) -> bool:
        return _is_manager(request)

    @action(
        description="Evaluate now",
        icon="play_arrow",
        permissions=["evaluate_now"],
        dialog={
            "title": "Evaluate this rule now",
            "description": "Computes the metric for the current period and fires (or "
            "resolves) its alert as beat would, notifying the recipients if it fires.",
            "form_class": None,
            "form_submit_text": "Evaluate",
        },
    )
    def evaluate_now(
        self, request: HttpRequest, form: BaseDialogForm, object_id: str
    ) -> HttpResponse:
        from analytics.alerts import evaluate_rule
        from onboarding.admin._common import redirect_after_action

        outcome = evaluate_rule(int(object_id))
        messages.info(request, EVALUATION_OUTCOMES.get(outcome, outcome))
        url = reverse("admin:analytics_alertrule_change", args=[object_id])
        return redirect_after_action(request, url)


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdminMixin, ManagersOnlyMixin, ModelAdmin):
    """Read-only (managers look, nobody writes): alerts are written by the evaluation alone."""

    list_display = (
        "rule",
        "state_badge",
        "fired_at",
        "resolved_at",
        "value_display",
        "reference_display",
        "case_count",
    )
    list_filter = ("state", "rule__metric", "rule")
    list_select_related = ("rule",)
    ordering = ("-fired_at", "-id")
    date_hierarchy = "fired_at"
    fieldsets = (
        (None, {"fields": ("rule_link", "state_badge", "message")}),
        (
            "Values",
            {
                "fields": (
                    "fired_value_display",
                    "value_display",
                    "reference_display",
                    "sample",
                    "period",
                    "report_link",
                )
            },
        ),
        ("When", {"fields": ("fired_at", "last_evaluated_at", "resolved_at", "resolution")}),
        ("Cases behind it", {"fields": ("case_count", "case_links")}),
    )
    readonly_fields = (
        "rule_link",
        "state_badge",
        "message",
        "fired_value_display",
        "value_display",
        "reference_display",
        "sample",
        "period",
        "report_link",
        "fired_at",
        "last_evaluated_at",
        "resolved_at",
        "resolution",
        "case_count",
        "case_links",
    )

    @display(description="State", ordering="state", label=ALERT_STATE_COLOURS)
    def state_badge(self, alert: Alert) -> str:
        return alert.state

    @admin.display(description="Rule")
    def rule_link(self, alert: Alert) -> SafeString | str:
        return admin_link(alert.rule)

    @admin.display(description="Value now")
    def value_display(self, alert: Alert) -> str:
        return format_measure(alert.value, alert.rule.unit)

    @admin.display(description="Value when fired")
    def fired_value_display(self, alert: Alert) -> str:
        return format_measure(alert.fired_value, alert.rule.unit)

    @admin.display(description="Threshold / baseline")
    def reference_display(self, alert: Alert) -> str:
        if alert.threshold is not None:
            return f"threshold {format_measure(alert.threshold, alert.rule.unit)}"
        return f"baseline {format_measure(alert.baseline, alert.rule.unit)}"

    @admin.display(description="Period judged")
    def period(self, alert: Alert) -> str:
        return f"{alert.period_start:%Y-%m-%d} to {alert.period_end:%Y-%m-%d}"

    @admin.display(description="Report")
    def report_link(self, alert: Alert) -> SafeString:
        from analytics.alerts import report_url

        url = report_url(alert.rule, alert.period_start, alert.period_end)
        return format_html('<a href="{}" class="text-primary-600">{}</a>', url, "Open the report")

    @admin.display(description="Cases")
    def case_links(self, alert: Alert) -> SafeString | str:
        return _case_links(alert.case_ids, alert.case_count)

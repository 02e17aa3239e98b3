"""The admin sidebar: the workspace first, configuration for managers only.

Referenced by dotted path from `settings.UNFOLD["SIDEBAR"]`.
"""

from __future__ import annotations

from django.http import HttpRequest
from django.urls import reverse_lazy

from onboarding.actors import Actor
from onboarding.models import Task
from onboarding.workspace.selectors import OPEN_WORK_STATES


def is_manager(request: HttpRequest) -> bool:
    return Actor.for_user(request.user, source="admin").is_manager


def my_open_tasks(request: HttpRequest) -> int:
    return Task.objects.filter(assignee=request.user, state__in=OPEN_WORK_STATES).count()


def firing_alerts(request: HttpRequest) -> int:
    from analytics.models import Alert  # analytics imports onboarding, not the reverse

    return Alert.objects.firing().count()


def _item(title: str, icon: str, url: str, **extra: object) -> dict[str, object]:
    return {"title": title, "icon": icon, "link": reverse_lazy(url), **extra}


def _config(title: str, icon: str, model: str) -> dict[str, object]:
    """A configuration page: `app_model` changelist, shown to managers only."""
    return _item(
        title, icon, f"admin:{model}_changelist", permission="onboarding.workspace.nav.is_manager"
    )


NAVIGATION = [
    {
        "title": "Workspace",
        "items": [
            _item(
                "My work",
                "inbox",
                "admin:index",
                badge="onboarding.workspace.nav.my_open_tasks",
                badge_variant="primary",
            ),
            _item("Queues", "stacks", "workspace:queues"),
            _item("Cases", "folder_open", "admin:onboarding_case_changelist"),
            _item("Tasks", "checklist", "admin:onboarding_task_changelist"),
            _item("Accounts", "apartment", "admin:onboarding_account_changelist"),
        ],
    },
    {
        "title": "Insight",
        "separator": True,
        "items": [
            _item(
                "Reports",
                "monitoring",
                "workspace:reports",
                permission="onboarding.workspace.nav.is_manager",
            ),
            _item(
                "Alerts",
                "notification_important",
                "admin:analytics_alert_changelist",
                permission="onboarding.workspace.nav.is_manager",
                badge="onboarding.workspace.nav.firing_alerts",
                badge_variant="danger",
            ),
            _item("Events", "bolt", "admin:analytics_event_changelist"),
            _item("Event catalog", "menu_book", "workspace:event_catalog"),
            _item("Context log", "history_edu", "admin:onboarding_contextentry_changelist"),
            _item("Signals", "sensors", "admin:onboarding_signal_changelist"),
        ],
    },
    {
        "title": "Configuration",
        "separator": True,
        "collapsible": True,
        "items": [
            _config("Playbooks", "account_tree", "onboarding_playbook"),
            _config("Playbook versions", "layers", "onboarding_playbookversion"),
            _config("Queues setup", "tune", "onboarding_queue"),
            _config("SLA policies", "timer", "onboarding_slapolicy"),
            _config("SLA timers", "avg_pace", "onboarding_slatimer"),
            _config("Business calendars", "calendar_month", "onboarding_businesscalendar"),
            _config("Reminders", "notifications", "onboarding_reminder"),
            _config("Alert rules", "rule", "analytics_alertrule"),
            _config("API tokens", "key", "api_apitoken"),
            _config("Webhooks", "webhook", "api_webhooksubscription"),
            _config("Users", "person", "auth_user"),
            _config("Groups", "group", "auth_group"),
        ],
    },
]


def navigation(request: HttpRequest) -> list[dict[str, object]]:
    return NAVIGATION

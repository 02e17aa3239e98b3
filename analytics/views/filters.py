"""The Reports page's filter form: GET parameters → `Filters`, with its choices."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from unfold.widgets import (
    UnfoldAdminIntegerFieldWidget,
    UnfoldAdminSelectWidget,
    UnfoldAdminTextInputWidget,
)

from analytics.metrics import REPORTS, default_filters
from analytics.metrics.base import BREAKDOWNS, SEGMENT_FIELDS, Filters, local_today
from onboarding.models import Playbook, Queue
from onboarding.selectors import account_segment_values

_DATE = {"type": "date"}
# A range longer than this is refused: the reports bucket by day and week, and an
# unbounded range (or a date near year 9999, which has no next day) is not a report.
MAX_RANGE_DAYS = 3 * 366
EARLIEST = date(2000, 1, 1)


@dataclass
class Options:
    """What the filters can be set to (three queries, whatever the data size)."""

    playbooks: list[tuple[str, str]]
    versions: list[int]
    queues: list[tuple[str, str]]
    agents: list[tuple[int, str]]
    segments: dict[str, list[str]]

    @classmethod
    def load(cls) -> Options:
        playbooks: dict[str, str] = {}
        versions: set[int] = set()
        for key, name, number in Playbook.objects.order_by("name", "id").values_list(
            "key", "name", "versions__number"
        ):
            playbooks[key] = name
            if number is not None:
                versions.add(number)
        user_model = get_user_model()
        agents = [
            (pk, (f"{first} {last}".strip() or username))
            for pk, username, first, last in user_model.objects.filter(
                is_staff=True, is_active=True
            )
            .order_by("first_name", "last_name", "username")
            .values_list("pk", "username", "first_name", "last_name")
        ]
        segments = account_segment_values(*SEGMENT_FIELDS)
        return cls(
            playbooks=list(playbooks.items()),
            versions=sorted(versions),
            queues=list(Queue.objects.order_by("name").values_list("key", "name")),
            agents=agents,
            segments=segments,
        )


def _select(label: str, choices: list[tuple[Any, str]], empty: str = "All") -> forms.ChoiceField:
    return forms.ChoiceField(
        label=label,
        required=False,
        choices=[("", empty), *choices],
        widget=UnfoldAdminSelectWidget,
    )


def form_data(query: Any, today: date | None = None) -> dict[str, Any]:
    """The query string with the report's defaults filled in, so the form shows what
    applies."""
    default = default_filters(query.get("report") or "", today)
    data = {
        "start": default.start.isoformat(),
        "end": default.end.isoformat(),
        "window_days": default.window_days,
        "stall_days": default.stall_days,
        "by": default.by,
    }
    data.update({k: v for k, v in query.items() if v not in ("", None)})
    return data


class ReportFilterForm(forms.Form):
    report = forms.ChoiceField(choices=[(k, s.title) for k, s in REPORTS.items()], required=False)
    start = forms.DateField(label="From", required=False, widget=UnfoldAdminTextInputWidget(_DATE))
    end = forms.DateField(label="To", required=False, widget=UnfoldAdminTextInputWidget(_DATE))
    playbook = forms.ChoiceField(label="Playbook", required=False)
    version = forms.TypedChoiceField(label="Version", required=False, coerce=int, empty_value=None)
    plan = forms.ChoiceField(label="Plan", required=False)
    region = forms.ChoiceField(label="Region", required=False)
    channel = forms.ChoiceField(label="Channel", required=False)
    queue = forms.ChoiceField(label="Queue", required=False)
    agent = forms.TypedChoiceField(label="Agent", required=False, coerce=int, empty_value=None)
    window_days = forms.IntegerField(
        label="Conversion window (days)",
        required=False,
        min_value=1,
        max_value=365,
        widget=UnfoldAdminIntegerFieldWidget,
    )
    stall_days = forms.IntegerField(
        label="Stalled after (days)",
        required=False,
        min_value=1,
        max_value=365,
        widget=UnfoldAdminIntegerFieldWidget,
    )
    by = forms.ChoiceField(
        label="Breakdown by",
        required=False,
        choices=[(b, b.title()) for b in BREAKDOWNS],
        widget=UnfoldAdminSelectWidget,
    )

    def __init__(self, data: Any, *, options: Options) -> None:
        super().__init__(data)
        f = self.fields
        f["playbook"] = _select("Playbook", options.playbooks)
        f["version"] = forms.TypedChoiceField(
            label="Version",
            required=False,
            coerce=int,
            empty_value=None,
            choices=[("", "All"), *((n, f"v{n}") for n in options.versions)],
            widget=UnfoldAdminSelectWidget,
        )
        for col in SEGMENT_FIELDS:
            f[col] = _select(col.title(), [(v, v) for v in options.segments[col]])
        f["queue"] = _select("Queue", options.queues)
        f["agent"] = forms.TypedChoiceField(
            label="Agent",
            required=False,
            coerce=int,
            empty_value=None,
            choices=[("", "All"), *options.agents],
            widget=UnfoldAdminSelectWidget,
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        start, end = data.get("start"), data.get("end")
        for name in ("start", "end"):
            value = data.get(name)
            if value and not EARLIEST <= value <= date.max - timedelta(days=MAX_RANGE_DAYS):
                self.add_error(name, "The date is out of range.")
        start, end = data.get("start"), data.get("end")
        if start and end and start > end:
            self.add_error("end", "The end of the range is before its start.")
        elif start and end and (end - start).days >= MAX_RANGE_DAYS:
            self.add_error("end", f"A range spans at most {MAX_RANGE_DAYS} days.")
        if data.get("version") is not None and not data.get("playbook"):
            self.add_error("version", "Choose a playbook for a version.")
        return data

    def result(self, today: date | None = None) -> tuple[str, Filters]:
        """(report key, filters): the valid values, defaults for the rest."""
        today = today or local_today()
        data: dict[str, Any] = {}
        if self.is_bound:
            self.is_valid()
            data = self.cleaned_data  # the fields that validated; errors are shown
        default = Filters.default(today)
        start = data.get("start") or default.start
        end = data.get("end") or (max(start, default.end) if data.get("start") else default.end)
        start = max(start, end - timedelta(days=MAX_RANGE_DAYS - 1))  # what an error left
        filters = Filters(
            start=start,
            end=end,
            playbook=data.get("playbook") or "",
            version=data.get("version"),
            plan=data.get("plan") or "",
            region=data.get("region") or "",
            channel=data.get("channel") or "",
            queue=data.get("queue") or "",
            agent=data.get("agent"),
            window_days=data.get("window_days") or default.window_days,
            stall_days=data.get("stall_days") or default.stall_days,
            by=data.get("by") or default.by,
        )
        key = (self.data.get("report") if self.is_bound else None) or "sla"
        return (key if key in REPORTS else "sla"), filters

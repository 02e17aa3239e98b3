"""The Reports page: one report per tab, its filters, charts, tables and CSV downloads.

Managers only. The numbers come from `analytics.metrics.run` (one definition per
metric); this module only turns them into cells, Unfold charts and CSV. The page
runs a fixed number of queries whatever the data: the filter choices, the report's
own aggregate queries and what the admin layout needs.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from analytics.metrics import REPORTS, Report, available, run
from analytics.metrics.base import Column, Table
from analytics.metrics.health import STATUS_LABELS
from analytics.views.filters import Options, ReportFilterForm, form_data
from onboarding import clock
from onboarding.actors import Actor

PRIMARY = "var(--color-primary-600)"
GREEN, AMBER, RED, GRAY, BLUE = "#16a34a", "#f59e0b", "#dc2626", "#9ca3af", "#2563eb"
STATUS_COLOURS = {"stuck": RED, "behind": AMBER, "on_hold": BLUE, "on_track": GREEN}
CSV_UNITS = {"pct": "%", "hours": "hours", "days": "days"}


# --- cells ------------------------------------------------------------------------------


@dataclass
class Cell:
    text: str
    href: str = ""
    muted: bool = False
    badge: str = ""  # a status: the colour of its badge


# Status badges (`Column.kind == "status"`): Unfold's label type per status.
BADGES = {"stuck": "danger", "behind": "warning", "on_hold": "info", "on_track": "success"}


def _local(moment: datetime) -> datetime:
    return timezone.localtime(moment)


def format_value(value: Any, column: Column) -> Cell:
    if value is None or value == "":
        return Cell("—", muted=True)
    kind = column.kind
    if kind == "int":
        return Cell(f"{value:,}")
    if kind == "pct":
        return Cell(f"{value * 100:.1f} %")
    if kind == "ratio":
        return Cell(f"{value:.2f}")
    if kind == "hours":
        return Cell(f"{value / 3600:,.1f} h")
    if kind == "days":
        days = value / 86400
        return Cell(f"{days:.1f} d" if days >= 1 else f"{value / 3600:.1f} h")
    if kind == "datetime":
        return Cell(f"{_local(value):%Y-%m-%d %H:%M}")
    if kind == "date":
        return Cell(f"{value:%Y-%m-%d}")
    if kind == "case":
        return Cell(f"#{value}", href=reverse("admin:onboarding_case_change", args=[value]))
    if kind == "status":
        return Cell(STATUS_LABELS.get(value, str(value)), badge=BADGES.get(value, ""))
    if isinstance(value, bool):
        return Cell("yes" if value else "no")
    return Cell(str(value))


def csv_value(value: Any, column: Column) -> Any:
    if value is None:
        return ""
    kind = column.kind
    if kind == "pct":
        return round(value * 100, 2)
    if kind == "hours":
        return round(value / 3600, 4)
    if kind == "days":
        return round(value / 86400, 4)
    if kind == "ratio":
        return round(value, 4)
    if isinstance(value, datetime):
        return _local(value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


@dataclass
class DisplayTable:
    table: Table
    csv_url: str
    headers: list[str] = field(default_factory=list)
    rows: list[list[Cell]] = field(default_factory=list)

    @property
    def truncated(self) -> bool:
        return self.table.total is not None and self.table.total > len(self.table.rows)


# --- charts (Unfold's Chart.js components) ------------------------------------------------


@dataclass
class Chart:
    title: str
    type: str  # bar | line
    data: dict[str, Any]
    options: dict[str, Any]

    @property
    def is_cohort(self) -> bool:
        return self.type == "cohort"

    @property
    def data_json(self) -> str:
        return json.dumps(self.data)

    @property
    def options_json(self) -> str:
        return json.dumps(self.options)


def _options(*, stacked: bool = False, percent: bool = False, legend: bool = True) -> dict:
    y: dict[str, Any] = {
        "stacked": stacked,
        "beginAtZero": True,
        "grid": {"display": True},
        "ticks": {"color": GRAY},
    }
    if percent:
        y["max"] = 100
    return {
        "animation": False,
        "responsive": True,
        "maintainAspectRatio": False,
        "datasets": {
            "bar": {"borderRadius": 4, "maxBarThickness": 36},
            "line": {"borderWidth": 2, "pointRadius": 2, "tension": 0.2},
        },
        "plugins": {
            "legend": {
                "display": legend,
                "align": "end",
                "position": "top",
                "labels": {"boxHeight": 8, "boxWidth": 8, "color": GRAY, "usePointStyle": True},
            },
            "tooltip": {"enabled": True},
        },
        "scales": {
            "x": {"stacked": stacked, "grid": {"display": False}, "ticks": {"color": GRAY}},
            "y": y,
        },
    }


def _series(label: str, values: list[Any], color: str, **extra: Any) -> dict[str, Any]:
    return {"label": label, "data": values, "backgroundColor": color, "borderColor": color, **extra}


def _pct(values: list[float | None]) -> list[float | None]:
    return [None if v is None else round(v * 100, 1) for v in values]


def _days(values: list[float | None]) -> list[float | None]:
    return [None if v is None else round(v / 86400, 2) for v in values]


def _labels(values: list[Any]) -> list[str]:
    return [v.isoformat() if isinstance(v, date) else str(v or "—") for v in values]


def cohort_data(table: Table) -> dict[str, Any]:
    """Unfold's cohort component: a row per week, a cell per day, shaded by share."""
    days = [c for c in table.columns if c.kind == "pct"]
    rows = []
    for row in table.as_dicts():
        cols = []
        for column in days:
            value = row[column.key]
            if value is None:
                cols.append({"value": "—"})
                continue
            shade = min(9, max(1, round(value * 9))) * 100
            text = " text-white" if shade >= 500 else ""
            cols.append({"value": f"{value * 100:.0f} %", "color": f"bg-primary-{shade}{text}"})
        rows.append(
            {
                "header": {"title": f"{row['week']:%Y-%m-%d}", "subtitle": f"{row['cases']} cases"},
                "cols": cols,
            }
        )
    return {"headers": [{"title": c.label} for c in days], "rows": rows}


def charts_for(report: Report) -> list[Chart]:
    t = report.tables
    if report.key == "sla":
        week, step = t["by_week"], t["by_step"]
        return [
            Chart(
                "% met by week",
                "line",
                {
                    "labels": _labels(week.column("week")),
                    "datasets": [_series("% met", _pct(week.column("pct_met")), PRIMARY)],
                },
                _options(percent=True, legend=False),
            ),
            Chart(
                "Verdicts by step",
                "bar",
                {
                    "labels": step.column("step_key"),
                    "datasets": [
                        _series("Met", step.column("met"), GREEN),
                        _series("Breached", step.column("breached"), RED),
                    ],
                },
                _options(stacked=True),
            ),
        ]
    if report.key == "funnel":
        stages = t["stages"]
        return [
            Chart(
                "Cases per milestone",
                "bar",
                {
                    "labels": stages.column("step_key"),
                    "datasets": [
                        _series("Reached", stages.column("reached"), PRIMARY),
                        _series("In progress", stages.column("in_progress"), BLUE),
                        _series("Stalled", stages.column("stalled"), AMBER),
                        _series("Dropped", stages.column("dropped"), GRAY),
                    ],
                },
                _options(stacked=True),
            )
        ]
    if report.key == "first_value":
        dist, trend = t["distribution"], t["trend"]
        return [
            Chart(
                "Distribution (reached cases)",
                "bar",
                {
                    "labels": dist.column("bucket"),
                    "datasets": [_series("Cases", dist.column("cases"), PRIMARY)],
                },
                _options(legend=False),
            ),
            Chart(
                "Time to first value by weekly cohort (days)",
                "line",
                {
                    "labels": _labels(trend.column("week")),
                    "datasets": [
                        _series("Median", _days(trend.column("p50")), PRIMARY),
                        _series("p90", _days(trend.column("p90")), AMBER),
                    ],
                },
                _options(),
            ),
            Chart(
                "Share reached by weekly cohort (%)",
                "line",
                {
                    "labels": _labels(trend.column("week")),
                    "datasets": [_series("Share reached", _pct(trend.column("share")), GREEN)],
                },
                _options(percent=True, legend=False),
            ),
        ]
    if report.key == "cohorts":
        by_day, by_milestone = t["by_day"], t["by_milestone"]
        shades = [PRIMARY, BLUE, GREEN, AMBER, RED, GRAY]
        milestones = [c for c in by_milestone.columns if c.kind == "pct"]
        if not milestones:
            return [Chart(f"{by_day.title} (weekly cohorts)", "cohort", cohort_data(by_day), {})]
        return [
            Chart(f"{by_day.title} (weekly cohorts)", "cohort", cohort_data(by_day), {}),
            Chart(
                by_milestone.title + " (%)",
                "line",
                {
                    "labels": _labels(by_milestone.column("week")),
                    "datasets": [
                        _series(c.label, _pct(by_milestone.column(c.key)), shades[i % 6])
                        for i, c in enumerate(milestones)
                    ],
                },
                _options(percent=True),
            ),
        ]
    if report.key == "automation":
        step = t["by_step"]
        return [
            Chart(
                "Automated steps finished",
                "bar",
                {
                    "labels": step.column("step_key"),
                    "datasets": [
                        _series("Automation alone", step.column("alone"), GREEN),
                        _series("Human-assisted", step.column("assisted"), AMBER),
                    ],
                },
                _options(stacked=True),
            )
        ]
    if report.key == "health":
        summary, breakdown = t["summary"], t["breakdown"]
        statuses = [r for r in summary.as_dicts() if r["status"] != "all"]
        colours = [STATUS_COLOURS[r["status"]] for r in statuses]
        segments = breakdown.as_dicts()
        return [
            Chart(
                "Open cases by status",
                "bar",
                {
                    "labels": [STATUS_LABELS[r["status"]] for r in statuses],
                    "datasets": [
                        _series("Cases", [r["cases"] for r in statuses], colours[0])
                        | {"backgroundColor": colours, "borderColor": colours}
                    ],
                },
                _options(legend=False),
            ),
            Chart(
                breakdown.title,
                "bar",
                {
                    "labels": _labels([r["segment"] for r in segments]),
                    "datasets": [
                        _series(STATUS_LABELS[s], [r[s] for r in segments], STATUS_COLOURS[s])
                        for s in STATUS_COLOURS
                    ],
                },
                _options(stacked=True),
            ),
        ]
    if report.key == "workload":
        queues, week = t["open_by_queue"], t["done_by_week"]
        return [
            Chart(
                "Open now by queue",
                "bar",
                {
                    "labels": _labels(queues.column("queue_name")),
                    "datasets": [
                        _series("Queued", queues.column("unassigned"), GRAY),
                        _series("Reserved", queues.column("reserved"), BLUE),
                        _series("In progress", queues.column("in_progress"), PRIMARY),
                        _series("With customer", queues.column("waiting"), AMBER),
                    ],
                },
                _options(stacked=True),
            ),
            Chart(
                "Done per week",
                "line",
                {
                    "labels": _labels(week.column("week")),
                    "datasets": [_series("Done", week.column("done"), GREEN)],
                },
                _options(legend=False),
            ),
        ]
    return []


# --- headline numbers ---------------------------------------------------------------------


@dataclass
class Kpi:
    label: str
    value: Cell
    note: str = ""


def _kpi(label: str, table: Table, key: str, note: str = "") -> Kpi:
    row = table.as_dicts()[0] if table.rows else {}
    column = table.columns[table.index(key)]
    return Kpi(label, format_value(row.get(key), column), note)


_COUNT = Column("n", "", "int")
_HOURS = Column("h", "", "hours")


def _count(label: str, n: int | None, note: str = "") -> Kpi:
    return Kpi(label, format_value(n, _COUNT), note)


def kpis_for(report: Report) -> list[Kpi]:
    t, f = report.tables, report.filters
    if report.key == "sla":
        whose = t["whose_time"]
        on_us = sum(whose.column("internal")) + sum(whose.column("automation"))
        customer = sum(whose.column("customer"))
        return [
            _kpi("Met", t["summary"], "pct_met", "of clocks with a verdict"),
            _kpi("Breached", t["summary"], "breached", "in the range"),
            _count("At risk now", t["at_risk"].total),
            Kpi("Waiting on us", format_value(on_us, _HOURS), "business time, stopped clocks"),
            Kpi("Waiting on the customer", format_value(customer, _HOURS)),
        ]
    if report.key == "funnel":
        stages = t["stages"]
        kpis = [_kpi("Cases opened", t["summary"], "cohort")]
        if stages.rows:
            last = stages.as_dicts()[-1]
            overall = stages.columns[stages.index("overall")]
            kpis += [
                Kpi(f"Reached {last['step_key']}", format_value(last["overall"], overall)),
                _count("In progress", sum(stages.column("in_progress"))),
                _count("Stalled", sum(stages.column("stalled"))),
                _count("Dropped", sum(stages.column("dropped"))),
            ]
        return kpis
    if report.key == "first_value":
        s = t["summary"]
        return [
            _kpi("Cases opened", s, "cases"),
            _kpi("Reached first value", s, "share"),
            _kpi("Median", s, "p50"),
            _kpi("p90", s, "p90"),
            _kpi("Still in progress", s, "in_progress"),
        ]
    if report.key == "cohorts":
        weeks = t["by_day"]
        followed = report.extra.get("followed")
        last = next((r for r in reversed(weeks.as_dicts()) if r.get("day_7") is not None), None)
        return [
            _count("Cases opened", sum(weeks.column("cases"))),
            _count("Weekly cohorts", len(weeks.rows)),
            Kpi(
                f"{followed[0] if followed else 'Milestone'} by day 7, latest final week",
                format_value(last["day_7"] if last else None, Column("p", "", "pct")),
                f"{last['week']:%Y-%m-%d}" if last else "",
            ),
        ]
    if report.key == "automation":
        s = t["summary"]
        return [
            _kpi("Automated steps finished", s, "finished"),
            _kpi("Without escalation", s, "alone_share"),
            _kpi("Human-assist rate", s, "assist_rate"),
            _count("Failed attempts", sum(t["failures_by_step"].column("attempts"))),
            _kpi("Handoffs per case", t["handoffs"], "per_case"),
        ]
    if report.key == "health":
        summary = {r["status"]: r for r in t["summary"].as_dicts()}
        pace = t["summary"].columns[t["summary"].index("pace")]
        share = t["summary"].columns[t["summary"].index("share")]
        return [
            _count("Open cases", summary["all"]["cases"], "now, whatever the range"),
            Kpi("On track", format_value(summary["on_track"]["share"], share)),
            _count("Behind", summary["behind"]["cases"], "a step overdue"),
            _count("Stuck", summary["stuck"]["cases"], f"no step done in over {f.stall_days} days"),
            Kpi("Pace", format_value(summary["all"]["pace"], pace), "expected steps done"),
        ]
    if report.key == "workload":
        o = t["open_summary"]
        return [
            _kpi("Open human work", o, "open"),
            _kpi("Queued", o, "unassigned"),
            _kpi("In progress", o, "in_progress"),
            _kpi("With customer", o, "waiting"),
            _kpi("Done in the range", t["done_summary"], "done"),
        ]
    return []


# --- the view ------------------------------------------------------------------------------


def _query(request: HttpRequest, **changes: Any) -> str:
    params = {k: v for k, v in request.GET.items() if v not in ("", None)}
    params.update({k: v for k, v in changes.items() if v is not None})
    for k in [k for k, v in changes.items() if v is None]:
        params.pop(k, None)
    return "?" + urlencode(params)


def _display(table: Table, request: HttpRequest, key: str) -> DisplayTable:
    shown = DisplayTable(
        table,
        csv_url=_query(request, report=key, format="csv", table=table.name),
        headers=[c.label for c in table.columns],
    )
    shown.rows = [
        [format_value(value, column) for value, column in zip(row, table.columns, strict=True)]
        for row in table.rows
    ]
    return shown


def csv_response(report: Report, table_name: str) -> HttpResponse:
    table = report.tables.get(table_name)
    if table is None:
        raise Http404(f"The {report.title} report has no table {table_name!r}.")

    class Echo:
        def write(self, value: str) -> str:
            return value

    writer = csv.writer(Echo())
    header = [
        f"{c.label} ({CSV_UNITS[c.kind]})" if c.kind in CSV_UNITS else c.label
        for c in table.columns
    ]

    def lines() -> Any:
        yield writer.writerow(header)
        for row in table.rows:
            yield writer.writerow(
                [csv_value(v, c) for v, c in zip(row, table.columns, strict=True)]
            )

    f = report.filters
    name = f"{report.key}-{table.name}-{f.start:%Y%m%d}-{f.end:%Y%m%d}.csv"
    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


# Filters shown only on the reports they change.
ONLY_ON = {
    "window_days": ("funnel", "first_value", "cohorts"),
    "stall_days": ("funnel", "health"),
    "by": ("funnel", "health"),
}


def fields_for(form: ReportFilterForm, report: Report) -> list[Any]:
    return [
        form[name]
        for name in form.fields
        if name != "report"
        and name not in report.ignores
        and report.key in ONLY_ON.get(name, (report.key,))
    ]


def reports_view(request: HttpRequest) -> HttpResponse:
    actor = Actor.for_user(request.user, source="admin")
    if not actor.is_manager:
        raise PermissionDenied("Reports are for managers.")
    if not available():
        context = {**admin.site.each_context(request), "title": "Reports", "unsupported": True}
        return TemplateResponse(request, "reports/reports.html", context)
    options = Options.load()
    data = form_data(request.GET)
    form = ReportFilterForm(data, options=options)
    key, filters = form.result()
    now = clock.now()
    if request.GET.get("format") == "csv":
        report = run(key, filters, now=now, limit=None)
        return csv_response(report, request.GET.get("table", ""))
    report = run(key, filters, now=now)
    if report.filters.playbook != filters.playbook:  # the funnel chose one: show which
        form = ReportFilterForm({**data, "playbook": report.filters.playbook}, options=options)
        form.is_valid()
    spec = REPORTS[key]
    tabs = [
        {"key": k, "title": s.title, "url": _query(request, report=k), "active": k == key}
        for k, s in REPORTS.items()
    ]
    context = {
        **admin.site.each_context(request),
        "title": f"Reports · {spec.title}",
        "report": report,
        "spec": spec,
        "tabs": tabs,
        "form": form,
        "fields": fields_for(form, report),
        "kpis": kpis_for(report),
        "charts": charts_for(report),
        "tables": [_display(t, request, key) for t in report.tables.values()],
        "now": now,
        "time_zone": settings.TIME_ZONE,
    }
    return TemplateResponse(request, "reports/reports.html", context)

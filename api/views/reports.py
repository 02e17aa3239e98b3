"""Manager reports over the API: `GET /api/v1/reports/` and `GET /api/v1/reports/{key}`.

The same numbers as the admin Reports pages, from the same definitions: the filters
are parsed by the page's own form (`analytics.views.filters.ReportFilterForm`, so the
parameter names, choices and validation are the page's), the report is computed by
`analytics.metrics.run`, and this module only turns its tables into JSON. Every
report of `analytics.metrics.REPORTS` is served; a new one appears here by itself.

Tokens need `reports:read`; signed-in staff must be managers, as on the pages.
"""

from __future__ import annotations

import dataclasses
import math
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from analytics.metrics import REPORTS, Report, ReportSpec, available, run
from analytics.metrics.base import LIST_LIMIT, Filters
from analytics.views.filters import Options, ReportFilterForm, form_data
from api.auth import REPORTS_READ, actor_for, token_of
from api.views.base import ApiView
from onboarding import clock
from onboarding.errors import NotAvailable, NotFound

MAX_LIMIT = 1000  # rows of a list table; the aggregates are never cut


def json_value(value: Any) -> Any:
    """A report cell as JSON: instants and days in ISO 8601, durations in seconds (as
    the metrics already give them), Decimal as a number, NaN/infinity as null."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        value = float(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    return value


def report_body(spec: ReportSpec, report: Report) -> dict[str, Any]:
    return {
        "key": report.key,
        "title": report.title,
        "definition": spec.definition,
        "filters": json_value(dataclasses.asdict(report.filters)),
        "ignores": list(report.ignores),
        "extra": json_value(report.extra),
        "tables": {
            name: {
                "title": table.title,
                "note": table.note,
                "total": table.total,
                "columns": [
                    {"key": c.key, "label": c.label, "kind": c.kind} for c in table.columns
                ],
                "rows": json_value(table.as_dicts()),
            }
            for name, table in report.tables.items()
        },
    }


def parse_filters(key: str, query: Any) -> Filters:
    """The page's form over the query string: its defaults for this report, its
    validation; any error is a 422 naming the parameter."""
    params = {k: v for k, v in query.items() if k not in ("report", "limit")}
    form = ReportFilterForm(form_data({**params, "report": key}), options=Options.load())
    if not form.is_valid():
        raise serializers.ValidationError(
            {
                ("non_field_errors" if field == NON_FIELD_ERRORS else field): errors
                for field, errors in form.errors.items()
            }
        )
    _, filters = form.result()
    return filters


def check_reader(request: Request) -> None:
    """Tokens passed the scope gate; a signed-in user must be a manager, as in the admin."""
    if token_of(request) is None and not actor_for(request).is_manager:
        raise PermissionDenied("Reports are for managers.")


# --- schema ----------------------------------------------------------------------------


def _parameter(name: str, field: forms.Field) -> OpenApiParameter:
    schema: dict[str, Any] = {"type": "string"}
    if isinstance(field, forms.DateField):
        schema = {"type": "string", "format": "date"}
    elif isinstance(field, forms.IntegerField):
        schema = {"type": "integer"}
        if field.min_value is not None:
            schema["minimum"] = field.min_value
        if field.max_value is not None:
            schema["maximum"] = field.max_value
    elif isinstance(field, forms.TypedChoiceField) and field.coerce is int:
        schema = {"type": "integer"}
    elif isinstance(field, forms.ChoiceField) and [v for v, _ in field.choices if v]:
        schema = {"type": "string", "enum": [v for v, _ in field.choices if v]}
    return OpenApiParameter(name, schema, OpenApiParameter.QUERY, description=str(field.label))


_DESCRIPTIONS = {
    "start": "First day of the range (YYYY-MM-DD, in the server's time zone). Default: "
    "the report page's range (the last 28 days; cohorts: 8 weeks).",
    "end": "Last day of the range, included. Default: today.",
    "playbook": "Playbook key (see the case API). The funnel and cohorts pick the most used "
    "playbook when none is given.",
    "version": "Playbook version number; needs `playbook`.",
    "plan": "Account plan (current value).",
    "region": "Account region (current value).",
    "channel": "Account acquisition channel (current value).",
    "queue": "Queue key.",
    "agent": "User id of a staff member.",
}


def filter_parameters() -> list[OpenApiParameter]:
    """One query parameter per field of the page's filter form."""
    parameters = []
    for name, field in ReportFilterForm.base_fields.items():
        if name == "report":
            continue
        parameter = _parameter(name, field)
        parameter.description = _DESCRIPTIONS.get(name, parameter.description)
        parameters.append(parameter)
    parameters.append(
        OpenApiParameter(
            "limit",
            {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": LIST_LIMIT},
            OpenApiParameter.QUERY,
            description="Rows of each list table (cases at risk, stalled cases…); `total` "
            "says how many there are. Aggregate tables are never cut.",
        )
    )
    return parameters


class LimitIn(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=MAX_LIMIT, default=LIST_LIMIT)


class ReportSummaryOut(serializers.Serializer):
    key = serializers.CharField()
    title = serializers.CharField()
    definition = serializers.CharField(help_text="What each metric counts (Markdown).")
    url = serializers.CharField(help_text="Where to read it.")


class ReportListOut(serializers.Serializer):
    results = ReportSummaryOut(many=True)


class FiltersOut(serializers.Serializer):
    start = serializers.DateField()
    end = serializers.DateField()
    playbook = serializers.CharField(allow_blank=True)
    version = serializers.IntegerField(allow_null=True)
    plan = serializers.CharField(allow_blank=True)
    region = serializers.CharField(allow_blank=True)
    channel = serializers.CharField(allow_blank=True)
    queue = serializers.CharField(allow_blank=True)
    agent = serializers.IntegerField(allow_null=True)
    window_days = serializers.IntegerField()
    stall_days = serializers.IntegerField()
    by = serializers.CharField()


class ColumnOut(serializers.Serializer):
    key = serializers.CharField()
    label = serializers.CharField()
    kind = serializers.CharField(
        help_text="text · int · pct (a fraction, 0.25 = 25 %) · ratio · hours and days "
        "(both in seconds) · datetime · date (ISO 8601) · case (a case id)."
    )


class TableOut(serializers.Serializer):
    title = serializers.CharField()
    note = serializers.CharField(allow_blank=True)
    total = serializers.IntegerField(
        allow_null=True, help_text="Rows before `limit` (list tables); null: not cut."
    )
    columns = ColumnOut(many=True)
    rows = serializers.ListField(
        child=serializers.DictField(), help_text="One object per row, keyed by column key."
    )


class ReportOut(serializers.Serializer):
    key = serializers.CharField()
    title = serializers.CharField()
    definition = serializers.CharField()
    filters = FiltersOut(help_text="The filters applied, defaults included.")
    ignores = serializers.ListField(
        child=serializers.CharField(), help_text="Filters this report does not apply."
    )
    extra = serializers.DictField(help_text="Context of the numbers (e.g. the milestones).")
    tables = serializers.DictField(child=TableOut())


# --- views -----------------------------------------------------------------------------


@extend_schema(tags=["reports"])
class ReportList(ApiView):
    required_scopes = {"GET": REPORTS_READ}

    @extend_schema(
        summary="List the manager reports",
        description="Every report of the admin Reports pages, with its definition. "
        "For managers (signed in) and tokens with `reports:read`.",
        responses=ReportListOut,
    )
    def get(self, request: Request) -> Response:
        check_reader(request)
        return Response(
            {
                "results": [
                    {
                        "key": key,
                        "title": spec.title,
                        "definition": spec.definition,
                        "url": request.build_absolute_uri(
                            reverse("api:v1:report-detail", args=[key])
                        ),
                    }
                    for key, spec in REPORTS.items()
                ]
            }
        )


@extend_schema(tags=["reports"])
class ReportDetail(ApiView):
    required_scopes = {"GET": REPORTS_READ}
    problem_statuses = (422, 503)

    @extend_schema(
        summary="Read a report",
        description="The report as of now, for the filters (the admin page's parameters, "
        "defaults and validation). Durations are seconds, shares fractions, instants ISO "
        "8601. For managers (signed in) and tokens with `reports:read`.",
        parameters=[
            OpenApiParameter(
                "key", {"type": "string", "enum": list(REPORTS)}, OpenApiParameter.PATH
            ),
            *filter_parameters(),
        ],
        responses=ReportOut,
    )
    def get(self, request: Request, key: str) -> Response:
        check_reader(request)
        spec = REPORTS.get(key)
        if spec is None:
            raise NotFound(f"There is no report {key!r}; see /api/v1/reports/.")
        if not available():
            raise NotAvailable("Reports need PostgreSQL; this installation runs on SQLite.")
        limit = LimitIn(data=request.query_params)
        limit_ok = limit.is_valid()
        try:
            filters = parse_filters(key, request.query_params)
        except serializers.ValidationError as exc:
            if not limit_ok:
                exc.detail.update(limit.errors)
            raise
        if not limit_ok:
            raise serializers.ValidationError(limit.errors)
        report = run(key, filters, now=clock.now(), limit=limit.validated_data["limit"])
        return Response(report_body(spec, report))

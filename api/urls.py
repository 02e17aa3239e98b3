"""/api/: the schema, the docs, the problem-type pages and version 1."""

from __future__ import annotations

from django.urls import include, path, re_path, register_converter
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from api.problems import api_page_not_found, problem_type_page
from api.views.accounts import AccountDetail, AccountList
from api.views.cases import CaseDetail, CaseList, CaseNotes
from api.views.catalog import EventCatalog
from api.views.events import EventExport
from api.views.queues import QueueClaimNext, QueueList
from api.views.reports import ReportDetail, ReportList
from api.views.signals import SignalReceive, SignalReceiveBatch
from api.views.transitions import (
    CASE_TRANSITIONS,
    TASK_TRANSITIONS,
    UnknownTransition,
    case_transition_view,
    task_transition_view,
)
from api.views.webhooks import WebhookDeliveries, WebhookDetail, WebhookList


class IdConverter:
    """A positive id that fits a bigint; anything else is no URL at all (404)."""

    regex = "[1-9][0-9]{0,17}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(IdConverter, "id")

v1_patterns = [
    path("accounts/", AccountList.as_view(), name="account-list"),
    path("accounts/<str:external_id>", AccountDetail.as_view(), name="account-detail"),
    path("cases/", CaseList.as_view(), name="case-list"),
    path("cases/<id:case_id>", CaseDetail.as_view(), name="case-detail"),
    path("cases/<id:case_id>/notes", CaseNotes.as_view(), name="case-notes"),
    *(
        path(
            f"cases/<id:case_id>/transitions/{t.name}",
            case_transition_view(t).as_view(),
            name=f"case-{t.name}",
        )
        for t in CASE_TRANSITIONS
    ),
    path("cases/<id:case_id>/transitions/<str:name>", UnknownTransition.as_view()),
    *(
        path(
            f"tasks/<id:task_id>/transitions/{t.name}",
            task_transition_view(t).as_view(),
            name=f"task-{t.name}",
        )
        for t in TASK_TRANSITIONS
    ),
    path("tasks/<id:task_id>/transitions/<str:name>", UnknownTransition.as_view()),
    path("signals/", SignalReceive.as_view(), name="signal-receive"),
    path("signals/batch", SignalReceiveBatch.as_view(), name="signal-batch"),
    path("queues/", QueueList.as_view(), name="queue-list"),
    path("queues/<id:queue_id>/claim-next", QueueClaimNext.as_view(), name="queue-claim-next"),
    path("events/", EventExport.as_view(), name="event-export"),
    path("events/catalog", EventCatalog.as_view(), name="event-catalog"),
    path("reports/", ReportList.as_view(), name="report-list"),
    path("reports/<str:key>", ReportDetail.as_view(), name="report-detail"),
    path("webhooks/", WebhookList.as_view(), name="webhook-list"),
    path("webhooks/<id:webhook_id>", WebhookDetail.as_view(), name="webhook-detail"),
    path(
        "webhooks/<id:webhook_id>/deliveries",
        WebhookDeliveries.as_view(),
        name="webhook-deliveries",
    ),
]

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="api:schema"), name="redoc"),
    path("problems/<slug:slug>", problem_type_page, name="problem-type"),
    path("v1/", include((v1_patterns, "v1"))),
    # Whatever else is under /api/ is a problem-details 404, also with DEBUG on.
    re_path(r"^", csrf_exempt(lambda request: api_page_not_found(request, None))),
]

from django.contrib import admin
from django.urls import path

from analytics.views.catalog import event_catalog_view
from analytics.views.reports import reports_view
from onboarding.workspace import views

app_name = "workspace"

urlpatterns = [
    path("queues/", admin.site.admin_view(views.queues_view), name="queues"),
    path(
        "queues/<int:queue_id>/claim-next/",
        admin.site.admin_view(views.claim_next_view),
        name="claim_next",
    ),
    path("reports/", admin.site.admin_view(reports_view), name="reports"),
    path("events/catalog/", admin.site.admin_view(event_catalog_view), name="event_catalog"),
]

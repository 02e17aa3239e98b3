from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from config.health import health

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("health/", health, name="health"),
    # The workspace pages live under the admin (its login, its layout), before its
    # catch-all patterns.
    path("admin/work/", include("onboarding.workspace.urls")),
    path("admin/", admin.site.urls),
    path("api/", include(("api.urls", "api"))),
]

# Under /api/ these answer with problem details; elsewhere they are Django's own.
handler404 = "api.problems.api_page_not_found"
handler500 = "api.problems.api_server_error"

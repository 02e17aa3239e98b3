"""Row-level scoping for the admin: agents see their queues and the cases in them.

Lives outside `onboarding.admin` so the analytics admin can use it without an
import cycle.
"""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import HttpRequest

from onboarding.actors import Actor
from onboarding.selectors import scope_to_cases


class AgentScopeMixin:
    """Every view of this admin (list, detail, search, filters, autocomplete) starts
    from `get_queryset`, so scoping it scopes them all."""

    case_path = ""  # how the model reaches its case; "" for Case itself

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        queryset = super().get_queryset(request)  # type: ignore[misc]
        return scope_to_cases(
            queryset, Actor.for_user(request.user, source="admin"), self.case_path
        )

"""What every API view shares: scopes per method, problem statuses for the schema,
input validation, and cursor pagination."""

from __future__ import annotations

from typing import Any, ClassVar

from rest_framework import serializers
from rest_framework.pagination import CursorPagination
from rest_framework.views import APIView

# Path ids. The `id` URL converter takes up to 18 digits (a bigint); the schema says
# 2**53 - 1, the largest integer a JSON reader holds exactly.
ID_SCHEMA = {"type": "integer", "format": "int64", "minimum": 1, "maximum": 2**53 - 1}


class ApiView(APIView):
    # Scope a token needs, per HTTP method; see api.auth.ScopedAccess.
    required_scopes: ClassVar[dict[str, str]] = {}
    # Problem statuses beyond the common ones, for the schema (e.g. 409).
    problem_statuses: ClassVar[tuple[int, ...]] = ()


def validated(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    """The input as its serializer cleans it; a ValidationError (422) otherwise."""
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


class NewestFirstCursorPagination(CursorPagination):
    """Opaque cursors over the primary key, newest first: stable under inserts, and a
    page costs an index range scan however deep the reader is."""

    ordering = "-id"
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 200

"""The event catalog as JSON: `GET /api/v1/events/catalog`, what the export stream and
webhooks carry, from `analytics.catalog` (the same source as the admin's catalog page)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from analytics.catalog import CATALOG
from api.views.base import ApiView


class PropertyOut(serializers.Serializer):
    name = serializers.CharField()
    type = serializers.CharField(
        help_text="string, integer, number, boolean, datetime (ISO 8601), object or array."
    )
    description = serializers.CharField()
    required = serializers.BooleanField()
    nullable = serializers.BooleanField()
    pii = serializers.BooleanField(help_text="Accepted from producers, never stored or exported.")


class EventSpecOut(serializers.Serializer):
    name = serializers.CharField()
    version = serializers.IntegerField(help_text="The event's `schema_version`.")
    description = serializers.CharField()
    properties = PropertyOut(many=True)


class CatalogOut(serializers.Serializer):
    results = EventSpecOut(many=True)


@extend_schema(tags=["events"])
class EventCatalog(ApiView):
    required_scopes = {"GET": "events:read"}

    @extend_schema(
        summary="The event catalog",
        description="Every event name the stream can carry, its schema version, "
        "description and properties (in `properties` of each exported event). "
        "Columns common to every event are the fields of the export's events.",
        responses=CatalogOut,
    )
    def get(self, request: Request) -> Response:
        return Response(
            {
                "results": [
                    {
                        "name": spec.name,
                        "version": spec.version,
                        "description": spec.description,
                        "properties": [
                            {
                                "name": key,
                                "type": prop.type,
                                "description": prop.description,
                                "required": prop.required,
                                "nullable": prop.nullable,
                                "pii": prop.pii,
                            }
                            for key, prop in spec.properties.items()
                        ],
                    }
                    for name, spec in sorted(CATALOG.items())
                ]
            }
        )

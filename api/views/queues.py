"""Queues: list them, claim the next task of one.

Claim-next is for signed-in agents and managers: a token is an integration, and an
integration is never a queue member, so the service refuses it (403).
"""

from __future__ import annotations

from django.db.models import Count, Q, QuerySet
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, serializers
from rest_framework.request import Request
from rest_framework.response import Response

from api.auth import actor_for
from api.serializers import TaskSerializer
from api.views.base import ID_SCHEMA, ApiView, NewestFirstCursorPagination
from api.views.transitions import task_response
from onboarding import services
from onboarding.models import Queue
from onboarding.models.cases import TaskState
from onboarding.selectors import sees_everything


class QueueSerializer(serializers.ModelSerializer):
    waiting = serializers.IntegerField(read_only=True, help_text="Tasks queued in it now.")

    class Meta:
        model = Queue
        fields = ("id", "key", "name", "description", "is_exceptions", "waiting")
        read_only_fields = fields


@extend_schema(tags=["queues"], summary="List queues (agents: their own)")
class QueueList(ApiView, generics.ListAPIView):
    required_scopes = {"GET": "queues:read"}
    serializer_class = QueueSerializer
    pagination_class = NewestFirstCursorPagination

    def get_queryset(self) -> QuerySet[Queue]:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no caller
            return Queue.objects.none()
        actor = actor_for(self.request)
        queues = Queue.objects.annotate(
            waiting=Count("tasks", filter=Q(tasks__state=TaskState.QUEUED))
        )
        if not sees_everything(actor):
            queues = queues.filter(pk__in=actor.queue_ids)
        return queues.order_by("-id")


@extend_schema(tags=["queues"])
class QueueClaimNext(ApiView):
    required_scopes = {"POST": "queues:claim"}

    @extend_schema(
        summary="Claim the most urgent task of a queue",
        description="SLA due soonest, then priority, then age. 204 when nothing is "
        "claimable. For signed-in agents of the queue and managers; integrations (tokens) "
        "are never queue members and get a 403.",
        parameters=[OpenApiParameter("queue_id", ID_SCHEMA, OpenApiParameter.PATH)],
        request=None,
        responses={
            200: TaskSerializer,
            204: OpenApiResponse(description="Nothing to claim in this queue now."),
        },
    )
    def post(self, request: Request, queue_id: int) -> Response:
        task = services.task_claim_next(queue_id=queue_id, actor=actor_for(request))
        if task is None:
            return Response(status=204)
        return task_response(task.pk)

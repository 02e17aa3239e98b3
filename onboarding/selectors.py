"""Reads shaped by who is asking. Agents see their queues and the cases in them;
managers, integrations and the system see everything."""

from __future__ import annotations

from django.db import connection
from django.db.models import Q, QuerySet

from onboarding.actors import Actor
from onboarding.models import Account, Case, Task


def sees_everything(actor: Actor) -> bool:
    return actor.is_manager or actor.is_system or actor.is_integration


def visible_task_filter(actor: Actor, prefix: str = "") -> Q:
    """Tasks in the agent's queues or assigned to them."""
    user_id = actor.user.pk if actor.user is not None else None
    return Q(**{f"{prefix}queue_id__in": actor.queue_ids}) | Q(**{f"{prefix}assignee_id": user_id})


def visible_cases(actor: Actor) -> QuerySet[Case]:
    if sees_everything(actor):
        return Case.objects.all()
    if not actor.is_agent:
        return Case.objects.none()
    return Case.objects.filter(
        pk__in=Task.objects.filter(visible_task_filter(actor)).values("case_id")
    )


def scope_to_cases(queryset: QuerySet, actor: Actor, case_path: str) -> QuerySet:
    """Keep the rows whose case (reached through `case_path`) this actor may see."""
    if sees_everything(actor):
        return queryset
    lookup = f"{case_path}__in" if case_path else "pk__in"
    return queryset.filter(**{lookup: visible_cases(actor).values("pk")})


def scope_tasks(queryset: QuerySet[Task], actor: Actor) -> QuerySet[Task]:
    if sees_everything(actor):
        return queryset
    if not actor.is_agent:
        return queryset.none()
    return queryset.filter(visible_task_filter(actor))


SEGMENT_COLUMNS = ("plan", "segment", "region", "channel")


def account_segment_values(*columns: str) -> dict[str, list[str]]:
    """The distinct non-empty values of indexed account columns, sorted, without
    reading the accounts table: on PostgreSQL one index probe per value (a "loose
    index scan"), in one statement; elsewhere (the demo's SQLite) a plain DISTINCT."""
    assert set(columns) <= set(SEGMENT_COLUMNS), columns  # interpolated below
    values: dict[str, list[str]] = {col: [] for col in columns}
    if connection.vendor != "postgresql":
        for col in columns:
            found = Account.objects.exclude(**{col: ""}).values_list(col, flat=True)
            values[col] = list(found.order_by(col).distinct())
        return values
    sql = " UNION ALL ".join(
        f"""(WITH RECURSIVE v AS (
              SELECT min({col}) AS value FROM onboarding_account WHERE {col} <> ''
              UNION ALL
              SELECT (SELECT min({col}) FROM onboarding_account WHERE {col} > v.value)
              FROM v WHERE v.value IS NOT NULL)
            SELECT '{col}', value FROM v WHERE value IS NOT NULL)"""
        for col in columns
    )
    with connection.cursor() as cursor:
        cursor.execute(sql)
        for col, value in cursor.fetchall():
            values[col].append(value)
    return values

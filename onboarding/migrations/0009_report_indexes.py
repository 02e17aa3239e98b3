"""Indexes for the manager reports (`analytics.metrics`), so each reads only the facts of
its date range (or the open work) however many cases there are.

Raw SQL rather than `Meta.indexes`: the reports' statements are raw SQL too, several
indexes carry INCLUDE columns so the reports' scans never visit the table, and they
are built CONCURRENTLY (a large table keeps taking writes meanwhile). Django's model
state does not know them, so `makemigrations` leaves them alone; the names are
prefixed `report_`.
"""

from django.db import migrations

INDEXES = {
    # Funnel, time to first value, handoffs per case: each cohort case's tasks.
    "report_task_progress": (
        "onboarding_task (case_id) INCLUDE (step_key, state, completed_at, handoff_count)"
    ),
    # Automation (steps finished) and workload throughput: done in the range.
    "report_task_done": (
        "onboarding_task (completed_at) INCLUDE (kind, step_key, queue_id, assignee_id, "
        "escalated, attempts, case_id) WHERE state = 'done'"
    ),
    # Workload: open human work.
    "report_task_open": (
        "onboarding_task (queue_id, assignee_id, state) INCLUDE (case_id) "
        "WHERE state IN ('queued', 'in_progress', 'waiting') AND queue_id IS NOT NULL"
    ),
    # SLA: what a clock's verdict is grouped by, without visiting the task rows.
    "report_task_keys": "onboarding_task (id) INCLUDE (step_key, queue_id, assignee_id)",
    # SLA: clocks met or breached that stopped in the range, and breaches in the range.
    "report_timer_stopped": (
        "onboarding_slatimer (stopped_at) INCLUDE (task_id, case_id, consumed_seconds) "
        "WHERE state IN ('met', 'breached')"
    ),
    "report_timer_breached": (
        "onboarding_slatimer (breached_at) INCLUDE (task_id, case_id) WHERE state = 'breached'"
    ),
    # Funnel: cases with a breach whose work is still open.
    "report_timer_overdue": (
        "onboarding_slatimer (case_id) WHERE state = 'breached' AND stopped_at IS NULL"
    ),
    # Funnel, time to first value, handoffs: the cases opened in the range.
    "report_case_opened": (
        "onboarding_case (opened_at) INCLUDE (playbook_id, playbook_version_id, account_id, state)"
    ),
    # Automation: failed attempts recorded in the range.
    "report_context_errors": "onboarding_contextentry (created_at) WHERE kind = 'error'",
}


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, definition in INDEXES.items():
        schema_editor.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {definition}")


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in INDEXES:
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("onboarding", "0008_queue_assignment"),
    ]

    operations = [
        migrations.RunPython(create, drop, elidable=False),
    ]

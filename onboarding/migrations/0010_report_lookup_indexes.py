"""Covering lookups for the reports' case filters (`analytics.metrics.base`): a report
restricted to a playbook, plan, region or channel looks each case and its account up
once; with these the lookups read only small indexes, never the table rows.

Raw SQL and CONCURRENTLY, as in 0009 (which says why).
"""

from django.db import migrations

INDEXES = {
    "report_case_lookup": (
        "onboarding_case (id) INCLUDE (account_id, playbook_id, playbook_version_id)"
    ),
    "report_account_segments": "onboarding_account (id) INCLUDE (plan, segment, region, channel)",
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
        ("onboarding", "0009_report_indexes"),
    ]

    operations = [
        migrations.RunPython(create, drop, elidable=False),
    ]

"""The Events list at tens of millions of events: an index on `occurred_at` (its order
and date range; it sorted the whole table before: 127 s at 42 M events), built
CONCURRENTLY on PostgreSQL so recording goes on meanwhile. The single-column indexes
on `account_id` and `case_id` go: `event_account_time` and `event_case_time` lead with
the same columns, so every event now writes as many indexes as before.
"""

from django.db import migrations, models

INDEX = models.Index(fields=["occurred_at"], name="event_occurred")


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS event_occurred "
            "ON analytics_event (occurred_at)"
        )
    else:
        schema_editor.add_index(apps.get_model("analytics", "Event"), INDEX)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX CONCURRENTLY IF EXISTS event_occurred")
    else:
        schema_editor.remove_index(apps.get_model("analytics", "Event"), INDEX)


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("analytics", "0004_alerts"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AddIndex(model_name="event", index=INDEX)],
            database_operations=[migrations.RunPython(create, drop, elidable=False)],
        ),
        migrations.AlterField(
            model_name="event",
            name="account",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=models.DO_NOTHING,
                related_name="events",
                to="onboarding.account",
            ),
        ),
        migrations.AlterField(
            model_name="event",
            name="case",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=models.DO_NOTHING,
                related_name="events",
                to="onboarding.case",
            ),
        ),
    ]

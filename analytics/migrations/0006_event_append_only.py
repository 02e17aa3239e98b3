"""Raw events are append-only in the database too, not only through the ORM.

A statement-level trigger refuses any UPDATE or DELETE of `analytics_event` unless the
session or transaction has set `analytics.event_purge` to `on`, which only the
retention purge (`analytics.retention`) and the benchmarks' clean-up do. TRUNCATE (the
test runner's flush, a benchmark's reset) is not affected. PostgreSQL only: on SQLite
the ORM guard (`Event.save`/`delete`, `EventQuerySet.update`) is what there is.
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION analytics_event_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('analytics.event_purge', true) IS DISTINCT FROM 'on' THEN
        RAISE EXCEPTION 'analytics_event is append-only: % refused', TG_OP
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Only the retention purge removes events (analytics.retention).';
    END IF;
    RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS analytics_event_append_only ON analytics_event;
CREATE TRIGGER analytics_event_append_only
    BEFORE UPDATE OR DELETE ON analytics_event
    FOR EACH STATEMENT EXECUTE FUNCTION analytics_event_append_only();
"""

DROP = """
DROP TRIGGER IF EXISTS analytics_event_append_only ON analytics_event;
DROP FUNCTION IF EXISTS analytics_event_append_only();
"""


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)  # no placeholders: % is RAISE's


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("analytics", "0005_event_list_indexes"),
    ]

    operations = [
        migrations.RunPython(create, drop, elidable=False),
    ]

"""The export stream's order key: the id of the transaction that wrote each event.

A column the database fills (`DEFAULT pg_current_xact_id()`), not a model field:
the write path's cached INSERT lists the model's fields and passes their values, so
a model field would need a value from Python, and only the database knows the
transaction id. No statement changes; `analytics.models` documents how it is read.

Rows that exist now get 0 (a constant default is a catalog change, no table
rewrite); ALTER TABLE waits for every transaction writing events, so they are all
final and sort before everything written later, in id order. SQLite has no such
column: it runs one writer at a time, so there id order is commit order.
"""

from django.db import migrations


def add_column(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("ALTER TABLE analytics_event ADD COLUMN xact xid8 NOT NULL DEFAULT '0'")
    schema_editor.execute(
        "ALTER TABLE analytics_event ALTER COLUMN xact SET DEFAULT pg_current_xact_id()"
    )
    schema_editor.execute("CREATE INDEX event_stream_order ON analytics_event (xact, id)")


def drop_column(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("ALTER TABLE analytics_event DROP COLUMN xact")  # drops the index


class Migration(migrations.Migration):
    dependencies = [
        ("analytics", "0002_initial"),
    ]

    operations = [
        migrations.RunPython(add_column, drop_column, elidable=False),
    ]

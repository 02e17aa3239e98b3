"""The statements every transition runs, compiled once per process.

Django compiles SQL each time a queryset is evaluated and saves through a generic
path. For the three statements of every transition (lock, guarded update, event
insert) that compilation cost more than the database work itself (bench/README.md).
These helpers compile once and reuse the SQL; it is still derived from the models'
`_meta`, so migrations keep it right.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.db import DEFAULT_DB_ALIAS, connections, models, router
from django.db.models import JSONField, Model
from django.db.models.query import get_related_populators


class Literal(models.Expression):
    """A string constant written into the SQL instead of passed as a parameter.

    For the state of a partial index's predicate (`WHERE state = 'queued'`): once
    a statement is prepared, PostgreSQL's generic plan for `state = $1` cannot prove
    the predicate and so cannot use the index; with the constant inline it can.
    """

    def __init__(self, value: str) -> None:
        super().__init__(output_field=models.CharField())
        self.value = str(value)

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        return "'" + self.value.replace("'", "''") + "'", []


class CompiledQuery:
    """A queryset built and compiled once per database, then re-run with new parameters.

    `build` must return a queryset whose only parameters are placeholders for the
    values later passed to `first()`, in the same order. Give the placeholder values
    as `placeholders` to have that order checked when the query compiles (Django
    orders a filter's keyword arguments by name, after its positional Q objects).
    """

    def __init__(
        self,
        build: Callable[[], models.QuerySet],
        *,
        placeholders: tuple[Any, ...] | None = None,
    ) -> None:
        self._build = build
        self._placeholders = placeholders
        self._compiled: dict[tuple[str, str], tuple[Any, ...]] = {}

    def _compile(self, using: str, n_params: int | None) -> tuple[Any, ...]:
        queryset = self._build().using(using)
        compiler = queryset.query.get_compiler(using=using)
        sql, params = compiler.as_sql()
        if n_params is not None and len(params) != n_params:
            raise ValueError(f"compiled query has {len(params)} parameters, got {n_params}")
        if self._placeholders is not None and tuple(params) != self._placeholders:
            raise ValueError(f"compiled query's parameters are {params}, not {self._placeholders}")
        select, klass_info = compiler.select, compiler.klass_info
        start, end = klass_info["select_fields"][0], klass_info["select_fields"][-1] + 1
        init_list = [col[0].target.attname for col in select[start:end]]
        populators = get_related_populators(klass_info, select, using)
        converters = compiler.get_converters([col[0] for col in select[: compiler.col_count]])
        return sql, compiler, converters, klass_info["model"], init_list, start, end, populators

    def sql(self, using: str = DEFAULT_DB_ALIAS) -> str:
        """The SQL as it runs (for EXPLAIN; a locking query compiles only in a transaction)."""
        entry = self._compiled.get((using, connections[using].vendor))
        return (entry or self._compile(using, None))[0]

    def first(self, *params: Any, using: str = DEFAULT_DB_ALIAS) -> Any:
        connection = connections[using]
        key = (using, connection.vendor)
        entry = self._compiled.get(key)
        if entry is None:
            entry = self._compiled[key] = self._compile(using, len(params))
        sql, compiler, converters, model, init_list, start, end, populators = entry
        row, _ = run(connection, sql, params, fetch=True)
        if row is None:
            return None
        if converters:
            row = next(iter(compiler.apply_converters([row], converters)))
        obj = model.from_db(using, init_list, row[start:end])
        for populator in populators:
            populator.populate(row, obj)
        return obj


def run(connection: Any, sql: str, params: Sequence[Any], *, fetch: bool) -> tuple[Any, int]:
    """Execute one of these statements: its first row (when `fetch`) and its rowcount.

    Through Django's cursor wrapper (database errors, execute wrappers), on a cursor
    kept per statement for the connection's life. A psycopg cursor sets up its
    adapters again (a dumper per parameter type, a loader per result column)
    whenever it runs a different query than the last one, and Django opens a new
    cursor per `connection.cursor()`; for the few small statements of a transition
    that cost more than the rest of the cursor's work. While queries are logged
    (DEBUG, CaptureQueriesContext) Django's own logging cursor is used instead.
    """
    if connection.queries_logged:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return (cursor.fetchone() if fetch else None), cursor.rowcount
    # What connection.cursor() checks before it opens a cursor (inside atomic() the
    # connection was checked and opened when the block began).
    if not connection.in_atomic_block:
        connection.close_if_health_check_failed()
        connection.ensure_connection()
    connection.validate_thread_sharing()
    cached = getattr(connection, "_statement_cursors", None)
    if cached is None or cached[0] is not connection.connection:  # a new connection
        cached = connection._statement_cursors = (connection.connection, {})
    cursor = cached[1].get(sql)
    if cursor is None or cursor.cursor.closed:
        cursor = cached[1][sql] = connection.cursor()
    cursor.execute(sql, params)
    if not fetch:
        return None, cursor.rowcount
    with connection.wrap_database_errors:
        return cursor.cursor.fetchone(), cursor.cursor.rowcount


_UPDATE_SQL: dict[tuple[Any, ...], str] = {}
_INSERT_SQL: dict[tuple[Any, ...], tuple[str, list[models.Field]]] = {}


def update_if_state(
    obj: models.Model,
    fields: Sequence[models.Field],
    *,
    state_field: models.Field,
    expected_state: str,
    then_insert: models.Model | None = None,
    using: str = DEFAULT_DB_ALIAS,
) -> int:
    """UPDATE the given fields of `obj` only if its state is still `expected_state`.

    Returns the number of rows updated: 0 means someone else moved it first (the
    same guard as django-fsm's ConcurrentTransitionMixin, without its extra query).
    `then_insert` is inserted only when the update happened: on PostgreSQL in the
    same statement (`WITH moved AS (UPDATE …) INSERT … SELECT … FROM moved`), so a
    transition and its event are written together or not at all, in one round trip.
    """
    connection = connections[using]
    meta = obj._meta
    combine = then_insert is not None and connection.vendor == "postgresql"
    key = (
        meta.label,
        connection.vendor,
        tuple(f.attname for f in fields),
        state_field.attname,
        then_insert._meta.label if combine else None,
    )
    sql = _UPDATE_SQL.get(key)
    if sql is None:
        qn = connection.ops.quote_name
        assignments = ", ".join(f"{qn(f.column)} = %s" for f in fields)
        sql = (
            f"UPDATE {qn(meta.db_table)} SET {assignments} "
            f"WHERE {qn(meta.pk.column)} = %s AND {qn(state_field.column)} = %s"
        )
        if combine:
            insert_sql, _ = _insert_statement(then_insert, connection)
            columns_and_values = insert_sql.split(" VALUES ", 1)
            into, values = columns_and_values[0], columns_and_values[1]
            select = values.split(" RETURNING ", 1)
            sql = (
                f"WITH moved AS ({sql} RETURNING 1) {into} "
                f"SELECT {select[0].strip('()')} FROM moved"
                + (f" RETURNING {select[1]}" if len(select) > 1 else "")
            )
        _UPDATE_SQL[key] = sql
    params = [f.get_db_prep_save(getattr(obj, f.attname), connection) for f in fields]
    params += [obj.pk, expected_state]
    if combine:
        params += _insert_params(then_insert, connection)
    row, updated = run(connection, sql, params, fetch=combine)
    if combine:
        updated = 0 if row is None else 1
        if row is not None:
            _mark_inserted(then_insert, row[0], using)
    if updated and then_insert is not None and not combine:
        insert_row(then_insert, using=using)
    return updated


def _insert_statement(obj: models.Model, connection: Any) -> tuple[str, list[models.Field]]:
    meta = obj._meta
    key = (meta.label, connection.vendor)
    cached = _INSERT_SQL.get(key)
    if cached is None:
        qn = connection.ops.quote_name
        fields = [f for f in meta.concrete_fields if f is not meta.auto_field]
        columns = ", ".join(qn(f.column) for f in fields)
        placeholders = ", ".join(["%s"] * len(fields))
        sql = f"INSERT INTO {qn(meta.db_table)} ({columns}) VALUES ({placeholders})"
        if connection.features.can_return_columns_from_insert:
            sql += f" RETURNING {qn(meta.pk.column)}"
        cached = _INSERT_SQL[key] = (sql, fields)
    return cached


def _insert_params(obj: models.Model, connection: Any) -> list[Any]:
    _, fields = _insert_statement(obj, connection)
    return [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields]


def _mark_inserted(obj: models.Model, pk: Any, using: str) -> None:
    obj.pk = pk
    obj._state.adding = False
    obj._state.db = using


def insert_row(obj: models.Model, *, using: str = DEFAULT_DB_ALIAS) -> models.Model:
    """INSERT a new row for `obj` with one cached statement and set its primary key."""
    connection = connections[using]
    sql, _ = _insert_statement(obj, connection)
    if connection.features.can_return_columns_from_insert:
        pk = run(connection, sql, _insert_params(obj, connection), fetch=True)[0][0]
    else:
        with connection.cursor() as cursor:
            cursor.execute(sql, _insert_params(obj, connection))
            pk = cursor.lastrowid
    _mark_inserted(obj, pk, using)
    return obj


def skip_locked(sql: str, of: str, *, using: str = DEFAULT_DB_ALIAS) -> str:
    """`sql` + `FOR NO KEY UPDATE OF … SKIP LOCKED` where the database has row locks.

    SQLite has none (its writers are serialized); PostgreSQL skips rows another
    transaction holds, never waiting on them.
    """
    if connections[using].features.has_select_for_update_skip_locked:
        return f"{sql} FOR NO KEY UPDATE OF {of} SKIP LOCKED"
    return sql


def insert_rows(
    model: type[Model], objs: list[Model], suffix: str = "", *, returning: tuple[str, ...] = ()
) -> list[tuple[Any, ...]]:
    """INSERT many new rows in one statement, in order, the columns from `_meta`.

    On PostgreSQL the rows go as one JSON array parameter, each element cast back to
    its column's type: the statement's text does not grow with the rows (psycopg
    converts it once, the server can prepare it), and one `json.dumps` replaces
    adapting every value (Django's compiler and psycopg's array dumpers took most of
    a batch's time). Elsewhere, VALUES rows.
    """
    using = router.db_for_write(model)
    connection = connections[using]
    meta = model._meta
    qn = connection.ops.quote_name
    fields = [f for f in meta.concrete_fields if f is not meta.auto_field]
    sql = f"INSERT INTO {qn(meta.db_table)} ({', '.join(qn(f.column) for f in fields)}) "
    if connection.vendor == "postgresql":
        casts = ", ".join(
            f"r.value -> {n}"
            if isinstance(f, JSONField)
            # the type without its modifier: storing checks the column's own (a
            # varchar(n) cast would cut a long text where storing it is refused)
            else f"(r.value ->> {n})::{f.db_type(connection).split('(')[0]}"
            for n, f in enumerate(fields)
        )
        sql += (
            f"SELECT {casts} FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS r "
            "ORDER BY r.ordinality"
        )
        rows = [
            [
                f.value_from_object(obj) if isinstance(f, JSONField) else json_scalar(f, obj)
                for f in fields
            ]
            for obj in objs
        ]
        params: list[Any] = [json.dumps(rows)]
    else:
        one_row = "(" + ", ".join(["%s"] * len(fields)) + ")"
        sql += "VALUES " + ", ".join([one_row] * len(objs))
        params = [
            f.get_db_prep_save(f.pre_save(obj, True), connection) for obj in objs for f in fields
        ]
    sql += suffix
    if returning:
        sql += " RETURNING " + ", ".join(qn(meta.get_field(name).column) for name in returning)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if returning else []


def json_scalar(field: Any, obj: Model) -> Any:
    """A column's value as JSON whose text PostgreSQL casts back to the column's type."""
    value = field.pre_save(obj, True)
    if value is None or isinstance(value, str | int | float):
        return value
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, UUID | Decimal):
        return str(value)
    raise TypeError(f"{field} holds a {type(value).__name__}; add its JSON form here")

"""The statements every transition runs, compiled once per process.

Django compiles SQL each time a queryset is evaluated and saves through a generic
path. For the three statements of every transition (lock, guarded update, event
insert) that compilation cost more than the database work itself (bench/README.md).
These helpers compile once and reuse the SQL; it is still derived from the models'
`_meta`, so migrations keep it right.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, models
from django.db.models.query import get_related_populators


class CompiledQuery:
    """A queryset built and compiled once per database, then re-run with new parameters.

    `build` must return a queryset whose only parameters are placeholders for the
    values later passed to `first()`, in the same order.
    """

    def __init__(self, build: Callable[[], models.QuerySet]) -> None:
        self._build = build
        self._compiled: dict[tuple[str, str], tuple[Any, ...]] = {}

    def _compile(self, using: str, n_params: int) -> tuple[Any, ...]:
        queryset = self._build().using(using)
        compiler = queryset.query.get_compiler(using=using)
        sql, params = compiler.as_sql()
        if len(params) != n_params:
            raise ValueError(f"compiled query has {len(params)} parameters, got {n_params}")
        select, klass_info = compiler.select, compiler.klass_info
        start, end = klass_info["select_fields"][0], klass_info["select_fields"][-1] + 1
        init_list = [col[0].target.attname for col in select[start:end]]
        populators = get_related_populators(klass_info, select, using)
        converters = compiler.get_converters([col[0] for col in select[: compiler.col_count]])
        return sql, compiler, converters, klass_info["model"], init_list, start, end, populators

    def first(self, *params: Any, using: str = DEFAULT_DB_ALIAS) -> Any:
        connection = connections[using]
        key = (using, connection.vendor)
        entry = self._compiled.get(key)
        if entry is None:
            entry = self._compiled[key] = self._compile(using, len(params))
        sql, compiler, converters, model, init_list, start, end, populators = entry
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        if row is None:
            return None
        if converters:
            row = next(iter(compiler.apply_converters([row], converters)))
        obj = model.from_db(using, init_list, row[start:end])
        for populator in populators:
            populator.populate(row, obj)
        return obj


_UPDATE_SQL: dict[tuple[Any, ...], str] = {}
_INSERT_SQL: dict[tuple[Any, ...], tuple[str, list[models.Field]]] = {}


def update_if_state(
    obj: models.Model,
    fields: Sequence[models.Field],
    *,
    state_field: models.Field,
    expected_state: str,
    using: str = DEFAULT_DB_ALIAS,
) -> int:
    """UPDATE the given fields of `obj` only if its state is still `expected_state`.

    Returns the number of rows updated: 0 means someone else moved it first (the
    same guard as django-fsm's ConcurrentTransitionMixin, without its extra query).
    """
    connection = connections[using]
    meta = obj._meta
    key = (meta.label, connection.vendor, tuple(f.attname for f in fields), state_field.attname)
    sql = _UPDATE_SQL.get(key)
    if sql is None:
        qn = connection.ops.quote_name
        assignments = ", ".join(f"{qn(f.column)} = %s" for f in fields)
        sql = _UPDATE_SQL[key] = (
            f"UPDATE {qn(meta.db_table)} SET {assignments} "
            f"WHERE {qn(meta.pk.column)} = %s AND {qn(state_field.column)} = %s"
        )
    params = [f.get_db_prep_save(getattr(obj, f.attname), connection) for f in fields]
    params += [obj.pk, expected_state]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def insert_row(obj: models.Model, *, using: str = DEFAULT_DB_ALIAS) -> models.Model:
    """INSERT a new row for `obj` with one cached statement and set its primary key."""
    connection = connections[using]
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
    sql, fields = cached
    params = [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if connection.features.can_return_columns_from_insert:
            obj.pk = cursor.fetchone()[0]
        else:
            obj.pk = cursor.lastrowid
    obj._state.adding = False
    obj._state.db = using
    return obj

"""Hot statements of the webhook path, compiled once per database.

Peewee compiles a query to SQL on every execution; for the 30-column
``expert`` row that is ~250 µs of pure Python, more than SQLite needs to
run it (measured: ``LineUser.get_or_none`` 450 µs vs 10 µs raw). The few
statements every event runs are compiled once per database (the SQL
differs between SQLite and PostgreSQL placeholders) and then executed with
fresh parameters; everything else keeps using the ORM normally.
"""
from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from peewee import Model, Query

from storage.db import database

_M = TypeVar("_M", bound=Model)


class Compiled:
    """A statement built once by ``build`` (with placeholder values) and reused."""

    def __init__(self, build: Callable[[], Query]):
        self.build = build
        # Keyed by the database object itself (weakly): an id() could be
        # reused by the next database object after the first is collected.
        self._sql: weakref.WeakKeyDictionary[Any, tuple[str, int]] = weakref.WeakKeyDictionary()
        self._columns: weakref.WeakKeyDictionary[Any, list[tuple[str, Callable[[Any], Any] | None]]] = \
            weakref.WeakKeyDictionary()

    def sql(self, n_params: int | None = None) -> str:
        db = database.obj
        entry = self._sql.get(db)
        if entry is None:
            text, params = self.build().sql()
            entry = self._sql[db] = (text, len(params))
        if n_params is not None and n_params != entry[1]:
            raise TypeError(f"statement takes {entry[1]} parameters, got {n_params}")
        return entry[0]

    def first(self, model: type[_M], *params: Any) -> _M | None:
        """The first row as a model instance (or None).

        Built here rather than by peewee's raw-query cursor wrapper, which
        works out the column → field mapping again for every query (~0.2 ms
        on the hottest path, twice per event); the mapping is made once per
        statement and database and the row is converted as peewee would
        (each field's ``python_value``, nothing marked dirty)."""
        cursor = database.execute_sql(self.sql(len(params)), params)
        try:
            row = cursor.fetchone()
            if row is None:
                return None
            fields = self._fields(model, cursor.description)
        finally:
            cursor.close()
        instance = model(__no_default__=1)
        instance.__data__ = {name: (convert(value) if convert is not None else value)
                             for (name, convert), value in zip(fields, row)}
        return instance

    def _fields(self, model: type[Model], description: Any) -> list[tuple[str, Callable[[Any], Any] | None]]:
        db = database.obj
        cached = self._columns.get(db)
        if cached is None:
            by_column = model._meta.columns
            cached = []
            for column in description:
                field = by_column.get(column[0])
                if field is None:
                    raise TypeError(f"column {column[0]!r} is not a field of {model.__name__}")
                cached.append((field.name, field.python_value))
            self._columns[db] = cached
        return cached

    def execute(self, *params: Any) -> Any:
        return database.execute_sql(self.sql(len(params)), params)


class CompiledCreate(Generic[_M]):
    """``model.create(**values)`` with its INSERT compiled once per database and column set.

    Peewee builds the INSERT afresh for every ``create`` (~0.4 ms of Python for
    the 30-column expert row, a brand-new user's first event builds two). Here
    the instance is made by peewee as ``create`` would (defaults filled in),
    its columns are written with each field's ``db_value`` (sealed fields are
    encrypted as usual), and the new id comes back as peewee reads it:
    ``RETURNING`` on PostgreSQL, ``lastrowid`` on SQLite. The model's own
    ``save`` is not called: callers that need its side effects do them."""

    def __init__(self, model: type[_M]):
        self.model = model
        primary_key = model._meta.primary_key
        if not primary_key:
            raise TypeError(f"{model.__name__} has no primary key to read back")
        self._primary_key: str = primary_key.name
        self._sql: weakref.WeakKeyDictionary[Any, dict[tuple[str, ...], str]] = weakref.WeakKeyDictionary()

    def create(self, **values: Any) -> _M:
        instance = self.model(**values)
        data = instance.__data__
        fields = [f for f in self.model._meta.sorted_fields if f.name in data and not f.primary_key]
        text = self._statement(fields, data)
        cursor = database.execute_sql(text, [f.db_value(data[f.name]) for f in fields])
        try:
            new_id = cursor.fetchone()[0] if " RETURNING " in text else cursor.lastrowid
        finally:
            cursor.close()
        data[self._primary_key] = new_id
        vars(instance)["_dirty"].clear()  # peewee's per-instance set of changed fields: none now
        return instance

    def _statement(self, fields: list[Any], data: dict[str, Any]) -> str:
        by_columns = self._sql.setdefault(database.obj, {})
        names = tuple(f.name for f in fields)
        text = by_columns.get(names)
        if text is None:
            text, _ = self.model.insert({f: data[f.name] for f in fields}).sql()
            written = text.split("(", 1)[1].split(")", 1)[0]
            if written != ", ".join(f'"{f.column_name}"' for f in fields):
                raise TypeError(f"INSERT columns {written} are not the fields {names} in order")
            by_columns[names] = text
        return text


class CompiledInsertMany:
    """``model.insert_many(rows, fields=…)`` with the statement compiled once per database and
    row count, each value through its field's ``db_value`` as peewee's would be.

    Peewee builds a many-row INSERT value by value: 500 audit rows took 9 ms of Python,
    most of what a batch of ``conditions announce`` spent holding SQLite's write lock
    (16 ms a batch, every webhook queued behind it). No ids come back."""

    def __init__(self, model: type[Model], fields: list[Any]):
        self.model, self.fields = model, list(fields)
        self._sql: weakref.WeakKeyDictionary[Any, dict[int, str]] = weakref.WeakKeyDictionary()

    def execute(self, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        params = [f.db_value(v) for row in rows for f, v in zip(self.fields, row, strict=True)]
        database.execute_sql(self._statement(rows[0], len(rows)), params)

    def _statement(self, first: tuple[Any, ...], n: int) -> str:
        by_count = self._sql.setdefault(database.obj, {})
        text = by_count.get(n)
        if text is None:
            one, _ = self.model.insert_many([first], fields=self.fields).sql()
            head, _, group = one.partition(" VALUES ")
            group = group.partition(" RETURNING ")[0]  # PostgreSQL: no ids wanted back
            text = by_count[n] = f"{head} VALUES {', '.join([group] * n)}"
        return text

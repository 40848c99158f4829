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
from typing import Any, TypeVar

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

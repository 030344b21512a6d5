"""Fixed read statements run on the DB-API cursor of a session's connection, with SQLAlchemy's meaning of the values.

A statement is compiled once per dialect (and per ``key``: its shape, the number of ids of an IN list); each run
puts the parameters in the driver's order, runs it on the connection of the session's transaction and returns the
driver's plain tuples, with the column types' result processors applied (on SQLite: datetimes, stored as text) and
the parameters through their bind processors (a datetime parameter on SQLite). The rows are the values
``session.connection().execute(statement, params).all()`` gives, without SQLAlchemy's execution machinery (cache
lookup of the compiled form, expanding IN lists rendered again on every run, a ``Row`` per row), which cost a new
gallery page about as much as SQLite reading its rows.

Statements must have no expanding parameters (an IN list is one bound parameter per value, see :func:`id_params`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

_MAX_KEPT = 1024  # compiled statements kept; shapes x id counts stay far below this in practice


@dataclass(frozen=True)
class _Compiled:
    sql: str
    order: tuple[str, ...] | None  # parameter names in the driver's order; None for a named paramstyle
    constants: dict  # the values bound in the statement itself, processed
    bind_processors: tuple[tuple[str, Callable], ...]  # parameters given at run time that need converting
    result_processors: tuple[tuple[int, Callable], ...]  # columns whose raw values need converting


_compiled: dict[Hashable, _Compiled] = {}
_lock = threading.Lock()


def rows(db: Session, key: Hashable, build: Callable[[], Select], params: dict) -> list[tuple]:
    """The rows of the statement ``build()`` (built and compiled on the first run for this dialect and ``key``)
    with ``params``, read in the session's transaction."""
    connection = db.connection()
    dialect = connection.dialect
    compiled = _compiled.get((type(dialect), dialect.server_version_info, key))
    if compiled is None:
        compiled = _compile(dialect, key, build)
    values = {**compiled.constants, **params}
    for name, process in compiled.bind_processors:
        if name in params:
            values[name] = process(values[name])
    args = values if compiled.order is None else [values[name] for name in compiled.order]
    cursor = connection.connection.cursor()
    try:
        cursor.execute(compiled.sql, args)
        found = cursor.fetchall()
    finally:
        cursor.close()
    if compiled.result_processors:
        processors = compiled.result_processors
        converted = []
        for row in found:
            row = list(row)
            for index, process in processors:
                row[index] = process(row[index])
            converted.append(tuple(row))
        return converted
    return found if type(found) is list else list(found)


def id_params(ids: list[int], prefix: str = "id_") -> dict[str, int]:
    """``{prefix0: ids[0], ...}``: the values of an IN list made of :func:`sqlalchemy.bindparam` ``prefix{k}``."""
    return {f"{prefix}{k}": value for k, value in enumerate(ids)}


def _compile(dialect: Dialect, key: Hashable, build: Callable[[], Select]) -> _Compiled:
    statement = build()
    compiled = statement.compile(dialect=dialect)
    if "POSTCOMPILE" in compiled.string:
        raise ValueError("raw_rows needs a statement without expanding parameters")
    processors = {}
    for name, bind in compiled.binds.items():
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            processors[name] = process
    constants = {name: value for name, value in compiled.params.items() if value is not None}
    constants = {name: processors[name](value) if name in processors else value for name, value in constants.items()}
    results = []
    for index, column in enumerate(statement.selected_columns):
        process = column.type.dialect_impl(dialect).result_processor(dialect, None)
        if process is not None:
            results.append((index, process))
    order = tuple(compiled.positiontup) if dialect.positional else None
    found = _Compiled(compiled.string, order, constants, tuple(processors.items()), tuple(results))
    with _lock:
        if len(_compiled) >= _MAX_KEPT:
            _compiled.clear()
        _compiled[(type(dialect), dialect.server_version_info, key)] = found
    return found

"""A counter that every committed write to the gallery's tables raises, in the same transaction: a gallery page
read while the counter had value V is still right while it has V (``faces.web.page_cache``), in every process.

How: a dialect event notes on the database connection each INSERT, UPDATE or DELETE (and the like) whose SQL
names ``images``, ``image_finders``, ``faces`` or ``names``, however it was made (ORM flushes, bulk statements,
plain Core on ``session.connection()``, text SQL); when the session's transaction commits (``before_commit``,
after a last flush), one ``UPDATE data_version`` on each such connection raises the counter. The update is the
transaction's last statement, so its row lock is held only for the commit itself (no waits that could deadlock
with other writers). A rolled back transaction's note is forgotten when its connection goes back to the pool.

Every writer of faces writes through a SQLAlchemy ``Session``. Writes without one (``engine.begin()``, another
program) are not counted and must raise the counter themselves. Connection events (``commit``) would catch those
too, but any connection event listener makes SQLAlchemy join event dispatchers for every new connection: 0.15
million instructions on each request that uses the database, a tenth of a kept gallery page.
The hooks are registered when :mod:`faces.store.models` is imported, i.e. in every process that writes.
"""

from __future__ import annotations

import re

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.pool import Pool

ROW_ID = 1  # the one row of table data_version
_WRITE_VERBS = ("INSERT", "UPDATE", "DELETE", "REPLACE", "MERGE", "WITH", "TRUNCATE")
_GALLERY_TABLES = re.compile(r"\b(?:images|image_finders|faces|names)\b", re.IGNORECASE)
_BUMP = f"UPDATE data_version SET version = version + 1 WHERE id = {ROW_ID}"
_READ = f"SELECT version FROM data_version WHERE id = {ROW_ID}"
_WRITTEN = "faces_gallery_written"  # connection info: this transaction wrote a gallery table
_CONNECTIONS = "faces_connections"  # session info: the connections of the session's transaction


def writes_gallery(statement: str) -> bool:
    """Does the SQL ``statement`` change (or may it change) a table that a gallery page shows?"""
    return statement[:10].lstrip().upper().startswith(_WRITE_VERBS) and bool(_GALLERY_TABLES.search(statement))


@event.listens_for(Engine, "do_execute")
@event.listens_for(Engine, "do_executemany")
def _note_write(_cursor, statement: str, _params, context) -> None:  # noqa: ANN001
    if writes_gallery(statement):
        context.root_connection.info[_WRITTEN] = True


@event.listens_for(Engine, "do_execute_no_params")
def _note_write_no_params(_cursor, statement: str, context) -> None:  # noqa: ANN001
    if writes_gallery(statement):
        context.root_connection.info[_WRITTEN] = True


@event.listens_for(Session, "after_begin")
def _remember_connection(session: Session, _transaction: SessionTransaction, connection: Connection) -> None:
    session.info.setdefault(_CONNECTIONS, []).append(connection)


@event.listens_for(Session, "before_commit")
def _raise_version(session: Session) -> None:
    if session.in_nested_transaction():  # a savepoint: the outer commit raises it
        return
    session.flush()  # what the commit would flush counts too
    for connection in session.info.get(_CONNECTIONS, ()):
        if connection.info.pop(_WRITTEN, False):
            connection.exec_driver_sql(_BUMP)


@event.listens_for(Session, "after_transaction_end")
def _forget_connections(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the session's own transaction, not a savepoint
        session.info.pop(_CONNECTIONS, None)


@event.listens_for(Pool, "checkin")
def _forget_on_checkin(_dbapi_connection, record) -> None:  # noqa: ANN001
    if record is not None:  # a rolled back write
        record.info.pop(_WRITTEN, None)


def read_version(connection: Connection) -> int | None:
    """The counter's value on ``connection``, in its transaction (None when the row is missing: then nothing may
    be cached). A plain DBAPI cursor: a sixth of the time of a SQLAlchemy statement, asked on every gallery page."""
    cursor = connection.connection.dbapi_connection.cursor()
    try:
        cursor.execute(_READ)
        row = cursor.fetchone()
    finally:
        cursor.close()
    return row[0] if row is not None else None

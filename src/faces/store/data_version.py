"""A counter that every committed write to the gallery's tables raises, in the same transaction: a gallery page
read while the counter had value V is still right while it has V (``faces.web.page_cache``), in every process.

How: an engine event notes each INSERT, UPDATE or DELETE (and the like) whose SQL names ``images``,
``image_finders``, ``faces`` or ``names``, whoever runs it (ORM flushes, bulk statements, plain Core on a
connection, text SQL); just before that transaction commits, one ``UPDATE data_version`` on the same database
connection raises the counter. The update is the transaction's last statement, so its row lock is held only for
the commit itself (no waits that could deadlock with other writers). A rollback forgets the note. Writes made
without SQLAlchemy (another program on the same database) are not seen: such a program must raise the counter
itself. The hooks are registered when :mod:`faces.store.models` is imported, i.e. in every process that writes.
"""

from __future__ import annotations

import re

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import Pool

ROW_ID = 1  # the one row of table data_version
_WRITE_VERBS = ("INSERT", "UPDATE", "DELETE", "REPLACE", "MERGE", "WITH", "TRUNCATE")
_GALLERY_TABLES = re.compile(r"\b(?:images|image_finders|faces|names)\b", re.IGNORECASE)
_BUMP = f"UPDATE data_version SET version = version + 1 WHERE id = {ROW_ID}"
_READ = f"SELECT version FROM data_version WHERE id = {ROW_ID}"
_WRITTEN = "faces_gallery_written"  # connection info: this transaction wrote a gallery table


def writes_gallery(statement: str) -> bool:
    """Does the SQL ``statement`` change (or may it change) a table that a gallery page shows?"""
    return statement[:10].lstrip().upper().startswith(_WRITE_VERBS) and bool(_GALLERY_TABLES.search(statement))


@event.listens_for(Engine, "before_cursor_execute")
def _note_write(conn: Connection, _cursor, statement: str, _params, _context, _many) -> None:  # noqa: ANN001
    if writes_gallery(statement):
        conn.info[_WRITTEN] = True


@event.listens_for(Engine, "commit")
def _raise_version(conn: Connection) -> None:
    # runs before the DBAPI commit; the plain DBAPI cursor keeps SQLAlchemy's transaction state untouched
    if conn.info.pop(_WRITTEN, False):
        cursor = conn.connection.dbapi_connection.cursor()
        try:
            cursor.execute(_BUMP)
        finally:
            cursor.close()


@event.listens_for(Engine, "rollback")
def _forget_write(conn: Connection) -> None:
    conn.info.pop(_WRITTEN, None)


@event.listens_for(Pool, "checkin")
def _forget_on_checkin(_dbapi_connection, record) -> None:  # noqa: ANN001
    if record is not None:
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

"""Connecting to the database and bringing its schema up to date on every start (Alembic; a new, empty
database is created from the models directly, which is what the migrations make)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import (
    Column, Engine, MetaData, PrimaryKeyConstraint, String, Table, create_engine, event, inspect, text,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def make_engine(url: str, **kwargs) -> Engine:
    """An engine for ``url``. SQLite gets WAL, foreign keys and a busy timeout so that the web server,
    the scanner and its workers can share one file."""
    if url.startswith("sqlite"):
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # noqa: ANN001
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    if url.startswith("mysql") or url.startswith("mariadb"):
        kwargs.setdefault("pool_recycle", 3600)
    return create_engine(url, pool_pre_ping=True, **kwargs)


def alembic_config(engine: Engine) -> Config:
    """An Alembic configuration pointing at our migrations, bound to ``engine``."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    config.attributes["engine"] = engine
    return config


def head_revision() -> str:
    """The newest migration's revision: the one no other migration names as its ``down_revision``."""
    revisions, parents = set(), set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        source = path.read_text()
        revisions.update(re.findall(r"^revision\s*=\s*['\"]([^'\"]+)['\"]", source, re.M))
        parents.update(re.findall(r"^down_revision\s*=\s*['\"]([^'\"]+)['\"]", source, re.M))
    heads = revisions - parents
    if len(heads) != 1:
        raise RuntimeError(f"the migrations have {len(heads)} heads: {sorted(heads)}")
    return heads.pop()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for a database without our schema."""
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except DBAPIError:
        return None


# Rows that the migrations insert besides the schema: a database created from the models gets them too.
# (tests/store/test_schema.py checks that a created database holds exactly what the migrations make.)
SEED_ROWS: dict[str, list[dict]] = {"data_version": [{"id": 1, "version": 0}]}


def migrate(engine: Engine) -> None:
    """Apply every pending migration; on a new database without any table, create the schema at the newest
    revision directly (:func:`create_at_head`).

    Neither needs Alembic's import (0.1 s of CPU on every command) except an upgrade of an older schema.
    """
    current, head = current_revision(engine), head_revision()
    if current == head:
        return
    if current is None and not inspect(engine).get_table_names():
        create_at_head(engine, head)
        return
    from alembic import command

    command.upgrade(alembic_config(engine), "head")


def create_at_head(engine: Engine, head: str) -> None:
    """Create the schema of the models, the :data:`SEED_ROWS` and Alembic's version table at ``head``, in one
    transaction, on a new, empty database: what running every migration makes."""
    from faces.store.models import Base

    version = Table("alembic_version", MetaData(), Column("version_num", String(32), nullable=False),
                    PrimaryKeyConstraint("version_num", name="alembic_version_pkc"))
    with engine.begin() as connection:
        Base.metadata.create_all(connection)
        for table, rows in SEED_ROWS.items():
            connection.execute(Base.metadata.tables[table].insert(), rows)
        version.create(connection)
        connection.execute(version.insert(), {"version_num": head})


class Store:
    """The database of one faces installation: an engine and a session factory.

    ``Store(url)`` connects and migrates. Use ``with store.session() as s:`` for a unit of work that commits
    on success and rolls back on any exception.
    """

    def __init__(self, url: str, *, run_migrations: bool = True, **engine_kwargs):
        import faces.portability.changes  # noqa: F401 - the change log writes itself on every commit (clone sync)

        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        if run_migrations:
            migrate(self.engine)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in a transaction: committed when the block ends, rolled back if it raises."""
        with self.sessions() as session:
            with session.begin():
                yield session

    def dispose(self) -> None:
        """Close every pooled connection (before forking worker processes, and at exit)."""
        self.engine.dispose()


def open_store(settings) -> Store:  # noqa: ANN001 - faces.config.Settings; avoids an import cycle in type hints
    """The store of ``settings`` (its database URL, or the SQLite file in its data directory), migrated."""
    settings.ensure_data_dir()
    return Store(settings.resolved_database_url)

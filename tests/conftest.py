"""Shared fixtures: the real photos in ../shared/data, and a fresh database on each backend under test.

Backends: ``FACES_TEST_DATABASES`` is a comma-separated list among ``sqlite``, ``postgresql`` and ``mariadb``
(default: ``sqlite``; CI runs all three). PostgreSQL and MariaDB get a new database per test, dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from faces.config import Settings, load_settings
from faces.store.db import Store

ROOT = Path(__file__).resolve().parents[1]
DATA = (ROOT.parent / "shared" / "data").resolve()

SERVER_URLS = {
    "postgresql": os.environ.get("FACES_TEST_POSTGRESQL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
    "mariadb": os.environ.get("FACES_TEST_MARIADB", "mysql+pymysql://root@127.0.0.1:3306/test"),
}
BACKENDS = [b.strip() for b in os.environ.get("FACES_TEST_DATABASES", "sqlite").split(",") if b.strip()]


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The folder of real photos (../shared/data from the project root)."""
    if not DATA.is_dir():
        pytest.fail(f"the shared photos are missing: {DATA}")
    return DATA


def _server_database(backend: str):
    """Create a new, empty database on a server backend; return (url, drop_function)."""
    admin_url = sa.make_url(SERVER_URLS[backend])
    name = f"faces_t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if backend == "postgresql":
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        else:
            conn.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"))

    def drop() -> None:
        with admin.connect() as conn:
            if backend == "postgresql":
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            else:
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
        admin.dispose()

    return admin_url.set(database=name).render_as_string(hide_password=False), drop


@pytest.fixture(params=BACKENDS)
def database_url(request, tmp_path) -> str:
    """The URL of a new, empty database on the backend of this parametrisation."""
    backend = request.param
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'faces.db'}"
        return
    url, drop = _server_database(backend)
    yield url
    drop()


@pytest.fixture
def settings(tmp_path, database_url) -> Settings:
    """Settings with a fresh data directory and database."""
    return load_settings(tmp_path / "data", environ={}, overrides={"database_url": database_url})


@pytest.fixture
def store(settings) -> Store:
    """A migrated store on the fresh database."""
    s = Store(settings.resolved_database_url)
    yield s
    s.dispose()

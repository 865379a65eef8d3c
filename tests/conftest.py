"""Shared fixtures: a clean environment and migrated databases.

SQLite is always tested; PostgreSQL too when ``SEGOPS_TEST_PG_URL`` points at a server
(for example ``postgresql+psycopg://postgres@127.0.0.1:5432/test``). Each test gets its
own database: a SQLite file under ``tmp_path``, or a fresh PostgreSQL database that is
dropped afterwards.

Migrating costs tens of milliseconds, so the schema is built once per session by the
real ``store.db.upgrade`` (a template SQLite file, a template PostgreSQL database) and
copied for each test. The migration tests themselves always start from empty databases.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import URL, Engine, create_engine

from store.db import make_engine, normalise_url, upgrade

PG_URL_ENV = "SEGOPS_TEST_PG_URL"
_CLEARED_PREFIXES = ("SLACK_", "SEGOPS_")

_sqlite_template: Path | None = None


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's Slack, database or segops settings."""
    for name in list(os.environ):
        if name == PG_URL_ENV:
            continue
        if name == "DATABASE_URL" or name.startswith(_CLEARED_PREFIXES):
            monkeypatch.delenv(name)


def _template_file() -> Path:
    """A SQLite file migrated to head, built once per test session."""
    global _sqlite_template
    if _sqlite_template is None:
        directory = Path(tempfile.mkdtemp(prefix="segops-schema-"))
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
        path = directory / "template.db"
        engine = make_engine(f"sqlite:///{path}")
        try:
            upgrade(engine)
        finally:
            engine.dispose()
        # Closing the last connection checkpoints the WAL into the main file.
        assert not path.with_name(path.name + "-wal").exists()
        _sqlite_template = path
    return _sqlite_template


def migrated_url(directory: Path, name: str = "segops.db") -> str:
    """Create ``directory/name``, a SQLite database migrated to head, and return its URL."""
    target = Path(directory) / name
    if target.exists():
        raise FileExistsError(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_template_file(), target)
    return f"sqlite:///{target}"


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """URL of a migrated SQLite file under ``tmp_path``."""
    return migrated_url(tmp_path)


@pytest.fixture(scope="session")
def _pg_admin() -> Iterator[Engine]:
    """An AUTOCOMMIT engine on the server's maintenance database; skips without a server."""
    raw = os.environ.get(PG_URL_ENV)
    if not raw:
        pytest.skip(f"{PG_URL_ENV} is not set")
    engine = create_engine(normalise_url(raw), isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


@contextmanager
def _pg_database(admin: Engine, *, template: str | None = None) -> Iterator[URL]:
    """A new, uniquely named database (optionally copied from ``template``), dropped after."""
    name = f"segops_test_{uuid.uuid4().hex[:12]}"
    source = f' TEMPLATE "{template}"' if template else ""
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"{source}')
    try:
        yield admin.url.set(database=name)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def _pg_template(_pg_admin: Engine) -> Iterator[str]:
    """Name of a PostgreSQL database migrated to head, built once per session."""
    with _pg_database(_pg_admin) as url:
        engine = make_engine(url)
        try:
            upgrade(engine)
        finally:
            engine.dispose()
        assert url.database is not None
        yield url.database


@pytest.fixture
def pg_url(_pg_admin: Engine) -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL database; skips unless SEGOPS_TEST_PG_URL is set."""
    with _pg_database(_pg_admin) as url:
        yield url.render_as_string(hide_password=False)


@pytest.fixture
def _pg_migrated_url(_pg_admin: Engine, _pg_template: str) -> Iterator[str]:
    with _pg_database(_pg_admin, template=_pg_template) as url:
        yield url.render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A migrated engine of its own for each test, on SQLite and (when set up) PostgreSQL."""
    if request.param == "sqlite":
        url = migrated_url(tmp_path)
    else:
        url = request.getfixturevalue("_pg_migrated_url")
    engine = make_engine(url)
    yield engine
    engine.dispose()

"""Engine and session factory, and Alembic migrations run from code.

SQLite (the default) runs in WAL mode with a 5 s busy timeout and enforced foreign
keys; PostgreSQL is reached through psycopg 3 (``postgresql+psycopg://``; plain
``postgresql://`` and ``postgres://`` URLs are rewritten to it). Migrations run in one
transaction, one process at a time (:func:`_lock_for_migration`).

    engine = make_engine("sqlite:///var/segops.db")
    upgrade(engine)                       # idempotent: a no-op when already at head
    with session_scope(engine) as session:
        session.add(...)                  # committed on success, rolled back on error

Alembic's ``alembic.ini`` and ``migrations/`` ship inside this package, so
``upgrade`` works the same from a checkout and from an installed wheel.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import URL, Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError
from sqlalchemy.pool import NullPool
from sqlmodel import Session

from segments.errors import SegopsError

if TYPE_CHECKING:
    from alembic.config import Config

T = TypeVar("T")

PACKAGE_DIR = Path(__file__).resolve().parent
ALEMBIC_INI = PACKAGE_DIR / "alembic.ini"
MIGRATIONS_DIR = PACKAGE_DIR / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 5000


def normalise_url(url: str | URL) -> URL:
    """Parse a database URL, choosing the psycopg 3 driver for plain PostgreSQL URLs."""
    if isinstance(url, str):
        text = url.strip()
        if text.startswith("postgres://"):
            text = "postgresql://" + text.removeprefix("postgres://")
        url = make_url(text)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    return url


def make_engine(url: str | URL, *, busy_timeout_ms: int | None = None, **kwargs: Any) -> Engine:
    """Create an engine; SQLite connections get WAL, a busy timeout and foreign keys.

    For a SQLite file the parent directory is created. ``busy_timeout_ms`` replaces
    SQLite's busy wait (:data:`SQLITE_BUSY_TIMEOUT_MS`); on PostgreSQL it becomes the
    ``lock_timeout``. Extra keyword arguments go to ``sqlalchemy.create_engine``.
    """
    parsed = normalise_url(url)
    if parsed.get_backend_name() != "sqlite":
        kwargs.setdefault("pool_pre_ping", True)
        if busy_timeout_ms is not None and parsed.get_backend_name() == "postgresql":
            kwargs.setdefault("connect_args", {})["options"] = f"-c lock_timeout={busy_timeout_ms}"
        return create_engine(parsed, **kwargs)
    path = _sqlite_file(parsed)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed, **kwargs)
    wait = SQLITE_BUSY_TIMEOUT_MS if busy_timeout_ms is None else busy_timeout_ms
    event.listen(
        engine, "connect", lambda connection, record: _configure_sqlite_connection(connection, wait)
    )
    return engine


def single_connection(engine: Engine) -> bool:
    """True for an in-memory SQLite database: it has no second connection to read it from
    another thread or process."""
    return engine.dialect.name == "sqlite" and _sqlite_file(engine.url) is None


def impatient_engine(engine: Engine, wait: float) -> Engine:
    """An engine on ``engine``'s database whose lock waits give up after ``wait`` seconds.

    For answers that must not wait (an Events API ack): a busy database then raises at
    once, with :func:`is_busy` true. Connections are not pooled. An in-memory SQLite
    database has no second connection to it, so ``engine`` itself is returned.
    """
    if single_connection(engine):
        return engine
    return make_engine(engine.url, busy_timeout_ms=max(1, int(wait * 1000)), poolclass=NullPool)


def _sqlite_file(url: URL) -> Path | None:
    """The file behind a SQLite URL, or None for in-memory and URI-style databases."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).expanduser()


SQLITE_WAL_WAIT = 30.0  # seconds a new connection keeps asking for WAL mode


def _configure_sqlite_connection(dbapi_connection: Any, busy_timeout_ms: int) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")  # before WAL: it locks
        _enable_wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _enable_wal(cursor: Any) -> None:
    """Switch the file to WAL, again while another connection holds it.

    Two processes opening a brand-new file at the same moment both ask for WAL; SQLite
    answers one of them "database is locked" at once, without waiting out the busy
    timeout, when waiting could deadlock. The mode is a property of the file, so the
    loser only has to ask again.
    """
    deadline = time.monotonic() + SQLITE_WAL_WAIT
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error).lower() or time.monotonic() > deadline:
                raise
            time.sleep(0.05 * (0.5 + random.random()))


WRITE_BUDGET = 20.0  # seconds a user-facing write keeps trying against a busy database


BUSY_CODES = ("40001", "40P01", "55P03")  # PostgreSQL: serialization, deadlock, lock timeout


class DatabaseBusy(SegopsError):
    """A write kept finding the database locked for longer than its budget."""


def is_busy(error: BaseException) -> bool:
    """Whether ``error`` means "try again": SQLite locked or busy, a PostgreSQL
    serialization failure, deadlock or lock timeout."""
    if not isinstance(error, OperationalError | DBAPIError):
        return False
    text = str(getattr(error, "orig", error)).lower()
    code = getattr(getattr(error, "orig", None), "sqlstate", None)
    return "database is locked" in text or "database is busy" in text or code in BUSY_CODES


def write(
    engine: Engine,
    work: Callable[[Session], T],
    *,
    budget: float = WRITE_BUDGET,
    pause: float = 0.05,
) -> T:
    """Run ``work(session)`` in one transaction, again while the database is busy.

    Each attempt is a whole transaction (nothing of a failed attempt remains); SQLite
    itself waits up to its busy timeout inside an attempt. After ``budget`` seconds of
    a busy database it raises :class:`DatabaseBusy`, so a caller can tell the person
    instead of losing their input.
    """
    deadline = time.monotonic() + budget
    delay = pause
    while True:
        try:
            with session_scope(engine) as session:
                return work(session)
        except (OperationalError, DBAPIError) as error:
            if not is_busy(error):
                raise
            if time.monotonic() + delay > deadline:
                raise DatabaseBusy(
                    f"the database stayed busy for {budget:.0f} s and nothing was saved"
                ) from None
        time.sleep(delay * (0.5 + random.random()))
        delay = min(delay * 2, 1.0)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One transaction: commit when the block succeeds, roll back if it raises.

    Objects stay usable after the block (``expire_on_commit=False``).
    """
    session = Session(engine, expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config(connection: Connection | None = None) -> Config:
    """The packaged Alembic configuration, bound to ``connection`` when given."""
    from alembic.config import Config

    config = Config(str(ALEMBIC_INI))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["configure_logging"] = False
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(target: Engine | str | URL, revision: str = "head") -> None:
    """Migrate the database forward to ``revision``; a no-op when already there.

    Every command calls this, so a database already at the shipped head is recognised
    by one query, without loading Alembic and its scripts (:func:`shipped_head`)."""
    if revision == "head" and isinstance(target, Engine) and _at(target, shipped_head()):
        return
    from alembic import command

    _run(command.upgrade, target, revision)


def downgrade(target: Engine | str | URL, revision: str) -> None:
    """Migrate the database back to ``revision`` (``"base"`` drops every table)."""
    from alembic import command

    _run(command.downgrade, target, revision)


def shipped_head() -> str:
    """The newest revision shipped, read from the version files' names.

    The revisions form one chain and each id is its file's number prefix
    (``0007_live_notifications.py`` is revision ``0007``, revising ``0006``), so the
    head is the largest prefix; ``tests/store/test_migrations.py`` holds both rules to
    what Alembic itself reads."""
    versions = MIGRATIONS_DIR / "versions"
    return max(p.name.split("_", 1)[0] for p in versions.glob("[0-9]*_*.py"))


def _at(engine: Engine, revision: str) -> bool:
    """True when the database's Alembic version is exactly ``revision``."""
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    except (OperationalError, ProgrammingError):  # never migrated: no version table
        return False
    return [r[0] for r in rows] == [revision]


MIGRATION_LOCK = 7_241_903_551  # PostgreSQL advisory lock key of segops migrations
MIGRATION_WAIT = 120.0  # seconds a SQLite migration waits for another one to finish


def _run(step: Callable[[Config, str], None], target: Engine | str | URL, revision: str) -> None:
    engine = target if isinstance(target, Engine) else make_engine(target)
    try:
        with engine.connect() as connection:
            _lock_for_migration(connection)
            step(alembic_config(connection), revision)
            connection.commit()
    finally:
        if engine is not target:
            engine.dispose()


def _lock_for_migration(connection: Connection) -> None:
    """Make a migration one transaction that only one process runs at a time.

    SQLite: ``BEGIN IMMEDIATE`` takes the write lock first, and pysqlite then runs the
    DDL inside that transaction, so a killed ``segops init`` leaves nothing half-made.
    PostgreSQL (transactional DDL already): a transaction-level advisory lock. Either
    way a second process starting at the same moment waits, then finds the schema at
    head and does nothing.
    """
    if connection.dialect.name == "sqlite":
        deadline = time.monotonic() + MIGRATION_WAIT
        while True:  # another process migrating holds the write lock: wait our turn
            try:
                connection.exec_driver_sql("BEGIN IMMEDIATE")
                return
            except OperationalError as error:
                if not is_busy(error) or time.monotonic() > deadline:
                    raise
                connection.rollback()
                time.sleep(0.1)
    elif connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None when it has never been migrated."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    """The newest revision shipped with this package."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()

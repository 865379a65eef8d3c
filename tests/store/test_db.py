"""Engine settings and the one-transaction session scope."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, func
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from store.db import make_engine, normalise_url, session_scope
from store.models import Lease, Segment, SegmentVersion, utcnow


def _segment(name: str = "trial") -> Segment:
    return Segment(name=name, title="Trial accounts", owner="U111", cadence="daily")


def _pragma(engine: Engine, name: str) -> object:
    with engine.connect() as connection:
        return connection.exec_driver_sql(f"PRAGMA {name}").scalar()


def test_sqlite_engine_uses_wal_journal(db_url: str) -> None:
    engine = make_engine(db_url)
    assert _pragma(engine, "journal_mode") == "wal"
    engine.dispose()


def test_sqlite_engine_sets_busy_timeout(db_url: str) -> None:
    engine = make_engine(db_url)
    assert _pragma(engine, "busy_timeout") == 5000
    engine.dispose()


def test_sqlite_engine_enables_foreign_keys(db_url: str) -> None:
    engine = make_engine(db_url)
    assert _pragma(engine, "foreign_keys") == 1
    engine.dispose()


def test_a_connection_waits_for_wal_mode_while_another_holds_the_file(tmp_path: Path) -> None:
    path = tmp_path / "held.db"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("CREATE TABLE t (x INTEGER)")
    holder.execute("BEGIN EXCLUSIVE")  # still in rollback-journal mode: nobody may switch it
    released = threading.Timer(6.0, lambda: holder.execute("COMMIT"))  # past the busy timeout
    released.start()
    engine = make_engine(f"sqlite:///{path}")
    try:
        started = time.monotonic()
        with engine.connect() as connection:
            mode = connection.exec_driver_sql("PRAGMA journal_mode").scalar()
        assert mode == "wal"
        assert time.monotonic() - started >= 5.5
    finally:
        released.join()
        holder.close()
        engine.dispose()


def test_sqlite_engine_creates_parent_directory(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "deeper" / "segops.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.connect() as connection:
        connection.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    engine.dispose()
    assert path.is_file()


@pytest.mark.parametrize(
    "url",
    [
        "postgres://u:p@db:5432/segops",
        "postgresql://u:p@db:5432/segops",
        "postgresql+psycopg://u:p@db:5432/segops",
    ],
)
def test_postgresql_urls_use_psycopg3(url: str) -> None:
    assert normalise_url(url).drivername == "postgresql+psycopg"
    engine = make_engine(url)  # creating an engine does not connect
    assert engine.dialect.driver == "psycopg"
    engine.dispose()


def test_foreign_keys_are_enforced(engine: Engine) -> None:
    with pytest.raises(IntegrityError), session_scope(engine) as session:
        session.add(
            SegmentVersion(
                segment_id=999,
                version=1,
                rule_text="plan = 'pro'",
                definition_hash="0" * 64,
                change_kind="create",
                author="U111",
            )
        )


def test_session_scope_commits_on_success(engine: Engine) -> None:
    with session_scope(engine) as session:
        session.add(_segment())
    with session_scope(engine) as session:
        assert session.exec(select(Segment.name)).all() == ["trial"]


def test_session_scope_rolls_back_on_error(engine: Engine) -> None:
    with pytest.raises(RuntimeError), session_scope(engine) as session:
        session.add(_segment())
        session.add(Lease(name="scheduler", holder="worker-1", expires_at=utcnow()))
        session.flush()
        raise RuntimeError("boom")
    with session_scope(engine) as session:
        assert session.exec(select(func.count()).select_from(Segment)).one() == 0
        assert session.exec(select(func.count()).select_from(Lease)).one() == 0


def test_session_scope_keeps_objects_usable_after_commit(engine: Engine) -> None:
    with session_scope(engine) as session:
        segment = _segment()
        session.add(segment)
    assert segment.id is not None
    assert segment.name == "trial"

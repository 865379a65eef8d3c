"""Alembic is the schema authority: migrations match the models, in both directions."""

from __future__ import annotations

import io
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import CheckConstraint, Engine, event, inspect
from sqlmodel import select

from store.db import (
    ALEMBIC_INI,
    _run,
    alembic_config,
    current_revision,
    downgrade,
    head_revision,
    make_engine,
    session_scope,
    upgrade,
)
from store.models import Alert, OutboxMessage, Segment, metadata

MODEL_TABLES = set(metadata.tables)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of a database that has never been migrated."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def empty_engine(empty_url: str) -> Iterator[Engine]:
    engine = make_engine(empty_url)
    yield engine
    engine.dispose()


def _schema_diff(engine: Engine) -> list[object]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, metadata)


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def test_upgrade_head_leaves_no_autogenerate_diff(empty_engine: Engine) -> None:
    upgrade(empty_engine)
    assert _schema_diff(empty_engine) == []


def test_check_constraints_match_the_models(empty_engine: Engine) -> None:
    """Autogenerate ignores CHECK constraints, so compare them here (text on SQLite)."""
    upgrade(empty_engine)
    sqlite = empty_engine.dialect.name == "sqlite"
    inspector = inspect(empty_engine)
    reflected = {
        (table, check["name"], check["sqltext"] if sqlite else "")
        for table in MODEL_TABLES
        for check in inspector.get_check_constraints(table)
    }
    declared = {
        (table.name, constraint.name, str(constraint.sqltext) if sqlite else "")
        for table in metadata.tables.values()
        for constraint in table.constraints
        if isinstance(constraint, CheckConstraint)
    }
    assert reflected == declared


def test_upgrade_from_url_reaches_head(empty_url: str) -> None:
    engine = make_engine(empty_url)
    assert current_revision(engine) is None
    upgrade(empty_url)
    assert current_revision(engine) == head_revision()
    assert _tables(engine) == MODEL_TABLES | {"alembic_version"}
    engine.dispose()


def test_upgrade_twice_changes_nothing(empty_engine: Engine) -> None:
    upgrade(empty_engine)
    with session_scope(empty_engine) as session:
        session.add(Segment(name="trial", title="Trial", owner="U111", cadence="daily"))
    statements: list[str] = []

    @event.listens_for(empty_engine, "before_cursor_execute")
    def _record(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        statements.append(statement.lstrip().split()[0].upper())

    upgrade(empty_engine)
    assert not {"CREATE", "ALTER", "DROP", "INSERT", "UPDATE", "DELETE"} & set(statements)
    assert current_revision(empty_engine) == head_revision()
    with session_scope(empty_engine) as session:
        assert session.exec(select(Segment.name)).all() == ["trial"]


def test_downgrade_to_base_drops_every_table(empty_engine: Engine) -> None:
    upgrade(empty_engine)
    downgrade(empty_engine, "base")
    assert _tables(empty_engine) == {"alembic_version"}
    assert current_revision(empty_engine) is None


def test_upgrade_after_downgrade_rebuilds_the_schema(empty_engine: Engine) -> None:
    upgrade(empty_engine)
    downgrade(empty_engine, "base")
    upgrade(empty_engine)
    assert _schema_diff(empty_engine) == []


def test_sqlite_upgrade_leaves_foreign_keys_enforced(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'fk.db'}", pool_size=1)
    upgrade(engine)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()


def test_database_url_is_the_command_line_fallback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'env.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    command.upgrade(alembic_config(), "head")
    engine = make_engine(url)
    assert current_revision(engine) == head_revision()
    engine.dispose()


def test_offline_mode_prints_the_schema_sql() -> None:
    buffer = io.StringIO()
    config = alembic_config()
    config.attributes["url"] = "postgresql+psycopg://segops@localhost/segops"
    config.output_buffer = buffer
    command.upgrade(config, "head", sql=True)
    assert "CREATE TABLE segment_result" in buffer.getvalue()


def test_alembic_command_line_migrates_the_x_url(tmp_path: Path) -> None:
    path = tmp_path / "cli.db"
    command_line = [sys.executable, "-m", "alembic", "-c", str(ALEMBIC_INI)]
    command_line += ["-x", f"url=sqlite:///{path}", "upgrade", "head"]
    subprocess.run(command_line, cwd=tmp_path, check=True, capture_output=True, timeout=60)
    engine = make_engine(f"sqlite:///{path}")
    assert current_revision(engine) == head_revision()
    engine.dispose()
    assert not (tmp_path / "segops.db").exists()


def test_upgrade_to_0002_tells_each_posted_drift_alert_its_message(empty_engine: Engine) -> None:
    upgrade(empty_engine, "0001")
    with session_scope(empty_engine) as session:
        alerts = [
            Alert(kind=kind, severity="warning", message=kind, fingerprint=kind, details={"k": 1})
            for kind in ("size_change", "composition", "kpi")
        ]
        session.add_all(alerts)
        session.flush()
        first, second, unposted = (a.id for a in alerts)
        buttons = [
            {"type": "actions", "elements": [{"action_id": f"alert_{verb}", "value": str(i)}]}
            for i in (first, second)
            for verb in ("ack", "mute")
        ]
        # Only the columns of revision 0001: later revisions add to the model.
        now = datetime.now(UTC)
        shared = {"kind": "drift_alert", "channel": "C111", "files": [], "status": "pending"}
        shared |= {"attempts": 0, "next_attempt_at": now, "created_at": now}
        session.execute(
            sa.insert(OutboxMessage.__table__),  # type: ignore[attr-defined]
            [
                {**shared, "idempotency_key": "drift:1:trial", "thread_key": None}
                | {"text": "drift", "blocks": buttons[:2]},
                {**shared, "idempotency_key": "drift:1:trial#2", "thread_key": "drift:1:trial"}
                | {"text": "drift, continued", "blocks": buttons[2:]},
            ],
        )
    upgrade(empty_engine)
    with session_scope(empty_engine) as session:
        details = {a.id: a.details for a in session.exec(select(Alert)).all()}
    assert details[first] == details[second] == {"k": 1, "posted_with": [first, second]}
    assert details[unposted] == {"k": 1}
    downgrade(empty_engine, "0001")
    with session_scope(empty_engine) as session:
        assert all(a.details == {"k": 1} for a in session.exec(select(Alert)).all())


def test_upgrades_started_together_on_a_fresh_database_both_succeed(empty_url: str) -> None:
    # Two processes, as web and worker start (Alembic's context is global to a process).
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD_UPGRADE, empty_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [child.communicate(timeout=120) for child in children]
    assert [child.returncode for child in children] == [0, 0], [err for _, err in results]
    assert all(out.split() == ["go", "done"] for out, _ in results)
    engine = make_engine(empty_url)
    try:
        assert current_revision(engine) == head_revision()
        assert _schema_diff(engine) == []
    finally:
        engine.dispose()


CHILD_UPGRADE = """
import sys
from store.db import upgrade
print("go", flush=True)
upgrade(sys.argv[1])
print("done", flush=True)
"""


@pytest.mark.slow
def test_an_init_killed_at_any_moment_leaves_a_database_init_can_finish(tmp_path: Path) -> None:
    for delay in (0.0, 0.05, 0.1, 0.2, 0.4):
        url = f"sqlite:///{tmp_path / f'killed-{delay}.db'}"
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD_UPGRADE, url], stdout=subprocess.PIPE, text=True
        )
        assert child.stdout is not None and child.stdout.readline().strip() == "go"
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        child.wait()
        engine = make_engine(url)
        try:
            upgrade(engine)
            assert current_revision(engine) == head_revision()
            assert _schema_diff(engine) == []
        finally:
            engine.dispose()


def test_a_failing_migration_step_leaves_no_table_behind(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'atomic.db'}")

    def create_then_fail(config, revision) -> None:
        config.attributes["connection"].exec_driver_sql("CREATE TABLE half (id INTEGER)")
        raise RuntimeError("interrupted")

    try:
        with pytest.raises(RuntimeError):
            _run(create_then_fail, engine, "head")
        assert "half" not in _tables(engine)
    finally:
        engine.dispose()


def test_revision_ids_are_file_prefixes_in_one_chain_so_the_head_is_read_from_names() -> None:
    from alembic.script import ScriptDirectory

    from store.db import MIGRATIONS_DIR, shipped_head

    scripts = ScriptDirectory.from_config(alembic_config())
    files = sorted((MIGRATIONS_DIR / "versions").glob("[0-9]*_*.py"))
    prefixes = [f.name.split("_", 1)[0] for f in files]
    chain = [r.revision for r in reversed(list(scripts.walk_revisions()))]
    assert chain == prefixes  # one linear chain, in file order
    for script in scripts.walk_revisions():
        assert Path(script.path).name.startswith(f"{script.revision}_")
    assert shipped_head() == head_revision() == prefixes[-1]


def test_a_database_at_head_is_recognised_without_migrating(empty_engine: Engine) -> None:
    upgrade(empty_engine)
    statements: list[str] = []
    event.listen(empty_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    upgrade(empty_engine)
    assert statements == ["SELECT version_num FROM alembic_version"]
    # one revision behind: the same call migrates
    downgrade(empty_engine, "-1")
    upgrade(empty_engine)
    assert current_revision(empty_engine) == head_revision()
    assert len(statements) > 2

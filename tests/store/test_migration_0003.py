"""Migration 0003 adds the job queue to a database with data in place, and removes it again."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text

from store.db import alembic_config, current_revision, downgrade, make_engine, upgrade

REVISION = "0003"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    url = (
        f"sqlite:///{tmp_path / 'empty.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    engine = make_engine(url)
    yield engine
    engine.dispose()


def _previous() -> str:
    previous = ScriptDirectory.from_config(alembic_config()).get_revision(REVISION).down_revision
    assert isinstance(previous, str)
    return previous


def test_upgrade_adds_the_job_table_and_keeps_the_data_then_downgrade_removes_it(
    empty_engine: Engine,
):
    upgrade(empty_engine, _previous())
    now = datetime.now(UTC).replace(tzinfo=None)
    with empty_engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO segment (name, title, tier, status, owner, approvers, cadence,"
                " created_at, updated_at) VALUES ('trial', 'Trial', 'tactical', 'active',"
                " 'U111', '[]', 'daily', :now, :now)"
            ),
            {"now": now},
        )
    assert "job" not in inspect(empty_engine).get_table_names()

    upgrade(empty_engine, REVISION)

    assert current_revision(empty_engine) == REVISION
    with empty_engine.begin() as connection:
        assert connection.execute(text("SELECT name FROM segment")).scalars().all() == ["trial"]
        connection.execute(
            text(
                "INSERT INTO job (kind, args, status, attempts, result, not_before, created_at)"
                " VALUES ('refresh', '{}', 'pending', 0, '{}', :now, :now)"
            ),
            {"now": now},
        )
        with pytest.raises(Exception, match="(?i)check|constraint"):
            with connection.begin_nested():
                connection.execute(
                    text(
                        "INSERT INTO job (kind, args, status, attempts, result, not_before,"
                        " created_at) VALUES ('bogus', '{}', 'pending', 0, '{}', :now, :now)"
                    ),
                    {"now": now},
                )
        assert connection.execute(text("SELECT count(*) FROM job")).scalar_one() == 1

    downgrade(empty_engine, _previous())

    assert "job" not in inspect(empty_engine).get_table_names()
    with empty_engine.connect() as connection:
        assert connection.execute(text("SELECT name FROM segment")).scalars().all() == ["trial"]

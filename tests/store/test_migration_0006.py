"""Migration 0006 adds the sync and API-token tables to a database with data in place,
and removes them again."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text

from store.db import alembic_config, current_revision, downgrade, make_engine, upgrade

REVISION = "0006"
NEW_TABLES = {"sync_destination", "sync_state", "sync_run", "sync_batch", "api_token"}


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


def test_upgrade_adds_the_sync_tables_keeping_the_data_then_downgrade_removes_them(
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
    assert not NEW_TABLES & set(inspect(empty_engine).get_table_names())

    upgrade(empty_engine, REVISION)

    assert current_revision(empty_engine) == REVISION
    assert NEW_TABLES <= set(inspect(empty_engine).get_table_names())
    with empty_engine.begin() as connection:
        segment_id = connection.execute(text("SELECT id FROM segment")).scalar_one()
        connection.execute(
            text(
                "INSERT INTO sync_destination (name, kind, status, created_at)"
                " VALUES ('hook', 'webhook', 'active', :now)"
            ),
            {"now": now},
        )
        destination_id = connection.execute(text("SELECT id FROM sync_destination")).scalar_one()
        connection.execute(
            text(
                "INSERT INTO sync_state (destination_id, segment_id, acked_count, updated_at)"
                " VALUES (:d, :s, 0, :now)"
            ),
            {"d": destination_id, "s": segment_id, "now": now},
        )
        with pytest.raises(Exception, match="(?i)unique|constraint"):
            with connection.begin_nested():
                connection.execute(
                    text(
                        "INSERT INTO sync_state (destination_id, segment_id, acked_count,"
                        " updated_at) VALUES (:d, :s, 0, :now)"
                    ),
                    {"d": destination_id, "s": segment_id, "now": now},
                )
        with pytest.raises(Exception, match="(?i)check|constraint"):
            with connection.begin_nested():
                connection.execute(
                    text(
                        "INSERT INTO sync_destination (name, kind, status, created_at)"
                        " VALUES ('other', 'webhook', 'paused', :now)"
                    ),
                    {"now": now},
                )

    downgrade(empty_engine, _previous())

    assert not NEW_TABLES & set(inspect(empty_engine).get_table_names())
    with empty_engine.connect() as connection:
        assert connection.execute(text("SELECT name FROM segment")).scalars().all() == ["trial"]

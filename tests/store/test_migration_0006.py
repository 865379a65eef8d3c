"""Migration 0006 adds the sync and API-token tables to a database with data in place,
and removes them again."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, inspect, text

from store.db import current_revision, downgrade, upgrade
from tests.store.migration_steps import add_segment, previous_revision

REVISION = "0006"
NEW_TABLES = {"sync_destination", "sync_state", "sync_run", "sync_batch", "api_token"}


def test_upgrade_adds_the_sync_tables_keeping_the_data_then_downgrade_removes_them(
    empty_engine: Engine,
):
    upgrade(empty_engine, previous_revision(REVISION))
    now = datetime.now(UTC).replace(tzinfo=None)
    with empty_engine.begin() as connection:
        add_segment(connection, "trial", now=now)
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

    downgrade(empty_engine, previous_revision(REVISION))

    assert not NEW_TABLES & set(inspect(empty_engine).get_table_names())
    with empty_engine.connect() as connection:
        assert connection.execute(text("SELECT name FROM segment")).scalars().all() == ["trial"]

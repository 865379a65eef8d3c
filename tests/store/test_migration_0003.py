"""Migration 0003 adds the job queue to a database with data in place, and removes it again."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, inspect, text

from store.db import current_revision, downgrade, upgrade
from tests.store.migration_steps import add_segment, previous_revision

REVISION = "0003"


def test_upgrade_adds_the_job_table_and_keeps_the_data_then_downgrade_removes_it(
    empty_engine: Engine,
):
    upgrade(empty_engine, previous_revision(REVISION))
    now = datetime.now(UTC).replace(tzinfo=None)
    with empty_engine.begin() as connection:
        add_segment(connection, "trial", now=now)
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

    downgrade(empty_engine, previous_revision(REVISION))

    assert "job" not in inspect(empty_engine).get_table_names()
    with empty_engine.connect() as connection:
        assert connection.execute(text("SELECT name FROM segment")).scalars().all() == ["trial"]

"""Migration 0008 adds ``brief_view`` to a database with data in place, one row per
person and segment, and removes it again."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, inspect, text

from store.db import current_revision, downgrade, upgrade
from tests.store.migration_steps import add_segment, previous_revision

REVISION = "0008"


def test_upgrade_adds_brief_views_keeping_the_data_then_downgrade_removes_them(
    empty_engine: Engine,
):
    upgrade(empty_engine, previous_revision(REVISION))
    now = datetime.now(UTC).replace(tzinfo=None)
    with empty_engine.begin() as connection:
        add_segment(connection, "trial", now=now)
        segment_id = connection.execute(text("SELECT id FROM segment")).scalar_one()
        connection.execute(
            text(
                "INSERT INTO segment_version (segment_id, version, definition, rule_text,"
                " definition_hash, change_kind, author, created_at)"
                " VALUES (:s, 1, '{}', 'plan = 1', 'h', 'create', 'U111', :now)"
            ),
            {"s": segment_id, "now": now},
        )
        version_id = connection.execute(text("SELECT id FROM segment_version")).scalar_one()
        connection.execute(
            text(
                "INSERT INTO snapshot (as_of, status, data_fingerprint, profile, created_at)"
                " VALUES ('2026-06-30', 'published', 'f', '{}', :now)"
            ),
            {"now": now},
        )
        snapshot_id = connection.execute(text("SELECT id FROM snapshot")).scalar_one()
        connection.execute(
            text(
                "INSERT INTO segment_result (snapshot_id, segment_id, version_id, status, size,"
                ' joined, "left", stats, leave_reasons, created_at)'
                " VALUES (:snap, :s, :v, 'published', 42, 42, 0, '{}', '{}', :now)"
            ),
            {"snap": snapshot_id, "s": segment_id, "v": version_id, "now": now},
        )
        result_id = connection.execute(text("SELECT id FROM segment_result")).scalar_one()
    assert "brief_view" not in inspect(empty_engine).get_table_names()

    upgrade(empty_engine, REVISION)

    assert current_revision(empty_engine) == REVISION
    insert = text(
        "INSERT INTO brief_view (user_id, segment_id, result_id, size, version, seen_at)"
        " VALUES (:u, :s, :r, 42, 1, :now)"
    )
    with empty_engine.begin() as connection:
        assert connection.execute(text("SELECT size FROM segment_result")).scalar_one() == 42
        connection.execute(insert, {"u": "U333", "s": segment_id, "r": result_id, "now": now})
        connection.execute(insert, {"u": "U444", "s": segment_id, "r": result_id, "now": now})
        with pytest.raises(Exception, match="(?i)unique|constraint"):
            with connection.begin_nested():  # one row per person and segment
                connection.execute(
                    insert, {"u": "U333", "s": segment_id, "r": result_id, "now": now}
                )
        with pytest.raises(Exception, match="(?i)foreign key|constraint"):
            with connection.begin_nested():
                connection.execute(insert, {"u": "U555", "s": segment_id, "r": 999, "now": now})
        rows = connection.execute(text("SELECT user_id FROM brief_view ORDER BY user_id")).all()
    assert [r[0] for r in rows] == ["U333", "U444"]

    downgrade(empty_engine, previous_revision(REVISION))

    assert "brief_view" not in inspect(empty_engine).get_table_names()
    with empty_engine.connect() as connection:
        assert connection.execute(text("SELECT name FROM segment")).scalars().all() == ["trial"]
        assert connection.execute(text("SELECT size FROM segment_result")).scalar_one() == 42

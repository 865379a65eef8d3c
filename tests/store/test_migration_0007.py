"""Migration 0007 adds the live-notice cursor to ``live_segment`` rows already there, and
removes it again."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, inspect, text

from store.db import current_revision, downgrade, upgrade
from tests.store.migration_steps import add_segment, previous_revision

REVISION = "0007"
NEW_COLUMNS = {"notified_transition_id", "notified_at"}


def _columns(engine: Engine) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns("live_segment")}


def test_upgrade_adds_the_notice_cursor_keeping_live_rows_then_downgrade_removes_it(
    empty_engine: Engine,
) -> None:
    upgrade(empty_engine, previous_revision(REVISION))
    now = datetime.now(UTC).replace(tzinfo=None)
    with empty_engine.begin() as connection:
        add_segment(connection, "trial", now=now, cadence="live")
        segment_id = connection.execute(text("SELECT id FROM segment")).scalar_one()
        connection.execute(
            text(
                "INSERT INTO live_segment (segment_id, version_id, mode, reasons,"
                " classified_at, built_version_id) VALUES (:s, 3, 'live', '[]', :now, 3)"
            ),
            {"s": segment_id, "now": now},
        )
    assert not NEW_COLUMNS & _columns(empty_engine)

    upgrade(empty_engine, REVISION)

    assert current_revision(empty_engine) == REVISION
    assert NEW_COLUMNS <= _columns(empty_engine)
    with empty_engine.begin() as connection:
        row = connection.execute(
            text(
                "SELECT segment_id, built_version_id, notified_transition_id, notified_at"
                " FROM live_segment"
            )
        ).one()
        assert tuple(row) == (segment_id, 3, None, None)
        connection.execute(
            text("UPDATE live_segment SET notified_transition_id = 41, notified_at = :now"),
            {"now": now},
        )

    downgrade(empty_engine, previous_revision(REVISION))

    assert not NEW_COLUMNS & _columns(empty_engine)
    with empty_engine.begin() as connection:
        kept = connection.execute(text("SELECT segment_id, built_version_id FROM live_segment"))
        assert [tuple(r) for r in kept] == [(segment_id, 3)]

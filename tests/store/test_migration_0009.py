"""Migration 0009 on a database with syncs in place: ids reported missing stop counting
as acknowledged, and runs may retire a segment; the downgrade puts both back."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pyroaring import BitMap
from sqlalchemy import Engine, text

from segments.membership import decode, encode
from store.db import current_revision, downgrade, upgrade
from tests.store.migration_steps import add_segment, previous_revision

REVISION = "0009"


def _insert_syncs(engine: Engine, now: datetime) -> None:
    with engine.begin() as connection:
        for name in ("trial", "paid"):
            add_segment(connection, name, now=now)
        connection.execute(
            text(
                "INSERT INTO sync_destination (name, kind, status, created_at)"
                " VALUES ('hubspot', 'hubspot', 'active', :now)"
            ),
            {"now": now},
        )
        rows = [
            ("trial", BitMap([1, 2, 3, 5]), BitMap([3, 5])),  # two acknowledged, never added
            ("paid", BitMap([7, 8]), None),
        ]
        for segment, acked, missing in rows:
            connection.execute(
                text(
                    "INSERT INTO sync_state (destination_id, segment_id, acked, missing,"
                    " acked_count, updated_at) VALUES ((SELECT id FROM sync_destination),"
                    " (SELECT id FROM segment WHERE name = :s), :acked, :missing, :count, :now)"
                ),
                {
                    "s": segment,
                    "acked": encode(acked),
                    "missing": encode(missing) if missing is not None else None,
                    "count": len(acked),
                    "now": now,
                },
            )


def _states(engine: Engine) -> dict[str, tuple]:
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT segment.name, acked, missing, acked_count FROM sync_state"
                " JOIN segment ON segment.id = sync_state.segment_id"
            )
        ).all()
    return {
        name: (set(decode(acked)), set(decode(missing)) if missing else None, count)
        for name, acked, missing, count in rows
    }


def _add_run(connection, kind: str, now: datetime) -> None:
    connection.execute(
        text(
            "INSERT INTO sync_run (destination_id, segment_id, kind, status, added, removed,"
            " missing, dead, notified, reset_done, created_at) VALUES ((SELECT id FROM"
            " sync_destination), (SELECT id FROM segment WHERE name = 'trial'), :kind, 'open',"
            " 0, 0, 0, 0, false, false, :now)"
        ),
        {"kind": kind, "now": now},
    )


def test_upgrade_gives_back_missing_ids_and_allows_retiring_then_downgrade_restores(
    empty_engine: Engine,
):
    upgrade(empty_engine, previous_revision(REVISION))
    now = datetime.now(UTC).replace(tzinfo=None)
    _insert_syncs(empty_engine, now)

    upgrade(empty_engine, REVISION)

    assert current_revision(empty_engine) == REVISION
    assert _states(empty_engine) == {
        "trial": ({1, 2}, {3, 5}, 2),
        "paid": ({7, 8}, None, 2),
    }
    with empty_engine.begin() as connection:
        attempts = dict(
            connection.execute(
                text(
                    "SELECT segment.name, missing_attempts FROM sync_state JOIN segment"
                    " ON segment.id = sync_state.segment_id"
                )
            ).all()
        )
        assert attempts == {"trial": 1, "paid": 0}
        assert (
            connection.execute(
                text("SELECT count(*) FROM sync_state WHERE missing_retry_at IS NOT NULL")
            ).scalar_one()
            == 0
        )  # due at the next sync
        _add_run(connection, "retire", now)
        with pytest.raises(Exception, match="(?i)check|constraint"):
            with connection.begin_nested():
                _add_run(connection, "erase", now)

    downgrade(empty_engine, previous_revision(REVISION))

    assert _states(empty_engine)["trial"] == ({1, 2, 3, 5}, {3, 5}, 4)
    with empty_engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM sync_run")).scalar_one() == 0

"""Migration 0010 adds ``outbox_message.edits`` to a database with queued messages in
place (they keep posting as before) and the ``segment_origin`` table, and removes them
again."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, inspect, text

from store.db import current_revision, downgrade, upgrade
from tests.store.migration_steps import add_segment, previous_revision

REVISION = "0010"
INSERT = (
    "INSERT INTO outbox_message (idempotency_key, kind, channel, text, blocks, files,"
    " status, attempts, next_attempt_at, created_at{extra}) VALUES (:key, 'proposal', 'C111',"
    " 'Proposal #1', '[]', '[]', 'pending', 0, :now, :now{value})"
)


def columns(engine: Engine) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns("outbox_message")}


def test_upgrade_adds_edits_keeping_queued_messages_then_downgrade_removes_it(
    empty_engine: Engine,
):
    upgrade(empty_engine, previous_revision(REVISION))
    now = datetime.now(UTC).replace(tzinfo=None)
    with empty_engine.begin() as connection:
        connection.execute(
            text(INSERT.format(extra="", value="")), {"key": "proposal:1", "now": now}
        )
    assert "edits" not in columns(empty_engine)
    assert "segment_origin" not in inspect(empty_engine).get_table_names()

    upgrade(empty_engine, REVISION)

    assert current_revision(empty_engine) == REVISION
    assert "edits" in columns(empty_engine)
    assert "segment_origin" in inspect(empty_engine).get_table_names()
    with empty_engine.begin() as connection:
        kept = connection.execute(
            text("SELECT idempotency_key, status, edits FROM outbox_message")
        ).all()
        assert [tuple(r) for r in kept] == [("proposal:1", "pending", None)]
        connection.execute(
            text(INSERT.format(extra=", edits", value=", 'key:proposal:1'")),
            {"key": "proposal:1:decided", "now": now},
        )
        for name in ("smb", "paying"):
            add_segment(connection, name, now=now)
        smb, paying = connection.execute(text("SELECT id FROM segment ORDER BY id")).scalars()
        connection.execute(
            text(
                "INSERT INTO segment_version (segment_id, version, definition, rule_text,"
                " definition_hash, change_kind, author, created_at) VALUES (:s, 1, '{}',"
                " 'plan = 1', 'h', 'create', 'U111', :now)"
            ),
            {"s": smb, "now": now},
        )
        version = connection.execute(text("SELECT id FROM segment_version")).scalar_one()
        origin = (
            "INSERT INTO segment_origin (segment_id, source_segment_id, source_version_id, kind,"
            " created_at) VALUES (:p, :s, :v, :kind, :now)"
        )
        values = {"p": paying, "s": smb, "v": version, "now": now}
        connection.execute(text(origin), {**values, "kind": "merge"})
        with pytest.raises(Exception, match="(?i)check"):
            with connection.begin_nested():
                reverse = {**values, "p": smb, "s": paying, "kind": "copy"}
                connection.execute(text(origin), reverse)  # a kind that is no merge or split

    downgrade(empty_engine, previous_revision(REVISION))

    assert "edits" not in columns(empty_engine)
    assert "segment_origin" not in inspect(empty_engine).get_table_names()
    with empty_engine.begin() as connection:
        keys = connection.execute(
            text("SELECT idempotency_key FROM outbox_message ORDER BY id")
        ).scalars()
        assert list(keys) == ["proposal:1", "proposal:1:decided"]

"""Revision 0004 adds the live tables to a database holding data, and removes them again."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlmodel import select

from store.db import alembic_config, downgrade, make_engine, session_scope, upgrade
from store.models import Segment

LIVE_TABLES = {
    "live_segment",
    "live_state",
    "live_event",
    "live_member",
    "live_transition",
    "live_dead_letter",
    "live_counter",
}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    return request.getfixturevalue("pg_url")


def test_upgrade_to_0004_keeps_the_catalog_and_adds_the_live_tables(empty_url: str) -> None:
    engine = make_engine(empty_url)
    try:
        previous = ScriptDirectory.from_config(alembic_config()).get_revision("0004").down_revision
        assert isinstance(previous, str)
        upgrade(engine, previous)
        with session_scope(engine) as session:
            session.add(Segment(name="trial", title="Trial", owner="U111", cadence="daily"))
        assert not LIVE_TABLES & set(inspect(engine).get_table_names())
        upgrade(engine, "0004")
        assert LIVE_TABLES <= set(inspect(engine).get_table_names())
        with session_scope(engine) as session:
            segment = session.exec(select(Segment)).one()
            assert segment.name == "trial"
            segment_id = segment.id
        # plain SQL: the models describe the head schema, not this revision's
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO live_segment (segment_id, version_id, mode, reasons,"
                    " classified_at) VALUES (:s, 1, 'live', '[]', :now)"
                ),
                {"s": segment_id, "now": datetime.now(UTC).replace(tzinfo=None)},
            )
            connection.execute(
                text("INSERT INTO live_member (segment_id, entity_id) VALUES (:s, 7)"),
                {"s": segment_id},
            )
        with engine.begin() as connection:
            members = connection.execute(text("SELECT entity_id FROM live_member")).all()
            assert [tuple(m) for m in members] == [(7,)]
        downgrade(engine, previous)
        assert not LIVE_TABLES & set(inspect(engine).get_table_names())
        with session_scope(engine) as session:
            assert session.exec(select(Segment.name)).all() == ["trial"]
    finally:
        engine.dispose()

"""What the tests of each revision share: the revision a given one upgrades from (looked
up, so the chain can grow) and a segment row written in plain SQL (the models describe
the head schema, not the revision under test). Their empty database is ``empty_engine``
in conftest."""

from __future__ import annotations

from datetime import datetime

from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from store.db import alembic_config


def previous_revision(revision: str) -> str:
    """The revision ``revision`` upgrades from."""
    down = ScriptDirectory.from_config(alembic_config()).get_revision(revision).down_revision
    assert isinstance(down, str)
    return down


def add_segment(connection: Connection, name: str, *, now: datetime, cadence: str = "daily") -> int:
    """Insert an active tactical segment owned by U111 with the columns every revision
    has (title = name); its id."""
    connection.execute(
        text(
            "INSERT INTO segment (name, title, tier, status, owner, approvers, cadence,"
            " created_at, updated_at) VALUES (:name, :title, 'tactical', 'active',"
            " 'U111', '[]', :cadence, :now, :now)"
        ),
        {"name": name, "title": name.title(), "cadence": cadence, "now": now},
    )
    found = connection.execute(text("SELECT id FROM segment WHERE name = :name"), {"name": name})
    return int(found.scalar_one())

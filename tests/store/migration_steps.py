"""What the tests of each revision share: the revision a given one upgrades from (looked
up, so the chain can grow). Their empty database is ``empty_engine`` in conftest."""

from __future__ import annotations

from alembic.script import ScriptDirectory

from store.db import alembic_config


def previous_revision(revision: str) -> str:
    """The revision ``revision`` upgrades from."""
    down = ScriptDirectory.from_config(alembic_config()).get_revision(revision).down_revision
    assert isinstance(down, str)
    return down

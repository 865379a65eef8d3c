"""The entity dictionary: keys appended in bulk and read back in dense-id order."""

from __future__ import annotations

from sqlalchemy import Engine, text

from store.db import session_scope
from store.entities import add_entity_keys, entity_keys, keys_for_ids


def test_keys_come_back_in_dense_id_order(engine: Engine) -> None:
    first = [f"acct-{i:05d}" for i in range(3000, 0, -1)]  # not in text order
    later = ["zeta", "alpha", "ünïcode", "with space", "comma,inside", "line\nbreak"]
    with session_scope(engine) as session:
        add_entity_keys(session, start=0, keys=first)
    with session_scope(engine) as session:
        add_entity_keys(session, start=len(first), keys=later)
    with session_scope(engine) as session:
        keys = entity_keys(session)
        assert keys.dtype == "str"
        assert list(keys) == first + later
        assert keys_for_ids(session, ids=[3000, 0, 3005]) == ["zeta", first[0], "line\nbreak"]


def test_an_empty_dictionary_reads_as_no_keys(engine: Engine) -> None:
    with session_scope(engine) as session:
        keys = entity_keys(session)
    assert len(keys) == 0
    assert keys.dtype == "str"


def test_a_key_holding_the_separator_is_read_whole(engine: Engine) -> None:
    """The joined read splits on the unit separator; a key with one inside must not split."""
    keys = ["a", "b\x1fc", "", "d"]
    with session_scope(engine) as session:
        add_entity_keys(session, start=0, keys=keys)
    with session_scope(engine) as session:
        assert list(entity_keys(session)) == keys
        rows = session.connection().execute(text("SELECT count(*) FROM entity")).scalar_one()
    assert rows == 4

"""Store functions of the entity dictionary: every entity key ever seen, by dense id.

Dense ids index the membership bitmaps. Keyword-only after the session, never
committing: the refresh owns the transaction.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Iterator, Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, insert, select, text
from sqlmodel import Session

from store.models import Entity

BULK_CHUNK = 50_000


def entity_keys(session: Session) -> pd.Index:
    """The entity dictionary in dense-id order (string dtype: fast hash lookups).

    SQLite and PostgreSQL hand the keys over as one separated text that Arrow splits: a
    million keys as rows cost three times as long (one Python string per row). A key
    holding the separator itself falls back to reading rows.
    """
    connection = session.connection()
    joined = _joined_keys(connection)
    if joined is not None:
        return joined
    # The DB-API cursor directly: a million rows through the ORM result layer cost ~1 s.
    cursor = connection.connection.driver_connection.cursor()
    try:
        cursor.execute("SELECT key FROM entity ORDER BY id")
        keys = [row[0] for row in cursor.fetchall()]
    finally:
        cursor.close()
    return pd.Index(keys, dtype="str")


_SEPARATOR = "\x1f"  # the ASCII unit separator: no id has it, and a key that does is caught
_JOINED = {
    "sqlite": "SELECT count(*), group_concat(key, char(31)) "
    "FROM (SELECT key FROM entity ORDER BY id)",
    "postgresql": "SELECT count(*), string_agg(key, chr(31) ORDER BY id) FROM entity",
}


def _joined_keys(connection: Connection) -> pd.Index | None:
    """The dictionary from one joined text, or None when the database cannot join it or
    the split does not give one key per row."""
    query = _JOINED.get(connection.dialect.name)
    if query is None:
        return None
    count, joined = connection.execute(text(query)).one()
    if not count:
        return pd.Index([], dtype="str")
    keys = pc.split_pattern(pa.array([joined], pa.large_string()), _SEPARATOR).flatten()
    if len(keys) != count:
        return None
    return pd.Index(pd.array(keys.cast(pa.string()), dtype="str"))


def keys_of(session: Session, *, dense: Collection[int]) -> list[str]:
    """The entity keys of these dense ids, in dense-id order."""
    if not len(dense):
        return []
    rows = session.connection().execute(
        text("SELECT id, key FROM entity WHERE id >= :lo AND id <= :hi ORDER BY id"),
        {"lo": min(dense), "hi": max(dense)},
    )
    return [key for number, key in rows if number in dense]


def add_entity_keys(session: Session, *, start: int, keys: Sequence[str] | pd.Index) -> None:
    """Append new keys (a list or a text index) to the entity dictionary, in the refresh's
    transaction.

    A first refresh can add a million keys, so this uses the driver's bulk path:
    ``executemany`` on SQLite, ``COPY`` on PostgreSQL (psycopg 3), Core otherwise.
    """
    if not len(keys):
        return
    connection = session.connection()
    dialect = connection.dialect
    # rows made as they are written, a slice of Python strings at a time: ten million keys
    # as (id, key) tuples at once would be ~1.5 GB
    rows = zip(itertools.count(start), _text_in_slices(keys))
    raw = connection.connection.driver_connection
    if dialect.name == "sqlite":
        cursor = raw.cursor()
        try:
            cursor.executemany("INSERT INTO entity (id, key) VALUES (?, ?)", rows)
        finally:
            cursor.close()
    elif dialect.name == "postgresql" and dialect.driver == "psycopg":
        with raw.cursor() as cursor, cursor.copy("COPY entity (id, key) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    else:
        table = Entity.__table__  # type: ignore[attr-defined]
        while chunk := [{"id": i, "key": k} for i, k in itertools.islice(rows, BULK_CHUNK)]:
            connection.execute(insert(table), chunk)


def _text_in_slices(keys: Sequence[str] | pd.Index) -> Iterator[str]:
    for i in range(0, len(keys), BULK_CHUNK):
        part = keys[i : i + BULK_CHUNK]
        yield from part.tolist() if isinstance(part, pd.Index) else part


IN_CHUNK = 500
FULL_READ = 20_000


def keys_for_ids(session: Session, *, ids: list[int]) -> list[str]:
    """The keys of dense ``ids``, aligned with them (KeyError for an unknown id).

    Few ids are looked up by primary key; many read the whole dictionary once.
    """
    if len(ids) > FULL_READ:
        keys = entity_keys(session)
        if ids and max(ids) >= len(keys):
            raise KeyError(max(ids))
        return [str(k) for k in keys[ids]]
    found: dict[int, str] = {}
    for i in range(0, len(ids), IN_CHUNK):
        chunk = ids[i : i + IN_CHUNK]
        rows = session.execute(select(Entity.id, Entity.key).where(Entity.id.in_(chunk)))  # type: ignore[attr-defined]
        found.update((int(i), str(k)) for i, k in rows)
    return [found[i] for i in ids]


def id_of(session: Session, *, key: str) -> int | None:
    """The dense id of entity ``key``, or None when it was never seen."""
    return session.execute(select(Entity.id).where(Entity.key == key)).scalar_one_or_none()


def known_keys(session: Session, *, keys: list[str]) -> set[str]:
    """Which of ``keys`` are in the entity dictionary."""
    from sqlalchemy import select

    found: set[str] = set()
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        found.update(session.execute(select(Entity.key).where(Entity.key.in_(chunk))).scalars())
    return found

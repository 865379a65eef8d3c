"""Store functions of the live tables: classification, entity state, applied event ids,
members, transitions, dead letters and counters.

Keyword-only after the session, never committing: :mod:`commands.live` applies one
batch of events (state, event ids, members and transitions) in one transaction.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from store.models import (
    LiveCounter,
    LiveDeadLetter,
    LiveEvent,
    LiveMember,
    LiveSegment,
    LiveState,
    LiveTransition,
)

CHUNK = 500


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _upsert(session: Session, table: Any, rows: list[dict[str, Any]], keys: list[str]) -> None:
    """Insert ``rows``, replacing the other columns where ``keys`` already exist (one
    statement, compiled once, run with the driver's ``executemany``)."""
    if not rows:
        return
    connection = session.connection()
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(table)
    others = {c: stmt.excluded[c] for c in rows[0] if c not in keys}
    connection.execute(stmt.on_conflict_do_update(index_elements=keys, set_=others), rows)


def _insert(
    session: Session, table: Any, rows: list[dict[str, Any]], *, replace_on: list[str] | None = None
) -> None:
    """Insert ``rows`` with the DB-API cursor's ``executemany``.

    The hot path writes thousands of rows a second, and SQLAlchemy's per-row parameter
    processing costs more than the insert itself, so (like :mod:`store.entities`) the
    rows go to the driver as tuples. Datetimes are written the way ``UTCDateTime``
    writes them: naive UTC text on SQLite, aware values on PostgreSQL. ``replace_on``
    names the key columns of an upsert (``ON CONFLICT ... DO UPDATE``, both dialects).
    """
    if not rows:
        return
    connection = session.connection()
    names = list(rows[0])
    sqlite_dialect = connection.dialect.name == "sqlite"
    mark = "?" if sqlite_dialect or connection.dialect.paramstyle == "qmark" else "%s"
    sql = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join(mark for _ in names)})"
    if replace_on:
        others = ", ".join(f"{n} = excluded.{n}" for n in names if n not in replace_on)
        sql += f" ON CONFLICT ({', '.join(replace_on)}) DO UPDATE SET {others}"
    seen: dict[int, Any] = {}  # rows of a batch share their datetimes: convert each once

    def raw(value: Any) -> Any:
        if not isinstance(value, datetime):
            return value
        found = seen.get(id(value))
        if found is None:
            found = seen[id(value)] = _raw(value, sqlite_dialect)
        return found

    values = [tuple(raw(row[n]) for n in names) for row in rows]
    cursor = connection.connection.driver_connection.cursor()
    try:
        cursor.executemany(sql, values)
    finally:
        cursor.close()


def _raw(value: Any, sqlite_dialect: bool) -> Any:
    if isinstance(value, datetime):
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        if sqlite_dialect:
            return value.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    return value


# ---------------------------------------------------------------- classification


def classifications(session: Session) -> dict[int, LiveSegment]:
    """Every segment's stored classification, by segment id."""
    return {row.segment_id: row for row in session.exec(select(LiveSegment)).scalars()}


def save_classification(
    session: Session, *, segment_id: int, version_id: int, mode: str, reasons: list[str], now
) -> None:
    """Record the classification of a segment's version (replacing an earlier one)."""
    _upsert(
        session,
        LiveSegment.__table__,
        [
            {
                "segment_id": segment_id,
                "version_id": version_id,
                "mode": mode,
                "reasons": reasons,
                "classified_at": now,
            }
        ],
        ["segment_id"],
    )


def mark_built(session: Session, *, segment_id: int, version_id: int, now: datetime) -> None:
    """The consumer built the live membership of ``version_id``."""
    found = session.get(LiveSegment, segment_id)
    if found is None:
        session.add(
            LiveSegment(
                segment_id=segment_id,
                version_id=version_id,
                mode="live",
                classified_at=now,
                built_version_id=version_id,
            )
        )
    else:
        found.built_version_id = version_id
        session.add(found)
    session.flush()


def mark_reconciled(session: Session, *, segment_id: int, result_id: int) -> None:
    session.execute(
        update(LiveSegment)
        .where(LiveSegment.segment_id == segment_id)
        .values(reconciled_result_id=result_id)
    )


# ---------------------------------------------------------------- events and state


def applied_ids(session: Session, *, ids: Collection[str]) -> set[str]:
    """Which of ``ids`` were applied already."""
    found: set[str] = set()
    for chunk in _chunks(list(ids)):
        found.update(
            session.execute(select(LiveEvent.event_id).where(LiveEvent.event_id.in_(chunk)))
            .scalars()
            .all()
        )
    return found


def add_applied(session: Session, *, rows: list[dict[str, Any]]) -> None:
    """Record applied events ``{event_id, ts, accepted_at, applied_at}``; a repeated id
    fails the transaction (the primary key), so nothing applies twice."""
    _insert(session, LiveEvent.__table__, rows)


def prune_applied(session: Session, *, before: datetime) -> int:
    """Forget applied ids of events timed before ``before`` (older ones are refused as late)."""
    return session.execute(delete(LiveEvent).where(LiveEvent.ts < before)).rowcount


def load_states(session: Session, *, entity_ids: Collection[int]) -> dict[int, str]:
    out: dict[int, str] = {}
    for chunk in _chunks(sorted(entity_ids)):
        rows = session.execute(
            select(LiveState.entity_id, LiveState.data).where(LiveState.entity_id.in_(chunk))
        )
        out.update((entity, data) for entity, data in rows)
    return out


def all_states(session: Session) -> Iterator[tuple[int, str]]:
    """Every entity's state, by entity id."""
    yield from session.execute(
        select(LiveState.entity_id, LiveState.data).order_by(LiveState.entity_id)
    ).all()


def save_states(session: Session, *, states: dict[int, str], now: datetime) -> None:
    rows = [{"entity_id": e, "data": d, "updated_at": now} for e, d in states.items()]
    _insert(session, LiveState.__table__, rows, replace_on=["entity_id"])


# ---------------------------------------------------------------- members and transitions


def members_among(
    session: Session, *, segment_ids: Collection[int], entity_ids: Collection[int]
) -> set[tuple[int, int]]:
    """``(segment id, entity id)`` pairs that are members, among those given."""
    found: set[tuple[int, int]] = set()
    if not segment_ids:
        return found
    for chunk in _chunks(sorted(entity_ids)):
        rows = session.execute(
            select(LiveMember.segment_id, LiveMember.entity_id).where(
                LiveMember.segment_id.in_(list(segment_ids)), LiveMember.entity_id.in_(chunk)
            )
        )
        found.update((s, e) for s, e in rows)
    return found


def members(session: Session, *, segment_id: int) -> list[int]:
    """A live segment's members, by entity id."""
    rows = session.execute(
        select(LiveMember.entity_id)
        .where(LiveMember.segment_id == segment_id)
        .order_by(LiveMember.entity_id)
    )
    return list(rows.scalars())


def member_count(session: Session, *, segment_id: int) -> int:
    query = select(func.count()).select_from(LiveMember).where(LiveMember.segment_id == segment_id)
    return int(session.execute(query).scalar_one())


def add_members(session: Session, *, pairs: Iterable[tuple[int, int]]) -> None:
    rows = [{"segment_id": s, "entity_id": e} for s, e in pairs]
    _insert(session, LiveMember.__table__, rows)


def remove_members(session: Session, *, pairs: Collection[tuple[int, int]]) -> None:
    for chunk in _chunks(sorted(pairs)):
        session.execute(
            delete(LiveMember).where(
                tuple_(LiveMember.segment_id, LiveMember.entity_id).in_(list(chunk))
            )
        )


def clear_members(session: Session, *, segment_id: int) -> None:
    session.execute(delete(LiveMember).where(LiveMember.segment_id == segment_id))


def add_transitions(session: Session, *, rows: list[dict[str, Any]]) -> None:
    """Record joins and leaves ``{segment_id, entity_id, kind, event_id, clause,
    accepted_at, recorded_at}``."""
    _insert(session, LiveTransition.__table__, rows)


def transitions(session: Session, *, segment_id: int, limit: int = 100) -> list[LiveTransition]:
    """A segment's latest transitions, newest first."""
    query = (
        select(LiveTransition)
        .where(LiveTransition.segment_id == segment_id)
        .order_by(LiveTransition.id.desc())
        .limit(limit)
    )
    return list(session.execute(query).scalars())


def last_transition_id(session: Session, *, segment_id: int) -> int:
    """The id of the segment's newest transition; 0 when it has none."""
    query = select(func.max(LiveTransition.id)).where(LiveTransition.segment_id == segment_id)
    return int(session.execute(query).scalar_one() or 0)


def transition_counts(
    session: Session, *, segment_id: int, after: int, upto: int
) -> list[tuple[str, str, int]]:
    """``(kind, clause, count)`` of the segment's transitions with ``after < id <= upto``,
    most frequent first."""
    n = func.count().label("n")
    query = (
        select(LiveTransition.kind, LiveTransition.clause, n)
        .where(
            LiveTransition.segment_id == segment_id,
            LiveTransition.id > after,
            LiveTransition.id <= upto,
        )
        .group_by(LiveTransition.kind, LiveTransition.clause)
        .order_by(n.desc(), LiveTransition.kind, LiveTransition.clause)
    )
    return [(kind, clause, int(count)) for kind, clause, count in session.execute(query)]


def recent_transitions(
    session: Session, *, segment_id: int, kind: str, after: int, upto: int, limit: int
) -> list[LiveTransition]:
    """The newest ``limit`` transitions of ``kind`` with ``after < id <= upto``."""
    query = (
        select(LiveTransition)
        .where(
            LiveTransition.segment_id == segment_id,
            LiveTransition.kind == kind,
            LiveTransition.id > after,
            LiveTransition.id <= upto,
        )
        .order_by(LiveTransition.id.desc())
        .limit(limit)
    )
    return list(session.execute(query).scalars())


def mark_notified(session: Session, *, segment_id: int, transition_id: int, at: datetime) -> None:
    """A live notice covered the segment's transitions up to ``transition_id``."""
    session.execute(
        update(LiveSegment)
        .where(LiveSegment.segment_id == segment_id)
        .values(notified_transition_id=transition_id, notified_at=at)
    )


# ---------------------------------------------------------------- dead letters and counters


def add_dead_letters(session: Session, *, rows: list[dict[str, Any]]) -> None:
    """Record events that could not be applied ``{event_id, reason, payload, received_at}``."""
    _insert(session, LiveDeadLetter.__table__, rows)


def dead_letters(session: Session, *, limit: int = 100) -> list[LiveDeadLetter]:
    query = select(LiveDeadLetter).order_by(LiveDeadLetter.id.desc()).limit(limit)
    return list(session.execute(query).scalars())


def bump(session: Session, *, name: str, by: int) -> None:
    """Add ``by`` to the counter ``name``."""
    if not by:
        return
    found = session.get(LiveCounter, name)
    if found is None:
        session.add(LiveCounter(name=name, value=by))
    else:
        session.execute(
            update(LiveCounter).where(LiveCounter.name == name).values(value=LiveCounter.value + by)
        )
    session.flush()


def take_turn(session: Session, *, name: str = "batches") -> None:
    """Count one live transaction, as its FIRST statement: the write takes SQLite's write
    lock and PostgreSQL's row lock on the counter until the commit, so consumers applying
    batches at the same time take turns and never overwrite each other's entity state."""
    connection = session.connection()
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(LiveCounter.__table__).values(name=name, value=1)
    connection.execute(
        stmt.on_conflict_do_update(
            index_elements=["name"], set_={"value": LiveCounter.__table__.c.value + 1}
        )
    )


def counters(session: Session) -> dict[str, int]:
    return {row.name: row.value for row in session.execute(select(LiveCounter)).scalars()}

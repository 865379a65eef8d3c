"""Store functions of membership syncs: destinations, acknowledged state, runs and batches.

The delivery discipline is the outbox's (:mod:`store.outbox`): a batch is claimed with a
compare-and-set on ``(status, attempts)`` and a claim lease in ``next_attempt_at``, so
two workers never send it together and a batch left ``sending`` by a dead worker is
taken again once its lease runs out. Keyword-only after the session, never committing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pyroaring import BitMap
from sqlalchemy import func, or_, select, update
from sqlmodel import Session

from segments.membership import decode, encode
from store.models import SyncBatch, SyncDestination, SyncRun, SyncState, utcnow

DUE_STATUSES = ("pending", "sending")
OPEN_RUNS = ("open", "held")


def bitmap(data: bytes | None) -> BitMap:
    """A stored bitmap column, empty when unset."""
    return decode(data) if data else BitMap()


def destination(session: Session, *, name: str, kind: str) -> SyncDestination:
    """The destination row ``name``, created on first use."""
    row = session.execute(
        select(SyncDestination).where(SyncDestination.name == name)
    ).scalar_one_or_none()
    if row is None:
        row = SyncDestination(name=name, kind=kind)
        session.add(row)
        session.flush()
    elif row.kind != kind:
        row.kind = kind
        session.add(row)
    return row


def destinations(session: Session) -> list[SyncDestination]:
    return list(session.execute(select(SyncDestination).order_by(SyncDestination.name)).scalars())


def state(session: Session, *, destination_id: int, segment_id: int) -> SyncState:
    """What the destination acknowledged of the segment (an empty row on first use)."""
    row = session.execute(
        select(SyncState).where(
            SyncState.destination_id == destination_id, SyncState.segment_id == segment_id
        )
    ).scalar_one_or_none()
    if row is None:
        row = SyncState(destination_id=destination_id, segment_id=segment_id)
        session.add(row)
        session.flush()
    return row


def lock_state(session: Session, *, destination_id: int, segment_id: int) -> None:
    """Take the pair's write lock (SQLite) or row lock (PostgreSQL) until the commit.

    Run it as the transaction's first statement: a second planner waits here, then sees
    the run the first one added."""
    session.execute(
        update(SyncState)
        .where(SyncState.destination_id == destination_id, SyncState.segment_id == segment_id)
        .values(acked_count=SyncState.acked_count)
    )


def states(session: Session, *, destination_id: int) -> list[SyncState]:
    return list(
        session.execute(
            select(SyncState).where(SyncState.destination_id == destination_id)
        ).scalars()
    )


def acknowledge(
    session: Session, *, state_id: int, add: BitMap, remove: BitMap, missing: BitMap
) -> SyncState:
    """Record what the destination confirmed: ``add`` in, ``remove`` out, except the ids of
    ``add`` it reported ``missing`` (unknown to it), which wait in ``missing`` instead.

    Runs in the transaction that marks the batch sent, so the acknowledged bitmap moves
    exactly once per batch. Ids of ``add`` not reported again leave ``missing``.
    """
    row = session.get(SyncState, state_id, with_for_update=True)
    assert row is not None
    reported = missing & add
    acked = (bitmap(row.acked) | (add - reported)) - remove
    waiting = ((bitmap(row.missing) - add) | reported) - remove
    row.acked, row.missing = encode(acked), encode(waiting) if waiting else None
    row.acked_count, row.updated_at = len(acked), utcnow()
    session.add(row)
    return row


def reset_state(session: Session, *, state_id: int) -> None:
    """Forget what the destination acknowledged (a resync sends everything again)."""
    row = session.get(SyncState, state_id)
    assert row is not None
    row.acked = row.missing = None
    row.acked_count, row.updated_at = 0, utcnow()
    row.missing_attempts, row.missing_retry_at, row.missing_result_id = 0, None, None
    session.add(row)


def open_run(session: Session, *, destination_id: int, segment_id: int) -> SyncRun | None:
    """The unfinished (open or held) run of this destination and segment, if any."""
    return session.execute(
        select(SyncRun)
        .where(
            SyncRun.destination_id == destination_id,
            SyncRun.segment_id == segment_id,
            SyncRun.status.in_(OPEN_RUNS),  # type: ignore[attr-defined]
        )
        .order_by(SyncRun.id)  # type: ignore[arg-type]
    ).scalar_one_or_none()


def add_run(session: Session, *, run: SyncRun, pieces: Sequence[tuple[BitMap, BitMap]]) -> SyncRun:
    """Store ``run`` and one batch per ``(add, remove)`` piece, keyed ``sync-<run>-<seq>``."""
    session.add(run)
    session.flush()
    for seq, (add, remove) in enumerate(pieces, start=1):
        session.add(
            SyncBatch(
                run_id=run.id,
                seq=seq,
                idempotency_key=f"sync-{run.id}-{seq}",
                add_ids=encode(add),
                remove_ids=encode(remove),
                size=len(add) + len(remove),
                next_attempt_at=run.created_at,
            )
        )
    session.flush()
    return run


def due_batches(
    session: Session, *, destination_id: int, now: datetime, limit: int
) -> list[SyncBatch]:
    """Due batches (pending, or sending with an expired claim) of the destination's open runs,
    oldest run first, in sequence."""
    query = (
        select(SyncBatch)
        .join(SyncRun, SyncRun.id == SyncBatch.run_id)
        .where(
            SyncRun.destination_id == destination_id,
            SyncRun.status == "open",
            SyncBatch.status.in_(DUE_STATUSES),  # type: ignore[attr-defined]
            SyncBatch.next_attempt_at <= now,
            # a rebuild's later batches wait until the destination was reset
            or_(SyncRun.kind != "resync", SyncRun.reset_done, SyncBatch.seq == 1),
        )
        .order_by(SyncBatch.run_id, SyncBatch.seq)  # type: ignore[arg-type]
        .limit(limit)
    )
    return list(session.execute(query).scalars())


def mark_reset(session: Session, *, run_id: int) -> None:
    """The destination was reset for this rebuild: its other batches may go."""
    session.execute(update(SyncRun).where(SyncRun.id == run_id).values(reset_done=True))


def compare_and_set(
    session: Session, *, batch_id: int, status: str, attempts: int, values: dict[str, Any]
) -> bool:
    """Set ``values`` if the batch is still at (``status``, ``attempts``); whether it was."""
    result = session.execute(
        update(SyncBatch)
        .where(
            SyncBatch.id == batch_id,
            SyncBatch.status == status,
            SyncBatch.attempts == attempts,
        )
        .values(**values)
    )
    return result.rowcount == 1


def settle_run(session: Session, *, run_id: int, now: datetime) -> SyncRun | None:
    """Close the run when none of its batches is left to send: ``done``, or ``failed`` when
    some died. Returns the run when this call closed it."""
    run = session.get(SyncRun, run_id)
    if run is None or run.status != "open":
        return None
    counts = dict(
        session.execute(
            select(SyncBatch.status, func.count())
            .where(SyncBatch.run_id == run_id)
            .group_by(SyncBatch.status)
        ).all()
    )
    if counts.get("pending") or counts.get("sending"):
        return None
    dead = session.execute(
        select(func.coalesce(func.sum(SyncBatch.size), 0)).where(
            SyncBatch.run_id == run_id, SyncBatch.status == "dead"
        )
    ).scalar_one()
    missing = session.execute(
        select(func.coalesce(func.sum(SyncBatch.missing), 0)).where(SyncBatch.run_id == run_id)
    ).scalar_one()
    run.status = "failed" if counts.get("dead") else "done"
    run.dead, run.missing, run.finished_at = int(dead), int(missing), now
    session.add(run)
    return run


def cancel_waiting(session: Session, *, run_id: int) -> None:
    """Cancel the run's batches that were not sent yet."""
    session.execute(
        update(SyncBatch)
        .where(SyncBatch.run_id == run_id, SyncBatch.status == "pending")
        .values(status="cancelled")
    )


def cancel_open(session: Session, *, destination_id: int, segment_id: int | None = None) -> int:
    """Cancel the unfinished runs (and their unsent batches); how many runs."""
    query = select(SyncRun).where(
        SyncRun.destination_id == destination_id,
        SyncRun.status.in_(OPEN_RUNS),  # type: ignore[attr-defined]
    )
    if segment_id is not None:
        query = query.where(SyncRun.segment_id == segment_id)
    runs = list(session.execute(query).scalars())
    for run in runs:
        session.execute(
            update(SyncBatch)
            .where(
                SyncBatch.run_id == run.id,
                SyncBatch.status.in_(DUE_STATUSES),  # type: ignore[attr-defined]
            )
            .values(status="cancelled")
        )
        run.status, run.finished_at = "cancelled", utcnow()
        session.add(run)
    return len(runs)


def failure_streak(session: Session, *, destination_id: int, segment_id: int) -> list[SyncRun]:
    """The pair's latest runs that failed in a row, newest first (empty after a success)."""
    runs = session.execute(
        select(SyncRun)
        .where(
            SyncRun.destination_id == destination_id,
            SyncRun.segment_id == segment_id,
            SyncRun.status.in_(("done", "failed")),  # type: ignore[attr-defined]
        )
        .order_by(SyncRun.id.desc())  # type: ignore[union-attr]
        .limit(50)
    ).scalars()
    streak = []
    for run in runs:
        if run.status != "failed":
            break
        streak.append(run)
    return streak


def recent_runs(session: Session, *, destination_id: int, limit: int = 5) -> list[SyncRun]:
    return list(
        session.execute(
            select(SyncRun)
            .where(SyncRun.destination_id == destination_id)
            .order_by(SyncRun.id.desc())  # type: ignore[union-attr]
            .limit(limit)
        ).scalars()
    )


def batch_counts(session: Session, *, run_id: int) -> dict[str, int]:
    return dict(
        session.execute(
            select(SyncBatch.status, func.count())
            .where(SyncBatch.run_id == run_id)
            .group_by(SyncBatch.status)
        ).all()
    )


def last_error(session: Session, *, run_id: int) -> str | None:
    return session.execute(
        select(SyncBatch.last_error)
        .where(SyncBatch.run_id == run_id, SyncBatch.last_error.is_not(None))  # type: ignore[union-attr]
        .order_by(SyncBatch.attempts.desc())  # type: ignore[attr-defined]
        .limit(1)
    ).scalar_one_or_none()


def latest_runs(session: Session, *, destination_id: int) -> list[SyncRun]:
    """The newest run of each segment the destination has runs for (cancelled ones
    skipped: a cancellation says nothing about how the destination is doing)."""
    newest = (
        select(SyncRun.segment_id, func.max(SyncRun.id).label("id"))
        .where(SyncRun.destination_id == destination_id, SyncRun.status != "cancelled")
        .group_by(SyncRun.segment_id)
        .subquery()
    )
    return list(
        session.execute(
            select(SyncRun).join(newest, newest.c.id == SyncRun.id).order_by(SyncRun.segment_id)
        ).scalars()
    )


def retrying(session: Session, *, run_id: int) -> int:
    """How many of the run's unsent batches failed at least once and wait for a retry."""
    return session.execute(
        select(func.count()).where(
            SyncBatch.run_id == run_id,
            SyncBatch.status.in_(DUE_STATUSES),  # type: ignore[attr-defined]
            SyncBatch.last_error.is_not(None),  # type: ignore[union-attr]
        )
    ).scalar_one()


def held_elsewhere(session: Session, *, destinations: Sequence[str], state_id: int) -> BitMap:
    """The ids acknowledged by every other state of ``destinations`` (destinations that
    write one shared list) than ``state_id``: members the list holds for someone else."""
    rows = session.execute(
        select(SyncState.acked)
        .join(SyncDestination, SyncDestination.id == SyncState.destination_id)
        .where(
            SyncDestination.name.in_(destinations),  # type: ignore[attr-defined]
            SyncState.id != state_id,
            SyncState.acked.is_not(None),  # type: ignore[union-attr]
        )
    ).scalars()
    held = BitMap()
    for acked in rows:
        held |= bitmap(acked)
    return held

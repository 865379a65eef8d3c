"""Store functions of the published results: the current one and the series over time.

Keyword-only after the session, never committing: the use case owns the transaction.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date
from typing import Any

from sqlmodel import Session, select

from store.models import Alert, Segment, SegmentResult, Snapshot


def published_by_day(
    session: Session,
    *,
    segment_id: int,
    column: Any = SegmentResult.size,
    limit: int = 24,
    until: date | None = None,
) -> list[tuple[str, Any]]:
    """(as_of, ``column``) of a segment's published results, oldest first.

    One point per ``as_of`` day, the newest refresh of that day; the ``limit`` newest
    results (on or before ``until`` when given) are read.
    """
    query = (
        select(Snapshot.as_of, column)
        .join(Snapshot, Snapshot.id == SegmentResult.snapshot_id)
        .where(SegmentResult.segment_id == segment_id, SegmentResult.status == "published")
    )
    if until is not None:
        query = query.where(Snapshot.as_of <= until)
    rows = session.exec(
        query.order_by(Snapshot.as_of.desc(), SegmentResult.id.desc()).limit(limit)  # type: ignore[attr-defined]
    ).all()
    seen: dict[str, Any] = {}
    for as_of, value in rows:
        seen.setdefault(as_of.isoformat(), value)
    return sorted(seen.items())


def current_result(
    session: Session, *, segment: Segment
) -> tuple[SegmentResult, Snapshot] | tuple[None, None]:
    """The segment's current published result and its snapshot, or (None, None)."""
    if not segment.current_result_id:
        return None, None
    result = session.get(SegmentResult, segment.current_result_id)
    if result is None:
        return None, None
    return result, session.get(Snapshot, result.snapshot_id)


def open_alert_count(session: Session, *, segment_id: int) -> int:
    """How many of the segment's alerts are open."""
    return len(
        session.exec(
            select(Alert.id).where(Alert.segment_id == segment_id, Alert.status == "open")
        ).all()
    )


def recent_profiles(session: Session, *, limit: int) -> list[dict[str, Any]]:
    """The data profiles of the ``limit`` newest snapshots that were not blocked, oldest first."""
    snaps = session.exec(
        select(Snapshot)
        .where(Snapshot.status != "blocked")
        .order_by(Snapshot.as_of.desc(), Snapshot.id.desc())  # type: ignore[attr-defined]
        .limit(limit)
    ).all()
    return [s.profile for s in reversed(snaps) if s.profile]


def past_sizes(
    session: Session,
    *,
    segment_id: int,
    limit: int,
    version_ids: Collection[int] | None = None,
    before: date | None = None,
) -> list[int]:
    """Sizes of the segment's ``limit`` newest published results, oldest first (by as_of).

    ``version_ids``: only results computed by these definition versions; ``before``: only
    results of earlier days (a back-fill is compared with its past, not with later days).
    """
    query = (
        select(SegmentResult.size)
        .join(Snapshot, Snapshot.id == SegmentResult.snapshot_id)
        .where(SegmentResult.segment_id == segment_id, SegmentResult.status == "published")
    )
    if version_ids is not None:
        query = query.where(SegmentResult.version_id.in_(list(version_ids)))  # type: ignore[attr-defined]
    if before is not None:
        query = query.where(Snapshot.as_of < before)
    rows = session.exec(
        query.order_by(Snapshot.as_of.desc(), SegmentResult.id.desc()).limit(limit)  # type: ignore[attr-defined]
    ).all()
    return list(reversed(rows))

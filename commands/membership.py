"""Membership lookups for products and feature flags: which segments an entity is in,
whether it is in one, and a segment's members (as of a date), paged.

Results are immutable once written, so decoded bitmaps are cached by result id
(:data:`CACHE_SIZE` of them per process); a lookup then costs an entity-id query, the
segments' current result ids and a bitmap probe.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date

from pyroaring import BitMap
from sqlalchemy import Engine, select
from sqlmodel import Session

from commands.errors import UnknownSegment
from segments.errors import SegopsError
from segments.membership import MAX_ID, decode
from store.db import session_scope
from store.entities import id_of, keys_for_ids
from store.models import Segment, SegmentResult, Snapshot

CACHE_SIZE = 64


class UnknownCursor(SegopsError):
    """A well-formed cursor that names no result of the segment."""


MAX_PAGE = 10_000
MAX_ROW_ID = 2**31 - 1  # the largest integer key every supported database stores

_cache: OrderedDict[int, BitMap] = OrderedDict()
_lock = threading.Lock()


def _bitmap(session: Session, result_id: int) -> BitMap:
    with _lock:
        found = _cache.get(result_id)
        if found is not None:
            _cache.move_to_end(result_id)
            return found
    data = session.execute(
        select(SegmentResult.bitmap).where(SegmentResult.id == result_id)
    ).scalar_one()
    bitmap = decode(data) if data else BitMap()
    with _lock:
        _cache[result_id] = bitmap
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return bitmap


def _segment(session: Session, name: str) -> Segment:
    row = session.execute(select(Segment).where(Segment.name == name)).scalar_one_or_none()
    if row is None:
        raise UnknownSegment(name)
    return row


def _result_as_of(
    session: Session, segment: Segment, as_of: date | None
) -> tuple[int, date] | None:
    """(result id, as_of) served for ``as_of``: the current one, or the newest published
    result on or before that date."""
    if as_of is None:
        if not segment.current_result_id:
            return None
        day = session.execute(
            select(Snapshot.as_of)
            .join(SegmentResult, SegmentResult.snapshot_id == Snapshot.id)
            .where(SegmentResult.id == segment.current_result_id)
        ).scalar_one()
        return segment.current_result_id, day
    row = session.execute(
        select(SegmentResult.id, Snapshot.as_of)
        .join(Snapshot, Snapshot.id == SegmentResult.snapshot_id)
        .where(
            SegmentResult.segment_id == segment.id,
            SegmentResult.status == "published",
            Snapshot.as_of <= as_of,
        )
        .order_by(Snapshot.as_of.desc(), SegmentResult.id.desc())  # type: ignore[attr-defined]
        .limit(1)
    ).first()
    return (row[0], row[1]) if row else None


def segments_of(engine: Engine, *, key: str, allowed: set[str] | None) -> list[str]:
    """Active segments (among ``allowed``; None: all) whose current members include ``key``."""
    with session_scope(engine) as session:
        dense = id_of(session, key=key)
        if dense is None:
            return []
        rows = session.execute(
            select(Segment.name, Segment.current_result_id).where(
                Segment.status == "active",
                Segment.current_result_id.is_not(None),  # type: ignore[union-attr]
            )
        ).all()
        return sorted(
            name
            for name, result_id in rows
            if (allowed is None or name in allowed) and dense in _bitmap(session, result_id)
        )


@dataclass
class Membership:
    segment: str
    entity: str
    member: bool
    as_of: str | None


def is_member(engine: Engine, *, segment: str, key: str, as_of: date | None = None) -> Membership:
    with session_scope(engine) as session:
        seg = _segment(session, segment)
        served = _result_as_of(session, seg, as_of)
        if served is None:
            return Membership(seg.name, key, False, None)
        dense = id_of(session, key=key)
        member = dense is not None and dense in _bitmap(session, served[0])
        return Membership(seg.name, key, member, served[1].isoformat())


@dataclass
class Page:
    segment: str
    as_of: str | None
    total: int
    members: list[str]
    next_cursor: str | None


def members_page(
    engine: Engine,
    *,
    segment: str,
    as_of: date | None = None,
    cursor: str | None = None,
    limit: int = 1000,
) -> Page:
    """One page of members in dense-id order. The cursor pins the result it started on,
    so paging through a segment that is refreshed meanwhile stays consistent."""
    if not 1 <= limit <= MAX_PAGE:
        raise SegopsError(f"limit must be between 1 and {MAX_PAGE:,}")
    with session_scope(engine) as session:
        seg = _segment(session, segment)
        after = -1
        if cursor:
            try:
                result_text, after_text = cursor.split(".", 1)
                result_id, after = int(result_text), int(after_text)
            except ValueError:
                raise SegopsError("cursor is not one this API gave out") from None
            if result_id > MAX_ROW_ID or after > MAX_ID:
                raise UnknownCursor("cursor names no page of this segment")
            day = session.execute(
                select(Snapshot.as_of)
                .join(SegmentResult, SegmentResult.snapshot_id == Snapshot.id)
                .where(SegmentResult.id == result_id, SegmentResult.segment_id == seg.id)
            ).scalar_one_or_none()
            if day is None:
                raise UnknownCursor("cursor names no page of this segment")
            served: tuple[int, date] | None = (result_id, day)
        else:
            served = _result_as_of(session, seg, as_of)
        if served is None:
            return Page(seg.name, None, 0, [], None)
        bitmap = _bitmap(session, served[0])
        start = bitmap.rank(after) if after >= 0 else 0
        ids = list(bitmap[start : start + limit])
        more = start + limit < len(bitmap)
        return Page(
            seg.name,
            served[1].isoformat(),
            len(bitmap),
            keys_for_ids(session, ids=ids),
            f"{served[0]}.{ids[-1]}" if more and ids else None,
        )

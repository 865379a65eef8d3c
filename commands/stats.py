"""Read-side views of published results: latest stats, trend, drift, members."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, select

from commands.lookup import current_version, find_segment
from commands.policy import visible_alert, visible_size
from segments import membership
from store.db import session_scope
from store.entities import keys_of
from store.models import Alert, Proposal, Segment, SegmentResult, SegmentVersion, Snapshot
from store.results import current_result, open_alert_count, published_by_day


@dataclass
class SegmentStats:
    """The latest published result of a segment and its recent trend.

    ``version`` is the definition version that computed these numbers; ``current_version``
    the segment's definition now. When they differ (``definition_changed``) the numbers
    are the old definition's until the next refresh, and ``expected_size`` is what the
    approved proposal's preview measured for the new one (None: not measured).
    """

    size: int
    previous_size: int | None
    as_of: str
    version: int
    joined: int
    left: int
    trend: list[tuple[str, int]] = field(default_factory=list)
    kpis: dict[str, float | None] = field(default_factory=dict)
    leave_reasons: dict[str, int] = field(default_factory=dict)
    open_alerts: int = 0
    current_version: int | None = None
    expected_size: int | None = None
    definition_change: dict[str, Any] | None = None
    """What the refresh that made these numbers saw change in the definition, if anything."""

    @property
    def definition_changed(self) -> bool:
        return self.current_version is not None and self.current_version != self.version

    @property
    def change_pct(self) -> float | None:
        if not self.previous_size:
            return None
        return round(100.0 * (self.size - self.previous_size) / self.previous_size, 1)

    def to_dict(self) -> dict[str, Any]:
        data = self.__dict__.copy()
        data["trend"] = [list(p) for p in self.trend]
        data["change_pct"] = self.change_pct
        data["definition_changed"] = self.definition_changed
        return data


def trend(session: Session, segment: Segment, *, limit: int = 24) -> list[tuple[str, int]]:
    """(as_of, size) of the segment's published results, oldest first."""
    return published_by_day(session, segment_id=segment.id, limit=limit)


def kpi_trend(
    session: Session, segment: Segment, kpi: str, *, limit: int = 24
) -> list[tuple[str, float]]:
    """(as_of, mean) of one KPI over the segment's published results, oldest first."""
    points = published_by_day(
        session, segment_id=segment.id, column=SegmentResult.stats, limit=limit
    )
    values = [
        (day, (((st or {}).get("kpis") or {}).get(kpi) or {}).get("value")) for day, st in points
    ]
    return [(day, value) for day, value in values if value is not None]


def previewed_size(session: Session, version: SegmentVersion) -> int | None:
    """The size the approved proposal that made ``version`` measured for it (its impact
    preview), or None: not made by a proposal, or not measured."""
    proposal = session.exec(
        select(Proposal).where(Proposal.applied_version_id == version.id)
    ).first()
    size_after = ((proposal.impact or {}) if proposal is not None else {}).get("size_after")
    return int(size_after) if isinstance(size_after, int | float) else None


def latest_stats(session: Session, segment: Segment) -> SegmentStats | None:
    """The current published result, or None when the segment was never refreshed."""
    result, snapshot = current_result(session, segment=segment)
    if result is None:
        return None
    version = current_version(session, segment)
    made_by = session.get(SegmentVersion, result.version_id)
    expected = None
    if made_by is not None and made_by.id != version.id:
        expected = previewed_size(session, version)
    kpis = {
        name: (value or {}).get("value")
        for name, value in ((result.stats or {}).get("kpis") or {}).items()
    }
    open_alerts = open_alert_count(session, segment_id=segment.id)
    return SegmentStats(
        size=result.size,
        previous_size=result.previous_size,
        as_of=snapshot.as_of.isoformat(),
        version=made_by.version if made_by is not None else version.version,
        joined=result.joined,
        left=result.left,
        trend=trend(session, segment),
        kpis=kpis,
        leave_reasons=dict(result.leave_reasons or {}),
        open_alerts=open_alerts,
        current_version=version.version,
        expected_size=expected,
        definition_change=(result.stats or {}).get("definition_change"),
    )


def recent_alerts(
    engine: Engine, name: str, *, privacy_floor: int, limit: int = 20
) -> list[dict[str, Any]]:
    """The segment's newest alerts with the refresh date they belong to; an alert on sizes
    under ``privacy_floor`` names no number (:func:`policy.visible_alert`)."""
    with session_scope(engine) as session:
        segment = find_segment(session, name)
        rows = session.exec(
            select(Alert, Snapshot.as_of, SegmentResult.size)
            .join(SegmentResult, SegmentResult.id == Alert.result_id, isouter=True)
            .join(Snapshot, Snapshot.id == SegmentResult.snapshot_id, isouter=True)
            .where(Alert.segment_id == segment.id)
            .order_by(Alert.id.desc())  # type: ignore[union-attr]
            .limit(limit)
        ).all()
        return [
            {
                "id": alert.id,
                "as_of": as_of.isoformat() if as_of else None,
                "kind": alert.kind,
                "severity": alert.severity,
                "status": alert.status,
                "message": visible_alert(
                    {"kind": alert.kind, "message": alert.message, "details": alert.details},
                    privacy_floor,
                    size=size,
                )["message"],
            }
            for alert, as_of, size in rows
        ]


def members(engine: Engine, name: str) -> list[str]:
    """Entity ids of the segment's current members, in dense-id order."""
    with session_scope(engine) as session:
        segment = find_segment(session, name)
        if not segment.current_result_id:
            return []
        result = session.get(SegmentResult, segment.current_result_id)
        return keys_of(session, dense=membership.decode(result.bitmap))


def size_trend(engine: Engine, name: str, *, privacy_floor: int) -> list[tuple[str, int | None]]:
    """(as_of, size) of every published refresh of ``name``, oldest first.

    A size under ``privacy_floor`` is None.
    """
    with session_scope(engine) as session:
        points = trend(session, find_segment(session, name))
    return [(day, visible_size(size, privacy_floor)) for day, size in points]


def trend_versions(engine: Engine, name: str, *, privacy_floor: int) -> list[dict[str, Any]]:
    """``{as_of, size, version}`` of every published refresh of ``name``, oldest first:
    the size (None under ``privacy_floor``) and the definition version that computed it."""
    with session_scope(engine) as session:
        segment = find_segment(session, name)
        points = published_by_day(
            session, segment_id=segment.id, column=SegmentResult.version_id, limit=24
        )
        sizes = dict(trend(session, segment))
        numbers = dict(
            session.exec(
                select(SegmentVersion.id, SegmentVersion.version).where(
                    SegmentVersion.segment_id == segment.id
                )
            ).all()
        )
    return [
        {
            "as_of": day,
            "size": visible_size(sizes.get(day), privacy_floor),
            "version": numbers.get(version_id),
        }
        for day, version_id in points
    ]

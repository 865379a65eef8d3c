"""The weekly catalog health report: which active segments are stale, never refreshed,
or scheduled on a cadence that cannot run (``catalog-health.j2``)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func
from sqlmodel import Session, select

from briefs.render import renderer
from commands.jobs.clock import utc
from segments.cadence import CadenceError, cadence_trigger, runs_between
from store.db import session_scope
from store.models import Alert, Segment, SegmentResult, SegmentVersion, Snapshot
from store.outbox import add_message


@dataclass
class SegmentHealth:
    """One active segment in the weekly health report."""

    name: str
    title: str
    tier: str
    owner: str
    channel: str | None
    cadence: str
    version: int | None
    size: int | None
    as_of: str | None
    last_refresh: datetime | None
    open_alerts: int
    stale: bool
    problem: str | None = None  # "never refreshed", "stale" or "bad cadence: ..."

    def catalog_row(self) -> dict[str, Any]:
        """The row of the ``catalog`` brief."""
        return {
            "name": self.name,
            "title": self.title,
            "tier": self.tier,
            "status": "active",
            "owner": self.owner,
            "channel": self.channel,
            "version": self.version,
            "size": self.size,
            "as_of": self.as_of,
            "open_alerts": self.open_alerts,
        }


@dataclass
class HealthReport:
    segments: list[SegmentHealth] = field(default_factory=list)
    queued: int = 0

    @property
    def attention(self) -> list[SegmentHealth]:
        return [s for s in self.segments if s.problem]


def catalog_health(
    engine: Engine,
    *,
    now: datetime | None = None,
    channel: str | None = None,
    templates_dir: Path | None = None,
) -> HealthReport:
    """Queue the weekly health report of the active segments.

    A segment is stale when at least two of its scheduled refreshes have come since
    its last published refresh (about twice its cadence). With ``channel`` one report
    covers the whole catalog; without, each owner gets a direct message about their
    own segments. Keyed by ISO week: once per week and recipient.
    """
    now = utc(now)
    report = HealthReport()
    with session_scope(engine) as session:
        segments = session.exec(
            select(Segment).where(Segment.status == "active").order_by(Segment.name)
        ).all()
        for segment in segments:
            report.segments.append(_health(session, segment, now))
        year, week, _ = now.isocalendar()
        groups: dict[str, list[SegmentHealth]] = defaultdict(list)
        for item in report.segments:
            groups[channel or item.owner].append(item)
        for target, items in sorted(groups.items()):
            heading = "Weekly catalog health" if channel else "Your segments this week"
            rows = add_message(
                session,
                key=f"catalog-health:{year}-W{week:02d}:{target}",
                kind="catalog_health",
                channel=target,
                messages=_health_messages(items, heading, templates_dir),
                fallback_user=None if channel else target,
            )
            report.queued += len(rows)
    return report


def _health(session: Session, segment: Segment, now: datetime) -> SegmentHealth:
    version = session.get(SegmentVersion, segment.current_version_id)
    result = (
        session.get(SegmentResult, segment.current_result_id) if segment.current_result_id else None
    )
    snapshot = session.get(Snapshot, result.snapshot_id) if result is not None else None
    open_alerts = session.exec(
        select(func.count())
        .select_from(Alert)
        .where(Alert.segment_id == segment.id, Alert.status == "open")
    ).one()
    last = result.created_at if result is not None else None
    problem = None
    stale = False
    if last is None:
        problem = "never refreshed"
    else:
        try:
            stale = runs_between(cadence_trigger(segment.cadence), last, now, limit=2) >= 2
        except CadenceError as exc:
            problem = f"bad cadence: {exc}"
        if stale:
            problem = "stale"
    return SegmentHealth(
        name=segment.name,
        title=segment.title,
        tier=segment.tier,
        owner=segment.owner,
        channel=segment.channel,
        cadence=segment.cadence,
        version=version.version if version else None,
        size=result.size if result else None,
        as_of=snapshot.as_of.isoformat() if snapshot else None,
        last_refresh=last,
        open_alerts=int(open_alerts),
        stale=stale,
        problem=problem,
    )


def _health_messages(
    items: Sequence[SegmentHealth], heading: str, templates_dir: Path | None
) -> list[dict[str, Any]]:
    return renderer(templates_dir).render_messages(
        "catalog-health",
        {
            "segments": [i.catalog_row() for i in items],
            "heading": heading,
            "attention": [
                {
                    "name": i.name,
                    "problem": i.problem,
                    "last_refresh": i.last_refresh,
                    "cadence": i.cadence,
                }
                for i in items
                if i.problem
            ],
        },
    )

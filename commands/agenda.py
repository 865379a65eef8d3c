"""The segmentation clinic agenda: what the weekly review should look at.

:func:`agenda` gathers, as one template context (``clinic-agenda.j2``):

- segments with open drift alerts, and segments whose newest refresh was blocked;
- pending proposals with their impact;
- running experiments, those whose window has closed first (to read out or stop);
- learnings recorded since the last clinic;
- feedback themes per segment since the last clinic, with example quotes;
- stale segments (as the weekly health report judges them);
- a coverage audit from the membership bitmaps: the share of customers in the data of
  the newest snapshot that no active segment holds, pairs of segments that overlap so
  much they may be one (Jaccard at least ``JACCARD_LIMIT``), and segments wholly inside
  another.

:func:`queue_agenda` posts it to the configured channel through the outbox, once per ISO
week; the last clinic is the newest agenda queued before.
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from pyroaring import BitMap
from sqlalchemy import Engine
from sqlmodel import Session, select

from briefs.render import renderer
from commands.feedback import count_themes
from commands.jobs.health import _health
from commands.policy import visible_alert, visible_size
from commands.proposals.views import proposal_view
from segments import membership, sources
from segments.workspace import Workspace
from store import experiments as store_experiments
from store.db import session_scope
from store.entities import entity_keys
from store.models import (
    Alert,
    Feedback,
    OutboxMessage,
    Proposal,
    Segment,
    SegmentResult,
    Snapshot,
)
from store.outbox import add_message

AGENDA_KIND = "clinic_agenda"
JACCARD_LIMIT = 0.8
QUOTES = 2


def last_clinic(session: Session) -> datetime | None:
    """When the newest agenda was queued, or None."""
    return session.exec(
        select(OutboxMessage.created_at)
        .where(OutboxMessage.kind == AGENDA_KIND, OutboxMessage.thread_key.is_(None))  # type: ignore[union-attr]
        .order_by(OutboxMessage.created_at.desc())  # type: ignore[attr-defined]
    ).first()


def _current_bitmaps(session: Session, segments: list[Segment]) -> dict[str, BitMap]:
    out = {}
    for segment in segments:
        result = (
            session.get(SegmentResult, segment.current_result_id)
            if segment.current_result_id
            else None
        )
        if result is not None and result.bitmap:
            out[segment.name] = membership.decode(result.bitmap)
    return out


def _universe(session: Session, ws: Workspace | None) -> tuple[BitMap, str, str | None]:
    """Dense ids of the customers the audit measures against, what they are, and as_of."""
    day: date | None = session.exec(
        select(Snapshot.as_of).where(Snapshot.status != "blocked").order_by(Snapshot.as_of.desc())  # type: ignore[attr-defined]
    ).first()
    keys = entity_keys(session)
    if ws is not None and day is not None:
        frame = sources.load_dataset(ws, as_of=day).frame
        positions = keys.get_indexer(frame.index)
        ids = positions[positions >= 0].astype(np.uint32)
        return membership.to_bitmap(ids), "customers in the data", day.isoformat()
    return BitMap(range(len(keys))), "entities ever seen", day.isoformat() if day else None


def coverage(
    session: Session, segments: list[Segment], ws: Workspace | None, *, privacy_floor: int
) -> dict[str, Any]:
    """The coverage audit: uncovered share, near-duplicate pairs, segments inside others."""
    bitmaps = _current_bitmaps(session, segments)
    universe, label, as_of = _universe(session, ws)
    covered = BitMap()
    for bm in bitmaps.values():
        covered |= bm
    uncovered = len(universe - covered)
    pairs, inside = [], []
    for (a, bm_a), (b, bm_b) in itertools.combinations(sorted(bitmaps.items()), 2):
        if not bm_a or not bm_b:
            continue
        both = bm_a.intersection_cardinality(bm_b)
        if both == 0:
            continue
        jaccard = both / bm_a.union_cardinality(bm_b)
        if jaccard >= JACCARD_LIMIT:
            pairs.append({"a": a, "b": b, "jaccard": round(jaccard, 3)})
        for inner, outer, size in ((a, b, len(bm_a)), (b, a, len(bm_b))):
            if both == size and len(bitmaps[outer]) > size:
                inside.append(
                    {"inner": inner, "outer": outer, "size": visible_size(size, privacy_floor)}
                )
    return {
        "universe": len(universe),
        "universe_label": label,
        "as_of": as_of,
        "uncovered": visible_size(uncovered, privacy_floor),
        "uncovered_share": uncovered / len(universe) if len(universe) else None,
        "pairs": sorted(pairs, key=lambda p: -p["jaccard"]),
        "inside": inside,
    }


def agenda(
    engine: Engine,
    *,
    ws: Workspace | None = None,
    now: datetime | None = None,
    since: datetime | None = None,
    privacy_floor: int = 10,
) -> dict[str, Any]:
    """The clinic agenda as template context (see the module docstring)."""
    now = now or datetime.now(UTC)
    with session_scope(engine) as session:
        since = since or last_clinic(session) or now - timedelta(days=7)
        segments = list(
            session.exec(
                select(Segment).where(Segment.status == "active").order_by(Segment.name)
            ).all()
        )
        by_id = {s.id: s for s in segments}
        drift: dict[str, list[dict[str, Any]]] = {}
        for alert, size in session.exec(
            select(Alert, SegmentResult.size)
            .join(SegmentResult, SegmentResult.id == Alert.result_id, isouter=True)
            .where(Alert.status == "open")
            .order_by(Alert.id)  # type: ignore[arg-type]
        ).all():
            segment = by_id.get(alert.segment_id)
            if segment is not None:
                shown = visible_alert(
                    {"kind": alert.kind, "message": alert.message, "details": alert.details},
                    privacy_floor,
                    size=size,
                )
                drift.setdefault(segment.name, []).append(
                    {
                        "id": alert.id,
                        "kind": alert.kind,
                        "severity": alert.severity,
                        "message": shown["message"],
                    }
                )
        blocked = []
        for segment in segments:
            newest = session.exec(
                select(SegmentResult)
                .where(SegmentResult.segment_id == segment.id)
                .order_by(SegmentResult.id.desc())  # type: ignore[union-attr]
            ).first()
            if newest is not None and newest.status == "blocked":
                blocked.append({"segment": segment.name, "result_id": newest.id})
        proposals = [
            proposal_view(session, p, by_id[p.segment_id]).to_dict()
            for p in session.exec(
                select(Proposal).where(Proposal.status == "pending").order_by(Proposal.id)  # type: ignore[arg-type]
            ).all()
            if p.segment_id in by_id
        ]
        today = (
            session.exec(
                select(Snapshot.as_of).order_by(Snapshot.as_of.desc())  # type: ignore[attr-defined]
            ).first()
            or now.date()
        )
        experiments = []
        for experiment in store_experiments.running_experiments(session):
            segment = session.get(Segment, experiment.segment_id)
            experiments.append(
                {
                    "id": experiment.id,
                    "segment": segment.name if segment else None,
                    "kpi": experiment.kpi,
                    "started_on": experiment.started_on.isoformat(),
                    "ends_on": experiment.ends_on.isoformat(),
                    "day": (today - experiment.started_on).days,
                    "window_days": experiment.window_days,
                    "due": experiment.ends_on <= today,
                }
            )
        experiments.sort(key=lambda e: (not e["due"], e["ends_on"]))
        learnings = [
            {
                "id": r.id,
                "segment": by_id[r.segment_id].name if r.segment_id in by_id else None,
                "title": r.title,
                "effect": r.effect_text,
                "verdict": r.verdict,
            }
            for r in store_experiments.find_learnings(session, since=since, limit=20)
        ]
        feedback = []
        for segment in segments:
            texts = list(
                session.exec(
                    select(Feedback.text)
                    .where(Feedback.segment_id == segment.id, Feedback.created_at > since)
                    .order_by(Feedback.id)  # type: ignore[arg-type]
                ).all()
            )
            if texts:
                feedback.append(
                    {
                        "segment": segment.name,
                        "count": len(texts),
                        "themes": [t for t, _n in count_themes(texts, top=3, min_count=2)],
                        "quotes": texts[:QUOTES],
                    }
                )
        stale = [
            {"segment": h.name, "problem": h.problem, "last_refresh": h.last_refresh}
            for h in (_health(session, s, now) for s in segments)
            if h.problem
        ]
        audit = coverage(session, segments, ws, privacy_floor=privacy_floor)
    return {
        "since": since,
        "drift": [{"segment": name, "alerts": items} for name, items in sorted(drift.items())],
        "blocked": blocked,
        "proposals": proposals,
        "experiments": experiments,
        "learnings": learnings,
        "feedback": feedback,
        "stale": stale,
        "coverage": audit,
    }


def queue_agenda(
    engine: Engine,
    *,
    channel: str,
    ws: Workspace | None = None,
    now: datetime | None = None,
    privacy_floor: int = 10,
    templates_dir: Path | None = None,
) -> int:
    """Queue this week's agenda for ``channel`` (once per ISO week); rows queued."""
    now = now or datetime.now(UTC)
    ctx = agenda(engine, ws=ws, now=now, privacy_floor=privacy_floor)
    messages = renderer(templates_dir).render_messages("clinic-agenda", ctx)
    year, week, _ = now.isocalendar()
    with session_scope(engine) as session:
        rows = add_message(
            session,
            key=f"clinic-agenda:{year}-W{week:02d}:{channel}",
            kind=AGENDA_KIND,
            channel=channel,
            messages=messages,
            fallback_user=None,
        )
        return len(rows)

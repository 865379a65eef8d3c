"""Persona briefs, talking points and discovery guides, built from the catalog.

:func:`brief_context` assembles the context documented in :mod:`briefs.render` for the
persona kinds: the current definition (criteria in plain words), the latest published
stats and what the field says. It reads a handful of rows by primary key or indexed
column and never decodes a membership bitmap, so a brief costs the same on a store of
a thousand members or ten million.

Privacy: a size under ``settings.privacy_floor`` is not shown (``size`` None,
``hidden`` True), and neither are the KPI means computed on those few members, nor
any other size (previous, trend) under the floor.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, func
from sqlmodel import Session, select

from briefs.render import brief_kind, renderer
from commands.feedback import themes
from commands.learnings import brief_learnings
from commands.lookup import find_segment
from commands.policy import is_hidden, visible_size
from commands.settings import Settings
from segments import rules
from store.db import session_scope
from store.models import Feedback, Segment, SegmentResult, SegmentVersion, Snapshot
from store.results import published_by_day

RECENT = 5
TREND_POINTS = 12
SEGMENT_KEYS = (
    "name",
    "title",
    "tier",
    "owner",
    "approvers",
    "channel",
    "purpose",
    "rationale",
    "behavior_signals",
    "data_sources",
    "known_limitations",
    "kpis",
)
PERSONA_KEYS = (
    "summary",
    "goals",
    "pains",
    "objections",
    "value_propositions",
    "talking_points",
    "discovery_questions",
)


def _segment_block(definition: dict[str, Any]) -> dict[str, Any]:
    block = {key: definition.get(key) for key in SEGMENT_KEYS}
    for key in ("approvers", "behavior_signals", "data_sources", "known_limitations", "kpis"):
        block[key] = list(block[key] or [])
    for key in ("purpose", "rationale"):
        block[key] = block[key] or ""
    persona = definition.get("persona") or {}
    block["persona"] = {
        key: persona.get(key) or ("" if key == "summary" else []) for key in PERSONA_KEYS
    }
    rule = rules.parse(definition["rule"])
    block["rule_text"] = rules.to_text(rule)
    block["criteria"] = rules.describe(rule)
    return block


def _stats(session: Session, segment: Segment, floor: int) -> tuple[str | None, dict | None]:
    """(as_of, stats block) of the current published result, sizes under ``floor`` hidden."""
    if not segment.current_result_id:
        return None, None
    row = session.exec(
        select(
            SegmentResult.size,
            SegmentResult.previous_size,
            SegmentResult.stats,
            Snapshot.as_of,
        )
        .join(Snapshot, Snapshot.id == SegmentResult.snapshot_id)
        .where(SegmentResult.id == segment.current_result_id)
    ).first()
    if row is None:
        return None, None
    size, previous, stored, as_of = row
    points = published_by_day(session, segment_id=segment.id, limit=TREND_POINTS * 2)
    trend = [[day, visible_size(value, floor)] for day, value in points]
    hidden = is_hidden(size, floor)
    shown_previous = visible_size(previous, floor)
    change_pct = None
    if not hidden and shown_previous:
        change_pct = round(100.0 * (size - shown_previous) / shown_previous, 1)
    kpis: dict[str, float | None] = {}
    if not hidden:
        for name, value in ((stored or {}).get("kpis") or {}).items():
            kpis[name] = value.get("value") if isinstance(value, dict) else value
    return as_of.isoformat(), {
        "size": None if hidden else size,
        "previous_size": shown_previous,
        "change_pct": change_pct,
        "trend": trend[-TREND_POINTS:],
        "kpis": kpis,
        "hidden": hidden,
        "privacy_floor": floor,
    }


def _feedback(session: Session, segment: Segment) -> dict[str, Any]:
    count = session.exec(
        select(func.count()).select_from(Feedback).where(Feedback.segment_id == segment.id)
    ).one()
    recent = session.exec(
        select(Feedback.author, Feedback.text, Feedback.sentiment, Feedback.created_at)
        .where(Feedback.segment_id == segment.id)
        .order_by(Feedback.id.desc())  # type: ignore[union-attr]
        .limit(RECENT)
    ).all()
    return {
        "count": count,
        "themes": [list(t) for t in themes(session, segment)] if count else [],
        "recent": [
            {
                "author": author,
                "text": text,
                "sentiment": sentiment,
                "created_at": created_at.isoformat(timespec="seconds"),
            }
            for author, text, sentiment, created_at in recent
        ],
    }


def brief_context(engine: Engine, name: str, *, settings: Settings) -> dict[str, Any]:
    """The persona context of :mod:`briefs.render` for segment ``name``."""
    with session_scope(engine) as session:
        segment = find_segment(session, name)
        version = session.exec(
            select(SegmentVersion.version, SegmentVersion.definition).where(
                SegmentVersion.id == segment.current_version_id
            )
        ).one()
        as_of, stats = _stats(session, segment, settings.privacy_floor)
        return {
            "segment": _segment_block(version[1]),
            "version": version[0],
            "as_of": as_of,
            "stats": stats,
            "feedback": _feedback(session, segment),
            "learnings": brief_learnings(session, segment),
        }


def render_brief(
    engine: Engine, name: str, *, kind: str = "persona", settings: Settings
) -> dict[str, Any]:
    """Render one persona kind as Slack text, blocks and postable messages."""
    canonical = brief_kind(kind)
    ctx = brief_context(engine, name, settings=settings)
    rendered = renderer(settings.templates_dir).render_all(canonical, ctx)
    return {
        "segment": ctx["segment"]["name"],
        "kind": canonical,
        **rendered,
    }

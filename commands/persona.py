"""Persona briefs, talking points and discovery guides, built from the catalog.

:func:`brief_context` assembles the context documented in :mod:`briefs.render` for the
persona kinds: the current definition (criteria in plain words), the latest published
stats and what the field says. It reads a handful of rows by primary key or indexed
column and never decodes a membership bitmap, so a brief costs the same on a store of
a thousand members or ten million; the one exception is the "since you last looked"
line of a brief asked for in Slack (:func:`last_look`), which compares the result the
person saw with the current one when they differ.

Privacy: a size under ``settings.privacy_floor`` is not shown (``size`` None,
``hidden`` True), and neither are the KPI means computed on those few members, nor
any other size (previous, trend) under the floor.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from pyroaring import BitMap
from sqlalchemy import Engine, func
from sqlmodel import Session, select

from briefs.render import brief_kind, renderer
from commands.feedback import themes
from commands.learnings import brief_learnings
from commands.lookup import find_segment
from commands.notify import LABELS, segment_titles
from commands.policy import is_hidden, visible_size
from commands.settings import Settings
from commands.stats import previewed_size
from segments import membership, rules
from segments.cadence import cadence_trigger
from segments.errors import SegopsError
from store.brief_views import last_view, record_view
from store.db import DatabaseBusy, session_scope, write
from store.models import Feedback, Segment, SegmentResult, SegmentVersion, Snapshot
from store.results import published_by_day

log = logging.getLogger(__name__)

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
            SegmentResult.version_id,
        )
        .join(Snapshot, Snapshot.id == SegmentResult.snapshot_id)
        .where(SegmentResult.id == segment.current_result_id)
    ).first()
    if row is None:
        return None, None
    size, previous, stored, as_of, version_id = row
    points = published_by_day(session, segment_id=segment.id, limit=TREND_POINTS * 2)
    trend = [[day, visible_size(value, floor)] for day, value in points]
    hidden = is_hidden(size, floor)
    shown_previous = visible_size(previous, floor)
    change_pct = None
    if not hidden and shown_previous:
        change_pct = round(100.0 * (size - shown_previous) / shown_previous, 1)
    kpis: dict[str, float | None] = {}
    rows: list[dict[str, Any]] = []
    if not hidden:
        for name, value in ((stored or {}).get("kpis") or {}).items():
            kpis[name] = value.get("value") if isinstance(value, dict) else value
            previous_mean = value.get("previous") if isinstance(value, dict) else None
            rows.append({"name": name, "value": kpis[name], "previous": previous_mean})
    moved = sorted(
        (r for r in rows if r["value"] is not None and r["previous"]),
        key=lambda r: -abs((r["value"] - r["previous"]) / r["previous"]),
    )
    earlier = [str(day) for day, _ in points if str(day) < as_of.isoformat()]
    made_by = session.get(SegmentVersion, version_id)
    current = session.get(SegmentVersion, segment.current_version_id)
    changed = made_by is not None and current is not None and made_by.id != current.id
    expected = visible_size(previewed_size(session, current), floor) if changed else None
    return as_of.isoformat(), {
        "kpi_rows": rows,
        "moved": [r for r in moved if abs((r["value"] - r["previous"]) / r["previous"]) >= 0.1],
        "previous_as_of": earlier[-1] if earlier else None,
        "labels": dict((stored or {}).get(LABELS) or {}),
        "size": None if hidden else size,
        "previous_size": shown_previous,
        "change_pct": change_pct,
        "trend": trend[-TREND_POINTS:],
        "kpis": kpis,
        "hidden": hidden,
        "privacy_floor": floor,
        "version": made_by.version if made_by is not None else None,
        "current_version": current.version if current is not None else None,
        "definition_changed": changed,
        "expected_size": None if hidden else expected,
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
    found = [list(t) for t in themes(session, segment, top=8)] if count else []
    texts = session.exec(
        select(Feedback.text)
        .where(Feedback.segment_id == segment.id)
        .order_by(Feedback.id.desc())  # type: ignore[union-attr]
        .limit(QUOTE_POOL)
    ).all()
    found = _phrases_first(found)
    return {
        "count": count,
        "themes": found,
        "quotes": {phrase: quote for phrase, _ in found if (quote := _quote(phrase, texts))},
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


QUOTE_POOL = 200
WEAK_WORDS = frozenset(
    "new old good bad great big small little last first next able sure well back work "
    "thing things time times week weeks day days month months year years people team".split()
)
_SENTENCE = re.compile(r"(?<=[.!?;])\s+")


def _phrases_first(found: list[list[Any]], most: int = 5) -> list[list[Any]]:
    """Themes a rep can read: phrases first, then single words that carry meaning."""
    phrases = [t for t in found if " " in t[0]]
    words = [t for t in found if " " not in t[0] and t[0] not in WEAK_WORDS and len(t[0]) > 3]
    return (phrases + words)[:most]


def _quote(phrase: str, texts: list[str], longest: int = 160) -> str | None:
    """A representative quote: the shortest sentence of recent feedback saying ``phrase``."""
    words = phrase.lower().split()
    best: str | None = None
    for text in texts:
        for sentence in _SENTENCE.split(text):
            lowered = sentence.lower()
            if all(w in lowered for w in words) and (best is None or len(sentence) < len(best)):
                best = sentence.strip()
    if best:
        best = best.rstrip(";:,- ")
    if best and len(best) > longest:
        best = best[: longest - 1].rsplit(" ", 1)[0] + "…"
    return best


def staleness(as_of: date | None, cadence: str, today: date) -> dict[str, Any] | None:
    """``{days, cadence, allowed}`` when data of ``as_of`` is older than the cadence allows.

    A named cadence allows its interval and a day of grace (a week: 8 days); a cron
    cadence the gap between its next two runs and a day.
    """
    if as_of is None:
        return None
    allowed = CADENCE_DAYS.get(cadence)
    if allowed is None:
        try:
            trigger = cadence_trigger(cadence)
            start = datetime.combine(today, time(), tzinfo=UTC)
            first = trigger.get_next_fire_time(None, start)
            second = trigger.get_next_fire_time(first, first + timedelta(seconds=1))
            allowed = max(1, round((second - first).total_seconds() / 86_400))
        except (SegopsError, TypeError, ValueError):
            return None
    age = (today - as_of).days
    if age <= allowed + 1:
        return None
    return {"days": age, "cadence": cadence, "allowed": allowed + 1}


CADENCE_DAYS = {"daily": 1, "weekly": 7, "monthly": 31, "quarterly": 92}


def _members(session: Session, result_id: int) -> Any:
    data = session.exec(select(SegmentResult.bitmap).where(SegmentResult.id == result_id)).one()
    return membership.decode(data) if data else BitMap()


def last_look(
    session: Session, segment: Segment, *, viewer: str, version: int, floor: int
) -> dict[str, Any]:
    """What changed since ``viewer`` last read this segment's brief.

    ``{"first": True}`` before their first read; else ``{first, on, joined, left,
    hidden, from_version, to_version}``: the day they looked, the members who joined
    and left between the result they saw and the current one (bitmap differences;
    None when either size is under the privacy ``floor``, with ``hidden`` true) and
    the definition versions then and now.
    """
    seen = last_view(session, user_id=viewer, segment_id=segment.id)
    if seen is None:
        return {"first": True}
    now = segment.current_result_id
    current = session.get(SegmentResult, now) if now else None
    hidden = is_hidden(seen.size, floor) or is_hidden(current.size if current else None, floor)
    joined = left = 0
    if hidden:
        joined = left = None
    elif now is not None and seen.result_id != now:
        before = _members(session, seen.result_id) if seen.result_id else BitMap()
        after = _members(session, now)
        joined, left = len(after - before), len(before - after)
    return {
        "first": False,
        "on": seen.seen_at.date().isoformat(),
        "joined": joined,
        "left": left,
        "hidden": hidden,
        "from_version": seen.version,
        "to_version": version,
    }


def _remember(engine: Engine, segment: Segment, viewer: str, version: int, budget: float) -> None:
    """Record this read for the next "since you last looked"; a database busy for the
    whole ``budget`` costs only the record, never the brief."""
    result = segment.current_result_id

    def work(session: Session) -> None:
        size = None
        if result is not None:
            query = select(SegmentResult.size).where(SegmentResult.id == result)
            size = session.exec(query).one()
        record_view(
            session,
            user_id=viewer,
            segment_id=segment.id,
            result_id=result,
            size=size,
            version=version,
            seen_at=datetime.now(UTC),
        )

    try:
        write(engine, work, budget=budget)
    except DatabaseBusy:
        log.warning("brief read of %s by %s not recorded: database busy", segment.name, viewer)


def brief_context(
    engine: Engine, name: str, *, settings: Settings, viewer: str | None = None
) -> dict[str, Any]:
    """The persona context of :mod:`briefs.render` for segment ``name``.

    With ``viewer`` (the Slack user asking for it), the context has ``last_look``
    (:func:`last_look`) and this read is recorded for the next one.
    """
    with session_scope(engine) as session:
        segment = find_segment(session, name)
        version = session.exec(
            select(SegmentVersion.version, SegmentVersion.definition).where(
                SegmentVersion.id == segment.current_version_id
            )
        ).one()
        as_of, stats = _stats(session, segment, settings.privacy_floor)
        today = datetime.now(UTC).date()
        ctx = {
            "segment": _segment_block(version[1]),
            "version": version[0],
            "as_of": as_of,
            "stats": stats,
            "feedback": _feedback(session, segment),
            "stale": staleness(
                date.fromisoformat(as_of) if as_of else None, segment.cadence, today
            ),
            "titles": segment_titles(session),
            "learnings": brief_learnings(session, segment),
        }
        if viewer is not None:
            ctx["last_look"] = last_look(
                session, segment, viewer=viewer, version=version[0], floor=settings.privacy_floor
            )
    if viewer is not None:
        _remember(engine, segment, viewer, version[0], settings.write_budget)
    return ctx


def render_brief(
    engine: Engine,
    name: str,
    *,
    kind: str = "persona",
    settings: Settings,
    viewer: str | None = None,
) -> dict[str, Any]:
    """Render one persona kind as Slack text, blocks and postable messages (with the
    "since you last looked" line of ``viewer``, who is then recorded as having read it)."""
    canonical = brief_kind(kind)
    ctx = brief_context(engine, name, settings=settings, viewer=viewer)
    rendered = renderer(settings.templates_dir).render_all(canonical, ctx)
    return {
        "segment": ctx["segment"]["name"],
        "kind": canonical,
        **rendered,
    }

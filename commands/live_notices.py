"""Live notices: a segment's live joins and leaves posted to its channel, grouped and
rate-limited, for the segments whose owners asked (``live_notifications`` in the
workspace).

:func:`post_notices` runs in the live consumer's loop. For each built live segment that
asks, at most once every ``every_minutes``, it reads the transitions recorded since the
last notice (``live_segment.notified_transition_id``), counts them by kind and clause,
names the newest few entities of each kind, and queues ONE message in the outbox,
moving the cursor in the same transaction. The outbox key carries the newest transition
id, so a notice is queued once however often this runs or crashes.

Notices start when they are turned on: the first pass only records where the
transitions stand (no backlog is posted), and turning them off forgets the cursor.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from commands.lookup import current_definition
from commands.notify import labels_of, segment_titles
from commands.policy import visible_size
from store import live as store_live
from store.db import session_scope
from store.entities import keys_for_ids
from store.models import Segment
from store.outbox import add_message
from store.results import current_result

TOP_CLAUSES = 3


@dataclass
class Notice:
    """One notice queued: the segment, the transitions it covers and what it counted."""

    segment: str
    upto: int
    joined: int
    left: int
    channel: str | None
    joined_ids: list[str] = field(default_factory=list)
    left_ids: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def post_notices(
    engine: Engine,
    *,
    now: datetime,
    privacy_floor: int = 1,
    templates_dir: Path | None = None,
) -> list[Notice]:
    """Queue the live notices that are due at ``now``; the notices queued."""
    queued: list[Notice] = []
    with session_scope(engine) as session:
        for segment_id, row in sorted(store_live.classifications(session).items()):
            if row.mode != "live" or row.built_version_id is None:
                continue
            segment = session.get(Segment, segment_id)
            if segment is None or segment.status != "active":
                continue
            spec = current_definition(session, segment).live_notifications
            if spec is None:
                if row.notified_transition_id is not None:  # turned off: forget the cursor
                    row.notified_transition_id = None
                    row.notified_at = None
                    session.add(row)
                continue
            newest = store_live.last_transition_id(session, segment_id=segment_id)
            if row.notified_transition_id is None:  # just turned on: start from here
                store_live.mark_notified(
                    session, segment_id=segment_id, transition_id=newest, at=now
                )
                continue
            due = row.notified_at is None or now - row.notified_at >= timedelta(
                minutes=spec.every_minutes
            )
            if not due or newest <= row.notified_transition_id:
                continue
            notice = _queue(
                session,
                segment,
                after=row.notified_transition_id,
                upto=newest,
                since=row.notified_at,
                shown=spec.shown,
                every=spec.every_minutes,
                privacy_floor=privacy_floor,
                templates_dir=templates_dir,
            )
            store_live.mark_notified(session, segment_id=segment_id, transition_id=newest, at=now)
            queued.append(notice)
    return queued


def _queue(
    session,
    segment: Segment,
    *,
    after: int,
    upto: int,
    since: datetime | None,
    shown: int,
    every: int,
    privacy_floor: int,
    templates_dir: Path | None,
) -> Notice:
    from briefs.render import renderer

    counts = store_live.transition_counts(session, segment_id=segment.id, after=after, upto=upto)
    totals = {"join": 0, "leave": 0}
    causes: dict[str, list[dict[str, Any]]] = {"join": [], "leave": []}
    for kind, clause, n in counts:
        totals[kind] += n
        if len(causes[kind]) < TOP_CLAUSES:
            causes[kind].append({"clause": clause, "count": n})
    ids: dict[str, list[str]] = {}
    for kind in ("join", "leave"):
        rows = store_live.recent_transitions(
            session, segment_id=segment.id, kind=kind, after=after, upto=upto, limit=shown
        )
        ids[kind] = keys_for_ids(session, ids=[r.entity_id for r in rows]) if rows else []
    size = store_live.member_count(session, segment_id=segment.id)
    ctx = {
        "segment": {"name": segment.name, "title": segment.title, "owner": segment.owner},
        "since": since.strftime("%H:%M UTC") if since else None,
        "every": every,
        "joined": totals["join"],
        "left": totals["leave"],
        "join_causes": causes["join"],
        "leave_causes": causes["leave"],
        "joined_ids": ids["join"],
        "left_ids": ids["leave"],
        "size": visible_size(size, privacy_floor),
        "floor": privacy_floor,
        "labels": labels_of(current_result(session, segment=segment)[0]),
        "titles": segment_titles(session),
    }
    add_message(
        session,
        key=f"live-notice:{segment.name}:{upto}",
        kind="live_notice",
        channel=segment.channel,
        messages=renderer(templates_dir).render_messages("live-notice", ctx),
        fallback_user=segment.owner,
    )
    return Notice(
        segment.name,
        upto,
        totals["join"],
        totals["leave"],
        segment.channel,
        ids["join"],
        ids["leave"],
    )

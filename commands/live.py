"""Live segments: apply events as they arrive, sweep time-based exits, reconcile with the
batch refresh.

The pure part (classification, state, evaluation) is :mod:`segments.live`; this module
loads what it needs from the store and the workspace and owns the transactions:

* :func:`load_runtime` reads the catalog's live segments, the entity dictionary (dense ids
  come from the batch refresh, so a refresh must have run once) and the entity properties.
* :func:`build` evaluates every entity for a live segment whose definition the live
  membership was not built for yet (a new or edited segment), replacing its members.
* :func:`apply_events` applies one batch in ONE transaction: the applied event ids, the
  entities' state, the members and the transitions. The event-id primary key makes a
  redelivered or duplicated event a no-op; the log is acknowledged only after the commit.
  Events older than the lateness bound are counted (``late``) and left to the batch
  refresh; events from the future, for unknown entities or malformed go to dead letters.
* Every live transaction starts by taking its turn (:func:`store.live.take_turn`), so
  several consumers of one group may run: they share the reading and checking, and
  their transactions apply one after the other.
* :func:`resync` re-evaluates every entity after a batch refresh, which may have
  brought new entities and changed properties.
* :func:`sweep` re-evaluates, when the day changes, the entities of the segments whose
  windows or ``days_since`` can end a membership without any event.
* :func:`reconcile` compares each live segment with its current batch result for the
  same day and alerts the owner when they differ by more than 0.1 %, with the ids.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine
from sqlmodel import Session, select

from commands.lookup import current_definition
from segments import membership
from segments.errors import SegopsError
from segments.live import EntityState, EventIn, EventProblem, LiveModel, check_event, day_of
from segments.live.model import properties_workspace
from segments.sources import load_dataset
from segments.sources.mapping import IdMap, id_map
from segments.workspace import Workspace
from store import live as store_live
from store.db import session_scope, write
from store.entities import entity_keys, known_keys
from store.models import Alert, Segment
from store.outbox import add_message
from store.results import current_result

FUTURE_SKEW = timedelta(minutes=5)
DIVERGENCE_LIMIT = 0.001
SHOWN_IDS = 20
WRITE_BUDGET = 120.0


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Incoming:
    """One message from the log or the endpoint: the raw JSON text and when it was accepted."""

    payload: str
    accepted_at: datetime
    message_id: str = ""


@dataclass
class ApplyReport:
    applied: int = 0
    duplicates: int = 0
    late: int = 0
    dead: int = 0
    joins: int = 0
    leaves: int = 0

    def to_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class Runtime:
    """What the live consumer holds while it runs."""

    model: LiveModel
    properties: pd.DataFrame
    keys: pd.Index
    rows: np.ndarray
    segment_ids: dict[str, int]
    versions: dict[str, int]
    lateness: timedelta
    mark: tuple[Any, ...] = ()
    maps: dict[str, IdMap] = field(default_factory=dict)
    """Per events source with ``map_via``: its raw ids (e-mails) to entity ids."""

    def dense(self, keys: Sequence[str]) -> np.ndarray:
        """Dense ids of ``keys``; -1 where the key is unknown or not in the entity sources."""
        ids = self.keys.get_indexer(pd.Index(list(keys), dtype="str"))
        known = ids >= 0
        ids[known & (self.rows[np.where(known, ids, 0)] < 0)] = -1
        return ids


def catalog_mark(engine: Engine) -> tuple[Any, ...]:
    """Names, statuses, cadences and versions of the catalog, and the latest batch
    snapshot (new entities, changed properties): a change means reload."""
    from sqlalchemy import func

    from store.models import Snapshot

    with session_scope(engine) as session:
        rows = session.exec(
            select(Segment.name, Segment.status, Segment.cadence, Segment.current_version_id)
        ).all()
        latest = session.exec(select(func.max(Snapshot.id))).one()
        return (latest, *sorted(tuple(r) for r in rows))


def load_runtime(engine: Engine, ws: Workspace, *, lateness: timedelta, today: date) -> Runtime:
    """The live model of the catalog's active segments over ``ws``, the entity dictionary
    and the entity properties as of ``today``."""
    mark = catalog_mark(engine)
    with session_scope(engine) as session:
        segments = session.exec(select(Segment).where(Segment.status == "active")).all()
        definitions = {s.name: current_definition(session, s) for s in segments}
        ids = {s.name: s.id for s in segments}
        versions = {s.name: s.current_version_id for s in segments}
        keys = entity_keys(session)
    if not len(keys):
        raise SegopsError("no entity is known yet: run 'segops refresh' once before going live")
    lateness_days = max(1, math.ceil(lateness.total_seconds() / 86_400))
    model = LiveModel(ws, definitions, lateness_days=lateness_days)
    if any(s.kind == "entity" for s in ws.sources.values()):
        properties = load_dataset(properties_workspace(ws), as_of=today).frame
    else:
        properties = pd.DataFrame(index=pd.Index(keys, name="id", dtype="str"))
    rows = properties.index.get_indexer(keys)
    maps = {}
    for name in model.sources:
        found = id_map(ws, name)
        if found is not None:
            maps[name] = found
    return Runtime(model, properties, keys, rows, ids, versions, lateness, mark, maps)


def _states(session: Session, entity_ids: Sequence[int]) -> dict[int, EntityState]:
    stored = store_live.load_states(session, entity_ids=entity_ids)
    return {e: EntityState.from_json(stored.get(e)) for e in entity_ids}


def _evaluate(rt: Runtime, entity_ids: Sequence[int], states, day: int, segments):
    props = rt.properties.iloc[rt.rows[np.asarray(entity_ids, dtype=np.int64)]]
    return rt.model.evaluate(props, [states.get(e) for e in entity_ids], day, segments)


def build(engine: Engine, rt: Runtime, *, now: datetime) -> list[str]:
    """Build the live membership of every live segment not built for its current version;
    the names built."""
    with session_scope(engine) as session:
        stored = store_live.classifications(session)
    pending = [
        s
        for s in rt.model.segments
        if stored.get(rt.segment_ids[s]) is None
        or stored[rt.segment_ids[s]].built_version_id != rt.versions[s]
    ]
    if not pending:
        return []
    with session_scope(engine) as session:
        states = {e: EntityState.from_json(d) for e, d in store_live.all_states(session)}
    entity_ids = np.flatnonzero(rt.rows >= 0)
    _frame, masks = _evaluate(rt, entity_ids.tolist(), states, day_of(now), pending)

    def work(session: Session) -> None:
        store_live.take_turn(session)
        for name in pending:
            segment_id = rt.segment_ids[name]
            store_live.clear_members(session, segment_id=segment_id)
            chosen = entity_ids[masks[name]]
            store_live.add_members(session, pairs=((segment_id, int(e)) for e in chosen))
            store_live.mark_built(
                session, segment_id=segment_id, version_id=rt.versions[name], now=utcnow()
            )

    write(engine, work, budget=WRITE_BUDGET)
    return pending


def parse(message: Incoming, sources: Sequence[str]) -> EventIn:
    """The checked event of one message; EventProblem when it is not one."""
    try:
        raw = json.loads(message.payload)
    except (ValueError, TypeError):
        raise EventProblem("not JSON") from None
    return check_event(raw, sources=sources)


def apply_events(
    engine: Engine, rt: Runtime, messages: Sequence[Incoming], *, now: datetime
) -> ApplyReport:
    """Apply one batch of messages in one transaction (see the module docstring)."""
    report = ApplyReport()
    dead: list[dict[str, Any]] = []
    good: list[tuple[EventIn, Incoming]] = []
    for message in messages:
        try:
            event = parse(message, rt.model.sources)
        except EventProblem as problem:
            dead.append(_dead(None, str(problem), message.payload))
            continue
        if event.ts > now + FUTURE_SKEW:
            dead.append(_dead(event.id, "ts: in the future", message.payload))
        elif event.ts < now - rt.lateness:
            report.late += 1
        else:
            good.append((event, message))
    good = _mapped(rt, good, dead)
    ids = rt.dense([e.entity for e, _m in good]) if good else np.empty(0, np.int64)
    fresh: list[tuple[EventIn, Incoming, int]] = []
    seen: set[str] = set()
    for (event, message), dense_id in zip(good, ids.tolist(), strict=True):
        if dense_id < 0:
            dead.append(_dead(event.id, f"entity: unknown {event.entity!r}", message.payload))
        elif event.id in seen:
            report.duplicates += 1
        else:
            seen.add(event.id)
            fresh.append((event, message, dense_id))
    today = day_of(now)

    def work(session: Session) -> ApplyReport:
        store_live.take_turn(session)
        done = ApplyReport(late=report.late, dead=len(dead), duplicates=report.duplicates)
        before = store_live.applied_ids(session, ids=[e.id for e, _m, _d in fresh])
        todo = [item for item in fresh if item[0].id not in before]
        done.duplicates += len(fresh) - len(todo)
        done.applied = len(todo)
        wall = utcnow()
        if dead:
            store_live.add_dead_letters(session, rows=[{**d, "received_at": wall} for d in dead])
        if todo:
            store_live.add_applied(
                session,
                rows=[
                    {"event_id": e.id, "ts": e.ts, "accepted_at": m.accepted_at, "applied_at": wall}
                    for e, m, _d in todo
                ],
            )
            _apply(session, rt, todo, today, done, wall)
        for name in ("applied", "duplicates", "late", "dead"):
            store_live.bump(session, name=name, by=getattr(done, name))
        return done

    return write(engine, work, budget=WRITE_BUDGET)


def _mapped(
    rt: Runtime, good: list[tuple[EventIn, Incoming]], dead: list[dict[str, Any]]
) -> list[tuple[EventIn, Incoming]]:
    """Events of ``map_via`` sources with their entity replaced by the mapped entity id;
    an id the mapping does not know is a dead letter."""
    if not rt.maps:
        return good
    out: list[tuple[EventIn, Incoming]] = []
    for name, ids_of in rt.maps.items():
        raw = [(e, m) for e, m in good if e.source == name]
        for (event, message), entity in zip(
            raw, ids_of.resolve([e.entity for e, _m in raw]), strict=True
        ):
            if entity is None:
                reason = f"entity: {event.entity!r} maps to no entity through {ids_of.mapping!r}"
                dead.append(_dead(event.id, reason, message.payload))
            else:
                out.append((event.model_copy(update={"entity": entity}), message))
    out.extend((e, m) for e, m in good if e.source not in rt.maps)
    return out


def _dead(event_id: str | None, reason: str, payload: str) -> dict[str, Any]:
    return {"event_id": event_id, "reason": reason, "payload": payload[:4000]}


def _apply(session, rt: Runtime, todo, today: int, done: ApplyReport, wall: datetime) -> None:
    entity_ids = sorted({d for _e, _m, d in todo})
    states = _states(session, entity_ids)
    cause: dict[int, tuple[EventIn, Incoming]] = {}
    touched: dict[int, set[str]] = {e: set() for e in entity_ids}
    segments: set[str] = set()
    for event, message, dense_id in todo:
        states[dense_id].add(event.source or "", event.event, day_of(event.ts), event.value)
        cause[dense_id] = (event, message)
        touched[dense_id] |= rt.model.touched_features(event.source or "", event.event)
        segments |= rt.model.segments_for(event.source or "", event.event)
    horizons = rt.model.horizons(today)
    for state in states.values():
        state.fold(horizons)
    store_live.save_states(session, states={e: s.to_json() for e, s in states.items()}, now=wall)
    if segments:
        _transitions(session, rt, entity_ids, states, today, segments, cause, touched, done, wall)


def _transitions(session, rt, entity_ids, states, day, segments, cause, touched, done, wall):
    frame, masks = _evaluate(rt, entity_ids, states, day, segments)
    seg_ids = {rt.segment_ids[s]: s for s in masks}
    present = store_live.members_among(session, segment_ids=seg_ids, entity_ids=entity_ids)
    position = {e: i for i, e in enumerate(entity_ids)}
    before = {s: np.zeros(len(entity_ids), dtype=bool) for s in masks}
    for segment_id, entity in present:
        before[seg_ids[segment_id]][position[entity]] = True
    found = rt.model.transitions(
        frame, masks, before, touched=[touched.get(e, set()) for e in entity_ids]
    )
    _record(session, rt, found, entity_ids, cause, done, wall)


def _record(session, rt, found, entity_ids, cause, done, wall) -> None:
    joins, leaves, rows = [], [], []
    for t in found:
        entity = int(entity_ids[t.row])
        segment_id = rt.segment_ids[t.segment]
        event, message = cause.get(entity, (None, None))
        (joins if t.kind == "join" else leaves).append((segment_id, entity))
        rows.append(
            {
                "segment_id": segment_id,
                "entity_id": entity,
                "kind": t.kind,
                "event_id": event.id if event else None,
                "clause": t.clause,
                "accepted_at": message.accepted_at if message else None,
                "recorded_at": wall,
            }
        )
    store_live.remove_members(session, pairs=leaves)
    store_live.add_members(session, pairs=joins)
    store_live.add_transitions(session, rows=rows)
    done.joins += len(joins)
    done.leaves += len(leaves)


def sweep(engine: Engine, rt: Runtime, *, now: datetime) -> ApplyReport:
    """Re-evaluate the time-dependent live segments for the day of ``now`` (windows that
    ended, days since that grew) and fold old buckets; joins and leaves have no event.
    Only entities with state can change with the day alone."""
    return _resync(engine, rt, now=now, segments=rt.model.timed(), everyone=False)


def resync(engine: Engine, rt: Runtime, *, now: datetime) -> ApplyReport:
    """Re-evaluate every live segment over every entity: after a batch refresh the entity
    properties may have changed (a plan downgraded) without any event."""
    return _resync(engine, rt, now=now, segments=list(rt.model.segments), everyone=True)


def _resync(engine, rt: Runtime, *, now: datetime, segments: list[str], everyone: bool):
    today = day_of(now)
    horizons = rt.model.horizons(today)

    def work(session: Session) -> ApplyReport:
        store_live.take_turn(session)
        done = ApplyReport()
        states = {e: EntityState.from_json(d) for e, d in store_live.all_states(session)}
        changed = {e: s.to_json() for e, s in states.items() if s.fold(horizons)}
        wall = utcnow()
        store_live.save_states(session, states=changed, now=wall)
        if everyone:
            entity_ids = np.flatnonzero(rt.rows >= 0).tolist()
        else:
            entity_ids = [e for e in sorted(states) if e < len(rt.rows) and rt.rows[e] >= 0]
        if segments and entity_ids:
            _transitions(session, rt, entity_ids, states, today, segments, {}, {}, done, wall)
        return done

    return write(engine, work, budget=WRITE_BUDGET)


def prune(engine: Engine, rt: Runtime, *, now: datetime) -> int:
    """Forget applied event ids older than the lateness bound (such events are late anyway)."""

    def work(session: Session) -> int:
        return store_live.prune_applied(session, before=now - rt.lateness - timedelta(hours=1))

    return write(engine, work, budget=WRITE_BUDGET)


# ---------------------------------------------------------------- the endpoint's checks


@dataclass
class Checked:
    """A batch checked at the edge: the good events, and per index what is wrong."""

    events: list[EventIn] = field(default_factory=list)
    problems: list[dict[str, Any]] = field(default_factory=list)


def check_batch(
    engine: Engine,
    raw: Sequence[Any],
    *,
    sources: Sequence[str],
    mapped: Collection[str] = (),
) -> Checked:
    """Check every event of a batch (schema, then that its entity is known). Events of
    the ``mapped`` sources (``map_via``: their entity is an e-mail, say) are mapped by
    the consumer, which keeps an unmapped one as a dead letter."""
    checked = Checked()
    for index, item in enumerate(raw):
        try:
            checked.events.append(check_event(item, sources=sources))
        except EventProblem as problem:
            checked.problems.append({"index": index, "error": str(problem)})
    if checked.problems or not checked.events:
        return checked
    direct = {e.entity for e in checked.events if e.source not in mapped}
    with session_scope(engine) as session:
        known = known_keys(session, keys=sorted(direct)) if direct else set()
    for index, event in enumerate(checked.events):
        if event.source not in mapped and event.entity not in known:
            checked.problems.append({"index": index, "error": f"entity: unknown {event.entity!r}"})
    return checked


def event_sources(ws: Workspace) -> list[str]:
    return sorted(n for n, s in ws.sources.items() if s.kind == "events")


def mapped_sources(ws: Workspace) -> list[str]:
    """The events sources whose ids go through a mapping (``map_via``)."""
    return sorted(n for n in event_sources(ws) if ws.sources[n].map_via is not None)


# ---------------------------------------------------------------- classification at apply


def record_classifications(session: Session, ws: Workspace) -> None:
    """Store each active segment's live/batch classification for its current version.

    The catalog's current definitions are classified (``ws`` gives the sources and
    features), so a change the file proposed but nobody approved yet is not mistaken for
    the version in force.
    """
    from segments.live import classify_all

    active = session.exec(select(Segment).where(Segment.status == "active")).all()
    definitions = {
        segment.name: current_definition(session, segment)
        for segment in active
        if segment.current_version_id is not None
    }
    found = classify_all(ws, definitions)
    for segment in active:
        c = found.get(segment.name)
        if c is None or segment.current_version_id is None:
            continue
        store_live.save_classification(
            session,
            segment_id=segment.id,
            version_id=segment.current_version_id,
            mode=c.mode,
            reasons=list(c.reasons),
            now=utcnow(),
        )


def classification_of(session: Session, segment: Segment) -> dict[str, Any]:
    """``{"mode", "reasons"}`` as stored at apply for the current version."""
    row = store_live.classifications(session).get(segment.id)
    if row is not None and row.version_id == segment.current_version_id:
        return {"mode": row.mode, "reasons": list(row.reasons)}
    if segment.cadence == "live":
        reason = "not classified for this version: apply the workspace with 'segops apply'"
        return {"mode": "batch", "reasons": [reason]}
    return {"mode": "batch", "reasons": [f"cadence {segment.cadence}: refreshed in batch"]}


# ---------------------------------------------------------------- reconciliation


@dataclass
class Reconciled:
    segment: str
    as_of: str
    live: int
    batch: int
    differing: int
    share: float
    alerted: bool
    ids: list[str]
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def reconcile(
    engine: Engine,
    *,
    today: date,
    limit: float = DIVERGENCE_LIMIT,
    templates_dir: Path | None = None,
    render: Callable[..., list[dict[str, Any]]] | None = None,
) -> list[Reconciled]:
    """Compare every built live segment with its current batch result of ``today`` once
    per result; alert the owner when more than ``limit`` of the batch members differ."""
    out: list[Reconciled] = []
    with session_scope(engine) as session:
        keys = entity_keys(session)
        stored = store_live.classifications(session)
        for segment_id, row in sorted(stored.items()):
            segment = session.get(Segment, segment_id)
            if row.built_version_id is None or segment is None or segment.status != "active":
                continue
            result, snapshot = current_result(session, segment=segment)
            if result is None or snapshot is None or result.bitmap is None:
                continue
            if result.id == row.reconciled_result_id:
                continue
            if snapshot.as_of != today:
                continue
            batch = membership.decode(result.bitmap)
            live = membership.to_bitmap(
                np.asarray(store_live.members(session, segment_id=segment_id), dtype=np.int64)
            )
            differ = membership.to_ids(batch ^ live)
            share = len(differ) / max(len(batch), 1)
            shown = [str(keys[int(i)]) for i in differ[:SHOWN_IDS] if int(i) < len(keys)]
            alerted = share > limit
            if alerted:
                _alert(
                    session,
                    segment,
                    snapshot.as_of,
                    len(live),
                    len(batch),
                    differ,
                    shown,
                    share,
                    templates_dir,
                )
            store_live.mark_reconciled(session, segment_id=segment_id, result_id=result.id)
            out.append(
                Reconciled(
                    segment.name,
                    snapshot.as_of.isoformat(),
                    len(live),
                    len(batch),
                    len(differ),
                    share,
                    alerted,
                    shown,
                )
            )
    return out


def _alert(session, segment, as_of, live, batch, differ, shown, share, templates_dir) -> None:
    from briefs.render import renderer

    message = (
        f"live membership of {segment.name} differs from the batch refresh of "
        f"{as_of.isoformat()} for {len(differ):,} entities ({share:.2%}; live {live:,}, "
        f"batch {batch:,})"
    )
    details = {
        "as_of": as_of.isoformat(),
        "live": live,
        "batch": batch,
        "differing": len(differ),
        "ids": shown,
    }
    alert = Alert(
        segment_id=segment.id,
        kind="live_divergence",
        severity="warning",
        message=message,
        details=details,
        fingerprint=hashlib.sha256(
            f"live_divergence|{segment.name}|{as_of.isoformat()}".encode()
        ).hexdigest(),
    )
    session.add(alert)
    session.flush()
    ctx = {
        "segment": {"name": segment.name, "title": segment.title, "owner": segment.owner},
        "as_of": as_of.isoformat(),
        "live": live,
        "batch": batch,
        "differing": len(differ),
        "share": round(share * 100, 2),
        "ids": shown,
    }
    add_message(
        session,
        key=f"live-divergence:{segment.name}:{alert.id}",
        kind="live_divergence",
        channel=None,
        messages=renderer(templates_dir).render_messages("live-divergence", ctx),
        fallback_user=segment.owner,
    )


def status(engine: Engine) -> dict[str, Any]:
    """The live counters and each built live segment's member count."""
    with session_scope(engine) as session:
        rows = []
        for segment_id, row in sorted(store_live.classifications(session).items()):
            segment = session.get(Segment, segment_id)
            if row.built_version_id is None or segment is None:
                continue
            count = store_live.member_count(session, segment_id=segment_id)
            rows.append({"segment": segment.name, "members": count})
        return {"counters": store_live.counters(session), "segments": rows}

"""Membership syncs: plan runs against what each destination acknowledged, and move
batches through their states. The senders themselves (HTTP, HubSpot, SQL, files) are
in :mod:`sync`; this module never talks to a destination.

The rules (see ARCHITECTURE.md, "The path of one sync"):

* **Diffs against acknowledgements.** Per destination and segment, ``sync_state``
  holds the bitmap the destination confirmed. A run sends ``new - acked`` and
  ``acked - new`` (:func:`segments.destinations.plan`), so the first run sends
  everything and a batch that failed for good is simply part of the next run's diff.
* **One unfinished run per destination and segment.** A new run is planned only when
  the previous one is done, failed or cancelled, so no id is in two open batches.
* **A batch moves once.** It is claimed with a compare-and-set (``pending``/``sending``
  at its attempt count -> ``sending``, attempts + 1, a claim lease); when the
  destination confirms, the same transaction marks it ``sent`` and moves the
  acknowledged bitmap. A worker that dies between sending and confirming leaves the
  batch ``sending``; once the lease runs out another worker sends it again with the
  same idempotency key (``webhook-id``), which the receiver de-duplicates, and the
  other kinds apply idempotently.
* **Guardrails.** A run whose change exceeds ``SEGOPS_SYNC_CHANGE_LIMIT`` of what the
  destination holds, or that syncs a result with open drift alerts, is ``held`` until
  the owner approves it (``segops sync approve``); the owner is told once.
* **Ids the destination does not know** (HubSpot's ``recordIdsMissing``) are not
  acknowledged; they wait in ``sync_state.missing`` and are planned again after
  :func:`missing_backoff` or once the segment has a newer result (:func:`missing_due`).
* **Retiring.** A segment a destination still holds but no longer receives (archived,
  or out of its scope) gets a ``retire`` run removing every acknowledged member, held
  like any large change; it is cancelled if the segment is received again first.
* **Withheld members.** :func:`withheld` names ids that must never be sent (an
  experiment's holdout); they are taken out before the diff.
* **Live segments send live diffs.** A live segment whose live membership is built for
  its current version (:mod:`commands.live`) is sent that membership instead of its
  last batch result, so each sync pass (every 15 s) carries the joins and leaves the
  events made since the last one; otherwise the batch result is sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from pyroaring import BitMap
from sqlalchemy import Engine, select
from sqlmodel import Session

from briefs.render import renderer
from commands.errors import NotAuthorised, person
from commands.lookup import find_segment
from segments import destinations as dest
from segments.destinations import DestinationConfig
from segments.errors import SegopsError
from segments.membership import decode
from segments.workspace import Workspace
from store import live as store_live
from store import syncs as store
from store.db import session_scope
from store.entities import keys_for_ids
from store.models import (
    Alert,
    LiveSegment,
    Segment,
    SegmentResult,
    Snapshot,
    SyncBatch,
    SyncDestination,
    SyncRun,
    SyncState,
    utcnow,
)
from store.outbox import add_message, is_queued

CLAIM_LEASE = timedelta(minutes=2)
RUN_BACKOFF_BASE = timedelta(minutes=1)
RUN_BACKOFF_CAP = timedelta(hours=6)


def run_backoff(failures: int) -> timedelta:
    """How long after its ``failures``-th failed run in a row a pair is planned again."""
    return min(RUN_BACKOFF_CAP, RUN_BACKOFF_BASE * 2 ** max(failures - 1, 0))


MISSING_BACKOFF_BASE = timedelta(minutes=15)
MISSING_BACKOFF_CAP = timedelta(hours=24)


def missing_backoff(reports: int) -> timedelta:
    """How long ids a destination reported missing ``reports`` times in a row wait before
    they are sent again (unless the segment is refreshed first)."""
    return min(MISSING_BACKOFF_CAP, MISSING_BACKOFF_BASE * 2 ** max(reports - 1, 0))


def missing_due(state: SyncState, *, result_id: int | None, now: datetime) -> bool:
    """Whether the ids the destination reported missing may be sent again: their wait is
    over, or the segment has a newer result than the one they were reported for."""
    if state.missing_retry_at is None or now >= state.missing_retry_at:
        return True
    return result_id != state.missing_result_id


class UnknownDestination(SegopsError):
    """No destination by that name in the workspace."""


def find_destination(ws: Workspace, name: str) -> DestinationConfig:
    try:
        return ws.destinations[name]
    except KeyError:
        known = ", ".join(sorted(ws.destinations)) or "none declared"
        raise UnknownDestination(f"unknown destination '{name}' (known: {known})") from None


# -- the seam for members that must never be sent --------------------------------------


def withheld(session: Session, segment: Segment) -> BitMap | None:
    """Dense ids of ``segment``'s members that no destination may receive: the holdout of
    every experiment running on the snapshot being sent (None: nobody is held out)."""
    from store.experiments import holdout_bitmap
    from store.models import SegmentResult

    snapshot_id = None
    if segment.current_result_id is not None:
        current = session.get(SegmentResult, segment.current_result_id)
        snapshot_id = current.snapshot_id if current is not None else None
    held = holdout_bitmap(session, segment_id=segment.id, snapshot_id=snapshot_id)
    return held or None


def sendable(session: Session, segment: Segment, members: BitMap) -> BitMap:
    """The members a destination may receive: ``members`` without :func:`withheld`."""
    return dest.exclude(members, withheld(session, segment))


# -- planning ---------------------------------------------------------------------------


@dataclass
class Planned:
    """What planning did for one destination and segment."""

    destination: str
    segment: str
    run_id: int | None = None
    status: str = "nothing to send"
    added: int = 0
    removed: int = 0
    source: str = "batch"
    """The membership compared: ``batch`` (the last refresh) or ``live``."""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def live_members(session: Session, segment: Segment) -> BitMap | None:
    """The segment's live membership when it is live and built for its current version;
    None otherwise (the batch result is the membership then)."""
    row = session.get(LiveSegment, segment.id)
    if (
        row is None
        or row.mode != "live"
        or row.built_version_id is None
        or row.built_version_id != segment.current_version_id
    ):
        return None
    return BitMap(store_live.members(session, segment_id=segment.id))


def targets(
    session: Session, ws: Workspace, *, only: str | None = None, segment: str | None = None
) -> list[tuple[str, DestinationConfig, Segment]]:
    """(destination name, settings, segment) for every active segment a destination receives."""
    names = [only] if only else sorted(ws.destinations)
    chosen = find_segment(session, segment).name if segment else None
    segments = list(
        session.execute(select(Segment).where(Segment.status == "active").order_by(Segment.name))
        .scalars()
        .all()
    )
    out = []
    for name in names:
        config = find_destination(ws, name)
        for seg in segments:
            if chosen and seg.name != chosen:
                continue
            if config.receives(seg.name, seg.tier):
                out.append((name, config, seg))
    return out


def retiring(
    session: Session, ws: Workspace, *, only: str | None = None, segment: str | None = None
) -> list[tuple[str, DestinationConfig, Segment, str]]:
    """(destination name, settings, segment, why) for every segment a declared destination
    still holds members of, or has an unfinished retire run of, although it no longer
    receives it: the segment was archived, or left the destination's scope."""
    names = [only] if only else sorted(ws.destinations)
    chosen = find_segment(session, segment).name if segment else None
    out = []
    for name in names:
        config = find_destination(ws, name)
        row = session.execute(
            select(SyncDestination).where(SyncDestination.name == name)
        ).scalar_one_or_none()
        if row is None:
            continue
        retire_runs = {
            r.segment_id
            for r in session.execute(
                select(SyncRun).where(
                    SyncRun.destination_id == row.id,
                    SyncRun.kind == "retire",
                    SyncRun.status.in_(store.OPEN_RUNS),  # type: ignore[attr-defined]
                )
            ).scalars()
        }
        for state in store.states(session, destination_id=row.id):
            seg = session.get(Segment, state.segment_id)
            if chosen and seg.name != chosen:
                continue
            if seg.status == "active" and config.receives(seg.name, seg.tier):
                continue
            if state.acked_count or seg.id in retire_runs:
                why = (
                    "the segment was archived"
                    if seg.status != "active"
                    else "the segment left the destination's scope"
                )
                out.append((name, config, seg, why))
    return out


def plan_runs(
    engine: Engine,
    ws: Workspace,
    *,
    now: datetime | None = None,
    only: str | None = None,
    segment: str | None = None,
    change_limit: float = 0.30,
    hold_on_alerts: bool = True,
    templates_dir: Path | None = None,
    retry_failed: bool = False,
) -> list[Planned]:
    """Plan a run for each destination and segment whose acknowledged membership differs
    from the current one and that has no unfinished run. One transaction per pair.
    ``retry_failed``: plan a pair whose last run failed now, not after its backoff."""
    now = now or utcnow()
    with session_scope(engine) as session:
        pairs = [(n, c, s.id) for n, c, s in targets(session, ws, only=only, segment=segment)]
    planned = []
    for name, config, segment_id in pairs:
        with session_scope(engine) as session:  # the rows to lock exist before planning
            row = store.destination(session, name=name, kind=config.kind)
            store.state(session, destination_id=row.id, segment_id=segment_id)
        with session_scope(engine) as session:
            # First statement: lock the pair, so two passes never plan it together.
            store.lock_state(session, destination_id=row.id, segment_id=segment_id)
            planned.append(
                _plan_one(
                    session,
                    name,
                    config,
                    session.get(Segment, segment_id),
                    now=now,
                    change_limit=change_limit,
                    hold_on_alerts=hold_on_alerts,
                    templates_dir=templates_dir,
                    retry_failed=retry_failed,
                )
            )
    with session_scope(engine) as session:
        gone = [
            (n, c, store.destination(session, name=n, kind=c.kind).id, s.id, why)
            for n, c, s, why in retiring(session, ws, only=only, segment=segment)
        ]
    for name, config, destination_id, segment_id, why in gone:
        with session_scope(engine) as session:
            store.lock_state(session, destination_id=destination_id, segment_id=segment_id)
            planned.append(
                _plan_retire(
                    session,
                    name,
                    config,
                    session.get(Segment, segment_id),
                    why,
                    now=now,
                    change_limit=change_limit,
                    templates_dir=templates_dir,
                )
            )
    return planned


def _plan_retire(
    session: Session,
    name: str,
    config: DestinationConfig,
    segment: Segment,
    why: str,
    *,
    now: datetime,
    change_limit: float,
    templates_dir: Path | None,
) -> Planned:
    """Plan the run that removes every member the destination holds of a segment it no
    longer receives, held for approval like any change over ``change_limit``."""
    out = Planned(name, segment.name)
    row = store.destination(session, name=name, kind=config.kind)
    if row.status == "disabled":
        out.status = "destination disabled"
        return out
    unfinished = store.open_run(session, destination_id=row.id, segment_id=segment.id)
    if unfinished is not None:
        if unfinished.kind == "retire" or _sending(session, unfinished):
            out.status = "previous run unfinished"
            return out
        store.cancel_open(session, destination_id=row.id, segment_id=segment.id)
    failed = store.failure_streak(session, destination_id=row.id, segment_id=segment.id)
    if failed and now < failed[0].finished_at + run_backoff(len(failed)):
        out.status = "waiting after a failed run"
        return out
    state = store.state(session, destination_id=row.id, segment_id=segment.id)
    acked = store.bitmap(state.acked)
    if not acked:
        return out
    share = dest.share_changed(0, len(acked), len(acked))
    held_for = None
    if share > change_limit:
        held_for = f"{why}: all {len(acked):,} members it holds would be removed"
    pieces = [
        (p.add, p.remove)
        for p in dest.batches(BitMap(), acked, size=config.size, max_bytes=config.max_bytes)
    ]
    run = store.add_run(
        session,
        run=SyncRun(
            destination_id=row.id,
            segment_id=segment.id,
            result_id=segment.current_result_id,
            as_of=now.date(),  # the day the destination stops holding the segment
            kind="retire",
            status="held" if held_for else "open",
            removed=len(acked),
            error=held_for or why,
            created_at=now,
        ),
        pieces=pieces,
    )
    out.run_id, out.removed, out.status = run.id, len(acked), run.status
    if run.status == "held":
        _tell_held(session, run, name, config, segment, held_for, share, templates_dir)
    return out


def _tell_held(
    session: Session,
    run: SyncRun,
    name: str,
    config: DestinationConfig,
    segment: Segment,
    reason: str | None,
    share: float | None,
    templates_dir: Path | None,
) -> None:
    """Tell the owner a run waits for their approval, with the command that gives it."""
    _tell_owner(
        session,
        key=f"sync-held:{run.id}",
        run_id=run.id,
        event="held",
        name=name,
        config=config,
        segment=segment,
        reason=reason or "",
        added=run.added,
        removed=run.removed,
        share=share,
        command=f"segops sync approve {name} {segment.name}",
        templates_dir=templates_dir,
    )


def _sending(session: Session, run: SyncRun) -> bool:
    """Whether a batch of ``run`` is out with a sender (cancelling it would lose track of
    what the destination applied)."""
    return bool(store.batch_counts(session, run_id=run.id).get("sending"))


def _current(session: Session, segment: Segment) -> tuple[SegmentResult, Snapshot] | None:
    if not segment.current_result_id:
        return None
    result = session.get(SegmentResult, segment.current_result_id)
    if result is None or result.bitmap is None:
        return None
    return result, session.get(Snapshot, result.snapshot_id)


def _plan_one(
    session: Session,
    name: str,
    config: DestinationConfig,
    segment: Segment,
    *,
    now: datetime,
    change_limit: float,
    hold_on_alerts: bool,
    templates_dir: Path | None,
    retry_failed: bool = False,
) -> Planned:
    out = Planned(name, segment.name)
    row = store.destination(session, name=name, kind=config.kind)
    if row.status == "disabled":
        out.status = "destination disabled"
        return out
    unfinished = store.open_run(session, destination_id=row.id, segment_id=segment.id)
    if unfinished is not None:
        if unfinished.kind != "retire" or _sending(session, unfinished):
            out.status = "previous run unfinished"
            return out
        # the segment is back before its members were removed: keep them
        store.cancel_open(session, destination_id=row.id, segment_id=segment.id)
    failed = store.failure_streak(session, destination_id=row.id, segment_id=segment.id)
    if failed and not retry_failed and now < failed[0].finished_at + run_backoff(len(failed)):
        out.status = "waiting after a failed run"
        return out
    current = _current(session, segment)
    if current is None:
        out.status = "not refreshed yet"
        return out
    result, snapshot = current
    state = store.state(session, destination_id=row.id, segment_id=segment.id)
    acked = store.bitmap(state.acked)
    members = live_members(session, segment)
    out.source = "batch" if members is None else "live"
    new = sendable(session, segment, decode(result.bitmap) if members is None else members)
    add, remove = dest.plan(new, acked)
    if state.missing and not missing_due(state, result_id=result.id, now=now):
        add -= store.bitmap(state.missing)  # reported missing: they wait for their retry
    first = state.acked is None
    if not add and not remove and not (first and config.kind == "files"):
        return out
    key_bytes = None
    if config.kind == "webhook":
        ids = [*add, *remove]
        lengths = [len(k.encode()) for k in keys_for_ids(session, ids=ids)]
        key_bytes = dict(zip(ids, lengths, strict=True))
    pieces = [
        (p.add, p.remove)
        for p in dest.batches(
            add, remove, size=config.size, max_bytes=config.max_bytes, key_bytes=key_bytes
        )
    ] or [(BitMap(), BitMap())]
    held_for = _hold_reason(
        session, result, acked, add, remove, change_limit=change_limit, on_alerts=hold_on_alerts
    )
    run = store.add_run(
        session,
        run=SyncRun(
            destination_id=row.id,
            segment_id=segment.id,
            result_id=result.id,
            as_of=snapshot.as_of if snapshot else None,
            kind="resync" if first else "diff",
            status="held" if held_for and not first else "open",
            added=len(add),
            removed=len(remove),
            error=held_for if not first else None,
            created_at=now,
        ),
        pieces=pieces,
    )
    out.run_id, out.added, out.removed = run.id, len(add), len(remove)
    out.status = run.status
    if run.status == "held":
        share = dest.share_changed(len(add), len(remove), len(acked))
        _tell_held(session, run, name, config, segment, held_for, share, templates_dir)
    return out


def _hold_reason(
    session: Session,
    result: SegmentResult,
    acked: BitMap,
    add: BitMap,
    remove: BitMap,
    *,
    change_limit: float,
    on_alerts: bool,
) -> str | None:
    share = dest.share_changed(len(add), len(remove), len(acked))
    if share > change_limit:
        return f"the change is {share:.0%} of what the destination holds (limit {change_limit:.0%})"
    if on_alerts:
        alerts = session.execute(
            select(Alert.kind).where(
                Alert.result_id == result.id,
                Alert.status == "open",
                Alert.severity.in_(("warning", "critical")),  # type: ignore[attr-defined]
            )
        ).all()
        if alerts:
            kinds = ", ".join(sorted({a[0] for a in alerts}))
            return f"the refresh raised drift alerts ({kinds})"
    return None


def approve(engine: Engine, ws: Workspace, *, destination: str, segment: str, by: str) -> int:
    """Release the held run of ``destination`` and ``segment``; its id."""
    config = find_destination(ws, destination)
    with session_scope(engine) as session:
        seg = find_segment(session, segment)
        row = store.destination(session, name=destination, kind=config.kind)
        run = store.open_run(session, destination_id=row.id, segment_id=seg.id)
        if run is None or run.status != "held":
            raise SegopsError(f"no sync of '{seg.name}' to '{destination}' is waiting for approval")
        run.status, run.error = "open", f"approved by {by}"
        session.add(run)
        assert run.id is not None
        return run.id


def approve_run(engine: Engine, *, run_id: int, user: str) -> str:
    """Release held run ``run_id`` for the owner or an approver of its segment (the Slack
    button); one line saying what happens next."""
    with session_scope(engine) as session:
        run = session.get(SyncRun, run_id)
        if run is None:
            raise SegopsError(f"no sync run #{run_id}")
        segment = session.get(Segment, run.segment_id)
        deciders = [segment.owner, *(segment.approvers or [])]
        if user not in deciders:
            raise NotAuthorised(
                f"only the owner {person(segment.owner)} or an approver of "
                f"'{segment.name}' can release this sync",
                users=deciders,
            )
        if run.status != "held":
            raise SegopsError(f"sync run #{run_id} is not waiting for approval ({run.status})")
        run.status, run.error = "open", f"approved by {user}"
        session.add(run)
        row = session.get(SyncDestination, run.destination_id)
        return (
            f"sync #{run_id} of '{segment.name}' to '{row.name}' released: sent with the next pass"
        )


def resync(engine: Engine, ws: Workspace, *, destination: str, segment: str | None = None) -> int:
    """Forget what ``destination`` acknowledged (of one segment, or all it receives) and
    cancel unfinished runs: the next run rebuilds it from scratch. How many segments."""
    config = find_destination(ws, destination)
    with session_scope(engine) as session:
        row = store.destination(session, name=destination, kind=config.kind)
        chosen = targets(session, ws, only=destination, segment=segment)
        for _, _, seg in chosen:
            store.cancel_open(session, destination_id=row.id, segment_id=seg.id)
            state = store.state(session, destination_id=row.id, segment_id=seg.id)
            store.reset_state(session, state_id=state.id)
        return len(chosen)


def retry(engine: Engine, ws: Workspace, *, destination: str | None = None) -> list[str]:
    """Enable disabled destinations (one, or all) and make their waiting batches due now
    (the pass that follows plans the pairs whose last run failed, without waiting)."""
    names = [destination] if destination else sorted(ws.destinations)
    enabled = []
    now = utcnow()
    with session_scope(engine) as session:
        for name in names:
            config = find_destination(ws, name)
            row = store.destination(session, name=name, kind=config.kind)
            if row.status == "disabled":
                row.status, row.disabled_reason, row.disabled_at = "active", None, None
                session.add(row)
                enabled.append(name)
            runs = session.execute(
                select(SyncRun.id).where(SyncRun.destination_id == row.id, SyncRun.status == "open")
            ).scalars()
            for run_id in list(runs):
                waiting = select(SyncBatch).where(
                    SyncBatch.run_id == run_id, SyncBatch.status == "pending"
                )
                for batch in session.execute(waiting).scalars():
                    batch.next_attempt_at = now
                    session.add(batch)
    return enabled


# -- batches ----------------------------------------------------------------------------


@dataclass
class Work:
    """A claimed batch, with everything a sender needs (keys resolved)."""

    batch_id: int
    run_id: int
    seq: int
    key: str
    attempts: int
    destination: str
    segment: str
    segment_id: int
    state_id: int
    as_of: date | None
    reset: bool
    add_ids: BitMap
    remove_ids: BitMap
    add: list[str]
    remove: list[str]
    snapshot: list[str] | None = None
    key_of: dict[str, int] = field(default_factory=dict)
    keep: set[str] = field(default_factory=set)
    """Keys the destination must keep for other segments writing the same list: of a
    reset, all they hold; otherwise those of ``remove`` they hold."""


def due(engine: Engine, *, destination: str, now: datetime, limit: int = 100) -> list[int]:
    """Ids of the destination's due batches, oldest first (none while it is disabled)."""
    with session_scope(engine) as session:
        row = session.execute(
            select(SyncDestination).where(SyncDestination.name == destination)
        ).scalar_one_or_none()
        if row is None or row.status != "active":
            return []
        return [
            b.id for b in store.due_batches(session, destination_id=row.id, now=now, limit=limit)
        ]


def claim(
    engine: Engine,
    *,
    batch_id: int,
    now: datetime,
    snapshot: bool = False,
    lease: timedelta = CLAIM_LEASE,
    shared: Sequence[str] = (),
) -> Work | None:
    """Take the batch for one attempt, or None when another worker has it or it is done.
    ``shared``: the destinations writing the same list as this one (itself included), whose
    other segments' members the list keeps (:attr:`Work.keep`)."""
    with session_scope(engine) as session:
        batch = session.get(SyncBatch, batch_id)
        if batch is None or batch.status not in store.DUE_STATUSES or batch.next_attempt_at > now:
            return None
        claimed = batch.attempts + 1
        if not store.compare_and_set(
            session,
            batch_id=batch_id,
            status=batch.status,
            attempts=batch.attempts,
            values={"status": "sending", "attempts": claimed, "next_attempt_at": now + lease},
        ):
            return None
        run = session.get(SyncRun, batch.run_id)
        row = session.get(SyncDestination, run.destination_id)
        segment = session.get(Segment, run.segment_id)
        state = store.state(session, destination_id=row.id, segment_id=segment.id)
        add_ids, remove_ids = decode(batch.add_ids), decode(batch.remove_ids)
        add = keys_for_ids(session, ids=list(add_ids))
        remove = keys_for_ids(session, ids=list(remove_ids))
        reset = run.kind == "resync" and not run.reset_done
        keep: set[str] = set()
        if shared:
            held = store.held_elsewhere(session, destinations=shared, state_id=state.id)
            keep = set(keys_for_ids(session, ids=list(held if reset else held & remove_ids)))
        full = None
        if snapshot:
            members = (store.bitmap(state.acked) | add_ids) - remove_ids
            full = keys_for_ids(session, ids=list(members))
        return Work(
            batch_id=batch_id,
            run_id=run.id,
            seq=batch.seq,
            key=batch.idempotency_key,
            attempts=claimed,
            destination=row.name,
            segment=segment.name,
            segment_id=segment.id,
            state_id=state.id,
            as_of=run.as_of,
            reset=reset,
            add_ids=add_ids,
            remove_ids=remove_ids,
            add=add,
            remove=remove,
            snapshot=full,
            key_of=dict(zip(add + remove, [*add_ids, *remove_ids], strict=True)),
            keep=keep,
        )


def mark_reset(engine: Engine, work: Work) -> None:
    """The destination was reset for the rebuild ``work`` belongs to."""
    with session_scope(engine) as session:
        store.mark_reset(session, run_id=work.run_id)


def confirm(
    engine: Engine,
    work: Work,
    *,
    now: datetime,
    missing: list[str] = (),
    config: DestinationConfig | None = None,
    templates_dir: Path | None = None,
) -> bool:
    """The destination took the batch: mark it sent and move the acknowledged bitmap, in
    one transaction. ``missing``: keys it reported unknown. False if the claim was lost."""
    with session_scope(engine) as session:
        if not store.compare_and_set(
            session,
            batch_id=work.batch_id,
            status="sending",
            attempts=work.attempts,
            values={
                "status": "sent",
                "sent_at": now,
                "last_error": None,
                "missing": len(missing),
            },
        ):
            return False
        gone = BitMap([work.key_of[k] for k in missing if k in work.key_of])
        before = store.bitmap(session.get(SyncState, work.state_id).missing)
        state = store.acknowledge(
            session, state_id=work.state_id, add=work.add_ids, remove=work.remove_ids, missing=gone
        )
        _wait_for_missing(session, state, before, gone & work.add_ids, work.run_id, now)
        run = store.settle_run(session, run_id=work.run_id, now=now)
        if run is not None and run.status == "done" and config is not None:
            _summarise(session, run, work.destination, config, templates_dir)
        return True


def _wait_for_missing(
    session: Session,
    state: SyncState,
    before: BitMap,
    reported: BitMap,
    run_id: int,
    now: datetime,
) -> None:
    """Set when the ids waiting in ``state.missing`` are sent again: 15 minutes after the
    first report, doubling each time a retry planned after its wait is answered with
    missing ids again, up to a day; sooner when the segment is refreshed."""
    if not state.missing:
        state.missing_attempts, state.missing_retry_at, state.missing_result_id = 0, None, None
    elif reported:
        run = session.get(SyncRun, run_id)
        waited = state.missing_retry_at is not None and state.missing_retry_at <= run.created_at
        if waited and reported & before:
            state.missing_attempts += 1
            state.missing_retry_at = now + missing_backoff(state.missing_attempts)
        elif state.missing_retry_at is None or waited:
            state.missing_attempts = max(state.missing_attempts, 1)
            state.missing_retry_at = now + missing_backoff(state.missing_attempts)
        state.missing_result_id = run.result_id
    session.add(state)


def reschedule(engine: Engine, work: Work, *, now: datetime, delay: timedelta, reason: str) -> bool:
    """Try the batch again after ``delay``."""
    with session_scope(engine) as session:
        return store.compare_and_set(
            session,
            batch_id=work.batch_id,
            status="sending",
            attempts=work.attempts,
            values={"status": "pending", "next_attempt_at": now + delay, "last_error": reason},
        )


def give_up(
    engine: Engine,
    work: Work,
    config: DestinationConfig,
    *,
    now: datetime,
    reason: str,
    templates_dir: Path | None = None,
) -> bool:
    """Mark the batch dead; its ids are part of the next run's diff. The owner is told once
    per run."""
    with session_scope(engine) as session:
        if not store.compare_and_set(
            session,
            batch_id=work.batch_id,
            status="sending",
            attempts=work.attempts,
            values={"status": "dead", "last_error": reason},
        ):
            return False
        if work.reset:  # the rebuild never reset the destination: the run cannot go on
            store.cancel_waiting(session, run_id=work.run_id)
        store.settle_run(session, run_id=work.run_id, now=now)
        run = session.get(SyncRun, work.run_id)
        streak = store.failure_streak(
            session, destination_id=run.destination_id, segment_id=run.segment_id
        )
        told = any(r.notified for r in streak if r.id != run.id)
        if not run.notified and not told:
            run.notified = True
            session.add(run)
            _tell_owner(
                session,
                key=f"sync-failed:{run.id}",
                event="failed",
                name=work.destination,
                config=config,
                segment=session.get(Segment, work.segment_id),
                reason=reason,
                added=run.added,
                removed=run.removed,
                share=None,
                command=f"segops sync status {work.destination}",
                templates_dir=templates_dir,
            )
        return True


def disable(
    engine: Engine,
    work: Work,
    config: DestinationConfig,
    *,
    now: datetime,
    reason: str,
    templates_dir: Path | None = None,
) -> bool:
    """The endpoint is gone: disable the destination, put the batch back, tell the owners
    of the segments it receives (once per disabling)."""
    with session_scope(engine) as session:
        store.compare_and_set(
            session,
            batch_id=work.batch_id,
            status="sending",
            attempts=work.attempts,
            values={"status": "pending", "last_error": reason, "next_attempt_at": now},
        )
        row = session.execute(
            select(SyncDestination).where(SyncDestination.name == work.destination)
        ).scalar_one()
        if row.status == "disabled":
            return False
        row.status, row.disabled_reason, row.disabled_at = "disabled", reason, now
        session.add(row)
        segment = session.get(Segment, work.segment_id)
        _tell_owner(
            session,
            key=f"sync-disabled:{row.id}:{now.isoformat(timespec='seconds')}",
            event="disabled",
            name=work.destination,
            config=config,
            segment=segment,
            reason=reason,
            added=0,
            removed=0,
            share=None,
            command=f"segops sync retry {work.destination}",
            templates_dir=templates_dir,
        )
        return True


def _summarise(
    session: Session,
    run: SyncRun,
    name: str,
    config: DestinationConfig,
    templates_dir: Path | None,
) -> None:
    """Post "HubSpot list '123': +120 / -43, 2 ids not found" in the thread of the summary
    of the refresh that was synced (or on its own when that summary was not queued)."""
    if not (run.added - run.missing or run.removed):
        return  # nothing landed (ids not found were tried again): no line
    segment = session.get(Segment, run.segment_id)
    result = session.get(SegmentResult, run.result_id) if run.result_id else None
    thread = None
    if result is not None:
        target = segment.channel or "dm"
        key = (
            f"summary:{result.snapshot_id}:{target}:{segment.owner if not segment.channel else ''}"
        )
        thread = key if is_queued(session, key=key) else None
    ctx = {
        "destination": {"name": name, "label": dest.describe(config, name), "kind": config.kind},
        "segment": {"name": segment.name, "title": segment.title},
        "as_of": run.as_of.isoformat() if run.as_of else "",
        "added": run.added,
        "removed": run.removed,
        "missing": run.missing,
    }
    add_message(
        session,
        key=f"sync-done:{run.id}",
        kind="sync_summary",
        channel=segment.channel,
        messages=renderer(templates_dir).render_messages("sync-summary", ctx),
        fallback_user=segment.owner,
        thread_key=thread,
    )


def _tell_owner(
    session: Session,
    *,
    key: str,
    event: str,
    name: str,
    config: DestinationConfig,
    segment: Segment,
    reason: str,
    added: int,
    removed: int,
    share: float | None,
    command: str,
    templates_dir: Path | None,
    run_id: int | None = None,
) -> None:
    ctx = {
        "run_id": run_id,
        "event": event,
        "destination": {"name": name, "label": dest.describe(config, name), "kind": config.kind},
        "segment": {"name": segment.name, "title": segment.title},
        "reason": reason,
        "added": added,
        "removed": removed,
        "share": share,
        "command": command,
    }
    add_message(
        session,
        key=key,
        kind="sync_status",
        channel=None,
        messages=renderer(templates_dir).render_messages("sync-status", ctx),
        fallback_user=segment.owner,
    )


# -- status -----------------------------------------------------------------------------


def status(engine: Engine, ws: Workspace, *, only: str | None = None) -> list[dict[str, Any]]:
    """Per destination: its state and how many ids it reported missing (``missing``,
    waiting for their retry), and per segment what it holds, waits for and last did;
    segments it no longer receives but still holds members of come last, with
    ``retiring`` saying why."""
    out = []
    with session_scope(engine) as session:
        pairs = targets(session, ws, only=only)
        by_name: dict[str, list[Segment]] = {}
        for name, _, seg in pairs:
            by_name.setdefault(name, []).append(seg)
        retired: dict[str, list[tuple[Segment, str]]] = {}
        for name, _, seg, why in retiring(session, ws, only=only):
            retired.setdefault(name, []).append((seg, why))
        for name in [only] if only else sorted(ws.destinations):
            config = ws.destinations[name]
            row = session.execute(
                select(SyncDestination).where(SyncDestination.name == name)
            ).scalar_one_or_none()
            entry: dict[str, Any] = {
                "destination": name,
                "kind": config.kind,
                "label": dest.describe(config, name),
                "status": row.status if row else "never run",
                "disabled_reason": row.disabled_reason if row else None,
                "segments": [],
            }
            for seg in by_name.get(name, []):
                current = _current(session, seg)
                live = live_members(session, seg) if current is not None else None
                seg_entry: dict[str, Any] = {
                    "segment": seg.name,
                    "members": (len(live) if live is not None else current[0].size)
                    if current
                    else None,
                    "source": "live" if live is not None else "batch",
                    "acknowledged": 0,
                    "in_step": False,
                    "missing": 0,
                    "missing_retry_at": None,
                    "run": None,
                }
                if row is not None:
                    state = store.state(session, destination_id=row.id, segment_id=seg.id)
                    seg_entry["acknowledged"] = state.acked_count
                    if current is not None:
                        held = decode(current[0].bitmap) if live is None else live
                        new = sendable(session, seg, held)
                        waiting = store.bitmap(state.missing) & new
                        seg_entry["in_step"] = new - waiting == store.bitmap(state.acked)
                        seg_entry["missing"] = len(waiting)
                        if waiting and state.missing_retry_at is not None:
                            seg_entry["missing_retry_at"] = state.missing_retry_at.isoformat(
                                timespec="seconds"
                            )
                    seg_entry["run"] = _last_run(session, row.id, seg.id)
                entry["segments"].append(seg_entry)
            for seg, why in retired.get(name, []):
                state = store.state(session, destination_id=row.id, segment_id=seg.id)
                entry["segments"].append(
                    {
                        "segment": seg.name,
                        "members": None,
                        "acknowledged": state.acked_count,
                        "in_step": state.acked_count == 0,
                        "missing": 0,
                        "missing_retry_at": None,
                        "retiring": why,
                        "run": _last_run(session, row.id, seg.id),
                    }
                )
            entry["missing"] = sum(seg["missing"] for seg in entry["segments"])
            out.append(entry)
    return out


def _last_run(session: Session, destination_id: int, segment_id: int) -> dict[str, Any] | None:
    runs = [
        r
        for r in store.recent_runs(session, destination_id=destination_id, limit=50)
        if r.segment_id == segment_id
    ]
    if not runs:
        return None
    last = runs[0]
    return {
        "id": last.id,
        "kind": last.kind,
        "status": last.status,
        "added": last.added,
        "removed": last.removed,
        "missing": last.missing,
        "dead": last.dead,
        "batches": store.batch_counts(session, run_id=last.id),
        "note": last.error,
        "last_error": store.last_error(session, run_id=last.id),
        "created_at": last.created_at.isoformat(timespec="seconds"),
    }


@dataclass
class Failing:
    """One destination and segment that needs someone: what is wrong, since when, and the
    command that deals with it."""

    destination: str
    kind: str
    segment: str
    owner: str
    problem: str  # "disabled", "dead-lettered", "retrying", "waiting for approval"
    since: datetime | None
    error: str
    command: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def one_line(text: str | None, limit: int = 200) -> str:
    """The first line of ``text``, cut to ``limit`` characters."""
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def failing(engine: Engine, *, owner: str | None = None) -> list[Failing]:
    """Destinations whose latest run of a segment failed for good, keeps failing, waits
    for approval, or that are disabled; of ``owner``'s segments (None: every segment).
    Empty when every sync is fine."""
    out = []
    with session_scope(engine) as session:
        for row in store.destinations(session):
            for run in store.latest_runs(session, destination_id=row.id):
                segment = session.get(Segment, run.segment_id)
                if owner is not None and segment.owner != owner:
                    continue
                entry = _failing(session, row, run, segment)
                if entry is not None:
                    out.append(entry)
    return out


def _failing(
    session: Session, row: SyncDestination, run: SyncRun, segment: Segment
) -> Failing | None:
    def entry(problem: str, since: datetime | None, error: str | None, command: str) -> Failing:
        return Failing(
            row.name,
            row.kind,
            segment.name,
            segment.owner,
            problem,
            since,
            one_line(error),
            command,
        )

    retry = f"segops sync retry {row.name}"
    if row.status == "disabled":
        return entry("disabled", row.disabled_at, row.disabled_reason, retry)
    if run.status == "held":
        approve = f"segops sync approve {row.name} {segment.name}"
        return entry("waiting for approval", run.created_at, run.error, approve)
    if run.status == "failed":
        streak = store.failure_streak(session, destination_id=row.id, segment_id=segment.id)
        since = streak[-1].finished_at if streak else run.finished_at
        return entry("dead-lettered", since, store.last_error(session, run_id=run.id), retry)
    if run.status == "open" and store.retrying(session, run_id=run.id):
        return entry("retrying", run.created_at, store.last_error(session, run_id=run.id), retry)
    return None

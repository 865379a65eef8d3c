"""Refresh: load the data, gate it, compute memberships, detect drift, publish.

The path of one refresh (see DESIGN.md):

1. load every source and build one frame keyed by entity id;
2. run the quality gate against the history of earlier profiles;
3. evaluate every active segment's rule (references in dependency order);
4. turn memberships into bitmaps over dense entity ids, diff against the last
   published snapshot (joined, left, and which clause the leavers stopped matching);
5. profile members and compare with history (drift);
6. store everything in ONE transaction and mark it current, so a crash at any
   point leaves the previous snapshot current and nothing half-written.

One refresh runs at a time per database: a refresh holds the ``refresh`` lease
(:mod:`store.lease`), renewed while it runs; a second one is refused at once with
:class:`RefreshRunning`. A lease left by a process that died on this host is taken
over at once; one from another host expires after ``REFRESH_LEASE_TTL`` seconds.

A refresh never writes catalog fields: it reads each segment's definition before
loading and, when it publishes, claims the segment with a conditional update on the
version it computed. A segment whose definition changed (or that was archived)
meanwhile is ``skipped`` with a note, never reverted.

A published result becomes the segment's current one only if its ``as_of`` is on or
after that of the current result (the same conditional update that publishes checks
it). An earlier ``as_of`` (a back-fill) is stored as history, in the trend, with a
note; its joined, left and drift are measured against the segment's newest published
result on or before that ``as_of``, or against nothing when there is none.

A segment whose data fails the gate is ``blocked``: its previous result stays
current and ``quality_*`` alerts are recorded. Re-running an ``as_of`` that is
already published on the same data writes nothing and reports ``unchanged``.
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pyroaring import BitMap
from sqlalchemy import Engine, update
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, select

from commands.experiments import record_holdouts
from commands.lookup import find_segment
from commands.notify import LABELS, drift_fingerprint, result_labels
from segments import drift, membership, quality, rules, sources
from segments import engine as engines
from segments.errors import SegopsError
from segments.evaluate import evaluate_all
from segments.workspace import SegmentDef, Workspace
from store import lease
from store.db import session_scope, single_connection
from store.entities import add_entity_keys, entity_keys
from store.models import (
    Alert,
    Proposal,
    Segment,
    SegmentOrigin,
    SegmentResult,
    SegmentVersion,
    Snapshot,
)
from store.results import past_sizes, recent_profiles

Progress = Callable[[str], None]
HISTORY = 12
REFRESH_LEASE = "refresh"
REFRESH_LEASE_TTL = 60.0


class RefreshRunning(SegopsError):
    """Another refresh holds the refresh lease."""


def _alive_here(holder: str) -> bool:
    """Whether ``holder`` ("host:pid:tag") names a process still alive on this host."""
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return True  # another host: only its lease's expiry can tell
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def exclusive_refresh(engine: Engine) -> Iterator[None]:
    """Hold the refresh lease for the block, renewing it; RefreshRunning if it is taken."""
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    if lease.acquire(engine, name=REFRESH_LEASE, holder=holder, ttl=REFRESH_LEASE_TTL) is None:
        current = lease.current(engine, name=REFRESH_LEASE)
        if current is not None and not _alive_here(current.holder):
            lease.release(engine, name=REFRESH_LEASE, holder=current.holder)
        if lease.acquire(engine, name=REFRESH_LEASE, holder=holder, ttl=REFRESH_LEASE_TTL) is None:
            current = lease.current(engine, name=REFRESH_LEASE)
            who = current.holder.rsplit(":", 1)[0] if current else "another process"
            raise RefreshRunning(
                f"another refresh is running ({who}); try again when it has finished"
            )
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(REFRESH_LEASE_TTL / 3):
            try:
                lease.acquire(engine, name=REFRESH_LEASE, holder=holder, ttl=REFRESH_LEASE_TTL)
            except SQLAlchemyError:  # a busy database: the next round renews
                continue

    keeper = threading.Thread(target=renew, name="segops-refresh-lease", daemon=True)
    keeper.start()
    try:
        yield
    finally:
        stop.set()
        keeper.join()
        lease.release(engine, name=REFRESH_LEASE, holder=holder)


@dataclass
class AlertView:
    kind: str
    severity: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self, *, details: bool = False) -> dict[str, Any]:
        """``{kind, severity, message}``, and the numbers behind it with ``details``."""
        data = {"kind": self.kind, "severity": self.severity, "message": self.message}
        return {**data, "details": dict(self.details)} if details else data


@dataclass
class SegmentOutcome:
    """What one refresh did to one segment."""

    segment: str
    status: str
    size: int
    previous_size: int | None
    joined: int
    left: int
    alerts: list[AlertView] = field(default_factory=list)
    leave_reasons: dict[str, int] = field(default_factory=dict)
    kpis: dict[str, dict[str, float | None]] = field(default_factory=dict)
    quality_failures: list[str] = field(default_factory=list)
    note: str | None = None
    version: int | None = None
    definition_change: dict[str, Any] | None = None
    """Set when the definition that made the previous result differs (its rules):
    ``{from_version, to_version, previous_size, size, expected_size, proposal}``."""
    origin: dict[str, Any] | None = None
    """On a merged or split segment's first refresh: ``{kind, sources}``, the segments its
    members were compared with (see :func:`_origin_baseline`)."""

    def to_dict(self, *, details: bool = False) -> dict[str, Any]:
        """The outcome as JSON; ``details`` keeps each alert's numbers, which
        :func:`policy.visible_outcome` needs to judge them."""
        data = {
            "segment": self.segment,
            "status": self.status,
            "size": self.size,
            "previous_size": self.previous_size,
            "joined": self.joined,
            "left": self.left,
            "alerts": [a.to_dict(details=details) for a in self.alerts],
        }
        if self.note:
            data["note"] = self.note
        if self.definition_change:
            data["definition_changed"] = self.definition_change
        if self.origin:
            data["origin"] = self.origin
        return data


@dataclass
class RefreshReport:
    as_of: date
    segments: list[SegmentOutcome]
    snapshot_id: int | None
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"as_of": self.as_of.isoformat(), "segments": [s.to_dict() for s in self.segments]}


@dataclass
class Impact:
    """A proposal's effect measured on the latest data."""

    size_now: int
    size_after: int
    joined: int
    left: int
    as_of: str

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


class _Timer:
    """Wall time per refresh phase, summed over segments."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - started
            self.timings[name] = self.timings.get(name, 0.0) + elapsed


@dataclass
class _Run:
    """What every segment of one refresh shares."""

    dataset: sources.Dataset
    report: quality.QualityReport
    masks: Mapping[str, np.ndarray]
    all_rules: dict[str, rules.Rule]
    ids: np.ndarray
    as_of: date
    timer: _Timer
    profiles: drift.ProfileColumns
    _position: np.ndarray | None = None

    def rows_of(self, dense: BitMap) -> tuple[np.ndarray, int]:
        """Frame rows of these dense ids, and how many are no longer in the data."""
        if self._position is None:
            size = int(self.ids.max()) + 1 if len(self.ids) else 0
            self._position = np.full(size, -1, dtype=np.int64)
            self._position[self.ids] = np.arange(len(self.ids))
        wanted = membership.to_ids(dense).astype(np.int64)
        inside = wanted < len(self._position)
        rows = np.full(len(wanted), -1, dtype=np.int64)
        rows[inside] = self._position[wanted[inside]]
        return rows[rows >= 0], int((rows < 0).sum())


def _active_definitions(session: Session) -> list[tuple[Segment, SegmentDef]]:
    """Every active segment with its current definition, read in one query."""
    rows = session.exec(
        select(Segment, SegmentVersion.definition)
        .join(SegmentVersion, SegmentVersion.id == Segment.current_version_id)
        .where(Segment.status == "active")
        .order_by(Segment.id)
    ).all()
    return [(segment, SegmentDef.model_validate(definition)) for segment, definition in rows]


def _active(
    session: Session, only: Iterable[str] | None, active: list[tuple[Segment, SegmentDef]]
) -> list[tuple[Segment, SegmentDef]]:
    """The active segments to refresh: all of them, or ``only`` these."""
    chosen = list(active)
    if only:
        wanted = set()
        for name in only:
            wanted.add(find_segment(session, name).name)
        chosen = [(s, d) for s, d in chosen if s.name in wanted]
    if not chosen:
        raise SegopsError("no active segments in the catalog: run 'segops apply' first")
    return chosen


def _all_rules(
    session: Session, active: list[tuple[Segment, SegmentDef]] | None = None
) -> dict[str, rules.Rule]:
    """Every active segment's rule: references need their targets evaluated too."""
    pairs = active if active is not None else _active_definitions(session)
    return {segment.name: rules.parse(definition.rule) for segment, definition in pairs}


def _lineage(definition: SegmentDef, dataset: sources.Dataset, all_rules) -> tuple[set, set]:
    """Frame columns and sources a segment depends on, through segment references."""
    columns: set[str] = set()
    seen: set[str] = set()
    stack = [definition.name]
    while stack:
        name = stack.pop()
        if name in seen or name not in all_rules:
            continue
        seen.add(name)
        rule = all_rules[name]
        columns |= {dataset.schema.resolve(c) for c in rules.columns(rule)}
        stack.extend(rules.dependencies(rule))
    columns |= {dataset.schema.resolve(k) for k in definition.tracked_kpis}
    used_sources: set[str] = set()
    for column in columns:
        used_sources |= dataset.lineage.get(column, set())
    return columns, used_sources


def refresh(
    engine: Engine,
    ws: Workspace,
    *,
    as_of: date,
    only: Iterable[str] | None = None,
    progress: Progress | None = None,
    after_evaluate: Callable[[], None] | None = None,
    notify: bool = True,
    templates_dir: Path | None = None,
    engine_name: str | None = None,
    engine_options: engines.EngineOptions | None = None,
    privacy_floor: int = 0,
) -> RefreshReport:
    """Refresh the catalog's active segments (or ``only`` these) for ``as_of``.

    ``progress`` is called with each phase name: ``load``, ``quality``, ``evaluate``,
    and ``commit`` just before the one transaction that publishes is committed.
    ``templates_dir`` (``SEGOPS_TEMPLATES``) overrides the templates of the queued messages;
    ``privacy_floor`` (``SEGOPS_PRIVACY_FLOOR``) hides the numbers of small segments in them.
    ``engine_name`` (``pandas``, ``duckdb``, ``sql``; None: the workspace's) computes the
    data where it lives, with ``engine_options``; the queries it runs are reported through
    ``progress`` as ``query: ...``.
    Raises :class:`RefreshRunning` when another refresh is running.
    """
    with exclusive_refresh(engine), _staging(ws, engine_name, engine_options) as folder:
        return _refresh(
            engine,
            ws,
            as_of=as_of,
            only=only,
            progress=progress,
            after_evaluate=after_evaluate,
            notify=notify,
            templates_dir=templates_dir,
            engine_name=engine_name,
            engine_options=engine_options,
            privacy_floor=privacy_floor,
            stage_to=folder,
        )


class _KnownKeys:
    """The entity dictionary, read on a thread of its own while the sources load (reading a
    million keys and parsing the files overlap); calling it waits for the keys.

    The read is its own transaction: only a refresh adds keys, and refreshes are exclusive
    (:func:`exclusive_refresh`), so the dictionary cannot grow before this one writes. An
    in-memory SQLite database has one connection, so there the keys are read when asked for.
    They are also read when asked for beside DuckDB (``beside=False``): its query takes
    every core and its memory limit, and ten million keys being read (the joined text, its
    copy and the split keys, several hundred MB for a moment) would stack on its peak.
    """

    def __init__(self, engine: Engine, *, beside: bool = True) -> None:
        self._engine = engine
        self._keys: pd.Index | None = None
        self._future: Future[pd.Index] | None = None
        if beside and not single_connection(engine):
            pool = ThreadPoolExecutor(1, thread_name_prefix="segops-entity-keys")
            self._future = pool.submit(self._read)
            pool.shutdown(wait=False)

    def _read(self) -> pd.Index:
        with session_scope(self._engine) as session:
            return entity_keys(session)

    def __call__(self) -> pd.Index:
        if self._keys is None:
            self._keys = self._future.result() if self._future is not None else self._read()
        return self._keys

    def release(self) -> None:
        """Let go of the keys (a later call reads them again)."""
        self._keys, self._future = None, None


@contextmanager
def _staging(
    ws: Workspace, engine_name: str | None, options: engines.EngineOptions | None
) -> Iterator[Path | None]:
    """A folder for the SQL engines' per-entity rows while the refresh runs (in the spill
    folder when one is set), removed afterwards; None for the pandas engine."""
    if engines.choose_engine(ws, engine_name) == "pandas":
        yield None
        return
    where = options.temp_dir if options is not None and options.temp_dir else None
    if where is not None:
        where.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(
        prefix="segops-rows-", dir=where, ignore_cleanup_errors=True
    ) as folder:
        yield Path(folder)


def _refresh(
    engine: Engine,
    ws: Workspace,
    *,
    as_of: date,
    only: Iterable[str] | None,
    progress: Progress | None,
    after_evaluate: Callable[[], None] | None,
    notify: bool,
    templates_dir: Path | None,
    engine_name: str | None = None,
    engine_options: engines.EngineOptions | None = None,
    privacy_floor: int = 0,
    stage_to: Path | None = None,
) -> RefreshReport:
    timer = _Timer()
    started = time.perf_counter()
    with session_scope(engine) as session:
        active = _active_definitions(session)
        chosen = _active(session, only, active)
        all_rules = _all_rules(session, active)
        history = recent_profiles(session, limit=HISTORY)
    say = progress or (lambda _msg: None)
    say("load")
    with timer.phase("load"):
        known_keys = _KnownKeys(engine, beside=engines.choose_engine(ws, engine_name) != "duckdb")
        dataset, members = engines.load(
            ws,
            as_of=as_of,
            engine=engine_name,
            options=engine_options,
            progress=progress,
            known_ids=known_keys,
            rules=all_rules if stage_to is not None else None,
            stage_to=stage_to,
        )
        fingerprint = dataset.fingerprint
    say("quality")
    with timer.phase("quality"):
        report = quality.run_gate(dataset, ws, history=history)
    say("evaluate")
    with timer.phase("evaluate"):
        # the SQL engines computed every segment's members with the rows
        masks = (
            members.masks
            if members is not None
            else evaluate_all(all_rules, dataset.frame, dataset.schema)
        )
    if after_evaluate is not None:
        after_evaluate()

    with session_scope(engine) as session:
        with timer.phase("bitmaps"):
            known = known_keys()
            # the dictionary's keys are unique in the store (a unique constraint), and a
            # dataset has one row per entity; an engine's rows come in no order of their
            # own, a file's in the order the next refresh of it will find again
            ids, new_keys = membership.assign_ids(
                dataset.frame.index,
                known,
                known_unique=True,
                keys_unique=True,
                new_in_key_order=dataset.stored is not None,
            )
            first_new_id = len(known)
            del known
            known_keys.release()  # the keys are not needed again: ~50 MB a million
        with timer.phase("drift"):
            profiles = drift.ProfileColumns(dataset.table, dataset.schema, as_of=as_of)
        run = _Run(dataset, report, masks, all_rules, ids, as_of, timer, profiles)
        measured: list[_Measured | tuple[SegmentOutcome, dict, BitMap | None]] = []
        for segment, definition in chosen:
            # ``segment`` was read before loading: it is never added to this session, so
            # nothing it holds can overwrite a catalog change committed meanwhile.
            measured.append(_evaluate_segment(session, run, segment, definition))
        with timer.phase("drift"):
            judged = [m for m in measured if isinstance(m, _Measured)]
            member_profiles = _profile_members(run, judged)
        outcomes: list[SegmentOutcome] = []
        pending: list[tuple[Segment, SegmentDef, SegmentOutcome, dict, BitMap | None]] = []
        for (segment, definition), item in zip(chosen, measured, strict=True):
            if isinstance(item, _Measured):
                with timer.phase("drift"):
                    outcome, stats, bitmap = _judge(session, run, item, member_profiles[id(item)])
            else:
                outcome, stats, bitmap = item
            outcomes.append(outcome)
            pending.append((segment, definition, outcome, stats, bitmap))
        pending = _block_dependants(pending, all_rules)

        if all(o.status == "unchanged" for o in outcomes):
            timer.timings["total"] = time.perf_counter() - started
            return RefreshReport(
                as_of=as_of, segments=outcomes, snapshot_id=None, timings=timer.timings
            )

        with timer.phase("persist"):
            pending = [item for item in pending if _claim(session, item[0], item[2])]
            if not pending:
                timer.timings["total"] = time.perf_counter() - started
                return RefreshReport(
                    as_of=as_of, segments=outcomes, snapshot_id=None, timings=timer.timings
                )
            add_entity_keys(session, start=first_new_id, keys=new_keys)
            statuses = {o.status for o in outcomes if o.status != "skipped"}
            snapshot = Snapshot(
                as_of=as_of,
                status=statuses.pop() if len(statuses) == 1 else "partial",
                data_fingerprint=fingerprint,
                profile=report.profile,
            )
            session.add(snapshot)
            session.flush()
            for segment, definition, outcome, stats, bitmap in pending:
                stats = {**stats, LABELS: result_labels(ws, definition, stats)}
                _persist_outcome(session, snapshot, segment, definition, outcome, stats, bitmap)
            record_holdouts(
                session, snapshot=snapshot, keys=dataset.frame.index, ids=ids, masks=masks
            )
        if notify:
            from commands.notify import queue_refresh_messages

            with timer.phase("messages"):
                queue_refresh_messages(
                    session,
                    snapshot=snapshot,
                    outcomes=outcomes,
                    templates_dir=templates_dir,
                    privacy_floor=privacy_floor,
                )
        snapshot_id = snapshot.id
        say("commit")
    timer.timings["total"] = time.perf_counter() - started
    return RefreshReport(
        as_of=as_of, segments=outcomes, snapshot_id=snapshot_id, timings=timer.timings
    )


def _evaluate_segment(
    session: Session, run: _Run, segment: Segment, definition: SegmentDef
) -> _Measured | tuple[SegmentOutcome, dict, BitMap | None]:
    """Gate and diff one segment; nothing is written here. An unchanged or blocked
    segment's outcome comes back finished, any other is :class:`_Measured` for
    :func:`_judge`."""
    dataset = run.dataset
    previous, prev_snapshot = _baseline(session, segment, run.as_of)
    origin = _origin_baseline(session, segment, run.as_of) if previous is None else None
    mask = run.masks[definition.name]
    size = int(mask.sum())
    previous_size = previous.size if previous else None
    if origin is not None and origin["kind"] == "merge":
        previous_size = origin["size"]

    if (
        previous is not None
        and prev_snapshot is not None
        and prev_snapshot.as_of == run.as_of
        and prev_snapshot.data_fingerprint == dataset.fingerprint
        and previous.version_id == segment.current_version_id
    ):
        outcome = SegmentOutcome(
            definition.name,
            "unchanged",
            previous.size,
            previous.previous_size,
            previous.joined,
            previous.left,
        )
        return outcome, {}, None

    columns, used_sources = _lineage(definition, dataset, run.all_rules)
    failures = run.report.blocking_for(definition, columns, used_sources)
    if failures:
        alerts = [
            AlertView(
                f"quality_{c.kind}", "critical", c.message, {"source": c.source, "column": c.column}
            )
            for c in failures
        ]
        outcome = SegmentOutcome(
            definition.name,
            "blocked",
            size,
            previous_size,
            0,
            0,
            alerts,
            quality_failures=[c.message for c in failures],
        )
        return outcome, {}, None

    with run.timer.phase("bitmaps"):
        bitmap = membership.to_bitmap(run.ids[mask])
        prev_bitmap = (
            membership.decode(previous.bitmap)
            if previous is not None and previous.bitmap
            else origin["bitmap"]
            if origin is not None
            else BitMap()
        )
        joined, left = membership.movers(prev_bitmap, bitmap)
        if origin is not None and origin["kind"] == "split":
            left = BitMap()  # a part leaves the rest of its parent by design
    reasons: dict[str, int] = {}
    if len(left):
        with run.timer.phase("leavers"):
            rows, gone = run.rows_of(left)
            leavers = np.zeros(len(run.ids), dtype=bool)
            leavers[rows] = True
            reasons = membership.leave_reasons(
                run.all_rules[definition.name],
                dataset.table,
                dataset.schema,
                run.masks,
                leavers,
                rules=run.all_rules,
            )
            if gone:
                reasons["no longer in the data"] = gone
    with run.timer.phase("drift"):
        previous_profile = (previous.stats or {}).get("profile") if previous is not None else None
        same = _same_definition_versions(session, segment)
        change = _definition_change(session, segment, previous, same, size)
        if change is not None:
            # The change itself explains the move: size drift is judged against the
            # approved proposal's preview (the new definition on the previous data) when
            # there is one, and composition against nothing.
            previous_profile = None
    kpi_columns = [dataset.schema.resolve(k) for k in definition.tracked_kpis]
    return _Measured(
        segment=segment,
        definition=definition,
        size=size,
        previous_size=previous_size,
        joined=joined,
        left=left,
        reasons=reasons,
        bitmap=bitmap,
        profile_columns=sorted(columns | set(kpi_columns)),
        kpi_columns=kpi_columns,
        previous_profile=previous_profile,
        compared_size=previous_size if change is None else change["expected_size"],
        same=same,
        change=change,
        origin=origin,
    )


@dataclass
class _Measured:
    """A segment measured but not yet judged: what :func:`_judge` needs once its members'
    profile is computed (profiles of every segment are computed together, one group of
    columns at a time, by :func:`_profile_members`)."""

    segment: Segment
    definition: SegmentDef
    size: int
    previous_size: int | None
    joined: BitMap
    left: BitMap
    reasons: dict[str, int]
    bitmap: BitMap
    profile_columns: list[str]
    kpi_columns: list[str]
    previous_profile: dict | None
    compared_size: int | None
    same: set[int]
    change: dict[str, Any] | None
    origin: dict[str, Any] | None


PROFILE_GROUP_BYTES = 48 * 1024**2
"""How much column data profiling holds at once: the columns are taken in groups of about
this size (at 8 bytes a row), and every segment's members are profiled on one group before
the next is read (two million rows: three columns at a time), and never fewer than
``PROFILE_GROUP_MIN`` columns, since each group costs every segment its mask again (~10 ms
a segment at ten million rows). On two million PostgreSQL rows, groups of this size (with
each column read for one use) took the drift phase's peak RSS from 613 MB to 460 MB.
Only rows kept in a file are grouped: a frame in memory is profiled in one pass."""
PROFILE_GROUP_MIN = 2


def _profile_members(run: _Run, measured: list[_Measured]) -> dict[int, dict[str, Any]]:
    """Each measured segment's member profile (``drift.profile``), keyed by ``id()``.

    Column-major: a group of columns is converted once, every segment that profiles any of
    them is profiled on it, and the group is let go before the next; a segment's profile is
    the same as profiling all its columns at once (each column's summary is its own)."""
    wanted = sorted({c for m in measured for c in m.profile_columns})
    per_column = max(8 * len(run.ids), 1)
    size = max(PROFILE_GROUP_MIN, PROFILE_GROUP_BYTES // per_column)
    if run.dataset.stored is None:
        # a frame in memory holds its columns already; their conversions are small next
        # to it, so one group spares every segment its mask again
        size = max(len(wanted), 1)
    parts: dict[int, dict[str, Any]] = {id(m): {} for m in measured}
    for start in range(0, len(wanted), size):
        group = set(wanted[start : start + size])
        for item in measured:
            columns = [c for c in item.profile_columns if c in group]
            if not columns:
                continue
            stats = drift.profile(
                run.dataset.table,
                columns,
                run.dataset.schema,
                item.previous_profile,
                as_of=run.as_of,
                mask=run.masks[item.definition.name],
                cache=run.profiles,
            )
            parts[id(item)].update(stats["columns"])
        run.profiles.forget(group)
    return {
        id(m): {
            "version": drift.PROFILE_VERSION,
            "size": m.size,
            "columns": {c: parts[id(m)][c] for c in m.profile_columns},
        }
        for m in measured
    }


def _judge(
    session: Session, run: _Run, item: _Measured, stats: dict[str, Any]
) -> tuple[SegmentOutcome, dict, BitMap | None]:
    """Drift alerts and the outcome of a measured segment, given its members' profile."""
    definition, segment, origin = item.definition, item.segment, item.origin
    alerts, kpis = _drift(
        session,
        run,
        segment,
        definition,
        stats,
        item.kpi_columns,
        item.previous_profile,
        item.compared_size,
        item.same,
        item.bitmap,
    )
    if origin is not None and origin["kind"] == "split" and len(item.joined):
        parent = origin["sources"][0]
        alerts.append(
            AlertView(
                "split_outside",
                "warning",
                f"{len(item.joined):,} members are not in '{parent}', which this segment "
                "was split from",
                {"outside": len(item.joined), "source": parent},
            )
        )
    status = "published"
    if definition.block_on_min_size and any(a.kind == "min_size" for a in alerts):
        status = "blocked"
    outcome = SegmentOutcome(
        definition.name,
        status,
        item.size,
        item.previous_size,
        len(item.joined) if status == "published" else 0,
        len(item.left) if status == "published" else 0,
        alerts,
        leave_reasons=item.reasons,
        kpis=kpis,
        definition_change=item.change,
        origin={"kind": origin["kind"], "sources": origin["sources"]} if origin else None,
    )
    return outcome, {"profile": stats}, item.bitmap if status == "published" else None


def _origin_baseline(session: Session, segment: Segment, as_of: date) -> dict[str, Any] | None:
    """What a merged or split segment is compared with before its first result: the union
    of its sources' members (a merge) or its parent's (a split), each the newest published
    on or before ``as_of``. ``{kind, sources, bitmap, size}``; None when the segment has no
    recorded origin or no source has published members."""
    rows = session.exec(
        select(SegmentOrigin, Segment)
        .join(Segment, Segment.id == SegmentOrigin.source_segment_id)
        .where(SegmentOrigin.segment_id == segment.id)
        .order_by(SegmentOrigin.id)  # type: ignore[arg-type]
    ).all()
    union, names = BitMap(), []
    for _origin, source in rows:
        result, _snapshot = _baseline(session, source, as_of)
        if result is not None and result.bitmap:
            union |= membership.decode(result.bitmap)
            names.append(source.name)
    if not names:
        return None
    return {"kind": rows[0][0].kind, "sources": names, "bitmap": union, "size": len(union)}


def _block_dependants(pending: list[tuple], all_rules: dict[str, rules.Rule]) -> list[tuple]:
    """A segment that refers (``in_segment``, directly or not) to a segment this refresh
    blocked is blocked too, naming it: it is never computed from unpublished members."""
    blocked = {item[2].segment: item[2] for item in pending if item[2].status == "blocked"}
    if not blocked:
        return pending
    out = []
    for segment, definition, outcome, stats, bitmap in pending:
        reached: set[str] = set()
        rule = all_rules.get(definition.name)
        stack = list(rules.dependencies(rule)) if rule is not None else []
        while stack:
            name = stack.pop()
            if name not in reached and name in all_rules:
                reached.add(name)
                stack.extend(rules.dependencies(all_rules[name]))
        culprits = sorted(reached & set(blocked))
        if outcome.status == "blocked" or not culprits:
            out.append((segment, definition, outcome, stats, bitmap))
            continue
        first = blocked[culprits[0]]
        why = next(
            iter([*first.quality_failures, *(a.message for a in first.alerts)]),
            "it did not publish",
        )
        message = f"refers to segment '{culprits[0]}', which is blocked: {why}"
        outcome.status = "blocked"
        outcome.joined = outcome.left = 0
        outcome.alerts = [
            AlertView("quality_reference", "critical", message, {"segment": culprits[0]})
        ]
        outcome.quality_failures = [message]
        outcome.leave_reasons = {}
        outcome.definition_change = None
        out.append((segment, definition, outcome, {}, None))
    return out


def _against_baseline(
    session: Session,
    run: _Run,
    segment: Segment,
    definition: SegmentDef,
    members: BitMap,
    same: set[int],
) -> list[drift.Alert]:
    """Drift against the segment's baseline (``drift.baseline``), computed by the same
    definition: the published refresh on or before a pinned day, or the oldest of the last
    ``baseline_window`` refreshes. Nothing when there is none before this refresh."""
    settings = definition.drift
    if settings is None or settings.baseline is None:
        return []
    query = (
        select(SegmentResult, Snapshot.as_of)
        .join(Snapshot, Snapshot.id == SegmentResult.snapshot_id)
        .where(
            SegmentResult.segment_id == segment.id,
            SegmentResult.status == "published",
            SegmentResult.version_id.in_(list(same)),  # type: ignore[attr-defined]
            Snapshot.as_of < run.as_of,
        )
        .order_by(Snapshot.as_of.desc(), SegmentResult.id.desc())  # type: ignore[attr-defined]
    )
    if settings.baseline == "rolling":
        rows = session.exec(query.limit(settings.baseline_window)).all()
        found = rows[-1] if len(rows) >= 2 else None
    else:
        found = session.exec(query.where(Snapshot.as_of <= settings.baseline)).first()
    if found is None:
        return []
    base, base_as_of = found
    before = membership.decode(base.bitmap) if base.bitmap else BitMap()
    return drift.detect_baseline(
        size=len(members),
        baseline_size=len(before),
        kept=len(members & before),
        baseline_as_of=base_as_of.isoformat(),
        thresholds=definition.drift_thresholds(),
    )


def _same_definition_versions(session: Session, segment: Segment) -> set[int]:
    """Ids of the segment's versions whose rule is the current one's (a persona or title
    edit is a new version with the same members)."""
    rows = session.exec(
        select(SegmentVersion.id, SegmentVersion.rule_text).where(
            SegmentVersion.segment_id == segment.id
        )
    ).all()
    current = dict(rows).get(segment.current_version_id)
    return {i for i, rule in rows if rule == current}


def _definition_change(
    session: Session,
    segment: Segment,
    previous: SegmentResult | None,
    same: set[int],
    size: int,
) -> dict[str, Any] | None:
    """How the definition changed since ``previous`` was computed, or None if it did not.

    ``expected_size`` is the size the approved proposal's preview measured for the new
    definition (None when the change came another way or was not measured).
    """
    if previous is None or previous.version_id in same:
        return None
    numbers = dict(
        session.exec(
            select(SegmentVersion.id, SegmentVersion.version).where(
                SegmentVersion.id.in_([previous.version_id, segment.current_version_id])  # type: ignore[union-attr]
            )
        ).all()
    )
    proposal = session.exec(
        select(Proposal).where(Proposal.applied_version_id == segment.current_version_id)
    ).first()
    impact = (proposal.impact or {}) if proposal is not None else {}
    expected = impact.get("size_after")
    return {
        "from_version": numbers.get(previous.version_id),
        "to_version": numbers.get(segment.current_version_id),
        "previous_size": previous.size,
        "size": size,
        "expected_size": int(expected) if isinstance(expected, int | float) else None,
        "proposal": proposal.id if proposal is not None and expected is not None else None,
    }


def definition_change_text(change: dict[str, Any]) -> str:
    """``definition changed (v1 -> v2): 532 -> 993, 990 expected from proposal #4's preview``;
    a size hidden under the privacy floor (None, :func:`policy.visible_outcome`) reads
    ``hidden``."""

    def shown(size: int | None) -> str:
        return "hidden" if size is None else f"{size:,}"

    text = (
        f"definition changed (v{change['from_version']} -> v{change['to_version']}): "
        f"{shown(change.get('previous_size'))} -> {shown(change.get('size'))}"
    )
    if change.get("expected_size") is not None:
        text += f", {change['expected_size']:,} expected"
        if change.get("proposal"):
            text += f" from proposal #{change['proposal']}'s preview"
    return text


def _baseline(
    session: Session, segment: Segment, as_of: date
) -> tuple[SegmentResult, Snapshot] | tuple[None, None]:
    """The result a refresh for ``as_of`` is compared with, and its snapshot.

    The current result when it is not later than ``as_of``; for a back-fill, the
    segment's newest published result on or before ``as_of`` (none: nothing to compare).
    """
    current = (
        session.get(SegmentResult, segment.current_result_id) if segment.current_result_id else None
    )
    snapshot = session.get(Snapshot, current.snapshot_id) if current else None
    if current is not None and snapshot is not None and snapshot.as_of <= as_of:
        return current, snapshot
    if current is None:
        return None, None
    row = session.exec(
        select(SegmentResult, Snapshot)
        .join(Snapshot, Snapshot.id == SegmentResult.snapshot_id)
        .where(
            SegmentResult.segment_id == segment.id,
            SegmentResult.status == "published",
            Snapshot.as_of <= as_of,
        )
        .order_by(Snapshot.as_of.desc(), SegmentResult.id.desc())  # type: ignore[attr-defined]
    ).first()
    return (row[0], row[1]) if row is not None else (None, None)


def _drift(
    session: Session,
    run: _Run,
    segment: Segment,
    definition: SegmentDef,
    stats: dict[str, Any],
    kpi_columns: list[str],
    previous_profile: dict | None,
    previous_size: int | None,
    same: set[int],
    members: BitMap,
) -> tuple[list[AlertView], dict[str, dict[str, float | None]]]:
    """Compare the members' profile with the previous one, and pick out KPI means."""
    found = drift.detect(
        size=int(stats["size"]),
        previous_size=previous_size,
        history_sizes=past_sizes(
            session, segment_id=segment.id, limit=HISTORY, version_ids=same, before=run.as_of
        ),
        stats=stats,
        previous_stats=previous_profile,
        kpis=kpi_columns,
        thresholds=definition.drift_thresholds(),
    )
    found += _against_baseline(session, run, segment, definition, members, same)
    alerts = [AlertView(a.kind, a.severity, a.message, a.details) for a in found]
    now_columns = stats.get("columns") or {}
    before_columns = (previous_profile or {}).get("columns") or {}
    kpis = {
        k: {
            "value": (now_columns.get(k) or {}).get("mean"),
            "previous": (before_columns.get(k) or {}).get("mean"),
        }
        for k in kpi_columns
    }
    return alerts, kpis


def _persist_outcome(
    session: Session,
    snapshot: Snapshot,
    segment: Segment,
    definition: SegmentDef,
    outcome: SegmentOutcome,
    stats: dict,
    bitmap: BitMap | None,
) -> None:
    if outcome.status == "unchanged":
        return
    result = SegmentResult(
        snapshot_id=snapshot.id,
        segment_id=segment.id,
        version_id=segment.current_version_id,
        status=outcome.status,
        size=outcome.size,
        previous_size=outcome.previous_size,
        joined=outcome.joined,
        left=outcome.left,
        bitmap=membership.encode(bitmap) if bitmap is not None else None,
        stats={
            **stats,
            "kpis": outcome.kpis,
            **(
                {"definition_change": outcome.definition_change}
                if outcome.definition_change
                else {}
            ),
        },
        leave_reasons=outcome.leave_reasons,
    )
    session.add(result)
    session.flush()
    for alert in outcome.alerts:
        session.add(
            Alert(
                segment_id=segment.id,
                result_id=result.id,
                kind=alert.kind,
                severity=alert.severity,
                message=alert.message,
                details=_jsonable(alert.details),
                fingerprint=drift_fingerprint(definition.name, alert.kind, alert.details),
            )
        )
    if outcome.status == "published":
        newer = (
            select(SegmentResult.id)
            .join(Snapshot, Snapshot.id == SegmentResult.snapshot_id)
            .where(SegmentResult.id == Segment.current_result_id, Snapshot.as_of > snapshot.as_of)
        )
        made_current = session.execute(
            update(Segment)
            .where(Segment.id == segment.id, ~newer.exists())  # type: ignore[arg-type]
            .values(current_result_id=result.id, updated_at=datetime.now(UTC))
        ).rowcount
        if made_current != 1:
            served = session.exec(
                select(Snapshot.as_of)
                .join(SegmentResult, SegmentResult.snapshot_id == Snapshot.id)
                .join(Segment, Segment.current_result_id == SegmentResult.id)  # type: ignore[arg-type]
                .where(Segment.id == segment.id)
            ).first()
            day = served.isoformat() if served is not None else "a later day"
            outcome.note = (
                f"back-fill: stored as history; the current snapshot of {day} stays current"
            )
    session.flush()


def _change_stats(outcome: SegmentOutcome) -> dict[str, Any]:
    """The stored stats' record of a definition change, if there was one."""
    return {"definition_change": outcome.definition_change} if outcome.definition_change else {}


def _claim(session: Session, segment: Segment, outcome: SegmentOutcome) -> bool:
    """Hold the segment for publishing, if it is still the definition this refresh computed.

    The conditional update is the refresh's first write: on SQLite it takes the write
    lock, on PostgreSQL the row lock, both held until the commit, so no catalog change
    can slip in between this check and the publish. A segment changed (a new version,
    archived) since the refresh read it is left alone and reported ``skipped``.
    """
    if outcome.status == "unchanged":
        return False
    held = session.execute(
        update(Segment)
        .where(
            Segment.id == segment.id,  # type: ignore[arg-type]
            Segment.current_version_id == segment.current_version_id,
            Segment.status == "active",
        )
        .values(updated_at=Segment.updated_at)
    ).rowcount
    if held == 1:
        return True
    outcome.status = "skipped"
    outcome.joined = outcome.left = 0
    outcome.alerts = []
    outcome.note = (
        "definition changed during the refresh: nothing published; "
        "the next refresh computes the new definition"
    )
    return False


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


Loader = Callable[[Workspace, date], sources.Dataset]
"""Loads a workspace's data as of a day (``sources.load_dataset``, or a cache of it)."""


def preview(
    engine: Engine,
    ws: Workspace,
    *,
    segment: str,
    definition: SegmentDef,
    load: Loader | None = None,
) -> Impact:
    """Evaluate the current and a proposed definition on the latest data, side by side.

    The data is loaded as of the segment's last published refresh (today if it was
    never refreshed), so both sizes are measured on exactly the same rows. ``load``
    replaces the loading (the worker shares one load among the previews it runs).
    """
    with session_scope(engine) as session:
        current = find_segment(session, segment)
        all_rules = _all_rules(session)
        as_of = datetime.now(UTC).date()
        if current.current_result_id:
            result = session.get(SegmentResult, current.current_result_id)
            as_of = session.get(Snapshot, result.snapshot_id).as_of
    dataset = load(ws, as_of) if load is not None else engines.load(ws, as_of=as_of)[0]
    before = evaluate_all(all_rules, dataset.frame, dataset.schema)[current.name]
    proposed = dict(all_rules)
    proposed.pop(current.name, None)
    proposed[definition.name] = rules.parse(definition.rule)
    after = evaluate_all(proposed, dataset.frame, dataset.schema)[definition.name]
    return Impact(
        size_now=int(before.sum()),
        size_after=int(after.sum()),
        joined=int((after & ~before).sum()),
        left=int((before & ~after).sum()),
        as_of=as_of.isoformat(),
    )

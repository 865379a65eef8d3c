"""The live consumer (``segops stream``): read the event log, apply, acknowledge.

One round (:meth:`Consumer.step`): take this consumer's own pending entries first (after a
restart, those it read but never acknowledged), else entries other consumers left idle
(``XAUTOCLAIM``), else new ones; apply them in one transaction
(:func:`commands.live.apply_events`); then acknowledge. A kill at any point loses
nothing (unacknowledged entries come back) and applies nothing twice (the applied event
ids commit with the state). When the UTC day changes the sweep runs; every
``reload_every`` seconds a changed catalog (new, edited or archived segments) is loaded and
the live membership of changed segments rebuilt, and after a new batch refresh the entity
dictionary and properties are loaded again and every entity re-evaluated. Every
``notify_every`` seconds the live notices that are due are queued
(:func:`commands.live_notices.post_notices`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from commands import live, live_notices
from segments.live import day_of
from segments.workspace import Workspace
from store.db import DatabaseBusy
from stream.log import Entry, EventLog

logger = logging.getLogger(__name__)


def _incoming(entry: Entry) -> live.Incoming:
    entry_id, fields = entry
    try:
        accepted = datetime.fromtimestamp(float(fields.get("at", "")), UTC)
    except ValueError:
        accepted = datetime.now(UTC)
    payload = fields.get("e")
    return live.Incoming(payload if payload is not None else repr(fields), accepted, entry_id)


class Consumer:
    """One consumer of the group; ``clock`` gives event time (tests move it)."""

    def __init__(
        self,
        engine: Engine,
        load_workspace: Callable[[], Workspace],
        log: EventLog,
        *,
        name: str,
        lateness: timedelta,
        clock: Callable[[], datetime] = live.utcnow,
        batch: int = 500,
        block_ms: int = 500,
        claim_idle_ms: int = 30_000,
        reload_every: float = 30.0,
        notify_every: float = 10.0,
        privacy_floor: int = 1,
        templates_dir: Path | None = None,
    ) -> None:
        self.engine = engine
        self.load_workspace = load_workspace
        self.log = log
        self.name = name
        self.lateness = lateness
        self.clock = clock
        self.batch = batch
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.reload_every = reload_every
        self.notify_every = notify_every
        self.privacy_floor = privacy_floor
        self.templates_dir = templates_dir
        self._notified = 0.0
        self.runtime: live.Runtime | None = None
        self._own_pending = True
        self._day: int | None = None
        self._checked = 0.0
        self._rounds = 0
        self.totals = live.ApplyReport()

    def start(self) -> None:
        """Create the group, load the live model and build what needs building."""
        self.log.ensure_group()
        self._load()

    def _load(self) -> None:
        now = self.clock()
        before = self.runtime
        self.runtime = live.load_runtime(
            self.engine, self.load_workspace(), lateness=self.lateness, today=now.date()
        )
        built = live.build(self.engine, self.runtime, now=now)
        if built:
            logger.info("live_built segments=%s", ",".join(built))
        if before is not None and before.mark[0] != self.runtime.mark[0]:
            synced = live.resync(self.engine, self.runtime, now=now)
            logger.info("live_resync joins=%d leaves=%d", synced.joins, synced.leaves)
        self._checked = time.monotonic()

    def _entries(self) -> list[Entry]:
        if self._own_pending:
            entries = self.log.read(self.name, count=self.batch, block_ms=0, pending=True)
            if entries:
                return entries
            self._own_pending = False
        if self._rounds % 20 == 1:  # the first round, then every 20th
            claimed = self.log.claim(self.name, min_idle_ms=self.claim_idle_ms, count=self.batch)
            if claimed:
                return claimed
        return self.log.read(self.name, count=self.batch, block_ms=self.block_ms)

    def step(self) -> int:
        """One round; the number of log entries handled."""
        if self.runtime is None:
            self.start()
        assert self.runtime is not None
        self._rounds += 1
        if time.monotonic() - self._checked > self.reload_every:
            if live.catalog_mark(self.engine) != self.runtime.mark:
                self._load()
            self._checked = time.monotonic()
        entries = self._entries()
        now = self.clock()
        if entries:
            report = live.apply_events(
                self.engine, self.runtime, [_incoming(e) for e in entries], now=now
            )
            self.log.ack([entry_id for entry_id, _fields in entries])
            for key, value in report.to_dict().items():
                setattr(self.totals, key, getattr(self.totals, key) + value)
        today = day_of(now)
        if self._day is not None and today != self._day:
            swept = live.sweep(self.engine, self.runtime, now=now)
            live.prune(self.engine, self.runtime, now=now)
            logger.info("live_sweep joins=%d leaves=%d", swept.joins, swept.leaves)
        self._day = today
        if time.monotonic() - self._notified >= self.notify_every:
            notices = live_notices.post_notices(
                self.engine,
                now=now,
                privacy_floor=self.privacy_floor,
                templates_dir=self.templates_dir,
            )
            for notice in notices:
                logger.info(
                    "live_notice segment=%s joined=%d left=%d",
                    notice.segment,
                    notice.joined,
                    notice.left,
                )
            self._notified = time.monotonic()
        if self._rounds % 200 == 0:
            self.log.trim()
        return len(entries)

    def run(self, stop: threading.Event | None = None) -> None:
        """Consume until ``stop`` is set (or forever). A round that fails on the database
        or the log is logged and tried again: its entries stay pending and are re-read."""
        self.start()
        while stop is None or not stop.is_set():
            try:
                self.step()
            except (SQLAlchemyError, DatabaseBusy, redis.RedisError):
                logger.exception("live_round_failed; retrying")
                self._own_pending = True
                time.sleep(1.0)

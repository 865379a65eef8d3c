"""One sync pass over every destination (see :mod:`sync`)."""

from __future__ import annotations

import logging
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from commands import syncs
from commands.retrying import backoff
from commands.settings import Settings
from segments.destinations import DestinationConfig
from segments.workspace import Workspace
from store.models import utcnow
from sync.errors import ConfigError, Dead, Gone, Retry
from sync.limiter import limiter_for
from sync.senders import Sender, build_sender

logger = logging.getLogger(__name__)

BACKOFF_BASE = 2.0
BACKOFF_CAP = timedelta(minutes=15)
THREADS = 4
PER_PASS = 200
MAX_PAUSE = 60.0  # seconds the process holds back a destination that said Retry-After


@dataclass
class SyncStats:
    """What one pass did."""

    planned: int = 0
    held: int = 0
    sent: int = 0
    retried: int = 0
    dead: int = 0
    disabled: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)

    def merge(self, other: SyncStats) -> None:
        self.sent += other.sent
        self.retried += other.retried
        self.dead += other.dead
        self.disabled += other.disabled
        self.errors.update(other.errors)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def run_syncs(
    engine: Engine,
    ws: Workspace,
    settings: Settings,
    *,
    now: datetime | None = None,
    only: str | None = None,
    segment: str | None = None,
    plan: bool = True,
    rng: random.Random | None = None,
    threads: int = THREADS,
    retry_failed: bool = False,
) -> SyncStats:
    """Plan, then send what is due; one pass (call again for retries that come due).
    ``retry_failed``: plan pairs whose last run failed now, not after their backoff."""
    now = now or utcnow()
    rng = rng or random.Random()
    stats = SyncStats()
    if plan:
        for planned in syncs.plan_runs(
            engine,
            ws,
            now=now,
            only=only,
            segment=segment,
            change_limit=settings.sync_change_limit,
            hold_on_alerts=settings.sync_hold_on_alerts,
            templates_dir=settings.templates_dir,
            retry_failed=retry_failed,
        ):
            if planned.run_id is not None:
                stats.planned += 1
                stats.held += planned.status == "held"
    names = [only] if only else sorted(ws.destinations)
    jobs = [(name, ws.destinations[name]) for name in names if name in ws.destinations]
    if not jobs:
        return stats
    with ThreadPoolExecutor(max(1, min(threads, len(jobs))), "segops-sync") as pool:
        results = pool.map(
            lambda job: _Destination(engine, ws, settings, job[0], job[1], now, rng).run(), jobs
        )
        for result in results:
            stats.merge(result)
    return stats


class _Destination:
    """Sending one destination's due batches, in order, for one pass."""

    def __init__(
        self,
        engine: Engine,
        ws: Workspace,
        settings: Settings,
        name: str,
        config: DestinationConfig,
        now: datetime,
        rng: random.Random,
    ) -> None:
        self.engine, self.ws, self.settings = engine, ws, settings
        self.name, self.config, self.now, self.rng = name, config, now, rng
        self.stats = SyncStats()
        # destinations writing the same HubSpot list keep each other's members
        self.shared = tuple(
            sorted(
                other
                for other, c in ws.destinations.items()
                if config.kind == "hubspot" and c.kind == "hubspot" and c.list_id == config.list_id
            )
        )

    def run(self) -> SyncStats:
        due = syncs.due(self.engine, destination=self.name, now=self.now, limit=PER_PASS)
        if not due:
            return self.stats
        try:
            sender = build_sender(self.name, self.config, self.settings, base_dir=self.ws.base_dir)
        except ConfigError as error:
            self.stats.errors[self.name] = str(error)
            logger.error("sync_config_error destination=%s error=%s", self.name, error)
            for batch_id in due:
                work = self._claim(batch_id)
                if work is not None:
                    self._failed(work, str(error))
            return self.stats
        try:
            limiter = limiter_for(self.name, self.config.rate_per_second)
            seen: set[int] = set()
            while due and len(seen) < PER_PASS:
                for batch_id in due:
                    seen.add(batch_id)
                    work = self._claim(batch_id)
                    if work is None:
                        continue
                    if not self._send(sender, limiter, work):
                        return self.stats
                # a rebuild's reset releases its other batches: look again
                more = syncs.due(self.engine, destination=self.name, now=self.now, limit=PER_PASS)
                due = [i for i in more if i not in seen]
        finally:
            sender.close()
        return self.stats

    def _claim(self, batch_id: int) -> syncs.Work | None:
        return syncs.claim(
            self.engine,
            batch_id=batch_id,
            now=self.now,
            snapshot=self.config.kind == "files",
            lease=timedelta(seconds=self.settings.sync_claim_lease),
            shared=self.shared,
        )

    def _send(self, sender: Sender, limiter: Any, work: syncs.Work) -> bool:
        """Send one claimed batch; False when this destination should wait for a later pass."""
        try:
            if work.reset:
                limiter.acquire()
                sender.reset(work)
                syncs.mark_reset(self.engine, work)
            limiter.acquire()
            missing = sender.send(work)
        except Gone as gone:
            if syncs.disable(
                self.engine,
                work,
                self.config,
                now=self.now,
                reason=str(gone),
                templates_dir=self.settings.templates_dir,
            ):
                self.stats.disabled.append(self.name)
                logger.warning("sync_disabled destination=%s reason=%s", self.name, gone)
            return False
        except Retry as retry:
            if retry.retry_after is not None:
                limiter.pause(min(retry.retry_after.total_seconds(), MAX_PAUSE))
                syncs.reschedule(
                    self.engine, work, now=self.now, delay=retry.retry_after, reason=retry.reason
                )
                self.stats.retried += 1
                return False
            self._failed(work, retry.reason)
            return True
        except Dead as dead:
            self._give_up(work, str(dead))
            return True
        except Exception as error:  # noqa: BLE001 - a sender's bug must not stop the others
            logger.exception("sync_send_failed destination=%s key=%s", self.name, work.key)
            self._failed(work, f"{type(error).__name__} while sending")
            return True
        if syncs.confirm(
            self.engine,
            work,
            now=self.now,
            missing=missing,
            config=self.config,
            templates_dir=self.settings.templates_dir,
        ):
            self.stats.sent += 1
        return True

    def _failed(self, work: syncs.Work, reason: str) -> None:
        if work.attempts >= self.config.max_attempts:
            self._give_up(work, f"gave up after {work.attempts} attempts: {reason}")
            return
        delay = backoff(work.attempts, self.rng, cap=BACKOFF_CAP, base=BACKOFF_BASE)
        if syncs.reschedule(self.engine, work, now=self.now, delay=delay, reason=reason):
            self.stats.retried += 1
            logger.info(
                "sync_retry destination=%s key=%s in=%.1fs reason=%s",
                self.name,
                work.key,
                delay.total_seconds(),
                reason,
            )

    def _give_up(self, work: syncs.Work, reason: str) -> None:
        if syncs.give_up(
            self.engine,
            work,
            self.config,
            now=self.now,
            reason=reason,
            templates_dir=self.settings.templates_dir,
        ):
            self.stats.dead += 1
            logger.warning("sync_dead destination=%s key=%s reason=%s", self.name, work.key, reason)

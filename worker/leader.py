"""The worker (``segops worker``): one scheduler at a time, elected through a database lease.

Every worker process runs :class:`Worker`. Its main thread holds or polls the
``scheduler`` lease (:mod:`store.lease`) every ``renew_every`` seconds:

- the holder (the *leader*) runs an APScheduler ``BackgroundScheduler``;
- the others (*standbys*) run nothing and take the lease once it expires, then start
  their scheduler: a dead leader is replaced within ``ttl + renew_every`` seconds
  (40 s with the defaults);
- a leader whose renewal is refused or fails pauses its scheduler at once; it also
  pauses on its own, before looking for due jobs, once ``ttl`` seconds have passed
  since it started its last successful renewal, which is before any standby can
  see the lease expire. So two schedulers never submit jobs at the same time. A job
  already running when leadership is lost runs to its end.

Jobs
====

==========================  =====================================  ====================
id                          when (UTC)                             store
==========================  =====================================  ====================
``refresh:<segment>``       the segment's cadence                  ``segops_jobs``
``retry:<segment>:<n>``     after the n-th failure in a row        ``segops_jobs``
``feedback-digest``         daily 08:00                            ``segops_jobs``
``proposal-reminders``      hourly, on the hour                    ``segops_jobs``
``catalog-health``          Mondays 09:00                          ``segops_jobs``
``prune-events``            daily 03:30                            ``segops_jobs``
``prune-jobs``              daily 03:45                            ``segops_jobs``
``deliver``                 every 5 s, only with a Slack token     memory
``catalog-sync``            every 30 s                             memory
``sync``                    every 15 s, and after each refresh     memory
``queue``                   every 2 s                              memory
==========================  =====================================  ====================

``queue`` drains the work people asked for in Slack (a refresh, a proposal's impact
preview, :mod:`commands.queue`) and answers them (:mod:`bot.replies`); each job is
claimed with a conditional update, so a job runs once whichever worker drains.

Without a Slack token no ``deliver`` job is scheduled and messages stay queued in
the outbox until a worker with a token delivers them. The scheduler itself, its job
store and the catalog sync are in :mod:`worker.scheduler`; the job functions in
:mod:`worker.jobs`.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.base import STATE_RUNNING, STATE_STOPPED
from apscheduler.triggers.date import DateTrigger
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from commands.jobs import RefreshJobResult, open_failures
from commands.settings import Settings
from segments.errors import SegopsError
from store import lease
from store.db import make_engine
from worker import jobs
from worker.scheduler import (
    HOUSEKEEPING,
    JOB_OPTIONS,
    JOBS_TABLE,
    LOCAL,
    PERSISTENT,
    REFRESH_EXECUTOR,
    REFRESH_FUNC,
    REFRESH_PREFIX,
    RETRY_PREFIX,
    Configure,
    JobState,
    LeaderScheduler,
    SyncResult,
    build_scheduler,
    catalog_state,
    ensure_job,
    remove_job,
    stored_jobs,
    sync_jobs,
)

if TYPE_CHECKING:
    from slack_sdk import WebClient

    from segments.workspace import Workspace

logger = logging.getLogger(__name__)

LEASE_NAME = "scheduler"
LEASE_TTL = 30.0
RENEW_EVERY = 10.0
SYNC_EVERY = 30.0
DELIVERY_EVERY = 5.0
DESTINATIONS_EVERY = 15.0
QUEUE_EVERY = 2.0


# --- the worker ------------------------------------------------------------------------


class Worker:
    """One worker process: lease loop in the calling thread, scheduler when leading.

    ``configure`` is called with the started (still paused) scheduler the first time
    this worker leads, after the built-in jobs are in place.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        engine: Engine | None = None,
        worker_id: str | None = None,
        ttl: float = LEASE_TTL,
        renew_every: float = RENEW_EVERY,
        sync_every: float = SYNC_EVERY,
        delivery_every: float = DELIVERY_EVERY,
        client: WebClient | None = None,
        configure: Configure | None = None,
        lease_name: str = LEASE_NAME,
        jobs_table: str = JOBS_TABLE,
        queue_every: float = QUEUE_EVERY,
    ) -> None:
        if renew_every >= ttl:
            raise ValueError("renew_every must be shorter than the lease ttl")
        self.settings = settings
        self._own_engine = engine is None
        self.engine = engine or make_engine(settings.database_url)
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.ttl = ttl
        self.renew_every = renew_every
        self.sync_every = sync_every
        self.delivery_every = delivery_every
        self.client = client
        self.configure = configure
        self.lease_name = lease_name
        self.jobs_table = jobs_table
        self.queue_every = queue_every
        self._reply_client: WebClient | None = client
        self.scheduler: LeaderScheduler | None = None
        self._valid_until = 0.0  # time.monotonic() until which the lease is surely ours
        self._held = False
        self._fingerprint: str | None = None
        self._sync_lock = threading.Lock()

    # -- leadership --

    @property
    def leading(self) -> bool:
        """True while this worker's scheduler is running (not paused)."""
        return self.scheduler is not None and self.scheduler.state == STATE_RUNNING

    def lease_valid(self) -> bool:
        return time.monotonic() < self._valid_until

    def step(self) -> bool:
        """One lease round: take or renew the lease, start or pause the scheduler."""
        started = time.monotonic()
        try:
            expires = lease.acquire(
                self.engine, name=self.lease_name, holder=self.worker_id, ttl=self.ttl
            )
        except SQLAlchemyError:
            logger.warning("lease_unavailable worker=%s", self.worker_id, exc_info=True)
            expires = None
        if expires is None:
            self._valid_until = 0.0
            self._held = False
            if self.leading:
                assert self.scheduler is not None
                self.scheduler.pause()
                logger.warning("leadership_lost worker=%s", self.worker_id)
            return False
        self._valid_until = started + self.ttl - min(1.0, self.ttl / 10)
        self._held = True
        if self.scheduler is not None and not self.scheduler.alive:
            # Never lead with a dead scheduler: give the lease up so a standby (or this
            # worker, next round, with a new scheduler) takes over.
            logger.error("scheduler_thread_dead worker=%s", self.worker_id)
            self._abandon()
            return False
        if not self.leading:
            try:
                self._lead()
            except SQLAlchemyError:  # the scheduler stays paused; the next round retries
                logger.warning("leadership_start_failed worker=%s", self.worker_id, exc_info=True)
                return False
        return True

    def _abandon(self) -> None:
        """Drop a scheduler whose thread died and release the lease."""
        scheduler, self.scheduler = self.scheduler, None
        jobs.clear_active(self)
        if scheduler is not None:
            try:
                scheduler.shutdown(wait=False)
            except Exception:  # noqa: BLE001 - a dead scheduler may fail to stop cleanly
                logger.warning("scheduler_shutdown_failed worker=%s", self.worker_id, exc_info=True)
        try:
            lease.release(self.engine, name=self.lease_name, holder=self.worker_id)
        except SQLAlchemyError:
            logger.warning("lease_release_failed worker=%s", self.worker_id, exc_info=True)
        self._held = False
        self._valid_until = 0.0

    def _lead(self) -> None:
        if self.scheduler is None:
            scheduler = build_scheduler(
                self.engine, guard=self.lease_valid, jobs_table=self.jobs_table
            )
            scheduler.start(paused=True)
            self.scheduler = scheduler
            try:
                self._add_builtin_jobs()
                if self.configure is not None:
                    self.configure(scheduler)
            except BaseException:
                self.scheduler = None
                scheduler.shutdown(wait=False)
                raise
        self.sync(force=True)
        for failing in open_failures(self.engine):  # retries a previous leader had planned
            self.after_refresh(failing)
        jobs.set_active(self)
        self.scheduler.resume()
        logger.info("leadership_taken worker=%s", self.worker_id)

    def _add_builtin_jobs(self) -> None:
        assert self.scheduler is not None
        for job_id, (func, trigger) in HOUSEKEEPING.items():
            ensure_job(self.scheduler, job_id, func, trigger, name=job_id)
        local = {"jobstore": LOCAL, "replace_existing": True, **JOB_OPTIONS}
        self.scheduler.add_job(
            self.sync, "interval", seconds=self.sync_every, id="catalog-sync", **local
        )
        if self.settings.workspace is not None:
            self.scheduler.add_job(
                jobs.run_syncs, "interval", seconds=DESTINATIONS_EVERY, id="sync", **local
            )
        client = self._delivery_client()
        self.scheduler.add_job(
            self.drain_queue, "interval", seconds=self.queue_every, id="queue", **local
        )
        self._reply_client = client
        if client is not None:
            self.scheduler.add_job(
                self._deliver,
                "interval",
                seconds=self.delivery_every,
                id="deliver",
                args=[client],
                **local,
            )

    def _delivery_client(self) -> WebClient | None:
        if self.client is not None:
            return self.client
        if not self.settings.slack_bot_token:
            logger.info("delivery_disabled reason=no_slack_token")
            return None
        from bot.app import build_client

        return build_client(self.settings, sdk_retries=False)

    # -- jobs --

    def sync(self, *, force: bool = False) -> SyncResult | None:
        """Rebuild refresh jobs when the catalog fingerprint changed (or ``force``)."""
        if self.scheduler is None:
            return None
        with self._sync_lock:
            fingerprint, cadences = catalog_state(self.engine)
            if not force and fingerprint == self._fingerprint:
                return None
            result = sync_jobs(self.scheduler, cadences)
            self._fingerprint = fingerprint
        if result.added or result.rescheduled or result.removed:
            logger.info(
                "refresh_jobs_synced added=%s rescheduled=%s removed=%s",
                result.added,
                result.rescheduled,
                result.removed,
            )
        return result

    def drain_queue(self) -> int:
        """Run the queued jobs that are due, then answer whoever asked; jobs run."""
        from bot.replies import answer_finished
        from commands.queue import drain

        ran = drain(
            self.engine,
            worker=self.worker_id,
            load_workspace=self.load_workspace,
            templates_dir=self.settings.templates_dir,
            engine_name=self.settings.engine,
            engine_options=self.settings.engine_options(),
            privacy_floor=self.settings.privacy_floor,
        )
        answer_finished(self.engine, self.settings, self._reply_client)
        return len(ran)

    def _deliver(self, client: WebClient) -> None:
        from bot.delivery import deliver_due

        deliver_due(self.engine, client)

    def load_workspace(self) -> Workspace:
        """The workspace file, read afresh for each refresh."""
        from segments.workspace import load_workspace

        if self.settings.workspace is None:
            raise SegopsError("no workspace file: pass --workspace FILE or set SEGOPS_WORKSPACE")
        return load_workspace(self.settings.workspace, data_roots=self.settings.data_root_paths)

    def after_refresh(self, result: RefreshJobResult) -> None:
        """Schedule a retry after a failure (unless the cadence comes first); clear on success."""
        if self.scheduler is None:
            return
        prefix = f"{RETRY_PREFIX}{result.segment}:"
        if result.status == "ok":
            for job in self.scheduler.get_jobs(jobstore=PERSISTENT):
                if job.id.startswith(prefix):
                    remove_job(self.scheduler, job.id)
            return
        if result.status not in ("failed", "backoff") or result.retry_at is None:
            return
        regular = self.scheduler.get_job(REFRESH_PREFIX + result.segment, jobstore=PERSISTENT)
        if regular is not None and regular.next_run_time is not None:
            if regular.next_run_time <= result.retry_at:
                return
        self.scheduler.add_job(
            REFRESH_FUNC,
            DateTrigger(run_date=result.retry_at, timezone=UTC),
            id=f"{prefix}{result.failures}",
            name=f"retry {result.segment}",
            args=[result.segment],
            jobstore=PERSISTENT,
            executor=REFRESH_EXECUTOR,
            replace_existing=True,
            **JOB_OPTIONS,
        )

    # -- lifecycle --

    def run(self, stop: threading.Event) -> None:
        """Lead or stand by until ``stop`` is set, then shut down cleanly."""
        logger.info("worker_started worker=%s ttl=%ss", self.worker_id, self.ttl)
        try:
            while not stop.is_set():
                self.step()
                stop.wait(self.renew_every)
        finally:
            self.close()

    def close(self) -> None:
        """Stop the scheduler, letting running jobs finish, then release the lease.

        While jobs finish the lease is still renewed, so no standby starts the same
        work meanwhile.
        """
        scheduler, self.scheduler = self.scheduler, None
        if scheduler is not None and scheduler.state != STATE_STOPPED:
            if scheduler.state == STATE_RUNNING:
                scheduler.pause()
            stopping = threading.Thread(target=scheduler.shutdown, name="segops-scheduler-stop")
            stopping.start()
            while stopping.is_alive():
                stopping.join(self.renew_every)
                if stopping.is_alive() and self._held:
                    self._renew_quietly()
        if self._held:
            try:
                lease.release(self.engine, name=self.lease_name, holder=self.worker_id)
            except SQLAlchemyError:
                logger.warning("lease_release_failed worker=%s", self.worker_id, exc_info=True)
            self._held = False
        jobs.clear_active(self)
        if self._own_engine:
            self.engine.dispose()
        logger.info("worker_stopped worker=%s", self.worker_id)

    def _renew_quietly(self) -> None:
        try:
            self._held = (
                lease.acquire(
                    self.engine, name=self.lease_name, holder=self.worker_id, ttl=self.ttl
                )
                is not None
            )
        except SQLAlchemyError:
            logger.warning("lease_unavailable worker=%s", self.worker_id, exc_info=True)


def run_worker(
    settings: Settings,
    *,
    workspace: Path | None = None,
    stop: threading.Event | None = None,
    **options: Any,
) -> None:
    """``segops worker``: migrate, then lead or stand by until SIGTERM or SIGINT.

    ``workspace`` overrides ``settings.workspace``; one of them is required and the
    file must load. ``options`` go to :class:`Worker` (``ttl``, ``renew_every`` ...).
    """
    from segments.workspace import load_workspace
    from store.db import upgrade

    path = workspace or settings.workspace
    if path is None:
        raise SegopsError(
            "the worker needs a workspace: pass --workspace FILE or set SEGOPS_WORKSPACE"
        )
    load_workspace(path, data_roots=settings.data_root_paths)
    settings = settings.model_copy(update={"workspace": Path(path)})
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s"
        )
    engine = make_engine(settings.database_url)
    try:
        upgrade(engine)
        stop = stop or threading.Event()
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: stop.set())
        Worker(settings, engine=engine, **options).run(stop)
    finally:
        engine.dispose()


@dataclass
class Health:
    """What ``segops worker --check`` reports: the leader's lease and the stored jobs."""

    leader: str | None
    lease_expires: datetime | None
    leading: bool
    jobs: list[JobState]

    @property
    def healthy(self) -> bool:
        return self.leading and not any(job.overdue for job in self.jobs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "leader": self.leader,
            "lease_expires": self.lease_expires.isoformat() if self.lease_expires else None,
            "jobs": [
                {
                    "id": j.id,
                    "next_run": j.next_run.isoformat() if j.next_run else None,
                    "overdue": j.overdue,
                }
                for j in self.jobs
            ],
        }


def check(settings: Settings, *, lease_name: str = LEASE_NAME) -> Health:
    """The worker's health from the database: a live leader, and no job left overdue."""
    engine = make_engine(settings.database_url)
    try:
        now = datetime.now(UTC)
        current = lease.current(engine, name=lease_name)
        leading = current is not None and current.expires_at > now
        return Health(
            leader=current.holder if current else None,
            lease_expires=current.expires_at if current else None,
            leading=leading,
            jobs=stored_jobs(engine, now=now),
        )
    finally:
        engine.dispose()

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
``deliver``                 every 5 s, only with a Slack token     memory
``catalog-sync``            every 30 s                             memory
==========================  =====================================  ====================

Cadences map to triggers in :func:`commands.jobs.cadence_trigger` (daily 06:00,
weekly Monday 06:00, monthly the 1st 06:00, quarterly 1 Jan/Apr/Jul/Oct 06:00, or a
standard 5-field cron string). Scheduled jobs use ``coalesce=True``,
``max_instances=1`` and ``misfire_grace_time=None``: after downtime every missed job
runs exactly once, however late. Refreshes run one at a time (executor
``refresh`` has one thread), so two of them never load the sources together.

Without a Slack token no ``deliver`` job is scheduled and messages stay queued in
the outbox until a worker with a token delivers them.

The job store
=============

``segops_jobs`` is APScheduler's ``SQLAlchemyJobStore`` table in the segops database.
APScheduler creates it on first start (``id``, ``next_run_time``, ``job_state``:
pickled job state); it is **not** managed by Alembic and not part of
``store.models``. Persistent jobs name their function by import path
(``bot.scheduler:run_refresh``) and carry only a segment name, so renaming those
functions needs a migration of that table (or dropping it: a new leader rebuilds
every job from the catalog and plans retries from the open ``refresh_failed``
alerts, so only runs missed meanwhile are lost).

The catalog sync compares a fingerprint of the catalog (name, status, cadence and
current version of every segment) every 30 s and, when it changed, adds refresh
jobs for new active segments, reschedules those whose cadence changed and removes
those of archived or deleted segments. Unchanged jobs are left alone so that a
missed run still pending in the store is not lost.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_RUNNING, STATE_STOPPED
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from commands.jobs import CadenceError, RefreshJobResult, cadence_trigger, open_failures
from commands.settings import Settings
from segments.errors import SegopsError
from store import lease
from store.db import make_engine
from store.models import Segment

if TYPE_CHECKING:
    from slack_sdk import WebClient

    from segments.workspace import Workspace

logger = logging.getLogger(__name__)

LEASE_NAME = "scheduler"
JOBS_TABLE = "segops_jobs"
PERSISTENT = "default"
LOCAL = "local"
REFRESH_EXECUTOR = "refresh"
LEASE_TTL = 30.0
RENEW_EVERY = 10.0
SYNC_EVERY = 30.0
DELIVERY_EVERY = 5.0
JOB_THREADS = 4

JOB_OPTIONS: dict[str, Any] = {"coalesce": True, "max_instances": 1, "misfire_grace_time": None}
HOUSEKEEPING: dict[str, tuple[str, BaseTrigger]] = {
    "feedback-digest": (
        "bot.scheduler:run_feedback_digest",
        CronTrigger(hour=8, minute=0, timezone=UTC),
    ),
    "proposal-reminders": (
        "bot.scheduler:run_proposal_reminders",
        CronTrigger(minute=0, timezone=UTC),
    ),
    "catalog-health": (
        "bot.scheduler:run_catalog_health",
        CronTrigger(day_of_week="mon", hour=9, minute=0, timezone=UTC),
    ),
}
REFRESH_FUNC = "bot.scheduler:run_refresh"
REFRESH_PREFIX = "refresh:"
RETRY_PREFIX = "retry:"

Configure = Callable[[BackgroundScheduler], None]


# --- the scheduler ---------------------------------------------------------------------


class LeaderScheduler(BackgroundScheduler):
    """A ``BackgroundScheduler`` that pauses itself when ``guard()`` says it lost the lease.

    The guard is checked each time the scheduler looks for due jobs, so no job is
    submitted after the lease may have passed to another worker.

    It also looks for due jobs only while running: APScheduler 3's scheduler thread
    makes one last pass after ``shutdown()`` has stopped the executors, which fails to
    submit the jobs due at that moment yet moves their next run time on in the job
    store, so that a persistent job due during a shutdown would silently never run
    (agronholm/apscheduler#285).
    """

    def __init__(self, *, guard: Callable[[], bool] | None = None, **options: Any) -> None:
        self._guard = guard
        super().__init__(**options)

    def _process_jobs(self) -> float | None:
        if self.state != STATE_RUNNING:
            return None
        if self._guard is not None and not self._guard():
            logger.warning("scheduler_paused reason=lease_not_confirmed")
            self.pause()
            return None
        return super()._process_jobs()


def build_scheduler(
    engine: Engine, *, guard: Callable[[], bool] | None = None, jobs_table: str = JOBS_TABLE
) -> LeaderScheduler:
    """A scheduler with the persistent job store in ``engine``'s database (not started).

    The job store gets an engine of its own (APScheduler disposes it on shutdown).
    """
    store = SQLAlchemyJobStore(engine=make_engine(engine.url), tablename=jobs_table)
    return LeaderScheduler(
        guard=guard,
        jobstores={PERSISTENT: store, LOCAL: MemoryJobStore()},
        executors={
            "default": ThreadPoolExecutor(JOB_THREADS),
            REFRESH_EXECUTOR: ThreadPoolExecutor(1),
        },
        job_defaults=dict(JOB_OPTIONS),
        timezone=UTC,
        daemon=True,
    )


# --- catalog sync ----------------------------------------------------------------------


@dataclass
class SyncResult:
    """What one catalog sync changed."""

    added: list[str] = field(default_factory=list)
    rescheduled: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    invalid: dict[str, str] = field(default_factory=dict)


def catalog_state(engine: Engine) -> tuple[str, dict[str, str]]:
    """A fingerprint of the scheduling-relevant catalog, and each active segment's cadence."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(
                Segment.name, Segment.status, Segment.cadence, Segment.current_version_id
            ).order_by(Segment.name)
        ).all()
    blob = json.dumps([list(r) for r in rows], separators=(",", ":"))
    cadences = {name: cadence for name, status, cadence, _ in rows if status == "active"}
    return hashlib.sha256(blob.encode()).hexdigest(), cadences


def sync_jobs(scheduler: BackgroundScheduler, cadences: dict[str, str]) -> SyncResult:
    """Make the refresh jobs match ``cadences`` (segment -> cadence). Scheduler must be started.

    Jobs whose trigger is unchanged keep their next run time (a missed run survives).
    """
    result = SyncResult()
    jobs = {j.id: j for j in scheduler.get_jobs(jobstore=PERSISTENT)}
    for name, cadence in sorted(cadences.items()):
        job_id = REFRESH_PREFIX + name
        try:
            trigger = cadence_trigger(cadence)
        except CadenceError as exc:
            logger.error("refresh_job_invalid segment=%s error=%s", name, exc)
            result.invalid[name] = str(exc)
            continue
        job = jobs.get(job_id)
        if job is None:
            scheduler.add_job(
                REFRESH_FUNC,
                trigger,
                id=job_id,
                name=f"refresh {name}",
                args=[name],
                jobstore=PERSISTENT,
                executor=REFRESH_EXECUTOR,
                **JOB_OPTIONS,
            )
            result.added.append(name)
        elif repr(job.trigger) != repr(trigger):
            scheduler.reschedule_job(job_id, jobstore=PERSISTENT, trigger=trigger)
            result.rescheduled.append(name)
    for job_id in sorted(jobs):
        prefix = next((p for p in (REFRESH_PREFIX, RETRY_PREFIX) if job_id.startswith(p)), None)
        if prefix is None:
            continue
        name = job_id[len(prefix) :].split(":")[0]
        if name not in cadences:
            _remove(scheduler, job_id)
            if prefix == REFRESH_PREFIX:
                result.removed.append(name)
    return result


def ensure_job(
    scheduler: BackgroundScheduler, job_id: str, func: str, trigger: BaseTrigger, **options: Any
) -> None:
    """Add a persistent job, or reschedule it when its trigger changed; else leave it be."""
    job = scheduler.get_job(job_id, jobstore=PERSISTENT)
    if job is None:
        scheduler.add_job(func, trigger, id=job_id, jobstore=PERSISTENT, **JOB_OPTIONS, **options)
    elif repr(job.trigger) != repr(trigger):
        scheduler.reschedule_job(job_id, jobstore=PERSISTENT, trigger=trigger)


def _remove(scheduler: BackgroundScheduler, job_id: str) -> None:
    try:
        scheduler.remove_job(job_id, jobstore=PERSISTENT)
    except JobLookupError:
        pass


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
        if not self.leading:
            try:
                self._lead()
            except SQLAlchemyError:  # the scheduler stays paused; the next round retries
                logger.warning("leadership_start_failed worker=%s", self.worker_id, exc_info=True)
                return False
        return True

    def _lead(self) -> None:
        global _active
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
        _active = self
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
        client = self._delivery_client()
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

    def _deliver(self, client: WebClient) -> None:
        from bot.delivery import deliver_due

        deliver_due(self.engine, client)

    def load_workspace(self) -> Workspace:
        """The workspace file, read afresh for each refresh."""
        from segments.workspace import load_workspace

        if self.settings.workspace is None:
            raise SegopsError("no workspace file: pass --workspace FILE or set SEGOPS_WORKSPACE")
        return load_workspace(self.settings.workspace)

    def after_refresh(self, result: RefreshJobResult) -> None:
        """Schedule a retry after a failure (unless the cadence comes first); clear on success."""
        if self.scheduler is None:
            return
        prefix = f"{RETRY_PREFIX}{result.segment}:"
        if result.status == "ok":
            for job in self.scheduler.get_jobs(jobstore=PERSISTENT):
                if job.id.startswith(prefix):
                    _remove(self.scheduler, job.id)
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
        global _active
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
        if _active is self:
            _active = None
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
    load_workspace(path)
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


# --- job entry points (named by import path in the persistent job store) ---------------

_active: Worker | None = None


def _worker() -> Worker:
    if _active is None:
        raise RuntimeError("no worker is leading in this process")
    return _active


def run_refresh(segment: str) -> None:
    """``refresh:<segment>`` and ``retry:<segment>:<n>``."""
    from commands.jobs import scheduled_refresh

    worker = _worker()
    result = scheduled_refresh(
        worker.engine,
        worker.load_workspace,
        segment,
        now=datetime.now(UTC),
        templates_dir=worker.settings.templates_dir,
    )
    logger.info("scheduled_refresh %s", result.to_dict())
    worker.after_refresh(result)


def run_feedback_digest() -> None:
    from commands.jobs import feedback_digest

    worker = _worker()
    sent = feedback_digest(worker.engine, templates_dir=worker.settings.templates_dir)
    logger.info("feedback_digest owners=%d", sent)


def run_proposal_reminders() -> None:
    from commands.jobs import proposal_reminders

    worker = _worker()
    reminded = proposal_reminders(worker.engine, templates_dir=worker.settings.templates_dir)
    logger.info("proposal_reminders proposals=%s", reminded)


def run_catalog_health() -> None:
    from commands.jobs import catalog_health

    worker = _worker()
    report = catalog_health(worker.engine, templates_dir=worker.settings.templates_dir)
    logger.info(
        "catalog_health segments=%d attention=%d queued=%d",
        len(report.segments),
        len(report.attention),
        report.queued,
    )

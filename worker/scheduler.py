"""The leader's APScheduler: a scheduler that pauses itself without the lease, the
persistent job store, and the catalog sync that keeps one refresh job per active segment.

Cadences map to triggers in :func:`segments.cadence.cadence_trigger` (daily 06:00,
weekly Monday 06:00, monthly the 1st 06:00, quarterly 1 Jan/Apr/Jul/Oct 06:00, or a
standard 5-field cron string). Scheduled jobs use ``coalesce=True``,
``max_instances=1`` and ``misfire_grace_time=None``: after downtime every missed job
runs exactly once, however late. Refreshes run one at a time (executor
``refresh`` has one thread), so two of them never load the sources together.

The job store
=============

``segops_jobs`` is APScheduler's ``SQLAlchemyJobStore`` table in the segops database.
APScheduler creates it on first start (``id``, ``next_run_time``, ``job_state``:
pickled job state); it is **not** managed by Alembic and not part of
``store.models``. Persistent jobs name their function by import path
(``worker.jobs:run_refresh``) and carry only a segment name. When a job function
moves, :data:`MOVED_FUNCTIONS` maps its old path to the new one and
:func:`build_scheduler` rewrites the stored jobs before the scheduler reads them, so a
pending run (a missed refresh, a planned retry) survives the upgrade.

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
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_RUNNING
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import Engine, MetaData, Table, inspect, update
from sqlalchemy import select as sa_select

from segments.cadence import CadenceError, cadence_trigger
from store.catalog import scheduling_rows
from store.db import make_engine, session_scope

logger = logging.getLogger(__name__)

JOBS_TABLE = "segops_jobs"
PERSISTENT = "default"
LOCAL = "local"
REFRESH_EXECUTOR = "refresh"
JOB_THREADS = 4
OVERDUE_AFTER = 60.0  # seconds past its run time after which a stored job counts as overdue
PASS_RETRY = 5.0  # seconds before the scheduler looks for due jobs again after a failed pass

JOB_OPTIONS: dict[str, Any] = {"coalesce": True, "max_instances": 1, "misfire_grace_time": None}
HOUSEKEEPING: dict[str, tuple[str, BaseTrigger]] = {
    "feedback-digest": (
        "worker.jobs:run_feedback_digest",
        CronTrigger(hour=8, minute=0, timezone=UTC),
    ),
    "proposal-reminders": (
        "worker.jobs:run_proposal_reminders",
        CronTrigger(minute=0, timezone=UTC),
    ),
    "catalog-health": (
        "worker.jobs:run_catalog_health",
        CronTrigger(day_of_week="mon", hour=9, minute=0, timezone=UTC),
    ),
    "prune-events": (
        "worker.jobs:run_prune_events",
        CronTrigger(hour=3, minute=30, timezone=UTC),
    ),
    "experiments-close": (
        "worker.jobs:run_experiments_close",
        CronTrigger(hour=7, minute=0, timezone=UTC),
    ),
    "clinic-agenda": (
        "worker.jobs:run_clinic_agenda",
        CronTrigger(day_of_week="mon", hour=9, minute=30, timezone=UTC),
    ),
    "live-reconcile": (
        "worker.jobs:run_live_reconcile",
        CronTrigger(minute="*/15", timezone=UTC),
    ),
    "prune-jobs": (
        "worker.jobs:run_prune_jobs",
        CronTrigger(hour=3, minute=45, timezone=UTC),
    ),
}
REFRESH_FUNC = "worker.jobs:run_refresh"
REFRESH_PREFIX = "refresh:"
RETRY_PREFIX = "retry:"
MOVED_FUNCTIONS = {
    f"bot.scheduler:{name}": f"worker.jobs:{name}"
    for name in (
        "run_refresh",
        "run_feedback_digest",
        "run_proposal_reminders",
        "run_catalog_health",
    )
}

Configure = Callable[[BackgroundScheduler], None]


# --- the scheduler ---------------------------------------------------------------------


class LeaderScheduler(BackgroundScheduler):
    """A ``BackgroundScheduler`` that pauses itself when ``guard()`` says it lost the lease.

    The guard is checked each time the scheduler looks for due jobs, so no job is
    submitted after the lease may have passed to another worker.

    A pass that fails (the job store's database locked, say) is logged and retried after
    ``PASS_RETRY`` seconds instead of ending the scheduler thread.

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
        try:
            return super()._process_jobs()
        except Exception:  # noqa: BLE001 - e.g. the job store's database is locked
            # APScheduler 3 lets a failing job-store update escape and end its thread,
            # which would leave a leader that renews its lease and runs nothing.
            logger.exception("scheduler_pass_failed retry_in=%ss", PASS_RETRY)
            return PASS_RETRY

    @property
    def alive(self) -> bool:
        """Whether the scheduler thread still runs (False once it has died or stopped)."""
        thread = getattr(self, "_thread", None)
        return thread is not None and thread.is_alive()


def build_scheduler(
    engine: Engine, *, guard: Callable[[], bool] | None = None, jobs_table: str = JOBS_TABLE
) -> LeaderScheduler:
    """A scheduler with the persistent job store in ``engine``'s database (not started).

    The job store gets an engine of its own (APScheduler disposes it on shutdown).
    """
    rename_moved_jobs(engine, jobs_table)
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
    with session_scope(engine) as session:
        rows = scheduling_rows(session)
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
            remove_job(scheduler, job_id)
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


def remove_job(scheduler: BackgroundScheduler, job_id: str) -> None:
    """Remove a persistent job; one already gone is fine."""
    try:
        scheduler.remove_job(job_id, jobstore=PERSISTENT)
    except JobLookupError:
        pass


def rename_moved_jobs(engine: Engine, jobs_table: str = JOBS_TABLE) -> int:
    """Point stored jobs whose function moved (:data:`MOVED_FUNCTIONS`) at its new path.

    Runs before APScheduler reads the table (it would drop a job it cannot import).
    Returns the number of jobs rewritten; a missing table is fine (a first start).
    """
    if not inspect(engine).has_table(jobs_table):
        return 0
    table = Table(jobs_table, MetaData(), autoload_with=engine)
    moved = 0
    with engine.begin() as connection:
        for job_id, blob in connection.execute(sa_select(table.c.id, table.c.job_state)).all():
            state = pickle.loads(blob)
            new = MOVED_FUNCTIONS.get(state.get("func"))
            if new is None:
                continue
            state["func"] = new
            connection.execute(
                update(table)
                .where(table.c.id == job_id)
                .values(job_state=pickle.dumps(state, pickle.HIGHEST_PROTOCOL))
            )
            moved += 1
    if moved:
        logger.info("jobs_renamed count=%d", moved)
    return moved


@dataclass
class JobState:
    """One persistent job as the job store holds it."""

    id: str
    next_run: datetime | None
    overdue: bool


def stored_jobs(engine: Engine, *, now: datetime, jobs_table: str = JOBS_TABLE) -> list[JobState]:
    """The persistent jobs and their next run, read straight from the job store table.

    ``overdue``: the next run is more than a minute past ``now`` (no leader ran it).
    """
    if not inspect(engine).has_table(jobs_table):
        return []
    table = Table(jobs_table, MetaData(), autoload_with=engine)
    with engine.connect() as connection:
        rows = connection.execute(
            sa_select(table.c.id, table.c.next_run_time).order_by(table.c.id)
        ).all()
    out = []
    for job_id, stamp in rows:
        moment = datetime.fromtimestamp(stamp, UTC) if stamp is not None else None
        late = moment is not None and (now - moment).total_seconds() > OVERDUE_AFTER
        out.append(JobState(job_id, moment, late))
    return out

"""Work asked for in Slack and done by the worker: a refresh, a proposal's impact preview.

Both load the whole dataset, so the web process only queues them (one ``job`` row,
:mod:`store.jobs`) and answers at once; the worker drains the queue
(:func:`drain`) and the person is answered when the work is done (``bot.replies``).

- **Claimed once.** A worker claims a row with a compare-and-set on its status and
  attempt count, so two workers (or two drain passes) never run one job. A job whose
  worker died mid-run is claimed again after :data:`STALE_CLAIM`.
- **Waiting its turn.** A refresh that finds another one running goes back to the
  queue for :data:`BUSY_RETRY` and tries again, for up to :data:`REFRESH_WAIT`; a
  busy database is retried too, :data:`MAX_ATTEMPTS` times in all.
- **Failing clearly.** A job that cannot be done ends ``failed`` with a one-line
  error meant for the person (a bad workspace, an unknown segment); an unexpected
  error is logged with its traceback and the person is told it failed and where the
  details are, never the traceback itself.
- **Answered.** Slack accepts a ``response_url`` for 30 minutes: within
  :data:`RESPONSE_URL_LIFETIME` of the request the answer goes there (ephemeral),
  otherwise, or when it is refused, as a DM through the outbox.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from commands.lookup import find_segment
from segments.errors import SegopsError
from segments.workspace import Workspace
from store import jobs as store_jobs
from store.db import WRITE_BUDGET, DatabaseBusy, is_busy, session_scope, write
from store.models import Job
from store.outbox import add_message

logger = logging.getLogger(__name__)

KINDS = ("refresh", "preview")
STALE_CLAIM = timedelta(minutes=15)
BUSY_RETRY = timedelta(seconds=15)
REFRESH_WAIT = timedelta(minutes=10)
MAX_ATTEMPTS = 3
RESPONSE_URL_LIFETIME = timedelta(minutes=25)  # Slack's limit is 30 minutes


class NotQueued(SegopsError):
    """The database stayed busy: nothing was queued."""


@dataclass(frozen=True)
class ReplyTo:
    """Who asked, and where the answer goes: ``response_url`` first, else a DM."""

    user: str | None
    channel: str | None = None
    response_url: str | None = None


@dataclass
class JobView:
    """A queued job as the worker and the reply see it."""

    id: int
    kind: str
    args: dict[str, Any]
    status: str
    attempts: int
    requested_by: str | None
    channel: str | None
    response_url: str | None
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    created_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def response_url_fresh(self, now: datetime | None = None) -> bool:
        """Whether Slack still takes an answer at ``response_url``."""
        if not self.response_url or self.created_at is None:
            return False
        return (now or datetime.now(UTC)) - self.created_at < RESPONSE_URL_LIFETIME


def _view(job: Job) -> JobView:
    return JobView(
        id=job.id,
        kind=job.kind,
        args=dict(job.args or {}),
        status=job.status,
        attempts=job.attempts,
        requested_by=job.requested_by,
        channel=job.channel,
        response_url=job.response_url,
        result=dict(job.result or {}),
        error=job.error,
        created_at=job.created_at,
    )


# --- queueing (the web process) ---------------------------------------------------------


def add_preview(session: Session, *, proposal_id: int, reply_to: ReplyTo) -> Job:
    """Queue the impact preview of proposal ``proposal_id`` (in the caller's transaction)."""
    return store_jobs.add_job(
        session,
        kind="preview",
        args={"proposal_id": proposal_id},
        requested_by=reply_to.user,
        channel=reply_to.channel,
        response_url=reply_to.response_url,
        now=datetime.now(UTC),
    )


def queue_refresh(
    engine: Engine,
    *,
    only: str | None,
    as_of: date,
    reply_to: ReplyTo,
    budget: float = WRITE_BUDGET,
) -> JobView:
    """Queue a refresh of segment ``only`` (every active one when None) for ``as_of``.

    An unknown or archived segment is refused now; a database busy for longer than
    ``budget`` seconds raises :class:`NotQueued`.
    """

    def add(session: Session) -> JobView:
        if only is not None:
            row = find_segment(session, only)
            if row.status != "active":
                raise SegopsError(f"segment '{row.name}' is archived: nothing to refresh")
            name: str | None = row.name
        else:
            name = None
        job = store_jobs.add_job(
            session,
            kind="refresh",
            args={"only": name, "as_of": as_of.isoformat()},
            requested_by=reply_to.user,
            channel=reply_to.channel,
            response_url=reply_to.response_url,
            now=datetime.now(UTC),
        )
        return _view(job)

    try:
        return write(engine, add, budget=budget)
    except DatabaseBusy as busy:
        raise NotQueued(f"{busy}: the refresh was not queued; try again") from None


# --- draining (the worker) --------------------------------------------------------------


def claim_next(engine: Engine, *, worker: str, now: datetime | None = None) -> JobView | None:
    """Claim the oldest claimable job for ``worker``; None when there is none."""
    now = now or datetime.now(UTC)
    with session_scope(engine) as session:
        for job_id in store_jobs.due_ids(session, now=now, stale=STALE_CLAIM, limit=10):
            job = store_jobs.claim(
                session, job_id=job_id, worker=worker, now=now, stale=STALE_CLAIM
            )
            if job is not None:
                return _view(job)
    return None


class _Pass:
    """What the jobs of one drain pass share: the workspace, read once, and the data the
    last preview loaded, so previews measured on the same day share one load (only the
    latest is kept, so a pass holds at most one dataset), and the engine refreshes run on
    (``engine_name`` None: the workspace's)."""

    def __init__(
        self,
        load_workspace: Callable[[], Workspace],
        *,
        engine_name: str | None = None,
        engine_options: Any = None,
        privacy_floor: int = 0,
    ) -> None:
        self._load_workspace = load_workspace
        self.engine_name = engine_name
        self.engine_options = engine_options
        self.privacy_floor = privacy_floor
        self._ws: Workspace | None = None
        self._data: tuple[date, Any] | None = None

    def workspace(self) -> Workspace:
        if self._ws is None:
            self._ws = self._load_workspace()
        return self._ws

    def dataset(self, ws: Workspace, as_of: date) -> Any:
        from segments.sources import load_dataset

        if self._data is None or self._data[0] != as_of:
            self._data = None  # let the previous one go before loading the next
            self._data = (as_of, load_dataset(ws, as_of=as_of))
        return self._data[1]


def _refresh(engine: Engine, shared: _Pass, job: JobView, templates_dir: Path | None) -> dict:
    from commands.refresh import refresh

    only = job.args.get("only")
    as_of = date.fromisoformat(job.args["as_of"])
    report = refresh(
        engine,
        shared.workspace(),
        as_of=as_of,
        only=[only] if only else None,
        templates_dir=templates_dir,
        engine_name=shared.engine_name,
        engine_options=shared.engine_options,
        privacy_floor=shared.privacy_floor,
    )
    return {
        "as_of": as_of.isoformat(),
        "only": only,
        "segments": [_served(o) for o in report.segments],
    }


def _served(outcome: Any) -> dict[str, Any]:
    """One segment of the answer as it was published: a blocked segment shows the size
    still served (its previous snapshot), never the size computed on the failed data."""
    blocked = outcome.status == "blocked"
    return {
        "segment": outcome.segment,
        "status": outcome.status,
        "size": outcome.previous_size if blocked else outcome.size,
        "unpublished": blocked and outcome.previous_size is None,
        "note": outcome.note,
    }


def _preview(engine: Engine, shared: _Pass, job: JobView, templates_dir: Path | None) -> dict:
    from commands.proposals.impact import measure_impact

    proposal_id = int(job.args["proposal_id"])
    impact = measure_impact(engine, shared.workspace(), proposal_id, load=shared.dataset)
    return {"proposal_id": proposal_id, "impact": impact}


RUNNERS: dict[str, Callable[[Engine, _Pass, JobView, Path | None], dict[str, Any]]] = {
    "refresh": _refresh,
    "preview": _preview,
}


def run_job(
    engine: Engine,
    job: JobView,
    *,
    load_workspace: Callable[[], Workspace],
    templates_dir: Path | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    shared: _Pass | None = None,
) -> JobView:
    """Run a claimed job and record its outcome: done, failed, or back in the queue.

    ``shared``: what the jobs of one drain pass share (:func:`drain` passes it).
    """
    from commands.refresh import RefreshRunning

    status, result, error, later = "done", None, None, None
    shared = shared or _Pass(load_workspace)
    try:
        result = RUNNERS[job.kind](engine, shared, job, templates_dir)
    except RefreshRunning as running:
        waited = now() - (job.created_at or now())
        if waited < REFRESH_WAIT:
            status, later = "pending", now() + BUSY_RETRY
        else:
            status, error = "failed", str(running)
    except SegopsError as failure:
        status, error = "failed", str(failure)
    except Exception as failure:  # noqa: BLE001 - the person is told; the log has the rest
        if is_busy(failure) and job.attempts < MAX_ATTEMPTS:
            status, later = "pending", now() + BUSY_RETRY
        else:
            logger.exception("job_failed id=%s kind=%s", job.id, job.kind)
            status = "failed"
            error = (
                f"it stopped on an unexpected error ({type(failure).__name__}); "
                "the worker's log has the details"
            )
    with session_scope(engine) as session:
        recorded = store_jobs.finish(
            session,
            job_id=job.id,
            attempts=job.attempts,
            status=status,
            now=now(),
            result=result,
            error=error,
            not_before=later,
        )
    if not recorded:  # taken over as stale meanwhile: the other run records its own outcome
        logger.warning("job_outcome_dropped id=%s attempts=%s", job.id, job.attempts)
    logger.info("job_%s id=%s kind=%s", status, job.id, job.kind)
    return JobView(**{**job.to_dict(), "status": status, "result": result or {}, "error": error})


def drain(
    engine: Engine,
    *,
    worker: str,
    load_workspace: Callable[[], Workspace],
    templates_dir: Path | None = None,
    limit: int = 20,
    engine_name: str | None = None,
    engine_options: Any = None,
    privacy_floor: int = 0,
) -> list[JobView]:
    """Claim and run due jobs one after the other, at most ``limit``; their outcomes.

    The workspace is read once for the pass, and previews of the same day share one
    load of the data. ``engine_name`` and ``engine_options``: what refreshes run on (the
    settings' ``SEGOPS_ENGINE`` and DuckDB knobs), and ``privacy_floor`` what their posted
    summaries hide, as for a scheduled refresh.
    """
    ran = []
    shared = _Pass(
        load_workspace,
        engine_name=engine_name,
        engine_options=engine_options,
        privacy_floor=privacy_floor,
    )
    for _ in range(limit):
        job = claim_next(engine, worker=worker)
        if job is None:
            break
        ran.append(
            run_job(
                engine,
                job,
                load_workspace=load_workspace,
                templates_dir=templates_dir,
                shared=shared,
            )
        )
    return ran


# --- answering ---------------------------------------------------------------------------


def unreplied(engine: Engine, *, limit: int = 50) -> list[int]:
    """Ids of finished jobs whose person has not been answered yet."""
    with session_scope(engine) as session:
        return store_jobs.unreplied_ids(session, limit=limit)


def take_reply(engine: Engine, job_id: int) -> JobView | None:
    """Take the answering of finished job ``job_id``: only one caller ever gets it."""
    with session_scope(engine) as session:
        job = store_jobs.claim_reply(session, job_id=job_id, now=datetime.now(UTC))
        return _view(job) if job is not None else None


def reply_by_dm(engine: Engine, job: JobView, text: str) -> bool:
    """Queue ``text`` as a DM to whoever asked (the outbox delivers it); whether queued."""
    if not job.requested_by:
        return False
    with session_scope(engine) as session:
        rows = add_message(
            session,
            key=f"job:{job.id}:reply",
            kind="job_reply",
            channel=None,
            messages=[{"text": text, "blocks": []}],
            fallback_user=job.requested_by,
        )
    return bool(rows)


def outstanding(engine: Engine) -> int:
    """Jobs not yet done and answered."""
    with session_scope(engine) as session:
        return store_jobs.count_outstanding(session)


KEEP_FINISHED = timedelta(days=7)


def prune(
    engine: Engine, *, older_than: timedelta = KEEP_FINISHED, now: datetime | None = None
) -> int:
    """Forget jobs finished and answered more than ``older_than`` ago; how many."""
    with session_scope(engine) as session:
        return store_jobs.prune(session, before=(now or datetime.now(UTC)) - older_than)

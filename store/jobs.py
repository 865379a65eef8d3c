"""Store functions of ``job``, the queue of work asked for in Slack and run by the worker.

A row is added ``pending``. A worker claims it with a compare-and-set on
(``status``, ``attempts``), so of any number of workers racing for one row exactly one
runs it; a ``running`` row whose worker died (claimed longer than ``stale`` ago) can
be claimed again the same way. Every function takes the caller's ``Session`` and
never commits; the caller owns the transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlmodel import Session

from store.models import Job

OPEN_STATUSES = ("pending", "running")
FINISHED_STATUSES = ("done", "failed")


def add_job(
    session: Session,
    *,
    kind: str,
    args: dict[str, Any],
    requested_by: str | None,
    channel: str | None,
    response_url: str | None,
    now: datetime,
) -> Job:
    """Queue one job, due at once."""
    job = Job(
        kind=kind,
        args=args,
        requested_by=requested_by,
        channel=channel,
        response_url=response_url or None,
        not_before=now,
        created_at=now,
    )
    session.add(job)
    session.flush()
    return job


def _claimable(now: datetime, stale: timedelta) -> Any:
    return or_(
        and_(Job.status == "pending", Job.not_before <= now),
        and_(Job.status == "running", Job.started_at < now - stale),  # type: ignore[operator]
    )


def due_ids(session: Session, *, now: datetime, stale: timedelta, limit: int) -> list[int]:
    """Ids of up to ``limit`` jobs a worker may claim now, oldest first."""
    query = (
        select(Job.id)
        .where(_claimable(now, stale))
        .order_by(Job.id)  # type: ignore[arg-type]
        .limit(limit)
    )
    return list(session.execute(query).scalars())


def claim(
    session: Session, *, job_id: int, worker: str, now: datetime, stale: timedelta
) -> Job | None:
    """Claim job ``job_id`` for ``worker`` if it is still claimable; the claimed row or None."""
    job = session.get(Job, job_id)
    if job is None:
        return None
    claimed = session.execute(
        update(Job)
        .where(
            Job.id == job_id,
            Job.status == job.status,
            Job.attempts == job.attempts,
            _claimable(now, stale),
        )
        .values(status="running", attempts=job.attempts + 1, claimed_by=worker, started_at=now)
    ).rowcount
    if claimed != 1:
        return None
    session.refresh(job)
    return job


def finish(
    session: Session,
    *,
    job_id: int,
    attempts: int,
    status: str,
    now: datetime,
    result: dict[str, Any] | None = None,
    error: str | None = None,
    not_before: datetime | None = None,
) -> bool:
    """Record the outcome of the run that claimed ``job_id`` at ``attempts``; whether it did.

    ``status`` ``pending`` with ``not_before`` puts the job back for a later try.
    """
    values: dict[str, Any] = {"status": status, "error": error}
    if status in FINISHED_STATUSES:
        values.update(finished_at=now, result=result or {})
    if not_before is not None:
        values["not_before"] = not_before
    done = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == "running", Job.attempts == attempts)
        .values(**values)
    ).rowcount
    return done == 1


def unreplied_ids(session: Session, *, limit: int) -> list[int]:
    """Finished jobs whose person has not been answered yet, oldest first."""
    query = (
        select(Job.id)
        .where(Job.status.in_(FINISHED_STATUSES), Job.replied_at.is_(None))  # type: ignore[attr-defined,union-attr]
        .order_by(Job.id)  # type: ignore[arg-type]
        .limit(limit)
    )
    return list(session.execute(query).scalars())


def claim_reply(session: Session, *, job_id: int, now: datetime) -> Job | None:
    """Take the answering of finished job ``job_id`` (once, whoever asks); the row or None."""
    taken = session.execute(
        update(Job)
        .where(
            Job.id == job_id,
            Job.status.in_(FINISHED_STATUSES),  # type: ignore[attr-defined]
            Job.replied_at.is_(None),  # type: ignore[union-attr]
        )
        .values(replied_at=now)
    ).rowcount
    if taken != 1:
        return None
    job = session.get(Job, job_id)
    if job is not None:
        session.refresh(job)
    return job


def count_outstanding(session: Session) -> int:
    """Jobs not finished, or finished and not yet answered."""
    query = select(func.count()).where(
        or_(
            Job.status.in_(OPEN_STATUSES),  # type: ignore[attr-defined]
            Job.replied_at.is_(None),  # type: ignore[union-attr]
        )
    )
    return int(session.execute(query.select_from(Job)).scalar_one())


def prune(session: Session, *, before: datetime) -> int:
    """Delete jobs finished and answered before ``before``; the number deleted."""
    result = session.execute(
        delete(Job).where(
            Job.status.in_(FINISHED_STATUSES),  # type: ignore[attr-defined]
            Job.replied_at.is_not(None),  # type: ignore[union-attr]
            Job.finished_at < before,  # type: ignore[operator]
        )
    )
    return result.rowcount

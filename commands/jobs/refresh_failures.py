"""Scheduled refreshes that remember their failures.

A failing scheduled refresh opens (or extends) one alert of kind ``refresh_failed``
for the segment, whose ``details`` count the consecutive failures (``failures``,
``first_failed_at``, ``last_failed_at``, ``last_error``, ``retry_at``, ``notified``).
The next attempt waits ``RETRY_BASE`` doubled per failure (10 min, 20 min, 40 min ...
at most ``RETRY_CAP``); a run that comes earlier is skipped. The third failure in a
row sends the owner a direct message (``refresh-failed.j2``), once per run of
failures; the first success closes the alert (status ``acknowledged``) and, if the
owner was told, says so (``refresh-recovered.j2``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine
from sqlmodel import Session, select

from briefs.render import renderer
from commands.jobs.clock import iso, parse_time, utc
from commands.notify import drift_fingerprint
from segments.errors import SegopsError
from store.db import session_scope
from store.models import Alert, Segment
from store.outbox import add_message

if TYPE_CHECKING:
    from segments.engine import EngineOptions
    from segments.workspace import Workspace

logger = logging.getLogger(__name__)

REFRESH_FAILED = "refresh_failed"
ALERT_AFTER_FAILURES = 3
RETRY_BASE = timedelta(minutes=10)
RETRY_CAP = timedelta(hours=6)
ERROR_CHARS = 500


@dataclass
class RefreshJobResult:
    """What one scheduled refresh did.

    ``status``: ``ok`` (refreshed; ``refresh_status`` says published, blocked or
    unchanged), ``failed``, ``backoff`` (skipped: a retry is due at ``retry_at``) or
    ``skipped`` (no active segment by that name).
    """

    segment: str
    status: str
    failures: int = 0
    retry_at: datetime | None = None
    error: str | None = None
    refresh_status: str | None = None
    owner_alerted: bool = False

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["retry_at"] = self.retry_at.isoformat() if self.retry_at else None
        return data


def retry_delay(failures: int) -> timedelta:
    """How long to wait after ``failures`` consecutive failures (doubling, capped)."""
    return min(RETRY_CAP, RETRY_BASE * 2 ** max(failures - 1, 0))


def scheduled_refresh(
    engine: Engine,
    ws: Workspace | Callable[[], Workspace],
    segment_name: str,
    *,
    now: datetime | None = None,
    templates_dir: Path | None = None,
    engine_name: str | None = None,
    engine_options: EngineOptions | None = None,
    privacy_floor: int = 0,
) -> RefreshJobResult:
    """Refresh one segment as of ``now``'s date, recording a failure instead of raising.

    ``ws`` is the workspace or a function that loads it, so that a broken workspace
    file counts as a failed refresh. ``engine_name`` and ``engine_options`` are passed to
    :func:`commands.refresh.refresh` (``Settings.engine`` and ``Settings.engine_options()``).
    """
    now = utc(now)
    with session_scope(engine) as session:
        segment = _segment(session, segment_name)
        if segment is None or segment.status != "active":
            return RefreshJobResult(segment_name, "skipped", error="no active segment by that name")
        streak = _open_streak(session, segment)
        if streak is not None:
            retry_at = parse_time(streak.details.get("retry_at"))
            if retry_at is not None and now < retry_at:
                return RefreshJobResult(
                    segment_name,
                    "backoff",
                    failures=int(streak.details.get("failures", 0)),
                    retry_at=retry_at,
                    error=streak.details.get("last_error"),
                )
    from commands.refresh import refresh

    try:
        workspace = ws() if callable(ws) else ws
        report = refresh(
            engine,
            workspace,
            as_of=now.date(),
            only=[segment_name],
            templates_dir=templates_dir,
            engine_name=engine_name,
            engine_options=engine_options,
            privacy_floor=privacy_floor,
        )
    except Exception as exc:  # every failure is recorded, counted and retried
        logger.exception("scheduled_refresh_failed segment=%s", segment_name)
        return _record_failure(engine, segment_name, _error_text(exc), now, templates_dir)
    status = next((o.status for o in report.segments if o.segment == segment_name), None)
    return _record_success(engine, segment_name, status, now, templates_dir)


def open_failures(engine: Engine) -> list[RefreshJobResult]:
    """The segments whose scheduled refresh is failing, with their next attempt."""
    with session_scope(engine) as session:
        rows = session.exec(
            select(Alert, Segment)
            .join(Segment, Segment.id == Alert.segment_id)
            .where(Alert.kind == REFRESH_FAILED, Alert.status == "open")
            .order_by(Alert.id)  # type: ignore[arg-type]
        ).all()
        return [
            RefreshJobResult(
                segment.name,
                "failed",
                failures=int(alert.details.get("failures", 0)),
                retry_at=parse_time(alert.details.get("retry_at")),
                error=alert.details.get("last_error"),
            )
            for alert, segment in rows
            if segment.status == "active"
        ]


def _record_failure(
    engine: Engine, name: str, error: str, now: datetime, templates_dir: Path | None
) -> RefreshJobResult:
    with session_scope(engine) as session:
        segment = _segment(session, name)
        if segment is None:
            return RefreshJobResult(name, "failed", error=error)
        streak = _open_streak(session, segment)
        details = dict(streak.details) if streak is not None else {"first_failed_at": iso(now)}
        failures = int(details.get("failures", 0)) + 1
        retry_at = now + retry_delay(failures)
        details.update(
            failures=failures,
            last_failed_at=iso(now),
            last_error=error,
            retry_at=iso(retry_at),
        )
        if streak is None:
            streak = Alert(
                segment_id=segment.id,
                kind=REFRESH_FAILED,
                severity="warning",
                message="",
                fingerprint=drift_fingerprint(segment.name, REFRESH_FAILED, None),
                created_at=now,
            )
        alerted = False
        if failures >= ALERT_AFTER_FAILURES and not details.get("notified"):
            _queue_failure_message(session, segment, streak, details, templates_dir)
            details["notified"] = True
            alerted = True
        streak.severity = "critical" if failures >= ALERT_AFTER_FAILURES else "warning"
        streak.message = (
            f"scheduled refresh of '{segment.name}' failed {failures} time"
            f"{'s' if failures != 1 else ''} in a row: {error}"
        )
        streak.details = details
        session.add(streak)
        return RefreshJobResult(
            name, "failed", failures=failures, retry_at=retry_at, error=error, owner_alerted=alerted
        )


def _record_success(
    engine: Engine, name: str, status: str | None, now: datetime, templates_dir: Path | None
) -> RefreshJobResult:
    with session_scope(engine) as session:
        segment = _segment(session, name)
        streak = _open_streak(session, segment) if segment is not None else None
        if streak is not None:
            details = {**streak.details, "resolved_at": iso(now)}
            if details.get("notified"):
                _queue_recovery_message(session, segment, streak, details, templates_dir)
            streak.details = details
            streak.status = "acknowledged"
            session.add(streak)
    return RefreshJobResult(name, "ok", refresh_status=status)


def _tell_owner(
    session: Session,
    segment: Segment,
    streak: Alert,
    template: str,
    ctx: dict[str, Any],
    templates_dir: Path | None,
) -> None:
    """Queue one direct message to the owner about this run of failures, once per streak."""
    if streak.id is None:
        session.add(streak)
        session.flush()
    add_message(
        session,
        key=f"{template}:{streak.id}",
        kind=template.replace("-", "_"),
        channel=segment.owner,
        messages=renderer(templates_dir).render_messages(
            template, {"segment": {"name": segment.name, "title": segment.title}, **ctx}
        ),
        fallback_user=segment.owner,
    )


def _queue_failure_message(
    session: Session,
    segment: Segment,
    streak: Alert,
    details: dict[str, Any],
    templates_dir: Path | None,
) -> None:
    ctx = {
        "failures": details["failures"],
        "first_failed_at": details["first_failed_at"],
        "retry_at": details["retry_at"],
        "last_error": details["last_error"],
        "published": bool(segment.current_result_id),
    }
    _tell_owner(session, segment, streak, "refresh-failed", ctx, templates_dir)


def _queue_recovery_message(
    session: Session,
    segment: Segment,
    streak: Alert,
    details: dict[str, Any],
    templates_dir: Path | None,
) -> None:
    ctx = {"failures": details["failures"]}
    _tell_owner(session, segment, streak, "refresh-recovered", ctx, templates_dir)


def _segment(session: Session, name: str) -> Segment | None:
    return session.exec(select(Segment).where(Segment.name == name)).first()


def _open_streak(session: Session, segment: Segment) -> Alert | None:
    return session.exec(
        select(Alert)
        .where(
            Alert.segment_id == segment.id,
            Alert.kind == REFRESH_FAILED,
            Alert.status == "open",
        )
        .order_by(Alert.id.desc())  # type: ignore[union-attr]
    ).first()


def _error_text(exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, SegopsError) else f"{type(exc).__name__}: {exc}"
    line = (text.strip().splitlines() or [type(exc).__name__])[0]
    return line[:ERROR_CHARS]

"""The use cases behind the worker's scheduled jobs.

- :func:`scheduled_refresh` refreshes one segment on its cadence and remembers failures;
- :func:`catalog_health` sends the weekly catalog health report;
- :func:`proposal_reminders` nudges owners about proposals left pending;
- :func:`feedback_digest` sends owners the day's new field feedback.

Every message goes through the outbox (``commands.notify.queue``) with an
idempotency key, so running a job twice never posts twice.

Refresh failures: a failing scheduled refresh opens (or extends) one alert of kind
``refresh_failed`` for the segment, whose ``details`` count the consecutive failures
(``failures``, ``first_failed_at``, ``last_failed_at``, ``last_error``,
``retry_at``, ``notified``). The next attempt waits ``RETRY_BASE`` doubled per
failure (10 min, 20 min, 40 min ... at most ``RETRY_CAP``); a run that comes earlier
is skipped. The third failure in a row sends the owner a direct message, once per
run of failures; the first success closes the alert (status ``acknowledged``) and,
if the owner was told, says so.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, func
from sqlmodel import Session, select

from briefs.render import renderer
from commands.notify import drift_fingerprint, queue
from segments.cadence import CadenceError, cadence_trigger, runs_between
from segments.errors import SegopsError
from store.db import session_scope
from store.models import (
    Alert,
    OutboxMessage,
    Proposal,
    Segment,
    SegmentResult,
    SegmentVersion,
    Snapshot,
)

if TYPE_CHECKING:
    from segments.workspace import Workspace

logger = logging.getLogger(__name__)

REFRESH_FAILED = "refresh_failed"
ALERT_AFTER_FAILURES = 3
RETRY_BASE = timedelta(minutes=10)
RETRY_CAP = timedelta(hours=6)
REMIND_AFTER = timedelta(days=2)
DIGEST_LOOKBACK = timedelta(days=7)
ERROR_CHARS = 500


# --- scheduled refresh -----------------------------------------------------------------


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
) -> RefreshJobResult:
    """Refresh one segment as of ``now``'s date, recording a failure instead of raising.

    ``ws`` is the workspace or a function that loads it, so that a broken workspace
    file counts as a failed refresh.
    """
    now = _utc(now)
    with session_scope(engine) as session:
        segment = _segment(session, segment_name)
        if segment is None or segment.status != "active":
            return RefreshJobResult(segment_name, "skipped", error="no active segment by that name")
        streak = _open_streak(session, segment)
        if streak is not None:
            retry_at = _parse_time(streak.details.get("retry_at"))
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
            engine, workspace, as_of=now.date(), only=[segment_name], templates_dir=templates_dir
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
                retry_at=_parse_time(alert.details.get("retry_at")),
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
        details = dict(streak.details) if streak is not None else {"first_failed_at": _iso(now)}
        failures = int(details.get("failures", 0)) + 1
        retry_at = now + retry_delay(failures)
        details.update(
            failures=failures,
            last_failed_at=_iso(now),
            last_error=error,
            retry_at=_iso(retry_at),
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
            details = {**streak.details, "resolved_at": _iso(now)}
            if details.get("notified"):
                _queue_recovery_message(session, segment, streak, details, templates_dir)
            streak.details = details
            streak.status = "acknowledged"
            session.add(streak)
    return RefreshJobResult(name, "ok", refresh_status=status)


def _queue_failure_message(
    session: Session,
    segment: Segment,
    streak: Alert,
    details: dict[str, Any],
    templates_dir: Path | None,
) -> None:
    if streak.id is None:
        session.add(streak)
        session.flush()
    messages = renderer(templates_dir).render_messages(
        "refresh-failed",
        {
            "segment": {"name": segment.name, "title": segment.title},
            "failures": details["failures"],
            "first_failed_at": details["first_failed_at"],
            "retry_at": details["retry_at"],
            "last_error": details["last_error"],
            "published": bool(segment.current_result_id),
        },
    )
    queue(
        session,
        key=f"refresh-failed:{streak.id}",
        kind="refresh_failed",
        channel=segment.owner,
        messages=messages,
        fallback_user=segment.owner,
    )


def _queue_recovery_message(
    session: Session,
    segment: Segment,
    streak: Alert,
    details: dict[str, Any],
    templates_dir: Path | None,
) -> None:
    messages = renderer(templates_dir).render_messages(
        "refresh-recovered",
        {
            "segment": {"name": segment.name, "title": segment.title},
            "failures": details["failures"],
        },
    )
    queue(
        session,
        key=f"refresh-recovered:{streak.id}",
        kind="refresh_recovered",
        channel=segment.owner,
        messages=messages,
        fallback_user=segment.owner,
    )


# --- catalog health --------------------------------------------------------------------


@dataclass
class SegmentHealth:
    """One active segment in the weekly health report."""

    name: str
    title: str
    tier: str
    owner: str
    channel: str | None
    cadence: str
    version: int | None
    size: int | None
    as_of: str | None
    last_refresh: datetime | None
    open_alerts: int
    stale: bool
    problem: str | None = None  # "never refreshed", "stale" or "bad cadence: ..."

    def catalog_row(self) -> dict[str, Any]:
        """The row of the ``catalog`` brief."""
        return {
            "name": self.name,
            "title": self.title,
            "tier": self.tier,
            "status": "active",
            "owner": self.owner,
            "channel": self.channel,
            "version": self.version,
            "size": self.size,
            "as_of": self.as_of,
            "open_alerts": self.open_alerts,
        }


@dataclass
class HealthReport:
    segments: list[SegmentHealth] = field(default_factory=list)
    queued: int = 0

    @property
    def attention(self) -> list[SegmentHealth]:
        return [s for s in self.segments if s.problem]


def catalog_health(
    engine: Engine,
    *,
    now: datetime | None = None,
    channel: str | None = None,
    templates_dir: Path | None = None,
) -> HealthReport:
    """Queue the weekly health report of the active segments.

    A segment is stale when at least two of its scheduled refreshes have come since
    its last published refresh (about twice its cadence). With ``channel`` one report
    covers the whole catalog; without, each owner gets a direct message about their
    own segments. Keyed by ISO week: once per week and recipient.
    """
    now = _utc(now)
    report = HealthReport()
    with session_scope(engine) as session:
        segments = session.exec(
            select(Segment).where(Segment.status == "active").order_by(Segment.name)
        ).all()
        for segment in segments:
            report.segments.append(_health(session, segment, now))
        year, week, _ = now.isocalendar()
        groups: dict[str, list[SegmentHealth]] = defaultdict(list)
        for item in report.segments:
            groups[channel or item.owner].append(item)
        for target, items in sorted(groups.items()):
            heading = "Weekly catalog health" if channel else "Your segments this week"
            rows = queue(
                session,
                key=f"catalog-health:{year}-W{week:02d}:{target}",
                kind="catalog_health",
                channel=target,
                messages=_health_messages(items, heading, templates_dir),
                fallback_user=None if channel else target,
            )
            report.queued += len(rows)
    return report


def _health(session: Session, segment: Segment, now: datetime) -> SegmentHealth:
    version = session.get(SegmentVersion, segment.current_version_id)
    result = (
        session.get(SegmentResult, segment.current_result_id) if segment.current_result_id else None
    )
    snapshot = session.get(Snapshot, result.snapshot_id) if result is not None else None
    open_alerts = session.exec(
        select(func.count())
        .select_from(Alert)
        .where(Alert.segment_id == segment.id, Alert.status == "open")
    ).one()
    last = result.created_at if result is not None else None
    problem = None
    stale = False
    if last is None:
        problem = "never refreshed"
    else:
        try:
            stale = runs_between(cadence_trigger(segment.cadence), last, now, limit=2) >= 2
        except CadenceError as exc:
            problem = f"bad cadence: {exc}"
        if stale:
            problem = "stale"
    return SegmentHealth(
        name=segment.name,
        title=segment.title,
        tier=segment.tier,
        owner=segment.owner,
        channel=segment.channel,
        cadence=segment.cadence,
        version=version.version if version else None,
        size=result.size if result else None,
        as_of=snapshot.as_of.isoformat() if snapshot else None,
        last_refresh=last,
        open_alerts=int(open_alerts),
        stale=stale,
        problem=problem,
    )


def _health_messages(
    items: Sequence[SegmentHealth], heading: str, templates_dir: Path | None
) -> list[dict[str, Any]]:
    return renderer(templates_dir).render_messages(
        "catalog-health",
        {
            "segments": [i.catalog_row() for i in items],
            "heading": heading,
            "attention": [
                {
                    "name": i.name,
                    "problem": i.problem,
                    "last_refresh": i.last_refresh,
                    "cadence": i.cadence,
                }
                for i in items
                if i.problem
            ],
        },
    )


# --- proposal reminders ----------------------------------------------------------------


def proposal_reminders(
    engine: Engine,
    *,
    now: datetime | None = None,
    older_than: timedelta = REMIND_AFTER,
    templates_dir: Path | None = None,
) -> list[int]:
    """Remind owners of proposals pending longer than ``older_than``; the reminded ids.

    One reminder per proposal per full day of waiting (keyed by the days waited),
    sent to the owner with the proposal and its Approve / Reject buttons. Proposals
    whose segment changed since (they would be stale on decision) are skipped.
    """
    from commands.proposals import proposal_context

    now = _utc(now)
    with session_scope(engine) as session:
        rows = session.exec(
            select(Proposal, Segment)
            .join(Segment, Segment.id == Proposal.segment_id)
            .where(Proposal.status == "pending", Proposal.created_at <= now - older_than)
            .order_by(Proposal.id)  # type: ignore[arg-type]
        ).all()
        due = [
            (p.id, p.created_at, s.owner, list(s.approvers or []))
            for p, s in rows
            if p.base_version_id == s.current_version_id and s.status == "active"
        ]
    reminded = []
    for proposal_id, created_at, owner, approvers in due:
        days = int((now - created_at) / timedelta(days=1))
        key = f"proposal-reminder:{proposal_id}:{days}"
        if _queued(engine, key):
            continue
        ctx = proposal_context(engine, proposal_id)
        messages = renderer(templates_dir).render_messages(
            "proposal-reminder", {**ctx, "days": days, "deciders": [owner, *approvers]}
        )
        with session_scope(engine) as session:
            if queue(
                session,
                key=key,
                kind="proposal_reminder",
                channel=owner,
                messages=messages,
                fallback_user=owner,
            ):
                reminded.append(proposal_id)
    return reminded


# --- feedback digest -------------------------------------------------------------------


def feedback_digest(
    engine: Engine,
    *,
    now: datetime | None = None,
    lookback: timedelta = DIGEST_LOOKBACK,
    templates_dir: Path | None = None,
) -> int:
    """Send each owner the feedback not digested yet (from the last ``lookback``).

    The items are marked digested and the messages queued in ONE transaction, so a
    crash in between neither loses a digest nor sends one twice. Returns the number
    of owners.
    """
    from commands.feedback import collect_digest

    now = _utc(now)
    sent = 0
    with session_scope(engine) as session:
        for item in collect_digest(session, since=now - lookback, now=now):
            ids = item.feedback_ids
            tag = hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()[:16]
            rows = queue(
                session,
                key=f"feedback-digest:{item.owner}:{tag}",
                kind="feedback_digest",
                channel=item.owner,
                messages=renderer(templates_dir).render_messages("feedback-digest", item.context),
                fallback_user=item.owner,
            )
            sent += bool(rows)
    return sent


# --- helpers ---------------------------------------------------------------------------


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


def _queued(engine: Engine, key: str) -> bool:
    with session_scope(engine) as session:
        found = session.exec(select(OutboxMessage.id).where(OutboxMessage.idempotency_key == key))
        return found.first() is not None


def _error_text(exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, SegopsError) else f"{type(exc).__name__}: {exc}"
    line = (text.strip().splitlines() or [type(exc).__name__])[0]
    return line[:ERROR_CHARS]


def _utc(value: datetime | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    return _utc(datetime.fromisoformat(str(value)))

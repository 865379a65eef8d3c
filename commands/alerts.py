"""Drift alerts: acknowledge one, mute one, and re-render the message it was posted in.

The buttons of a posted drift alert (``briefs/templates/drift-alert.j2``) land here.
The semantics follow what :func:`commands.notify.queue_refresh_messages` does with
them, looking at the latest earlier alert of the same drift (same segment, kind and
column, i.e. the same ``fingerprint``):

* :func:`acknowledge` ("expected, this one is fine"): the segment's owner or a listed
  approver. Sets ``status='acknowledged'`` and ``acknowledged_by`` on that alert and on
  the alerts posted in the same message (one set of buttons acts on the whole message),
  and clears their ``muted_until``. A later alert of the same drift is posted again when
  it goes the other way or is materially larger (``commands.notify.covered``: at least
  ``MATERIAL`` times the acknowledged size change, PSI, KPI delta or distance from the
  control limits); otherwise it is stored acknowledged, measured against the same
  acknowledged drift. Applied once with a conditional update, so a second click (or
  two racing ones) is a quiet no-op (``changed`` False).
* :func:`mute` ("not now"): the segment's owner only. Sets ``status='muted'`` and
  ``muted_until = now + days`` on it and the alerts posted with it, and carries the
  mute to newer alerts of the same drifts
  that are still open: the drift is silenced in both directions until ``muted_until``
  and posted again after it. A no-op on an acknowledged alert and on one still muted.

:func:`alert_context` rebuilds the ``drift-alert`` context of the message an alert was
posted in, from the stored result and alerts, with every alert's current state: the
Slack layer re-renders the message in place after a click.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, or_, update
from sqlmodel import Session, select

from commands.errors import NotAuthorised, NotSaved, person
from commands.lookup import find_segment
from commands.notify import (
    POSTED_WITH,
    QUALITY_PREFIX,
    _kpi_rows,
    _segment_ctx,
    alert_item,
    labels_of,
    segment_titles,
)
from commands.policy import visible_alert, visible_drift
from segments.errors import SegopsError
from store.db import WRITE_BUDGET, DatabaseBusy, session_scope, write
from store.models import Alert, Segment, SegmentResult, Snapshot
from store.results import published_by_day

MUTE_DAYS = 7
MAX_MUTE_DAYS = 90
TREND_POINTS = 24
POSTED_SEVERITIES = ("warning", "critical")


@dataclass
class AlertView:
    """One alert after an acknowledgement or a mute; ``changed`` False for a no-op."""

    id: int
    segment: str
    kind: str
    severity: str
    message: str
    status: str
    acknowledged_by: str | None
    muted_until: str | None
    changed: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def state(alert: Alert, now: datetime) -> str:
    """The alert's status as it stands at ``now``: a mute that ran out is open again."""
    if alert.status == "muted" and (alert.muted_until is None or alert.muted_until <= now):
        return "open"
    return alert.status


def _people(users: list[str]) -> str:
    return ", ".join(person(u) for u in users)


def _load(session: Session, alert_id: int) -> tuple[Alert, Segment]:
    alert = session.get(Alert, alert_id)
    if alert is None:
        raise SegopsError(f"no alert #{alert_id}")
    segment = session.get(Segment, alert.segment_id) if alert.segment_id else None
    if segment is None:
        raise SegopsError(f"alert #{alert_id} belongs to no segment: nothing to decide")
    return alert, segment


def _view(alert: Alert, segment: Segment, *, now: datetime, changed: bool) -> AlertView:
    return AlertView(
        id=alert.id,
        segment=segment.name,
        kind=alert.kind,
        severity=alert.severity,
        message=alert.message,
        status=state(alert, now),
        acknowledged_by=alert.acknowledged_by,
        muted_until=_iso(alert.muted_until),
        changed=changed,
    )


def _shown_with(alert: Alert) -> list[int]:
    """The other alerts posted in the same drift message (its buttons act on them all)."""
    return [i for i in (alert.details or {}).get(POSTED_WITH) or () if i != alert.id]


def _same_drift_after(alert: Alert) -> list[Any]:
    """Conditions selecting newer alerts of the same drift (segment and fingerprint)."""
    return [
        Alert.segment_id == alert.segment_id,
        Alert.fingerprint == alert.fingerprint,
        Alert.id > alert.id,  # type: ignore[operator]
    ]


def acknowledge(
    engine: Engine, *, alert_id: int, user: str, budget: float = WRITE_BUDGET
) -> AlertView:
    """Acknowledge this alert (not its drift for good) as the owner or an approver.

    A repeat is a no-op. A busy database is retried for ``budget`` seconds, then
    :class:`NotSaved` says nothing was saved.
    """
    now = datetime.now(UTC)

    def work(session: Session) -> AlertView:
        alert, segment = _load(session, alert_id)
        approvers = list(segment.approvers or [])
        if user != segment.owner and user not in approvers:
            who = f"the owner {person(segment.owner)}"
            if approvers:
                who += f" or approvers {_people(approvers)}"
            raise NotAuthorised(
                f"only {who} can acknowledge alert #{alert_id} on segment '{segment.name}'",
                users=[segment.owner, *approvers],
            )
        changed = session.exec(
            update(Alert)
            .where(Alert.id == alert_id, Alert.status != "acknowledged")
            .values(status="acknowledged", acknowledged_by=user, muted_until=None)
        ).rowcount
        if changed == 1:  # one set of buttons per message: it covers every alert shown
            session.exec(
                update(Alert)
                .where(Alert.id.in_(_shown_with(alert)), Alert.status != "acknowledged")  # type: ignore[union-attr]
                .values(status="acknowledged", acknowledged_by=user, muted_until=None)
            )
        session.refresh(alert)
        return _view(alert, segment, now=now, changed=changed == 1)

    return _write(engine, work, budget, f"acknowledgement of alert #{alert_id}")


def _write(engine: Engine, work: Any, budget: float, what: str) -> AlertView:
    try:
        return write(engine, work, budget=budget)
    except DatabaseBusy as busy:
        raise NotSaved(f"{busy}: your {what} was not recorded; click again") from None


def mute(
    engine: Engine,
    *,
    alert_id: int,
    user: str,
    days: int = MUTE_DAYS,
    now: datetime | None = None,
    budget: float = WRITE_BUDGET,
) -> AlertView:
    """Mute an alert for ``days`` days as its segment's owner; a no-op when already silent.

    A busy database is retried for ``budget`` seconds, then :class:`NotSaved`.
    """
    if not 1 <= days <= MAX_MUTE_DAYS:
        raise SegopsError(f"a mute lasts 1 to {MAX_MUTE_DAYS} days, not {days}")
    now = now or datetime.now(UTC)
    until = now + timedelta(days=days)

    def work(session: Session) -> AlertView:
        alert, segment = _load(session, alert_id)
        if user != segment.owner:
            raise NotAuthorised(
                f"only the owner {person(segment.owner)} can mute alerts "
                f"on segment '{segment.name}'",
                users=[segment.owner],
            )
        silent_or_open = [
            Alert.status != "acknowledged",
            or_(Alert.muted_until.is_(None), Alert.muted_until <= now),  # type: ignore[union-attr]
        ]
        changed = session.exec(
            update(Alert)
            .where(Alert.id == alert_id, *silent_or_open)
            .values(status="muted", muted_until=until)
        ).rowcount
        if changed == 1:
            shown = session.exec(
                select(Alert).where(Alert.id.in_(_shown_with(alert)))  # type: ignore[union-attr]
            ).all()
            for sibling in [alert, *shown]:
                session.exec(
                    update(Alert)
                    .where(
                        or_(Alert.id == sibling.id, and_(*_same_drift_after(sibling))),
                        *silent_or_open,
                    )
                    .values(status="muted", muted_until=until)
                )
        session.refresh(alert)
        return _view(alert, segment, now=now, changed=changed == 1)

    return _write(engine, work, budget, f"mute of alert #{alert_id}")


ALERT_STATUSES = ("open", "acknowledged", "muted")


def list_alerts(
    engine: Engine,
    *,
    segment: str | None = None,
    status: str | None = "open",
    limit: int = 50,
    now: datetime | None = None,
    privacy_floor: int,
) -> list[dict[str, Any]]:
    """Alerts, newest first, with their status as it stands ``now`` (a mute that ran out
    is open) and the refresh date they belong to; ``status`` None: every status. The
    message of an alert on sizes under ``privacy_floor`` names no number
    (:func:`policy.visible_alert`)."""
    if status is not None and status not in ALERT_STATUSES:
        raise SegopsError(f"status {status!r} must be one of {', '.join(ALERT_STATUSES)} or all")
    now = now or datetime.now(UTC)
    with session_scope(engine) as session:
        query = (
            select(Alert, Segment.name, Snapshot.as_of, SegmentResult.size)
            .join(Segment, Segment.id == Alert.segment_id)
            .join(SegmentResult, SegmentResult.id == Alert.result_id, isouter=True)
            .join(Snapshot, Snapshot.id == SegmentResult.snapshot_id, isouter=True)
        )
        if segment is not None:
            query = query.where(Alert.segment_id == find_segment(session, segment).id)
        rows = session.exec(query.order_by(Alert.id.desc())).all()  # type: ignore[union-attr]
        out = []
        for alert, name, as_of, size in rows:
            current = state(alert, now)
            if status is not None and current != status:
                continue
            shown = visible_alert(
                {"kind": alert.kind, "message": alert.message, "details": alert.details},
                privacy_floor,
                size=size,
            )
            out.append(
                {
                    "id": alert.id,
                    "segment": name,
                    "as_of": as_of.isoformat() if as_of else None,
                    "kind": alert.kind,
                    "severity": alert.severity,
                    "status": current,
                    "message": shown["message"],
                    "acknowledged_by": alert.acknowledged_by,
                    "muted_until": _iso(alert.muted_until) if current == "muted" else None,
                }
            )
            if len(out) >= limit:
                break
        return out


def alert_context(
    engine: Engine, alert_id: int, *, privacy_floor: int, now: datetime | None = None
) -> dict[str, Any]:
    """The ``drift-alert`` context of the message ``alert_id`` was posted in, as it is now,
    with the numbers under ``privacy_floor`` hidden as when it was posted."""
    now = now or datetime.now(UTC)
    with session_scope(engine) as session:
        alert, segment = _load(session, alert_id)
        result = session.get(SegmentResult, alert.result_id) if alert.result_id else None
        if result is None:
            raise SegopsError(f"alert #{alert_id} belongs to no refresh: it has no drift message")
        snapshot = session.get(Snapshot, result.snapshot_id)
        siblings = session.exec(
            select(Alert).where(Alert.result_id == result.id).order_by(Alert.id)  # type: ignore[arg-type]
        ).all()
        posted = set((alert.details or {}).get(POSTED_WITH) or ())
        if posted:
            shown = [a for a in siblings if a.id in posted]
        else:
            shown = [
                a
                for a in siblings
                if a.id == alert.id
                or (not a.kind.startswith(QUALITY_PREFIX) and a.severity in POSTED_SEVERITIES)
            ]
        severity = "critical" if any(a.severity == "critical" for a in shown) else "warning"
        stats = result.stats or {}
        ctx = {
            "segment": _segment_ctx(segment),
            "as_of": snapshot.as_of.isoformat(),
            "severity": severity,
            "alerts": [alert_item(a, state(a, now)) for a in shown],
            "evidence": {
                "size": result.size,
                "previous_size": result.previous_size,
                "trend": [
                    list(point)
                    for point in published_by_day(
                        session, segment_id=segment.id, limit=TREND_POINTS, until=snapshot.as_of
                    )
                ],
                "kpis": _kpi_rows(stats.get("kpis") or {}),
                "shifts": [
                    {
                        "column": a.details.get("column"),
                        "psi": a.details.get("psi"),
                        "summary": a.message,
                    }
                    for a in shown
                    if a.kind == "composition"
                ],
                "leave_reasons": sorted(
                    (result.leave_reasons or {}).items(), key=lambda kv: -kv[1]
                )[:5],
            },
            "labels": labels_of(result),
            "titles": segment_titles(session),
        }
        return visible_drift(ctx, privacy_floor)

"""Turn a refresh into Slack messages in the outbox, in the refresh's own transaction.

* one refresh summary per channel: a single segment gets its own summary; several
  segments sharing a channel get one grouped message, details in its thread;
* a drift alert for every segment whose refresh raised warning or critical drift,
  with a chart of its size over time, unless the same drift is muted (until
  ``muted_until``) or the same occurrence was acknowledged: same direction and less
  than ``MATERIAL`` times the acknowledged magnitude;
* a blocked-refresh alert naming the failed checks and the snapshot still served
  (a blocked segment gets only this, not a summary as well); several blocked segments
  of one channel share one message, grouped by what failed, and so do the blocked
  segments without a channel of one owner, in a direct message; a segment blocked
  because it refers to a blocked segment is grouped under what blocked that one, so
  one stale source is one line however many segments it stopped;
* a summary leaves out the alerts its segment's drift alert already shows.

Messages are keyed (``idempotency_key``) by snapshot and target, so queueing the
same refresh twice is impossible and delivery can never double-post.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlmodel import Session, select

from briefs.render import renderer
from briefs.wording import label
from commands.policy import visible_drift, visible_size, visible_summary, visible_trend
from commands.stats import kpi_trend, trend
from store.models import Alert, OutboxMessage, Segment, SegmentResult, Snapshot
from store.outbox import add_message

QUALITY_PREFIX = "quality_"


POSTED_WITH = "posted_with"
"""Alert details key: ids of the alerts posted in the same drift message."""

ACKNOWLEDGED_AS = "acknowledged_as"
"""Alert details key: the acknowledged drift (direction, magnitude) a silenced alert fell under."""

MATERIAL = 1.5
"""A drift this many times the acknowledged magnitude is posted again."""

LABELS = "labels"
"""Result stats key: the workspace labels of the columns the segment reads and tracks."""


def drift_fingerprint(segment: str, kind: str, details: dict[str, Any] | None) -> str:
    """Same segment, kind and column: the same drift for muting, and for acknowledging
    together with its direction and magnitude (:func:`covered`)."""
    column = (details or {}).get("column") or ""
    return hashlib.sha256(f"{segment}|{kind}|{column}".encode()).hexdigest()


def alert_item(alert: Alert, status: str | None = None) -> dict[str, Any]:
    """One alert as the drift-alert template shows it (``status`` overrides the stored one)."""
    muted = alert.muted_until
    return {
        "id": alert.id,
        "kind": alert.kind,
        "severity": alert.severity,
        "message": alert.message,
        "status": status or alert.status,
        "acknowledged_by": alert.acknowledged_by,
        "muted_until": muted.isoformat(timespec="seconds") if muted else None,
        "details": {k: v for k, v in (alert.details or {}).items() if k not in _BOOKKEEPING},
    }


_BOOKKEEPING = (POSTED_WITH, ACKNOWLEDGED_AS)


def labels_of(result: SegmentResult | None) -> dict[str, Any]:
    """The workspace labels a refresh stored with a segment's result (see ``LABELS``)."""
    return dict(((result.stats or {}).get(LABELS) or {}) if result is not None else {})


def result_labels(ws: Any, definition: Any, stats: dict[str, Any]) -> dict[str, Any]:
    """The labels to store with a result: those of the columns its rule reads, its KPIs
    and the columns profiled for drift (``ws`` a Workspace, ``definition`` a SegmentDef)."""
    from segments.rules.tree import columns

    names = set(definition.kpis) | set(((stats.get("profile") or {}).get("columns")) or {})
    names |= columns(definition.tree())
    return ws.labels_for(sorted(names))


def segment_titles(session: Session) -> dict[str, str]:
    """Every segment's title by name, for clauses that name another segment."""
    rows = session.exec(select(Segment.name, Segment.title)).all()
    return {str(name): str(title) for name, title in rows}


def _segment_ctx(segment: Segment) -> dict[str, Any]:
    return {"name": segment.name, "title": segment.title, "owner": segment.owner}


def _kpi_rows(kpis: dict[str, dict[str, float | None]]) -> list[dict[str, Any]]:
    rows = []
    for name, pair in kpis.items():
        value, previous = pair.get("value"), pair.get("previous")
        delta = None
        if value is not None and previous not in (None, 0):
            delta = round(100.0 * (value - previous) / abs(previous), 1)
        rows.append({"name": name, "value": value, "previous": previous, "delta_pct": delta})
    return rows


def _top_reasons(outcome: Any, most: int = 5) -> list[tuple[str, int]]:
    """The clauses most leavers stopped matching, largest first."""
    return sorted(outcome.leave_reasons.items(), key=lambda kv: -kv[1])[:most]


def summary_context(
    outcome: Any, segment: Segment, as_of: str, *, posted: set[str] | None = None
) -> dict[str, Any]:
    """The refresh-summary context of one segment's outcome.

    ``posted`` are the kinds of the alerts already posted in the segment's drift alert:
    the summary leaves them out and says a drift alert was posted (``drift_posted``).
    ``first`` is true on the segment's first snapshot, where nobody "joined".
    """
    posted = posted or set()
    return {
        "first": outcome.previous_size is None,
        "drift_posted": bool(posted),
        "segment": _segment_ctx(segment),
        "as_of": as_of,
        "status": outcome.status,
        "size": outcome.size,
        "previous_size": outcome.previous_size,
        "joined": outcome.joined,
        "left": outcome.left,
        "leave_reasons": _top_reasons(outcome),
        "quality": {
            "verdict": "blocked" if outcome.status == "blocked" else "passed",
            "failures": list(outcome.quality_failures),
        },
        "kpis": _kpi_rows(outcome.kpis),
        "alerts": [a.to_dict(details=True) for a in outcome.alerts if a.kind not in posted],
        "definition_change": getattr(outcome, "definition_change", None),
    }


def chart_file(
    series: dict[str, list[tuple[str, int]]],
    *,
    title: str,
    name: str,
    kpi: tuple[str, list[tuple[str, float]]] | None = None,
    blocked: dict[str, list[str]] | None = None,
    inline: bool = False,
) -> dict:
    """A chart (sizes, optionally one KPI named ``kpi[0]`` in words, blocked days marked)
    as an outbox file entry; ``inline``: shown inside the message when Slack allows (see
    ``bot.delivery.posting``), else first in its thread.

    The entry holds the chart's data (``chart``: the spec of :func:`briefs.chart.render`),
    not its PNG: delivery draws it when it posts the message, so a refresh of many
    segments does not wait for their charts and the outbox row stays small."""
    spec: dict[str, Any] = {
        "series": {n: [[str(d), _plain(v)] for d, v in points] for n, points in series.items()},
        "title": title,
    }
    if kpi is not None and len(kpi[1]) >= 1:
        spec["kpi"] = [[str(d), _plain(v)] for d, v in kpi[1]]
        spec["kpi_label"] = f"{kpi[0]} (average)"
    if blocked:
        spec["blocked"] = {n: [str(d) for d in days] for n, days in blocked.items()}
    entry = {"filename": f"{name}.png", "title": title, "chart": spec}
    return {**entry, "inline": True} if inline else entry


def _plain(value: Any) -> float | int | None:
    """A chart value as JSON: None stays None (a gap), numpy numbers become Python ones."""
    if value is None:
        return None
    number = float(value)
    if not math.isfinite(number):
        return None
    return int(number) if isinstance(value, int | np.integer) else number


def _sign(value: float) -> int:
    return (value > 0) - (value < 0)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def drift_signal(kind: str, details: dict[str, Any] | None) -> dict[str, float] | None:
    """The direction (sign of the change) and magnitude of one alert, from its details.

    Size and KPI alerts: the sign of the change and its relative size (absolute when
    there is no relative one); control limits: the side and the distance in sigmas;
    composition: PSI; min_size: the shortfall. None when the details do not tell.
    """
    d = details or {}
    if kind in ("size_change", "kpi"):
        change = _number(d.get("change" if kind == "size_change" else "delta"))
        relative = _number(d.get("relative_change"))
        if change is None:
            return None
        return {
            "direction": _sign(change),
            "magnitude": abs(change if relative is None else relative),
        }
    if kind == "control_limit":
        size, mean, sigma = (_number(d.get(k)) for k in ("size", "mean", "sigma"))
        if size is None or mean is None:
            return None
        return {"direction": _sign(size - mean), "magnitude": abs(size - mean) / (sigma or 1.0)}
    if kind == "composition":
        psi = _number(d.get("psi"))
        return None if psi is None else {"direction": 0, "magnitude": psi}
    if kind == "min_size":
        size, floor = _number(d.get("size")), _number(d.get("min_size"))
        if size is None or floor is None:
            return None
        return {"direction": 0, "magnitude": floor - size}
    return None


def acknowledged_signal(alert: Alert) -> dict[str, float] | None:
    """The drift an acknowledgement covers: the one carried over, else the alert's own."""
    return (alert.details or {}).get(ACKNOWLEDGED_AS) or drift_signal(alert.kind, alert.details)


def covered(acknowledged: dict[str, float] | None, signal: dict[str, float] | None) -> bool:
    """Whether an acknowledgement of ``acknowledged`` also covers a drift of ``signal``.

    Not when the direction differs or the magnitude is at least ``MATERIAL`` times the
    acknowledged one; when either cannot be told, the acknowledgement stands.
    """
    if acknowledged is None or signal is None:
        return True
    if signal["direction"] != acknowledged["direction"]:
        return False
    was, now = abs(acknowledged["magnitude"]), abs(signal["magnitude"])
    return now <= was or now < MATERIAL * was


def _suppressed(session: Session, segment: Segment, alert: Alert, now: datetime) -> bool:
    """Whether the latest earlier alert of the same fingerprint silences this one.

    A mute silences it until ``muted_until``, never after. An acknowledgement silences
    only the same occurrence: the same direction and not materially larger (see
    :func:`covered`). A silenced alert takes the earlier one's state, and an
    acknowledged one keeps the acknowledged drift in its details (``ACKNOWLEDGED_AS``),
    so a drift growing by small steps is still measured against what was acknowledged.
    """
    earlier = session.exec(
        select(Alert)
        .where(
            Alert.segment_id == segment.id,
            Alert.fingerprint == alert.fingerprint,
            Alert.id != alert.id,
        )
        .order_by(Alert.id.desc())  # type: ignore[union-attr]
    ).first()
    if earlier is None:
        return False
    if earlier.muted_until is not None and earlier.muted_until > now:
        alert.status, alert.muted_until = "muted", earlier.muted_until
        session.add(alert)
        return True
    if earlier.status == "acknowledged":
        baseline = acknowledged_signal(earlier)
        if not covered(baseline, drift_signal(alert.kind, alert.details)):
            return False
        alert.status, alert.acknowledged_by = "acknowledged", earlier.acknowledged_by
        if baseline is not None:
            alert.details = {**(alert.details or {}), ACKNOWLEDGED_AS: baseline}
        session.add(alert)
        return True
    return False


def queue_refresh_messages(
    session: Session,
    *,
    snapshot: Snapshot,
    outcomes: Iterable[Any],
    charts: bool = True,
    templates_dir: Path | None = None,
    privacy_floor: int = 0,
) -> list[OutboxMessage]:
    """Queue the summaries and alerts of one refresh. Does not commit.

    ``templates_dir`` is the user's template folder (``SEGOPS_TEMPLATES``), if any.
    """
    r = renderer(templates_dir)
    now = datetime.now(UTC)
    as_of = snapshot.as_of.isoformat()
    by_name = {s.name: s for s in session.exec(select(Segment)).all()}
    rows: list[OutboxMessage] = []
    channels: dict[str | None, list[tuple[Any, Segment]]] = defaultdict(list)
    blocked: dict[str | None, list[tuple[Any, Segment]]] = defaultdict(list)
    posted: dict[str, set[str]] = {}
    for outcome in outcomes:
        if outcome.status == "unchanged":
            continue
        segment = by_name[outcome.segment]
        if outcome.status == "blocked":
            blocked[segment.channel].append((outcome, segment))
        else:
            channels[segment.channel].append((outcome, segment))
            drift_rows, kinds = _queue_drift(
                session, snapshot, outcome, segment, now, charts, r, floor=privacy_floor
            )
            rows += drift_rows
            posted[segment.name] = kinds
    stopped = {outcome.segment: outcome for items in blocked.values() for outcome, _ in items}
    for channel, items in blocked.items():
        # without a channel each owner hears of their own, in one direct message
        groups = [items] if channel is not None else list(_by_owner(items).values())
        for group in groups:
            if len(group) == 1:
                rows += _queue_blocked(session, snapshot, *group[0], r, floor=privacy_floor)
            else:
                rows += _queue_blocked_group(
                    session, snapshot, channel, group, stopped, r, floor=privacy_floor
                )
    for channel, items in channels.items():
        kept = [segment for _, segment in blocked.get(channel, [])]
        rows += _queue_summary(
            session,
            snapshot,
            channel,
            items,
            as_of,
            charts,
            r,
            posted,
            kept=kept,
            floor=privacy_floor,
        )
    return rows


def _queue_summary(
    session, snapshot, channel, items, as_of, charts, r, posted, *, kept=(), floor=0
) -> list[OutboxMessage]:
    """The channel's summary; ``kept`` are its blocked segments, drawn in its chart with
    the blocked day marked; numbers of segments under the privacy ``floor`` are hidden."""
    labels: dict[str, Any] = {}
    for _, segment in items:
        labels.update(labels_of(_result(session, snapshot, segment)))
    contexts = []
    titles = segment_titles(session)
    for outcome, segment in items:
        ctx = summary_context(outcome, segment, as_of, posted=posted.get(segment.name))
        contexts.append(visible_summary({**ctx, "labels": labels, "titles": titles}, floor))
    owner = items[0][1].owner
    target = channel or "dm"
    key = f"summary:{snapshot.id}:{target}:{owner if channel is None else ''}"
    files = []
    if charts:
        series = {s.name: visible_trend(trend(session, s), floor) for _, s in items}
        series.update({s.name: visible_trend(trend(session, s), floor) for s in kept})
        series = {name: points for name, points in series.items() if points}
        slug = "".join(c if c.isalnum() else "-" for c in target.lstrip("#")).strip("-")
        title = f"Segment sizes to {as_of}" + (f" · #{slug}" if channel else "")
        if series:
            files = [
                chart_file(
                    series,
                    title=title,
                    name=f"sizes-{slug}-{as_of}",
                    blocked={s.name: [as_of] for s in kept if s.name in series},
                )
            ]
    if len(contexts) == 1:
        messages = r.render_messages("refresh-summary", contexts[0])
        return add_message(
            session,
            key=key,
            kind="refresh_summary",
            channel=channel,
            messages=messages,
            fallback_user=owner,
            files=files,
        )
    group = r.render_messages(
        "refresh-group", {"channel": channel, "as_of": as_of, "summaries": contexts}
    )
    rows = add_message(
        session,
        key=key,
        kind="refresh_summary",
        channel=channel,
        messages=group,
        fallback_user=owner,
        files=files,
    )
    if not rows:
        return rows
    for ctx, (_, segment) in zip(contexts, items, strict=True):
        for index, message in enumerate(r.render_messages("refresh-summary", ctx)):
            row = OutboxMessage(
                idempotency_key=f"{key}:{segment.name}:{index + 1}",
                kind="refresh_detail",
                channel=rows[0].channel,
                thread_key=key,
                text=message["text"],
                blocks=message["blocks"],
                files=[],
                fallback_user=segment.owner,
            )
            session.add(row)
            rows.append(row)
    session.flush()
    return rows


def _result(session: Session, snapshot: Snapshot, segment: Segment) -> SegmentResult | None:
    return session.exec(
        select(SegmentResult).where(
            SegmentResult.snapshot_id == snapshot.id, SegmentResult.segment_id == segment.id
        )
    ).first()


def _queue_drift(
    session, snapshot, outcome, segment, now, charts, r, *, floor=0
) -> list[OutboxMessage]:
    """The segment's drift alert, if it raised one that is not silenced; its numbers and
    chart points under the privacy ``floor`` are hidden (:func:`policy.visible_drift`)."""
    result = _result(session, snapshot, segment)
    if result is None:
        return [], set()
    alerts = session.exec(
        select(Alert).where(Alert.result_id == result.id).order_by(Alert.id)  # type: ignore[arg-type]
    ).all()
    drift = [
        a
        for a in alerts
        if not a.kind.startswith(QUALITY_PREFIX) and a.severity in ("warning", "critical")
    ]
    drift = [a for a in drift if not _suppressed(session, segment, a, now)]
    if not drift:
        return [], set()
    severity = "critical" if any(a.severity == "critical" for a in drift) else "warning"
    series = trend(session, segment)
    shifts = [
        {"column": a.details.get("column"), "psi": a.details.get("psi"), "summary": a.message}
        for a in drift
        if a.kind == "composition"
    ]
    ctx = {
        "segment": _segment_ctx(segment),
        "as_of": snapshot.as_of.isoformat(),
        "severity": severity,
        "alerts": [alert_item(a) for a in drift],
        "evidence": {
            "size": outcome.size,
            "previous_size": outcome.previous_size,
            "trend": [list(p) for p in series],
            "kpis": _kpi_rows(outcome.kpis),
            "shifts": shifts,
            "leave_reasons": _top_reasons(outcome),
        },
        "labels": labels_of(result),
        "titles": segment_titles(session),
    }
    ctx = visible_drift(ctx, floor)
    files = []
    points = visible_trend(series, floor)
    if charts and points:
        kpi = None
        moved = [a.details.get("column") for a in drift if a.kind == "kpi"]
        kpi_name = next((c for c in moved if c), None) or next(iter(outcome.kpis), None)
        if kpi_name and not ctx["hidden"]:
            kpi = (label(kpi_name, labels_of(result)), kpi_trend(session, segment, kpi_name))
        files = [
            chart_file(
                {segment.name: points},
                title=f"{segment.title}: size",
                name=f"{segment.name}-{ctx['as_of']}",
                kpi=kpi,
                inline=True,
            )
        ]
    rows = add_message(
        session,
        key=f"drift:{snapshot.id}:{segment.name}",
        kind="drift_alert",
        channel=segment.channel,
        messages=r.render_messages("drift-alert", ctx),
        fallback_user=segment.owner,
        files=files,
    )
    if rows:  # each alert remembers the message it is shown in (re-rendered after a click)
        shown = [a.id for a in drift]
        for alert in drift:
            alert.details = {**(alert.details or {}), POSTED_WITH: shown}
            session.add(alert)
    return rows, {a.kind for a in drift}


def _served(session: Session, segment: Segment, floor: int) -> dict[str, Any] | None:
    """The snapshot a blocked segment keeps: ``{as_of, size}`` (size None under the privacy
    ``floor``), or None before any."""
    if not segment.current_result_id:
        return None
    result = session.get(SegmentResult, segment.current_result_id)
    served = session.get(Snapshot, result.snapshot_id)
    return {"as_of": served.as_of.isoformat(), "size": visible_size(result.size, floor)}


def _failures(outcome: Any) -> list[dict[str, Any]]:
    return [
        {
            "kind": a.kind.removeprefix(QUALITY_PREFIX),
            "source": a.details.get("source"),
            "column": a.details.get("column"),
            "message": a.message,
        }
        for a in outcome.alerts
        if a.kind.startswith(QUALITY_PREFIX)
    ] or [
        {"kind": a.kind, "source": None, "column": None, "message": a.message}
        for a in outcome.alerts
    ]


def _by_owner(items: list[tuple[Any, Segment]]) -> dict[str, list[tuple[Any, Segment]]]:
    owners: dict[str, list[tuple[Any, Segment]]] = defaultdict(list)
    for outcome, segment in items:
        owners[segment.owner].append((outcome, segment))
    return owners


def _root_failures(
    outcome: Any, stopped: dict[str, Any]
) -> tuple[list[dict[str, Any]], str | None]:
    """What blocked a segment, and the segment it was blocked through (or None).

    A segment blocked only because it refers to a segment this refresh blocked
    (``quality_reference``) is blocked by what blocked that segment.
    """
    kinds = {a.kind for a in outcome.alerts}
    if kinds == {QUALITY_PREFIX + "reference"}:
        name = outcome.alerts[0].details.get("segment")
        culprit = stopped.get(name)
        if culprit is not None and culprit is not outcome:
            return _failures(culprit), name
    return _failures(outcome), None


def _queue_blocked_group(
    session, snapshot, channel, items, stopped, r, *, floor=0
) -> list[OutboxMessage]:
    """One message for several blocked segments of a channel (or of one owner without a
    channel), grouped by what failed; ``stopped`` are every blocked outcome of the
    refresh by segment, to find what blocked a segment that refers to one of them."""
    causes: dict[str, dict[str, Any]] = {}
    titles = segment_titles(session)
    for outcome, segment in items:
        failures, via = _root_failures(outcome, stopped)
        entry = {
            **_segment_ctx(segment),
            "current": _served(session, segment, floor),
            "via": titles.get(via, via) if via else None,
        }
        for failure in failures:
            cause = causes.setdefault(failure["message"], {**failure, "segments": []})
            if all(s["name"] != segment.name for s in cause["segments"]):
                cause["segments"].append(entry)
    ctx = {
        "channel": channel,
        "as_of": snapshot.as_of.isoformat(),
        "causes": sorted(causes.values(), key=lambda c: -len(c["segments"])),
    }
    target = channel if channel is not None else f"dm:{items[0][1].owner}"
    return add_message(
        session,
        key=f"blocked:{snapshot.id}:{target}",
        kind="blocked_alert",
        channel=channel,
        messages=r.render_messages("blocked-group", ctx),
        fallback_user=items[0][1].owner,
    )


def _queue_blocked(session, snapshot, outcome, segment, r, *, floor=0) -> list[OutboxMessage]:
    ctx = {
        "segment": _segment_ctx(segment),
        "as_of": snapshot.as_of.isoformat(),
        "failures": _failures(outcome),
        "current": _served(session, segment, floor),
    }
    return add_message(
        session,
        key=f"blocked:{snapshot.id}:{segment.name}",
        kind="blocked_alert",
        channel=segment.channel,
        messages=r.render_messages("blocked-alert", ctx),
        fallback_user=segment.owner,
    )

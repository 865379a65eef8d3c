"""The privacy floor: a segment size under it is never shown, on any path.

:func:`is_hidden` says whether a size falls under the floor; :func:`visible_size` is
the size as it may be shown (None when hidden or unknown); :func:`visible_stats` hides
everything computed on a segment under the floor (its size, movement, KPI means and the
small points of its trend). The catalog, stats and persona use cases apply them, so the
CLI, Slack and the worker show the same numbers.
"""

from __future__ import annotations

from typing import Any


def is_hidden(size: int | None, floor: int) -> bool:
    """Whether ``size`` is under the privacy ``floor`` (an unknown size is not hidden)."""
    return size is not None and size < floor


def visible_size(size: int | None, floor: int) -> int | None:
    """``size`` as it may be shown: None when it is unknown or under the privacy ``floor``."""
    return None if size is None or is_hidden(size, floor) else size


def visible_stats(stats: dict[str, Any] | None, floor: int) -> dict[str, Any] | None:
    """A stats dict (``SegmentStats.to_dict``) as it may be shown under the privacy ``floor``.

    Under the floor the size, previous size, change, joined and left counts, KPI means
    and leave reasons become None or empty and ``hidden`` is True; trend points under
    the floor become None either way.
    """
    if stats is None:
        return None
    shown = dict(stats)
    shown["trend"] = [[day, visible_size(size, floor)] for day, size in stats.get("trend") or []]
    shown["hidden"] = is_hidden(stats.get("size"), floor)
    if shown["hidden"]:
        shown.update(
            size=None,
            previous_size=None,
            change_pct=None,
            joined=None,
            left=None,
            kpis={},
            leave_reasons={},
        )
    elif is_hidden(stats.get("previous_size"), floor):
        shown.update(previous_size=None, change_pct=None)
    if "expected_size" in stats:
        shown["expected_size"] = (
            None if shown["hidden"] else visible_size(stats["expected_size"], floor)
        )
    change = stats.get("definition_change")
    if change:
        shown["definition_change"] = {
            **change,
            **{
                key: None if shown["hidden"] else visible_size(change.get(key), floor)
                for key in ("previous_size", "size", "expected_size")
            },
        }
    return shown


def shared_outside(channel: dict[str, Any]) -> bool:
    """Whether a channel (``conversations.info``'s ``channel``) is shared with another
    organisation, or about to be (Slack Connect): briefs and member-level detail are
    not posted there."""
    return bool(channel.get("is_ext_shared") or channel.get("is_pending_ext_shared"))


SHARED_REFUSAL = (
    ":no_entry: this channel is shared with another organisation: segment briefs stay "
    "inside the workspace. Share it in an internal channel instead."
)


def visible_trend(points: list[tuple[str, int]], floor: int) -> list[tuple[str, int]]:
    """The trend points that may be drawn: those under the privacy ``floor`` are left out."""
    return [(day, size) for day, size in points if not is_hidden(size, floor)]


ALERT_SIZES = ("size", "previous_size", "baseline_size")
"""Alert details keys that hold a segment size (``history`` holds a list of them)."""

HIDDEN_ALERT = {
    "size_change": "Members changed",
    "baseline_size": "Members changed since the baseline",
    "control_limit": "Members left their usual range",
    "min_size": "Members are below the segment's minimum",
    "turnover": "Most members of the baseline are gone",
    "composition": "The mix of members changed",
    "kpi": "A tracked average moved",
}


def hides_alert(alert: dict[str, Any], floor: int, *, size: int | None = None) -> bool:
    """Whether an alert (``{kind, severity, message, details}``) must not show its numbers:
    the segment's ``size`` is under the privacy ``floor`` (every alert, KPI means and
    composition shares included, as in its summary), or one of the sizes it compares is."""
    details = alert.get("details") or {}
    sizes = [size, *(details.get(key) for key in ALERT_SIZES), *(details.get("history") or [])]
    return any(is_hidden(s, floor) for s in sizes if isinstance(s, int | float))


def visible_alert(alert: dict[str, Any], floor: int, *, size: int | None = None) -> dict[str, Any]:
    """An alert as it may be shown: when :func:`hides_alert`, its message says what moved
    without a number and its details are gone (``hidden`` True); otherwise unchanged."""
    if not hides_alert(alert, floor, size=size):
        return alert
    details = alert.get("details") or {}
    words = HIDDEN_ALERT.get(str(alert.get("kind")), "The segment drifted")
    column = details.get("column")
    if column and alert.get("kind") in ("composition", "kpi"):
        words += f" ({column})"
    return {
        **alert,
        "message": f"{words}; the numbers are under the privacy floor of {floor}",
        "details": {},
        "hidden": True,
    }


def visible_drift(ctx: dict[str, Any], floor: int) -> dict[str, Any]:
    """A drift-alert context (``drift-alert.j2``) as it may be posted under the privacy
    ``floor``: alerts through :func:`visible_alert`; the trend without its points under the
    floor; for a segment under the floor no size, KPI means, composition shifts or leave
    reasons, and after a previous size under it no previous size or leave reasons."""
    evidence = dict(ctx.get("evidence") or {})
    size = evidence.get("size")
    hidden = is_hidden(size, floor)
    evidence["trend"] = [
        list(point)
        for point in visible_trend([tuple(p) for p in evidence.get("trend") or []], floor)
    ]
    if hidden:
        evidence.update(size=None, previous_size=None, kpis=[], shifts=[], leave_reasons=[])
    elif is_hidden(evidence.get("previous_size"), floor):
        evidence.update(previous_size=None, leave_reasons=[])
    alerts = [visible_alert(a, floor, size=size) for a in ctx.get("alerts") or []]
    return {**ctx, "alerts": alerts, "evidence": evidence, "hidden": hidden}


def visible_summary(ctx: dict[str, Any], floor: int) -> dict[str, Any]:
    """A refresh-summary context as it may be posted: for a segment under the privacy
    ``floor`` its size, movement, leave reasons, KPI means and definition-change sizes are
    hidden (the template says so); its status and quality verdict stay, and its alerts
    are shown through :func:`visible_alert`."""
    change = ctx.get("definition_change")
    if "alerts" in ctx:  # judged on their details, shown by their message
        size = ctx.get("size")
        alerts = [visible_alert(a, floor, size=size) for a in ctx["alerts"]]
        ctx = {**ctx, "alerts": [{k: v for k, v in a.items() if k != "details"} for a in alerts]}
    if not is_hidden(ctx.get("size"), floor):
        if not is_hidden(ctx.get("previous_size"), floor):
            return ctx
        # The movement would tell the small size it started from.
        return {
            **ctx,
            "previous_size": None,
            "joined": None,
            "left": None,
            "leave_reasons": [],
            "definition_change": {**change, "previous_size": None} if change else change,
        }
    return {
        **ctx,
        "size": None,
        "previous_size": None,
        "joined": None,
        "left": None,
        "leave_reasons": [],
        "kpis": [],
        "definition_change": {**change, "previous_size": None, "size": None, "expected_size": None}
        if change
        else change,
        "hidden": True,
    }


def visible_outcome(data: dict[str, Any], floor: int) -> dict[str, Any]:
    """One segment of a refresh report (``SegmentOutcome.to_dict(details=True)``) as it
    may be shown: the same numbers hidden as in its Slack summary (alert messages
    included, their details left out), and ``hidden: true`` when its size is under the
    floor."""
    ctx = visible_summary({**data, "definition_change": data.get("definition_changed")}, floor)
    shown = {k: ctx[k] for k in data if k != "definition_changed"}
    if data.get("definition_changed"):
        shown["definition_changed"] = ctx["definition_change"]
    if ctx.get("hidden"):
        shown["hidden"] = True
    return shown

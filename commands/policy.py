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


def visible_summary(ctx: dict[str, Any], floor: int) -> dict[str, Any]:
    """A refresh-summary context as it may be posted: for a segment under the privacy
    ``floor`` its size, movement, leave reasons, KPI means and definition-change sizes are
    hidden (the template says so); its status, quality verdict and alerts stay."""
    change = ctx.get("definition_change")
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
    """One segment of a refresh report (``SegmentOutcome.to_dict``) as it may be shown:
    the same numbers hidden as in its Slack summary, and ``hidden: true`` when its size is
    under the floor."""
    ctx = visible_summary({**data, "definition_change": data.get("definition_changed")}, floor)
    shown = {k: ctx[k] for k in data if k != "definition_changed"}
    if data.get("definition_changed"):
        shown["definition_changed"] = ctx["definition_change"]
    if ctx.get("hidden"):
        shown["hidden"] = True
    return shown

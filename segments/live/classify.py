"""Live or batch: which segments can follow events as they arrive, and why.

A segment is ``live`` when it opts in (``cadence: live``) and everything its rule reads
can be updated from one event:

* entity properties (columns of entity sources), read as the source holds them;
* features with ``count``, ``sum``, ``avg`` or ``days_since``, with or without
  ``window_days`` (per-day buckets per entity);
* ``in_segment`` of another live segment.

Scores (normalised over the whole population), ``min``/``max``/``first``/``last``
features and references to batch segments keep a segment on the batch refresh; the
reasons name each one. A live segment is still refreshed in batch (daily), which stays
the source of truth and is reconciled with the live membership.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from segments.rules.checks import order_segments
from segments.rules.tree import columns, dependencies
from segments.schema import RuleError
from segments.workspace import FeatureConfig, SegmentDef, Workspace, declared_schema

LIVE_CADENCE = "live"
LIVE_AGGREGATIONS = frozenset({"count", "sum", "avg", "days_since"})
Mode = Literal["live", "batch"]


@dataclass(frozen=True)
class Classification:
    """``live`` or ``batch``, with one reason per thing that decided it."""

    mode: Mode
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "reasons": list(self.reasons)}


def describe_feature(name: str, feat: FeatureConfig) -> str:
    """``logins_7d: count of login over 7 days`` (plain words for a feature)."""
    what = ", ".join(feat.events) if feat.events else f"every {feat.source} event"
    window = f" over {feat.window_days} days" if feat.window_days else " over all history"
    return f"{name}: {feat.agg} of {what}{window}"


def classify_all(ws: Workspace, definitions: Mapping[str, SegmentDef]) -> dict[str, Classification]:
    """The classification of every segment in ``definitions`` (references in order)."""
    schema = declared_schema(ws)
    graph = {name: dependencies(d.tree()) & set(definitions) for name, d in definitions.items()}
    out: dict[str, Classification] = {}
    for name in order_segments(graph):
        out[name] = _classify(ws, schema, definitions[name], out)
    return out


def _classify(ws, schema, definition: SegmentDef, known: Mapping[str, Classification]):
    rule = definition.tree()
    if definition.effective_cadence != LIVE_CADENCE:
        return Classification(
            "batch",
            (
                f"cadence {definition.effective_cadence}: refreshed in batch "
                "(cadence: live opts in)",
            ),
        )
    if definition.status != "active":
        return Classification("batch", ("archived",))
    fine: list[str] = []
    blockers: list[str] = []
    for column in sorted(columns(rule)):
        try:
            resolved = schema.resolve(column)
        except RuleError as exc:
            blockers.append(str(exc))
            continue
        if resolved in ws.scores:
            blockers.append(f"{resolved}: a score, normalised over the whole population")
        elif resolved in ws.features:
            feat = ws.features[resolved]
            if feat.agg in LIVE_AGGREGATIONS:
                fine.append(describe_feature(resolved, feat) + ", kept per day")
            else:
                blockers.append(
                    f"{resolved}: '{feat.agg}' is computed by the batch refresh only "
                    f"(live: {', '.join(sorted(LIVE_AGGREGATIONS))})"
                )
        else:
            fine.append(f"{resolved}: entity property")
    for target in sorted(dependencies(rule)):
        found = known.get(target)
        if found is None or found.mode != "live":
            blockers.append(f"in_segment({target!r}): {target} is a batch segment")
        else:
            fine.append(f"in_segment({target!r}): live")
    if blockers:
        return Classification("batch", tuple(blockers))
    return Classification("live", tuple(fine) or ("reads nothing that changes",))

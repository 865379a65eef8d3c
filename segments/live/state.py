"""Per-entity live state: what is needed to update every live feature from one event.

For each (events source, event name) an entity has seen, :class:`EntityState` keeps
per-day buckets ``[count, valued count, sum of values]`` keyed by UTC day number (days
since 1970-01-01). ``count`` and ``days_since`` read the counts and the latest day,
``sum`` and ``avg`` the valued counts and sums, over any window of whole days ending at an
as_of day, exactly as :mod:`segments.sources.features` aggregates the same events.

Buckets older than a source's horizon (its longest window plus the lateness allowed and a
day of slack) are folded into one ``old`` bucket with the latest day it held, which is
all that features without a window need; when every feature of the source has a window
they are dropped. Folding never changes a feature value at an as_of day inside the horizon.

The stored form is compact JSON: ``[[source, name, {day: [n, nv, sum]}, [n, nv, sum],
old_last_day], ...]``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from segments.workspace import FeatureConfig

SECONDS_PER_DAY = 86_400


def day_of(ts: datetime) -> int:
    """The UTC day number of ``ts`` (naive times are UTC)."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return int(ts.timestamp() // SECONDS_PER_DAY)


@dataclass
class _Buckets:
    days: dict[int, list[float]] = field(default_factory=dict)
    old: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    old_last: int | None = None


@dataclass(frozen=True)
class Horizon:
    """Buckets before ``first_day`` are folded; ``keep_old``: some feature has no window."""

    first_day: int
    keep_old: bool


class EntityState:
    """One entity's buckets per (source, event name)."""

    __slots__ = ("_buckets",)

    def __init__(self) -> None:
        self._buckets: dict[tuple[str, str], _Buckets] = {}

    def __bool__(self) -> bool:
        return bool(self._buckets)

    def add(self, source: str, name: str, day: int, value: float | None) -> None:
        """Count one event of ``day`` (its value when it has one)."""
        buckets = self._buckets.setdefault((source, name), _Buckets())
        bucket = buckets.days.get(day)
        if bucket is None:
            bucket = buckets.days[day] = [0.0, 0.0, 0.0]
        bucket[0] += 1
        if value is not None and not math.isnan(value):
            bucket[1] += 1
            bucket[2] += value

    def fold(self, horizons: Mapping[str, Horizon]) -> bool:
        """Fold the buckets before each source's horizon; whether anything changed."""
        changed = False
        for (source, _name), buckets in self._buckets.items():
            horizon = horizons.get(source)
            if horizon is None:
                continue
            for day in [d for d in buckets.days if d < horizon.first_day]:
                bucket = buckets.days.pop(day)
                changed = True
                if horizon.keep_old:
                    for i in range(3):
                        buckets.old[i] += bucket[i]
                    if buckets.old_last is None or day > buckets.old_last:
                        buckets.old_last = day
        return changed

    def aggregate(
        self, source: str, names: frozenset[str] | None, low: int | None, high: int
    ) -> tuple[float, float, float, int | None]:
        """``(count, valued count, sum, latest day)`` of the events of ``source`` (only
        ``names`` when given) on days ``low`` .. ``high`` (no ``low``: all history)."""
        n = nv = total = 0.0
        last: int | None = None
        for (src, name), buckets in self._buckets.items():
            if src != source or (names is not None and name not in names):
                continue
            for day, bucket in buckets.days.items():
                if day > high or (low is not None and day < low):
                    continue
                n += bucket[0]
                nv += bucket[1]
                total += bucket[2]
                if last is None or day > last:
                    last = day
            if low is None:
                n += buckets.old[0]
                nv += buckets.old[1]
                total += buckets.old[2]
                if buckets.old_last is not None and (last is None or buckets.old_last > last):
                    last = buckets.old_last
        return n, nv, total, last

    def to_json(self) -> str:
        rows = [
            [src, name, {str(d): b for d, b in sorted(bk.days.items())}, bk.old, bk.old_last]
            for (src, name), bk in sorted(self._buckets.items())
        ]
        return json.dumps(rows, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | None) -> EntityState:
        state = cls()
        for src, name, days, old, old_last in json.loads(text) if text else []:
            state._buckets[(src, name)] = _Buckets(
                {int(d): [float(x) for x in b] for d, b in days.items()},
                [float(x) for x in old],
                old_last,
            )
        return state


def horizons(features: Iterable[FeatureConfig], *, today: int, lateness_days: int) -> dict:
    """Each source's :class:`Horizon` for the live features reading it."""
    longest: dict[str, int | None] = {}
    keep_old: dict[str, bool] = {}
    for feat in features:
        window = feat.window_days
        if window is None:
            keep_old[feat.source] = True
            longest.setdefault(feat.source, None)
        else:
            keep_old.setdefault(feat.source, False)
            before = longest.get(feat.source)
            longest[feat.source] = window if before is None else max(before, window)
    out = {}
    for source, window in longest.items():
        span = (window or 1) + lateness_days + 1
        out[source] = Horizon(first_day=today - span + 1, keep_old=keep_old[source])
    return out


def feature_value(state: EntityState | None, feat: FeatureConfig, day: int) -> float:
    """The value ``feat`` has at as_of ``day`` for an entity with ``state`` (None: no events),
    with the batch refresh's fill (0 for count and sum, else null, unless ``fill``)."""
    value = math.nan
    if state:
        names = frozenset(e.strip() for e in feat.events) if feat.events is not None else None
        low = day - feat.window_days + 1 if feat.window_days else None
        n, nv, total, last = state.aggregate(feat.source, names, low, day)
        if feat.agg == "count":
            value = n if n > 0 else math.nan
        elif feat.agg == "sum":
            value = total if nv > 0 else math.nan
        elif feat.agg == "avg":
            value = total / nv if nv > 0 else math.nan
        elif feat.agg == "days_since":
            value = float(day - last) if last is not None else math.nan
        else:  # pragma: no cover - classification keeps the others on the batch path
            raise ValueError(f"feature aggregation {feat.agg!r} is not live")
    if math.isnan(value):
        fill = (
            feat.fill if feat.fill is not None else (0.0 if feat.agg in ("count", "sum") else None)
        )
        if fill is not None:
            value = float(fill)
    return value

"""Features: one events source aggregated per entity over a window ending at as_of."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from segments.sources.events import _EventArrays
from segments.workspace import FeatureConfig

DAY_NS = 86_400 * 10**9
_MIN_NS = np.iinfo(np.int64).min
_MAX_NS = np.iinfo(np.int64).max
_ROW_AGGS = ("count", "days_since")  # aggregations over events; the others need a value


class _Selection:
    """The events one kind of feature looks at; each array is cut once, when first asked."""

    def __init__(self, ev: _EventArrays, mask: np.ndarray | None) -> None:
        self.ev = ev
        self.mask = mask
        self.arrays: dict[str, np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.arrays:
            full = getattr(self.ev, name)
            self.arrays[name] = full if self.mask is None else full[self.mask]
        return self.arrays[name]


def _select(
    feat: FeatureConfig,
    ev: _EventArrays,
    before_ns: int,
    cache: dict[tuple[Any, ...], _Selection],
) -> _Selection:
    """Matching events (name, window, and a value when the aggregation needs one)."""
    wanted = frozenset(e.strip() for e in feat.events) if feat.events is not None else None
    valued = feat.agg not in _ROW_AGGS
    key = (feat.source, wanted, feat.window_days, valued)
    if key not in cache:
        mask = None
        if wanted is not None:
            lookup = np.zeros(len(ev.names) + 1, bool)  # code -1 (no event name) reads the end
            lookup[[i for i, name in enumerate(ev.names) if name in wanted]] = True
            mask = lookup[ev.codes]
        if feat.window_days is not None:
            recent = ev.ts >= before_ns - feat.window_days * DAY_NS
            mask = recent if mask is None else mask & recent
        if valued and ev.has_nulls:
            present = ~np.isnan(ev.value)
            mask = present if mask is None else mask & present
        cache[key] = _Selection(ev, mask)
    return cache[key]


def _feature(
    feat: FeatureConfig,
    ev: _EventArrays,
    n: int,
    before: pd.Timestamp,
    cache: dict[tuple[Any, ...], _Selection],
) -> np.ndarray:
    """One feature column (float64, length n) from resolved events."""
    before_ns = before.value
    events = _select(feat, ev, before_ns, cache)
    pos = events["pos"]
    out = np.full(n, np.nan)
    if feat.agg == "count":
        counts = np.bincount(pos, minlength=n).astype(np.float64)
        out = np.where(counts > 0, counts, np.nan)
    elif feat.agg == "days_since":
        latest = np.full(n, _MIN_NS)
        np.maximum.at(latest, pos, events["ts"])
        seen = latest > _MIN_NS
        as_of_day = before_ns // DAY_NS - 1
        out[seen] = as_of_day - np.floor_divide(latest[seen], DAY_NS)
    else:
        value = events["value"]
        counts = np.bincount(pos, minlength=n)
        seen = counts > 0
        if feat.agg in ("sum", "avg"):
            sums = np.bincount(pos, weights=value, minlength=n)
            out[seen] = sums[seen] if feat.agg == "sum" else sums[seen] / counts[seen]
        elif feat.agg in ("min", "max"):
            ufunc = np.minimum if feat.agg == "min" else np.maximum
            acc = np.full(n, np.inf if feat.agg == "min" else -np.inf)
            ufunc.at(acc, pos, value)
            out[seen] = acc[seen]
        else:  # first / last: value at the earliest / latest time, ties -> largest value
            first = feat.agg == "first"
            ts = events["ts"]
            edge = np.full(n, _MAX_NS if first else _MIN_NS)
            (np.minimum if first else np.maximum).at(edge, pos, ts)
            at_edge = ts == edge[pos]
            best = np.full(n, -np.inf)
            np.maximum.at(best, pos[at_edge], value[at_edge])
            out[seen] = best[seen]
    fill = feat.fill if feat.fill is not None else (0.0 if feat.agg in ("count", "sum") else None)
    if fill is not None:
        out[np.isnan(out)] = fill
    return out

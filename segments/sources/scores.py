"""Scores: weighted means of normalised inputs on a 0-100 scale, with their lineage."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from segments.errors import SegopsError
from segments.schema import Schema
from segments.workspace import Workspace


def _as_float(values: Any) -> np.ndarray:
    if isinstance(values, pd.Categorical):
        raise TypeError("string")
    if isinstance(values, pd.arrays.BooleanArray):
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    values = np.asarray(values)
    if values.dtype.kind == "M":
        out = values.view(np.int64).astype(np.float64)
        out[np.isnat(values)] = np.nan
        return out
    return values.astype(np.float64)


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """0-based ranks, ties sharing their average rank."""
    order = np.argsort(values)
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(values)]
    ranks = np.empty(len(values))
    ranks[order] = np.repeat((starts + ends - 1) / 2.0, ends - starts)
    return ranks


def _normalise(x: np.ndarray, method: str) -> np.ndarray:
    """Scale to 0-1 (nulls stay null): percentile rank or min-max; constant -> 0.5."""
    present = ~np.isnan(x)
    count = int(present.sum())
    out = np.full(len(x), np.nan)
    if count == 0:
        return out
    if method == "rank":
        if count == 1:
            out[present] = 0.5
            return out
        out[present] = _average_ranks(x[present]) / (count - 1)
        return out
    lo, hi = np.nanmin(x), np.nanmax(x)
    out[present] = 0.5 if hi == lo else (x[present] - lo) / (hi - lo)
    return out


def _scores(
    ws: Workspace,
    schema: Schema,
    columns: dict[str, Any],
    lineage: dict[str, set[str]],
    n: int,
) -> None:
    """Compute every score into ``columns`` (scores may weigh other scores)."""
    pending = dict(ws.scores)
    inputs = {
        name: {schema.resolve(col): w for col, w in score.weights.items()}
        for name, score in ws.scores.items()
    }
    while pending:
        ready = [s for s in pending if not (set(inputs[s]) & set(pending))]
        if not ready:
            raise SegopsError(f"scores {', '.join(sorted(pending))} weigh each other in a cycle")
        for name in ready:
            score = pending.pop(name)
            total = np.zeros(n)
            weight_sum = 0.0
            sources: set[str] = set()
            for column, weight in inputs[name].items():
                try:
                    x = _as_float(columns[column])
                except TypeError:
                    raise SegopsError(
                        f"score {name!r}: column {column!r} is not a number, bool or date"
                    ) from None
                part = _normalise(x, score.method)
                if weight < 0:
                    part = 1.0 - part
                total += abs(weight) * np.nan_to_num(part, nan=0.0)
                weight_sum += abs(weight)
                sources |= lineage.get(column, set())
            result = 100.0 * total / weight_sum if weight_sum else np.zeros(n)
            columns[name] = np.round(result, 1)
            lineage[name] = sources

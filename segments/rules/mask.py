"""The pandas compiler: rules to row masks (numpy, vectorised), with the semantics described
in :mod:`segments.rules`.

``evaluate_all`` evaluates a workspace's rules on one frame in dependency order,
sharing one :class:`FrameColumns` so each column is extracted once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from segments.rules.checks import _as_date, literal_problem, order_segments
from segments.rules.tree import All, AnyOf, Condition, InSegment, Not, Rule, dependencies
from segments.schema import Kind, RuleError, Schema

__all__ = ["FrameColumns", "evaluate_all", "to_mask"]

_EPOCH = date(1970, 1, 1)
_I64_MIN = -(2**63) + 1  # one above NaT, so NaT never lands inside a range
_I64_MAX = 2**63 - 1
_SMALL = 4  # up to this many codes/values, OR-ed equalities beat a lookup table


# ---------------------------------------------------------------------------- column extracts


@dataclass
class _Values:
    """A number or bool column as a numpy array; ``nulls`` marks missing rows.

    ``nan_nulls``: nulls are NaN in a float array, so ``=``, ``<`` ... are already false there.
    """

    values: np.ndarray
    nulls: np.ndarray | None
    nan_nulls: bool = False


@dataclass
class _Codes:
    """A text (or categorical) column as integer codes into ``categories``; -1 is null."""

    codes: np.ndarray
    categories: np.ndarray


@dataclass
class _Days:
    """A date column as int64 ticks of ``unit`` (local wall time); NaT is the int64 minimum."""

    ticks: np.ndarray
    unit: str
    nulls: np.ndarray | None


_Column = _Values | _Codes | _Days
_TICKS_PER_DAY = {"s": 86_400, "ms": 86_400_000, "us": 86_400_000_000, "ns": 86_400_000_000_000}


def _small_codes(codes: np.ndarray, size: int) -> np.ndarray:
    for dtype in (np.int8, np.int16, np.int32):
        if size < np.iinfo(dtype).max:
            return codes.astype(dtype, copy=False)
    return codes


def _extract(series: pd.Series, kind: Kind) -> _Column:
    dtype = series.dtype
    if kind == "date":
        if isinstance(dtype, pd.DatetimeTZDtype):
            series = series.dt.tz_localize(None)
        elif not ptypes.is_datetime64_dtype(dtype):
            series = pd.to_datetime(series.astype(object), errors="coerce", format="mixed")
            if isinstance(series.dtype, pd.DatetimeTZDtype):
                series = series.dt.tz_localize(None)
        values = series.to_numpy()
        unit = np.datetime_data(values.dtype)[0]
        if unit not in _TICKS_PER_DAY:
            values, unit = values.astype("datetime64[us]"), "us"
        nat = np.isnat(values)
        return _Days(values.view(np.int64), unit, nat if nat.any() else None)
    if isinstance(dtype, pd.CategoricalDtype):
        categories = np.asarray(dtype.categories, dtype=object)
        if kind == "string":
            categories = np.array([c if isinstance(c, str) else str(c) for c in categories], object)
        codes = series.cat.codes.to_numpy()
        return _Codes(codes, categories)
    if kind == "string":
        codes, uniques = pd.factorize(series)
        categories = np.array([u if isinstance(u, str) else str(u) for u in uniques], object)
        return _Codes(_small_codes(codes, len(categories)), categories)
    if kind == "number" and ptypes.is_object_dtype(dtype):
        series = pd.to_numeric(series, errors="coerce")
        dtype = series.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "iub":
        return _Values(series.to_numpy(), None)
    if isinstance(dtype, np.dtype) and dtype.kind == "f":
        values = series.to_numpy()
        nan = np.isnan(values)
        return _Values(values, nan if nan.any() else None, nan_nulls=True)
    nulls = series.isna().to_numpy()
    if kind == "bool":
        values = series.to_numpy(dtype=bool, na_value=False)
    elif ptypes.is_integer_dtype(dtype):
        values = series.to_numpy(dtype=np.int64, na_value=0)
    else:
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    return _Values(values, nulls if nulls.any() else None)


class FrameColumns:
    """Per-frame column extracts shared by every rule evaluated on that frame."""

    def __init__(self, frame: pd.DataFrame, schema: Schema) -> None:
        self.frame = frame
        self.schema = schema
        self.rows = len(frame)
        self._columns: dict[str, _Column] = {}

    def get(self, name: str) -> tuple[Kind, _Column]:
        """The kind and extract of the column a rule names (plain or qualified)."""
        column = self.schema.resolve(name)
        kind = self.schema.columns[column]
        extract = self._columns.get(column)
        if extract is None:
            if column not in self.frame.columns:
                raise RuleError(f"column {column!r} is not in the data")
            extract = self._columns[column] = _extract(self.frame[column], kind)
        return kind, extract


# ---------------------------------------------------------------------------- masks


def _compare(op: str, values: np.ndarray, value: Any) -> np.ndarray:
    """``values <op> value`` elementwise, for numeric or object arrays."""
    if op == "=":
        return values == value
    if op == "!=":
        return values != value
    if op == "<":
        return values < value
    if op == "<=":
        return values <= value
    if op == ">":
        return values > value
    if op == ">=":
        return values >= value
    if op == "between":
        low, high = value
        return (values >= low) & (values <= high)
    found = _isin(values, value)
    return found if op == "in" else ~found


def _isin(values: np.ndarray, choices: tuple[Any, ...]) -> np.ndarray:
    if len(choices) <= _SMALL:
        out = values == choices[0]
        for choice in choices[1:]:
            out |= values == choice
        return out
    if values.dtype == object:
        return pd.Index(values).isin(list(choices))
    return np.isin(values, np.asarray(choices))


def _codes_mask(codes: np.ndarray, hits: np.ndarray, null_hit: bool) -> np.ndarray:
    """Rows whose code is a hit; ``hits`` is one flag per category, nulls get ``null_hit``."""
    chosen = np.flatnonzero(hits)
    missed = np.flatnonzero(~hits)
    if not null_hit and len(chosen) <= _SMALL:
        out = np.zeros(len(codes), dtype=bool)
        for code in chosen:
            out |= codes == code
        return out
    if not null_hit and len(missed) <= _SMALL:
        out = codes >= 0
        for code in missed:
            out &= codes != code
        return out
    table = np.append(hits, null_hit)
    return table[codes]


def _day_range(day: date, unit: str) -> tuple[int, int]:
    """Ticks of the start of ``day`` and of the next day, clamped to int64."""
    per_day = _TICKS_PER_DAY[unit]
    start = (day - _EPOCH).days * per_day
    return max(_I64_MIN, min(_I64_MAX, start)), max(_I64_MIN, min(_I64_MAX, start + per_day))


def _days_mask(op: str, ticks: np.ndarray, unit: str, value: Any) -> np.ndarray:
    """The raw date comparison (nulls not yet removed for the negative operators)."""
    if op == "between":
        low, _ = _day_range(_as_date(value[0]), unit)
        _, high = _day_range(_as_date(value[1]), unit)
        return (ticks >= low) & (ticks < high)
    if op in ("in", "not in"):
        out = np.zeros(len(ticks), dtype=bool)
        for item in value:
            start, end = _day_range(_as_date(item), unit)
            out |= (ticks >= start) & (ticks < end)
        return out if op == "in" else ~out
    start, end = _day_range(_as_date(value), unit)
    if op == "=":
        return (ticks >= start) & (ticks < end)
    if op == "!=":
        return (ticks < start) | (ticks >= end)
    if op == "<":
        return ticks < start
    if op == "<=":
        return ticks < end
    if op == ">":
        return ticks >= end
    return ticks >= start


def _condition_mask(cond: Condition, columns: FrameColumns) -> np.ndarray:
    kind, extract = columns.get(cond.column)
    op = cond.op
    if op not in ("is null", "is not null"):
        problem = literal_problem(cond.column, kind, op, cond.value)
        if problem:
            raise RuleError(problem)
    if isinstance(extract, _Codes):
        if op in ("is null", "is not null"):
            return extract.codes < 0 if op == "is null" else extract.codes >= 0
        hits = np.asarray(_compare(op, extract.categories, cond.value), dtype=bool)
        return _codes_mask(extract.codes, hits, False)
    nulls = extract.nulls
    if op in ("is null", "is not null"):
        if nulls is None:
            return np.full(columns.rows, op == "is not null")
        return nulls.copy() if op == "is null" else ~nulls
    if isinstance(extract, _Days):
        out = _days_mask(op, extract.ticks, extract.unit, cond.value)
        # NaT is the int64 minimum: only the "below" operators can pick it up.
        needs_guard = op in ("!=", "<", "<=", "not in")
    else:
        out = np.asarray(_compare(op, extract.values, cond.value), dtype=bool)
        needs_guard = not extract.nan_nulls or op in ("!=", "not in")
    if nulls is not None and needs_guard:
        out &= ~nulls
    return out


def _mask(rule: Rule, columns: FrameColumns, segments: Mapping[str, np.ndarray]) -> np.ndarray:
    """A freshly allocated mask (callers may change it in place)."""
    if isinstance(rule, Condition):
        return _condition_mask(rule, columns)
    if isinstance(rule, All | AnyOf):
        combine = np.logical_and if isinstance(rule, All) else np.logical_or
        out = _mask(rule.items[0], columns, segments)
        for item in rule.items[1:]:
            combine(out, _mask(item, columns, segments), out=out)
        return out
    if isinstance(rule, Not):
        out = _mask(rule.item, columns, segments)
        np.logical_not(out, out=out)
        return out
    if not isinstance(rule, InSegment):
        raise RuleError(f"not a rule: {rule!r}")
    if rule.name not in segments:
        raise RuleError(f"in_segment({rule.name!r}): unknown segment {rule.name!r}")
    mask = np.asarray(segments[rule.name], dtype=bool)
    if mask.shape != (columns.rows,):
        raise RuleError(
            f"in_segment({rule.name!r}): its mask has {mask.size} rows, the data {columns.rows}"
        )
    return mask.copy()


def to_mask(
    rule: Rule,
    frame: pd.DataFrame,
    schema: Schema,
    segment_masks: Mapping[str, np.ndarray] | None = None,
    *,
    cache: FrameColumns | None = None,
) -> np.ndarray:
    """The rows of ``frame`` the rule selects, as a boolean numpy array.

    ``segment_masks`` holds the masks of segments named by ``in_segment``;
    ``cache`` (built on this same frame) shares column extracts between rules.
    """
    if cache is None or cache.frame is not frame:
        cache = FrameColumns(frame, schema)
    return _mask(rule, cache, segment_masks or {})


def evaluate_all(
    rules: Mapping[str, Rule],
    frame: pd.DataFrame,
    schema: Schema,
    *,
    masks: Mapping[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Every segment's mask, computed in dependency order (that is the dict's order).

    ``masks`` may hold already known masks of segments outside ``rules``.
    """
    known = dict(masks or {})
    graph = {name: dependencies(rule) - (set(known) - set(rules)) for name, rule in rules.items()}
    order = order_segments(graph)
    cache = FrameColumns(frame, schema)
    result: dict[str, np.ndarray] = {}
    for name in order:
        try:
            mask = _mask(rules[name], cache, known)
        except RuleError as exc:
            raise RuleError(
                f"segment {name!r}: {exc.message}", exc.position, line=exc.line, column=exc.column
            ) from None
        result[name] = known[name] = mask
    return result

"""Segment drift: member profiles, and alerts when a refresh moved a segment for real.

``profile`` summarises the members of one snapshot as JSON; ``detect`` compares it with the
previous snapshot and the size history and returns alerts. Every change test has a relative
and an absolute floor, because a ratio alone turns small-sample noise into alarms (8 -> 4 members
is "-50%") and a significance test alone turns trivial shifts in big segments into alarms.

Profile (``version`` 1)::

    {"version": 1, "size": 1204, "columns": {
      "seats": {"kind": "number", "count": 1190, "nulls": 14, "mean": 12.5, "std": 8.1,
                "edges": [2.0, 3.0, ...], "hist": [130, 96, ...]},
      "signup": {"kind": "date", "origin": "epoch", ...same as number, in days...},
      "plan": {"kind": "string", "count": 1204, "nulls": 0,
               "shares": {"pro": 0.42, "team": 0.31, ...}, "other": 0.02},
      "trial": {"kind": "bool", "count": 1204, "nulls": 0, "shares": {"false": 0.8,
                "true": 0.2}, "other": 0.0, "mean": 0.2, "std": 0.4}}}

Numbers are binned at the deciles of the first profile: 9 cut points (fewer when values
tie), 10 bins, the outer two open so later values outside the first range still land in a
bin. When a ``reference`` profile is given its cut points are reused, so histograms of
successive snapshots compare bin for bin; pass the previous profile as reference. Dates are
days since 1970-01-01, or days before ``as_of`` when it is given (then a rolling window such
as "signed up in the last 30 days" keeps a stable profile). Strings and booleans keep the top
20 categories by share (ties in label order); the rest is ``other``. Nulls are counted but left
out of means, histograms and shares: null rates belong to the quality gate.

To profile many segments of one frame, convert its columns once with
``cache = ProfileColumns(frame, schema, as_of=as_of)`` and pass each segment's row mask:
``profile(frame, columns, schema, reference, as_of=as_of, mask=mask, cache=cache)`` gives the
same profile as ``profile(frame[mask], columns, schema, reference, as_of=as_of)``, without
copying the frame.

Alerts and default thresholds (``DriftThresholds``; override per segment):

- ``size_change``: warning when |change| >= 20% of the previous size, critical at >= 50%,
  and in both cases only when at least 25 members moved (8 -> 4 is not news).
- ``min_size``: the size is below the segment's ``min_size`` (critical when empty).
- ``control_limit``: the size is outside mean +/- 3 sigma of the last (up to 20) published
  sizes, sigma from the average moving range / 1.128 as in an XmR chart, so a slow trend
  does not inflate it. Needs at least 5 past sizes, and the distance from the mean must
  also be at least the 25-member floor (a perfectly flat history has sigma 0).
- ``composition`` (per profiled column that is not a KPI): population stability index
  PSI = sum((q - p) * ln(q / p)) over the shared bins (categories both profiles name, the
  rest pooled), with half-count smoothing of empty bins. Warning at PSI >= 0.2 (the usual
  "significant shift" line), critical at >= 0.5, and only when all of:
  both samples have >= 100 non-null values; some bin moved >= 5 share points, because
  PSI also grows when tiny bins move (0.1% -> 2.5% in four bins is PSI 0.3 and tells nobody
  anything); and PSI exceeds what sampling noise alone reaches 999 times in 1000: for two
  samples from one distribution PSI ~ (1/n1 + 1/n2) * chi2(bins - 1): at 100 members a
  side it averages 0.18, 29% of such pairs pass 0.2 and the 99.9th percentile is 0.56; at
  300 a side the limit (0.19) meets the 0.2 line, and above that the 0.2 line governs.
- ``kpi`` (per KPI column, number/date/bool): the mean moved by >= 10% of the previous mean
  and by a standardised effect |delta| / pooled std >= 0.2 ("small" in Cohen's terms;
  critical at >= 0.5, "medium"), and Welch's z = |delta| / sqrt(s1^2/n1 + s2^2/n2) >= 3, with
  >= 30 non-null values on both sides. The z floor is what keeps small segments quiet: at 30
  members a side it asks for an effect of ~0.8 before alerting. Dates counted from 1970 skip
  the relative floor (no meaningful ratio); profiled with ``as_of`` they are ages and keep it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from segments.errors import SegopsError
from segments.schema import Schema, infer_kind
from segments.table import Table

PROFILE_VERSION = 1
HIST_BINS = 10
TOP_CATEGORIES = 20
XMR_D2 = 1.128  # expected moving range of two normal values, in sigmas
_EPOCH = pd.Timestamp("1970-01-01")
_DAY = pd.Timedelta(days=1)


@dataclass(frozen=True)
class DriftThresholds:
    """When ``detect`` alerts; see the module docstring for the reasoning behind each default."""

    size_warning_change: float = 0.20
    size_critical_change: float = 0.50
    size_min_members_moved: int = 25
    min_size: int = 0
    control_min_history: int = 5
    control_window: int = 20
    control_sigmas: float = 3.0
    psi_warning: float = 0.2
    psi_critical: float = 0.5
    composition_min_share_change: float = 0.05
    composition_min_members: int = 100
    composition_noise_confidence: float = 0.999
    kpi_min_relative_change: float = 0.10
    kpi_min_effect: float = 0.2
    kpi_critical_effect: float = 0.5
    kpi_min_z: float = 3.0
    kpi_min_members: int = 30
    turnover_warning: float = 0.5
    turnover_critical: float = 0.8

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if getattr(self, f.name) < 0:
                raise SegopsError(f"drift threshold {f.name} must not be negative")
        pairs = [
            ("size_warning_change", "size_critical_change"),
            ("psi_warning", "psi_critical"),
            ("kpi_min_effect", "kpi_critical_effect"),
            ("turnover_warning", "turnover_critical"),
        ]
        for low, high in pairs:
            if getattr(self, low) > getattr(self, high):
                raise SegopsError(f"drift threshold {low} must not exceed {high}")
        if self.control_min_history < 2 or self.control_window < self.control_min_history:
            raise SegopsError("drift thresholds need 2 <= control_min_history <= control_window")
        if not 0 < self.composition_noise_confidence < 1:
            raise SegopsError("drift threshold composition_noise_confidence must be in (0, 1)")

    def with_overrides(self, overrides: Mapping[str, Any] | None) -> DriftThresholds:
        """A copy with some thresholds replaced; unknown names are an error."""
        if not overrides:
            return self
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise SegopsError(f"unknown drift threshold '{unknown[0]}'")
        return dataclasses.replace(self, **overrides)


@dataclass
class Alert:
    """One finding of ``detect`` (or of the quality gate, kind ``quality_<check>``)."""

    kind: str
    severity: str  # "info" | "warning" | "critical"
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------- profile


@dataclass(frozen=True)
class _NumericColumn:
    """A number or date column as floats (NaN for null; dates in days, see ``origin``).

    ``values`` is float32 when that holds every value exactly (counts, whole days), which
    halves what each segment gathers; ``select`` always gives float64.
    """

    kind: str
    origin: str  # "value" | "epoch" | "as_of"
    values: np.ndarray
    all_finite: bool

    def select(self, rows: np.ndarray | None) -> np.ndarray:
        picked = self.values if rows is None else self.values.take(rows)
        return picked.astype(np.float64, copy=False)


@dataclass(frozen=True)
class _CategoryColumn:
    """A string or bool column as codes into ``labels`` (sorted); code 0 is null, i is
    ``labels[i - 1]``."""

    kind: str
    codes: np.ndarray
    labels: list[str]


class ProfileColumns:
    """The columns of one frame converted once for ``profile``.

    Profiling many segments of one frame (``profile(frame, ..., mask=m, cache=c)`` per
    segment) then costs a gather and a count per column instead of a frame copy and a pandas
    pass. Numbers and dates become float arrays, strings and booleans integer codes into
    their sorted labels (a categorical's own codes, no string work). Columns are converted on
    first use, so only profiled columns cost anything.
    """

    def __init__(
        self, frame: pd.DataFrame | Table, schema: Schema, *, as_of: date | None = None
    ) -> None:
        self.frame = frame
        self.schema = schema
        self.as_of = as_of
        self._converted: dict[str, _NumericColumn | _CategoryColumn] = {}

    def forget(self, names: Iterable[str]) -> None:
        """Let go of these converted columns (plain or qualified), to bound memory."""
        for name in names:
            self._converted.pop(_frame_column(name, self.frame, self.schema), None)

    def column(self, name: str) -> _NumericColumn | _CategoryColumn:
        """The converted column ``name`` (plain or qualified)."""
        column = _frame_column(name, self.frame, self.schema)
        converted = self._converted.get(column)
        if converted is None:
            # a table's column for this one use: only its conversion is kept
            frame = self.frame
            series = frame[column] if isinstance(frame, pd.DataFrame) else frame.read(column)
            kind = self.schema.columns.get(column) or infer_kind(series)
            converted = _convert(series, kind, self.as_of)
            self._converted[column] = converted
        return converted


def profile(
    members: pd.DataFrame,
    columns: Sequence[str],
    schema: Schema,
    reference: Mapping[str, Any] | None = None,
    *,
    as_of: date | None = None,
    mask: np.ndarray | None = None,
    cache: ProfileColumns | None = None,
) -> dict[str, Any]:
    """A JSON-able summary of ``members`` over ``columns`` (see the module docstring).

    Column names may be plain or qualified (resolved through ``schema``); the profile keys
    them as given, so pass the same names to ``detect``'s ``kpis``. With ``mask`` (booleans,
    one per row), ``members`` is the whole frame and only the rows where ``mask`` is true are
    profiled; ``cache``, a ``ProfileColumns`` of that frame, schema and ``as_of``, shares
    the conversion between calls. Both ways give the same profile as passing the member rows.
    """
    if cache is None:
        cache = ProfileColumns(members, schema, as_of=as_of)
    elif cache.frame is not members or cache.schema != schema or cache.as_of != as_of:
        raise ValueError("profile cache was built for another frame, schema or as_of")
    rows = None if mask is None else _selected_rows(mask, len(members))
    ref_columns = (reference or {}).get("columns", {})
    out: dict[str, Any] = {}
    for name in columns:
        column = cache.column(name)
        if isinstance(column, _NumericColumn):
            out[name] = _numeric_profile(column, rows, ref_columns.get(name))
        else:
            out[name] = _category_profile(column, rows)
    size = len(members) if rows is None else len(rows)
    return {"version": PROFILE_VERSION, "size": size, "columns": out}


def _selected_rows(mask: np.ndarray, n: int) -> np.ndarray:
    selected = np.asarray(mask)
    if selected.dtype != bool or selected.shape != (n,):
        shape = "x".join(map(str, selected.shape))
        raise ValueError(f"profile mask must be {n} booleans, not {shape} {selected.dtype}")
    return np.flatnonzero(selected)


def _frame_column(name: str, frame: pd.DataFrame, schema: Schema) -> str:
    column = name if name in schema.columns else schema.resolve(name)
    if column not in frame.columns:
        raise SegopsError(f"drift profile: column '{name}' is not in the data")
    return column


def _convert(series: pd.Series, kind: str, as_of: date | None) -> _NumericColumn | _CategoryColumn:
    if kind in ("number", "date"):
        values, origin = _numeric_values(series, kind, as_of)
        with np.errstate(over="ignore"):
            narrow = values.astype(np.float32)
        # NaN where values has NaN; one pass where array_equal(equal_nan=True) takes five
        exact = bool(np.all((narrow == values) | np.isnan(values)))
        return _NumericColumn(
            kind, origin, narrow if exact else values, bool(np.isfinite(values).all())
        )
    if isinstance(series.dtype, pd.CategoricalDtype):
        codes = series.cat.codes.to_numpy()
        uniques = series.cat.categories
    else:
        codes, uniques = pd.factorize(series)
    if kind == "bool":
        names = ["true" if v else "false" for v in pd.Series(uniques).astype(bool)]
    else:
        names = [str(v) for v in uniques]
    # values whose text is equal ("1" and 1, or 1 and 2 as booleans) share one label
    labels, inverse = np.unique(np.asarray(names, dtype=object), return_inverse=True)
    lookup = np.concatenate(([0], inverse.ravel() + 1)).astype(np.min_scalar_type(len(labels)))
    return _CategoryColumn(kind, lookup[codes.astype(np.intp) + 1], [str(v) for v in labels])


def _numeric_values(series: pd.Series, kind: str, as_of: date | None) -> tuple[np.ndarray, str]:
    """Float values (NaN for null); dates as days since the epoch or days before ``as_of``."""
    if kind == "date":
        stamps = pd.to_datetime(series, errors="coerce")
        if stamps.dt.tz is not None:
            stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
        if as_of is None:
            days = (stamps - _EPOCH) / _DAY
            return days.to_numpy(dtype=float, na_value=np.nan), "epoch"
        days = (pd.Timestamp(as_of) - stamps) / _DAY
        return days.to_numpy(dtype=float, na_value=np.nan), "as_of"
    numbers = pd.to_numeric(series, errors="coerce")
    return numbers.to_numpy(dtype=float, na_value=np.nan), "value"


def _numeric_profile(
    column: _NumericColumn, rows: np.ndarray | None, ref: Mapping[str, Any] | None
) -> dict[str, Any]:
    kind, origin = column.kind, column.origin
    values = column.select(rows)
    finite = values if column.all_finite else values[np.isfinite(values)]
    n = int(finite.size)
    comparable = ref is not None and ref.get("kind") == kind and ref.get("origin") == origin
    if comparable and "edges" in ref:
        edges = np.asarray(ref["edges"], dtype=float)
    elif n:
        edges = np.unique(np.quantile(finite, np.linspace(0, 1, HIST_BINS + 1)[1:-1]))
    else:
        edges = np.empty(0)
    return {
        "kind": kind,
        "origin": origin,
        "count": n,
        "nulls": int(values.size - n),
        "mean": float(finite.mean()) if n else None,
        "std": float(finite.std(ddof=1)) if n > 1 else None,
        "edges": [float(e) for e in edges],
        "hist": _histogram(finite, edges),
    }


def _histogram(values: np.ndarray, edges: np.ndarray) -> list[int]:
    """Counts per bin: bin i holds ``edges[i - 1] <= v < edges[i]``, the outer bins open."""
    if edges.size > HIST_BINS or np.any(edges[1:] <= edges[:-1]):
        hist = np.bincount(np.searchsorted(edges, values, side="right"), minlength=edges.size + 1)
        return [int(c) for c in hist]
    # a few comparisons cost less than a binary search per value
    at_least = [values.size, *(int(np.count_nonzero(values >= e)) for e in edges), 0]
    return [int(a - b) for a, b in zip(at_least, at_least[1:], strict=False)]


def _category_profile(column: _CategoryColumn, rows: np.ndarray | None) -> dict[str, Any]:
    codes = column.codes if rows is None else column.codes.take(rows)
    counts = np.bincount(codes, minlength=len(column.labels) + 1)
    nulls = int(counts[0])
    n = int(codes.size) - nulls
    counts = counts[1:]
    top = _top_categories(counts)
    taken = int(counts[top].sum())
    out: dict[str, Any] = {
        "kind": column.kind,
        "count": n,
        "nulls": nulls,
        "shares": {column.labels[i]: int(counts[i]) / n for i in top},
        "other": (n - taken) / n if n else 0.0,
    }
    if column.kind == "bool":
        true = int(counts[column.labels.index("true")]) if "true" in column.labels else 0
        rate = true / n if n else None
        out["mean"] = rate
        out["std"] = math.sqrt(rate * (1 - rate) * n / (n - 1)) if n > 1 else None
    return out


def _top_categories(counts: np.ndarray) -> np.ndarray:
    """Indices of the (up to) ``TOP_CATEGORIES`` largest non-zero counts, largest first, ties
    by label (labels are sorted, so by index)."""
    present = np.flatnonzero(counts)
    if present.size > TOP_CATEGORIES:
        cut = np.partition(counts[present], present.size - TOP_CATEGORIES)
        present = present[counts[present] >= cut[present.size - TOP_CATEGORIES]]
    order = np.argsort(-counts[present], kind="stable")
    return present[order[:TOP_CATEGORIES]]


# --------------------------------------------------------------------------- detect


def detect(
    *,
    size: int,
    previous_size: int | None,
    history_sizes: Sequence[int] = (),
    stats: Mapping[str, Any] | None = None,
    previous_stats: Mapping[str, Any] | None = None,
    kpis: Sequence[str] = (),
    thresholds: DriftThresholds | None = None,
) -> list[Alert]:
    """Alerts for one segment's refresh: size change, control limit, minimum size,
    composition and KPI shifts (in that order).

    ``history_sizes`` are the sizes of earlier published snapshots, oldest first, without
    the current one; ``stats``/``previous_stats`` are ``profile`` results (the current one
    built with the previous as reference). Missing inputs skip the checks that need them.
    """
    t = thresholds or DriftThresholds()
    alerts: list[Alert] = []
    alerts += _size_change(size, previous_size, t)
    alerts += _control_limit(size, list(history_sizes), t)
    if size < t.min_size:
        alerts.append(
            Alert(
                "min_size",
                "critical" if size == 0 else "warning",
                f"Size {size:,} is below the minimum of {t.min_size:,}",
                {"size": size, "min_size": t.min_size},
            )
        )
    if stats and previous_stats:
        cur_cols = stats.get("columns", {})
        prev_cols = previous_stats.get("columns", {})
        for name, cur in cur_cols.items():
            if name in prev_cols and name not in kpis:
                alerts += _composition(name, prev_cols[name], cur, t)
        for name in kpis:
            if name in cur_cols and name in prev_cols:
                alerts += _kpi(name, prev_cols[name], cur_cols[name], t)
    return alerts


def detect_baseline(
    *, size: int, baseline_size: int, kept: int, baseline_as_of: str, thresholds: DriftThresholds
) -> list[Alert]:
    """Alerts against a baseline snapshot (pinned by a person, or the oldest of a rolling
    window), which catch what snapshot-to-snapshot comparison misses:

    - ``baseline_size``: the size moved since the baseline, with the ``size_change``
      thresholds (a creep of a few points a refresh adds up here);
    - ``turnover``: the share of the baseline's members that are no longer members, warning
      at ``turnover_warning`` (50%) and critical at ``turnover_critical`` (80%), when at least
      ``size_min_members_moved`` left (a stable size can hide a whole new population).

    ``kept`` is how many baseline members are still members.
    """
    t = thresholds
    alerts = []
    for alert in _size_change(size, baseline_size, t):
        details = {**alert.details, "baseline_as_of": baseline_as_of}
        message = alert.message.replace("Size", f"Since the baseline of {baseline_as_of}, size", 1)
        alerts.append(Alert("baseline_size", alert.severity, message, details))
    gone = baseline_size - kept
    share = gone / baseline_size if baseline_size else 0.0
    if gone >= t.size_min_members_moved and share >= t.turnover_warning:
        severity = "critical" if share >= t.turnover_critical else "warning"
        message = (
            f"{share:.0%} of the members of the baseline of {baseline_as_of} are gone "
            f"({gone:,} of {baseline_size:,}); the size is {size:,}"
        )
        details = {
            "size": size,
            "baseline_size": baseline_size,
            "left": gone,
            "turnover": share,
            "baseline_as_of": baseline_as_of,
        }
        alerts.append(Alert("turnover", severity, message, details))
    return alerts


def _size_change(size: int, previous: int | None, t: DriftThresholds) -> list[Alert]:
    if previous is None:
        return []
    delta = size - previous
    relative = delta / previous if previous else (math.inf if delta else 0.0)
    if abs(delta) < t.size_min_members_moved or abs(relative) < t.size_warning_change:
        return []
    severity = "critical" if abs(relative) >= t.size_critical_change else "warning"
    verb = "rose" if delta > 0 else "fell"
    if previous:
        message = f"Size {verb} {abs(relative):.0%} ({previous:,} -> {size:,}, {delta:+,})"
    else:
        message = f"Size {verb} from 0 to {size:,} ({delta:+,})"
    details = {
        "size": size,
        "previous_size": previous,
        "change": delta,
        "relative_change": relative if previous else None,
    }
    return [Alert("size_change", severity, message, details)]


def _control_limit(size: int, history: list[int], t: DriftThresholds) -> list[Alert]:
    window = history[-t.control_window :]
    if len(window) < t.control_min_history:
        return []
    sizes = np.asarray(window, dtype=float)
    center = float(sizes.mean())
    sigma = float(np.abs(np.diff(sizes)).mean()) / XMR_D2
    spread = t.control_sigmas * sigma
    lower, upper = center - spread, center + spread
    if lower <= size <= upper or abs(size - center) < t.size_min_members_moved:
        return []
    side, limit = ("above", upper) if size > upper else ("below", lower)
    message = (
        f"Size {size:,} is {side} its control limit {limit:,.0f} "
        f"(mean {center:,.0f} +/- {spread:,.0f} over {len(window)} snapshots)"
    )
    details = {
        "size": size,
        "mean": center,
        "sigma": sigma,
        "lower": lower,
        "upper": upper,
        "history": [int(s) for s in window],
    }
    return [Alert("control_limit", "warning", message, details)]


def _composition(
    name: str, prev: Mapping[str, Any], cur: Mapping[str, Any], t: DriftThresholds
) -> list[Alert]:
    pair = _comparable_counts(prev, cur)
    if pair is None:
        return []
    labels, p_counts, q_counts = pair
    n1, n2 = float(p_counts.sum()), float(q_counts.sum())
    if min(n1, n2) < max(t.composition_min_members, 1):
        return []
    psi = population_stability_index(p_counts, q_counts)
    noise = psi_noise_limit(len(labels), int(n1), int(n2), t.composition_noise_confidence)
    p, q = p_counts / n1, q_counts / n2
    moved = np.abs(q - p)
    top = int(np.argmax(moved))
    if psi < max(t.psi_warning, noise) or moved[top] < t.composition_min_share_change:
        return []
    severity = "critical" if psi >= t.psi_critical else "warning"
    message = (
        f"Composition of {name} shifted (PSI {psi:.2f}): {labels[top]} "
        f"{p[top]:.0%} -> {q[top]:.0%} ({(q[top] - p[top]) * 100:+.0f} pts)"
    )
    details = {
        "column": name,
        "psi": psi,
        "noise_limit": noise,
        "max_share_change": float(moved[top]),
        "previous_count": int(n1),
        "count": int(n2),
        "bins": [
            {"label": label, "previous": float(a), "current": float(b)}
            for label, a, b in zip(labels, p, q, strict=True)
        ],
    }
    return [Alert("composition", severity, message, details)]


def _comparable_counts(
    prev: Mapping[str, Any], cur: Mapping[str, Any]
) -> tuple[list[str], np.ndarray, np.ndarray] | None:
    """Bin labels and counts of both profiles on a shared partition, or None if impossible."""
    if prev.get("kind") != cur.get("kind"):
        return None
    if "hist" in cur:
        if "hist" not in prev or prev.get("edges") != cur.get("edges"):
            return None
        if prev.get("origin") != cur.get("origin"):
            return None
        labels = _bin_labels(cur["edges"], cur["kind"], cur.get("origin"))
        return labels, np.asarray(prev["hist"], float), np.asarray(cur["hist"], float)
    prev_shares, cur_shares = prev.get("shares", {}), cur.get("shares", {})
    common = [label for label in cur_shares if label in prev_shares]
    p = np.asarray([prev_shares[c] for c in common], float)
    q = np.asarray([cur_shares[c] for c in common], float)
    p = np.rint(np.append(p, max(0.0, 1.0 - p.sum())) * prev.get("count", 0))
    q = np.rint(np.append(q, max(0.0, 1.0 - q.sum())) * cur.get("count", 0))
    return [*common, "(other)"], p, q  # shares are count / n, so rint gives the counts back


def population_stability_index(expected: np.ndarray, actual: np.ndarray) -> float:
    """PSI of two count vectors over the same bins, with half-count smoothing."""
    expected = np.asarray(expected, dtype=float)
    actual = np.asarray(actual, dtype=float)
    k = expected.size
    p = (expected + 0.5) / (expected.sum() + 0.5 * k)
    q = (actual + 0.5) / (actual.sum() + 0.5 * k)
    return float(np.sum((q - p) * np.log(q / p)))


def psi_noise_limit(bins: int, n1: int, n2: int, confidence: float) -> float:
    """PSI that two samples of one distribution stay below with ``confidence``.

    PSI is the symmetric (Jeffreys) divergence, and for same-distribution samples
    PSI / (1/n1 + 1/n2) is close to chi-square with ``bins - 1`` degrees of freedom;
    its quantile comes from the Wilson-Hilferty approximation.
    """
    df = max(bins - 1, 1)
    z = NormalDist().inv_cdf(confidence)
    chi2 = df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3
    return (1 / n1 + 1 / n2) * chi2


def _kpi(
    name: str, prev: Mapping[str, Any], cur: Mapping[str, Any], t: DriftThresholds
) -> list[Alert]:
    n1, n2 = prev.get("count") or 0, cur.get("count") or 0
    m1, m2 = prev.get("mean"), cur.get("mean")
    s1, s2 = prev.get("std"), cur.get("std")
    if min(n1, n2) < max(t.kpi_min_members, 2) or None in (m1, m2, s1, s2):
        return []
    delta = m2 - m1
    if delta == 0:
        return []
    pooled = math.sqrt(((n1 - 1) * s1**2 + (n2 - 1) * s2**2) / (n1 + n2 - 2))
    effect = abs(delta) / pooled if pooled else math.inf
    se = math.sqrt(s1**2 / n1 + s2**2 / n2)
    z = abs(delta) / se if se else math.inf
    # a date counted from 1970 has no meaningful ratio; its effect and z floors still hold
    ratio_scale = m1 and cur.get("origin") != "epoch"
    relative = abs(delta) / abs(m1) if ratio_scale else math.inf
    if effect < t.kpi_min_effect or relative < t.kpi_min_relative_change or z < t.kpi_min_z:
        return []
    severity = "critical" if effect >= t.kpi_critical_effect else "warning"
    verb = "rose" if delta > 0 else "fell"
    size_effect = f"effect size {effect:.2f}" if math.isfinite(effect) else "no spread before"
    if cur.get("kind") == "bool":
        message = (
            f"{name} rate {verb} from {m1:.1%} to {m2:.1%} ({delta * 100:+.1f} pts, {size_effect})"
        )
    else:
        change = f"{relative:.0%} " if math.isfinite(relative) else ""
        message = f"{name} average {verb} {change}({_fmt(m1)} -> {_fmt(m2)}, {size_effect})"
    details = {
        "column": name,
        "previous_mean": m1,
        "mean": m2,
        "delta": delta,
        "relative_change": relative if math.isfinite(relative) else None,
        "effect_size": effect if math.isfinite(effect) else None,
        "z": z if math.isfinite(z) else None,
        "previous_count": n1,
        "count": n2,
    }
    return [Alert("kpi", severity, message, details)]


def _bin_labels(edges: Sequence[float], kind: str, origin: str | None) -> list[str]:
    def show(value: float) -> str:
        if kind == "date" and origin == "epoch":
            return (_EPOCH + pd.Timedelta(days=value)).date().isoformat()
        return _fmt(value) + (" days ago" if kind == "date" else "")

    if not edges:
        return ["all"]
    labels = [f"< {show(edges[0])}"]
    labels += [f"{show(a)} to {show(b)}" for a, b in zip(edges, edges[1:], strict=False)]
    labels.append(f">= {show(edges[-1])}")
    return labels


def _fmt(value: float) -> str:
    """A number for people: thousands separators, at most 3 significant decimals."""
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:,.{max(0, 2 - int(math.floor(math.log10(abs(value)))))}f}"

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
20 categories by share; the rest is ``other``. Nulls are counted but left out of means,
histograms and shares: null rates belong to the quality gate.

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from segments.errors import SegopsError
from segments.schema import Schema, infer_kind

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

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if getattr(self, f.name) < 0:
                raise SegopsError(f"drift threshold {f.name} must not be negative")
        pairs = [
            ("size_warning_change", "size_critical_change"),
            ("psi_warning", "psi_critical"),
            ("kpi_min_effect", "kpi_critical_effect"),
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


def profile(
    members: pd.DataFrame,
    columns: Sequence[str],
    schema: Schema,
    reference: Mapping[str, Any] | None = None,
    *,
    as_of: date | None = None,
) -> dict[str, Any]:
    """A JSON-able summary of ``members`` over ``columns`` (see the module docstring).

    Column names may be plain or qualified (resolved through ``schema``); the profile keys
    them as given, so pass the same names to ``detect``'s ``kpis``.
    """
    ref_columns = (reference or {}).get("columns", {})
    out: dict[str, Any] = {}
    for name in columns:
        column = _frame_column(name, members, schema)
        series = members[column]
        kind = schema.columns.get(column) or infer_kind(series)
        ref = ref_columns.get(name)
        if kind in ("number", "date"):
            values, origin = _numeric_values(series, kind, as_of)
            out[name] = _numeric_profile(values, kind, origin, ref)
        else:
            out[name] = _category_profile(series, kind)
    return {"version": PROFILE_VERSION, "size": len(members), "columns": out}


def _frame_column(name: str, frame: pd.DataFrame, schema: Schema) -> str:
    column = name if name in schema.columns else schema.resolve(name)
    if column not in frame.columns:
        raise SegopsError(f"drift profile: column '{name}' is not in the data")
    return column


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
    values: np.ndarray, kind: str, origin: str, ref: Mapping[str, Any] | None
) -> dict[str, Any]:
    finite = values[np.isfinite(values)]
    n = int(finite.size)
    comparable = ref is not None and ref.get("kind") == kind and ref.get("origin") == origin
    if comparable and "edges" in ref:
        edges = np.asarray(ref["edges"], dtype=float)
    elif n:
        edges = np.unique(np.quantile(finite, np.linspace(0, 1, HIST_BINS + 1)[1:-1]))
    else:
        edges = np.empty(0)
    hist = np.bincount(np.searchsorted(edges, finite, side="right"), minlength=edges.size + 1)
    return {
        "kind": kind,
        "origin": origin,
        "count": n,
        "nulls": int(values.size - n),
        "mean": float(finite.mean()) if n else None,
        "std": float(finite.std(ddof=1)) if n > 1 else None,
        "edges": [float(e) for e in edges],
        "hist": [int(c) for c in hist],
    }


def _category_profile(series: pd.Series, kind: str) -> dict[str, Any]:
    present = series.dropna()
    n = len(present)
    if kind == "bool":
        present = present.astype(bool).map({True: "true", False: "false"})
    counts = present.value_counts(sort=False)
    counts = counts[counts > 0]
    if counts.index.inferred_type != "string":
        counts = counts.groupby(counts.index.map(str)).sum()
    # largest first, ties by label, so equal inputs give equal profiles
    counts = counts.sort_index().sort_values(ascending=False, kind="stable")
    top = list(counts.iloc[:TOP_CATEGORIES].items())
    out: dict[str, Any] = {
        "kind": kind,
        "count": n,
        "nulls": int(len(series) - n),
        "shares": {label: int(c) / n for label, c in top},
        "other": (n - sum(int(c) for _, c in top)) / n if n else 0.0,
    }
    if kind == "bool":
        rate = int(counts.get("true", 0)) / n if n else None
        out["mean"] = rate
        out["std"] = math.sqrt(rate * (1 - rate) * n / (n - 1)) if n > 1 else None
    return out


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

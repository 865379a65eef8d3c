"""Readouts that hold up to daily peeking.

The comparison is treatment (members who get the action) against the holdout (members
who do not), on one KPI per entity:

- **Welch**: the difference of means with the Welch-Satterthwaite degrees of freedom
  (``scipy.stats.ttest_ind_from_stats`` for the p-value). A proportion is the mean of a
  0/1 KPI, so the same test gives the unpooled difference of rates.
- **Relative lift** ``treatment / holdout - 1`` with a delta-method standard error::

      var(lift) ~ var_t / (n_t m_h^2) + m_t^2 var_h / (n_h m_h^4)

- **CUPED**: when the KPI's pre-period value is known for every entity, the KPI is
  replaced by ``y - theta (x - mean x)`` with ``theta = cov(y, x) / var(x)`` pooled over
  both arms, which keeps the difference unbiased and narrows the interval by the share
  of variance the pre-period explains.
- **Always-valid interval** for the daily look: the asymptotic confidence sequence of
  Waudby-Smith et al. (the one GrowthBook documents for sequential testing). With
  ``N = n_t + n_h`` and the estimate's standard error ``se``, the half-width is::

      se sqrt(N) sqrt(2 (N rho^2 + 1) / (N^2 rho^2) log(sqrt(N rho^2 + 1) / alpha))

  where ``rho`` tunes the sequence to be narrowest near the planned sample size
  (:func:`sequential_rho`). It covers the true effect at every look at once with
  probability ``1 - alpha``, so looking every day does not inflate false positives.
  The fixed-horizon (Welch) interval is the one to read on the planned end date.
- **Sample ratio mismatch**: a chi-square test of the arm counts against the designed
  split. A mismatch (p < 0.001 and the holdout's share off by at least ``min_deviation``
  of its designed value, so tiny deviations at large N do not alarm) blocks the readout.
- **Several KPIs**: Holm (family-wise) or Benjamini-Hochberg (false discovery rate)
  through ``statsmodels.stats.multitest.multipletests``.
- **No holdout**: :func:`observational` compares the KPI after a change with control
  limits from the snapshots before it. It is labelled observational and never called
  lift: nothing rules out that the KPI moved for another reason.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from segments.errors import SegopsError

ALPHA = 0.05
SRM_P = 0.001
SRM_MIN_DEVIATION = 0.01


def _num(value: Any) -> Any:
    """Plain floats for scalars (JSON-friendly), arrays left alone."""
    if value is None:
        return None
    array = np.asarray(value)
    return float(array) if array.ndim == 0 else array


@dataclass(frozen=True)
class Summary:
    """One arm: count, mean and sample variance (arrays broadcast)."""

    n: Any
    mean: Any
    var: Any

    @classmethod
    def of(cls, values: np.ndarray) -> Summary:
        values = np.asarray(values, dtype=np.float64)
        var = float(values.var(ddof=1)) if len(values) > 1 else 0.0
        return cls(len(values), float(values.mean()) if len(values) else math.nan, var)


@dataclass(frozen=True)
class Comparison:
    """Treatment against holdout on one KPI (scalars, or arrays for many experiments)."""

    n_treatment: Any
    n_holdout: Any
    treatment_mean: Any
    holdout_mean: Any
    diff: Any
    diff_low: Any
    diff_high: Any
    p_value: Any
    lift: Any
    lift_low: Any
    lift_high: Any
    seq_diff_low: Any
    seq_diff_high: Any
    seq_lift_low: Any
    seq_lift_high: Any
    alpha: float
    cuped_variance_reduction: float | None = None

    @property
    def significant(self) -> Any:
        """The fixed-horizon interval excludes no change."""
        return (np.asarray(self.diff_low) > 0) | (np.asarray(self.diff_high) < 0)

    @property
    def seq_significant(self) -> Any:
        """The always-valid interval excludes no change."""
        return (np.asarray(self.seq_diff_low) > 0) | (np.asarray(self.seq_diff_high) < 0)

    def to_dict(self) -> dict[str, Any]:
        data = {k: _num(v) for k, v in self.__dict__.items()}
        data["n_treatment"] = int(self.n_treatment)
        data["n_holdout"] = int(self.n_holdout)
        data["significant"] = bool(self.significant)
        data["seq_significant"] = bool(self.seq_significant)
        return data


def sequential_rho(alpha: float, planned_n: float) -> float:
    """The confidence sequence's tuning constant, narrowest near ``planned_n`` entities."""
    log_term = -2 * math.log(alpha)
    return math.sqrt((log_term + math.log(log_term + 1)) / max(float(planned_n), 1.0))


def _sequential_halfwidth(se: Any, n: Any, *, alpha: float, rho: float) -> Any:
    n = np.asarray(n, dtype=np.float64)
    nr2 = n * rho * rho
    return (
        np.asarray(se)
        * np.sqrt(n)
        * np.sqrt(2 * (nr2 + 1) / (n * n * rho * rho) * np.log(np.sqrt(nr2 + 1) / alpha))
    )


def compare_summaries(
    treatment: Summary,
    holdout: Summary,
    *,
    alpha: float = ALPHA,
    planned_n: float | None = None,
) -> Comparison:
    """Welch, delta-method lift and the always-valid interval from per-arm summaries.

    ``planned_n`` (both arms) tunes the confidence sequence; without it the current
    count is used.
    """
    from scipy import stats as sps  # heavy: imported when an experiment is read

    nt = np.asarray(treatment.n, dtype=np.float64)
    nh = np.asarray(holdout.n, dtype=np.float64)
    mt = np.asarray(treatment.mean, dtype=np.float64)
    mh = np.asarray(holdout.mean, dtype=np.float64)
    vt_n = np.asarray(treatment.var, dtype=np.float64) / nt
    vh_n = np.asarray(holdout.var, dtype=np.float64) / nh
    se = np.sqrt(vt_n + vh_n)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = (vt_n + vh_n) ** 2 / (vt_n**2 / (nt - 1) + vh_n**2 / (nh - 1))
        diff = mt - mh
        t_crit = sps.t.ppf(1 - alpha / 2, df)
        p_value = 2 * sps.t.sf(np.abs(diff / se), df)
        p_value = np.where(se > 0, p_value, np.where(diff == 0, 1.0, 0.0))
        lift = mt / mh - 1
        se_lift = np.sqrt(vt_n / mh**2 + mt**2 * vh_n / mh**4)
    z = sps.norm.ppf(1 - alpha / 2)
    total = nt + nh
    rho = sequential_rho(alpha, planned_n if planned_n else float(np.max(total)))
    seq = _sequential_halfwidth(se, total, alpha=alpha, rho=rho)
    seq_lift = _sequential_halfwidth(se_lift, total, alpha=alpha, rho=rho)
    return Comparison(
        n_treatment=_num(nt),
        n_holdout=_num(nh),
        treatment_mean=_num(mt),
        holdout_mean=_num(mh),
        diff=_num(diff),
        diff_low=_num(diff - t_crit * se),
        diff_high=_num(diff + t_crit * se),
        p_value=_num(p_value),
        lift=_num(lift),
        lift_low=_num(lift - z * se_lift),
        lift_high=_num(lift + z * se_lift),
        seq_diff_low=_num(diff - seq),
        seq_diff_high=_num(diff + seq),
        seq_lift_low=_num(lift - seq_lift),
        seq_lift_high=_num(lift + seq_lift),
        alpha=alpha,
    )


def compare(
    treatment: np.ndarray,
    holdout: np.ndarray,
    *,
    treatment_pre: np.ndarray | None = None,
    holdout_pre: np.ndarray | None = None,
    alpha: float = ALPHA,
    planned_n: float | None = None,
) -> Comparison:
    """Compare raw per-entity KPI values; CUPED when both pre-period arrays are given."""
    y_t = np.asarray(treatment, dtype=np.float64)
    y_h = np.asarray(holdout, dtype=np.float64)
    if len(y_t) < 2 or len(y_h) < 2:
        raise SegopsError(
            f"a readout needs at least 2 entities in each arm (treatment {len(y_t)}, "
            f"holdout {len(y_h)})"
        )
    reduction = None
    if treatment_pre is not None and holdout_pre is not None:
        x_t = np.asarray(treatment_pre, dtype=np.float64)
        x_h = np.asarray(holdout_pre, dtype=np.float64)
        y = np.concatenate([y_t, y_h])
        x = np.concatenate([x_t, x_h])
        var_x = x.var(ddof=1)
        if var_x > 0 and np.isfinite(var_x):
            theta = np.cov(y, x, ddof=1)[0, 1] / var_x
            center = x.mean()
            before = y.var(ddof=1)
            y_t = y_t - theta * (x_t - center)
            y_h = y_h - theta * (x_h - center)
            after = np.concatenate([y_t, y_h]).var(ddof=1)
            reduction = float(1 - after / before) if before > 0 else 0.0
    result = compare_summaries(Summary.of(y_t), Summary.of(y_h), alpha=alpha, planned_n=planned_n)
    return Comparison(**{**result.__dict__, "cuped_variance_reduction": reduction})


@dataclass(frozen=True)
class SampleRatio:
    """The sample-ratio check of arm counts against the designed holdout share."""

    n_treatment: Any
    n_holdout: Any
    expected_share: float
    observed_share: Any
    p_value: Any
    mismatch: Any

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_treatment": int(self.n_treatment),
            "n_holdout": int(self.n_holdout),
            "expected_share": self.expected_share,
            "observed_share": float(self.observed_share),
            "p_value": float(self.p_value),
            "mismatch": bool(self.mismatch),
        }

    def message(self) -> str:
        return (
            f"sample ratio mismatch: the holdout is {float(self.observed_share):.2%} of "
            f"{int(self.n_treatment + self.n_holdout):,} entities, designed "
            f"{self.expected_share:.2%} (chi-square p = {float(self.p_value):.2g}); "
            "the assignment or the data is broken, so no readout is shown"
        )


def sample_ratio(
    n_treatment: Any,
    n_holdout: Any,
    *,
    share: float,
    p_limit: float = SRM_P,
    min_deviation: float = SRM_MIN_DEVIATION,
) -> SampleRatio:
    """Chi-square test of the split; a mismatch needs p < ``p_limit`` and the holdout's
    share off its design by at least ``min_deviation`` (relative)."""
    from scipy import stats as sps

    nt = np.asarray(n_treatment, dtype=np.float64)
    nh = np.asarray(n_holdout, dtype=np.float64)
    total = nt + nh
    observed = np.stack([nt, nh], axis=-1)
    expected = np.stack([total * (1 - share), total * share], axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        chi2 = ((observed - expected) ** 2 / expected).sum(axis=-1)
        p_value = np.where(total > 0, sps.chi2.sf(chi2, df=1), 1.0)
        observed_share = np.where(total > 0, nh / total, share)
    deviation = np.abs(observed_share - share) / share
    mismatch = (p_value < p_limit) & (deviation >= min_deviation)
    return SampleRatio(
        n_treatment=_num(nt),
        n_holdout=_num(nh),
        expected_share=share,
        observed_share=_num(observed_share),
        p_value=_num(p_value),
        mismatch=mismatch if mismatch.ndim else bool(mismatch),
    )


Correction = Literal["holm", "fdr_bh"]


def adjust_pvalues(
    pvalues: Sequence[float], *, method: Correction = "holm", alpha: float = ALPHA
) -> tuple[list[float], list[bool]]:
    """Adjusted p-values and which KPIs stay significant (Holm or Benjamini-Hochberg)."""
    if not len(pvalues):
        return [], []
    from statsmodels.stats.multitest import multipletests

    reject, adjusted, _, _ = multipletests(list(pvalues), alpha=alpha, method=method)
    return [float(p) for p in adjusted], [bool(r) for r in reject]


@dataclass(frozen=True)
class Observational:
    """A before/after reading with control limits: not a causal effect."""

    before_mean: float
    before_points: int
    lower_limit: float
    upper_limit: float
    after: float
    change: float
    outside_limits: bool
    label: str = "observational"

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def observational(before: Sequence[float], after: float, *, sigmas: float = 3.0) -> Observational:
    """The KPI after a change against the control limits of the snapshots before it."""
    points = np.asarray([b for b in before if b is not None and math.isfinite(b)], dtype=float)
    if len(points) < 2:
        raise SegopsError(
            "an observational reading needs at least 2 snapshots before the change, "
            f"there are {len(points)}"
        )
    center = float(points.mean())
    spread = float(points.std(ddof=1))
    low, high = center - sigmas * spread, center + sigmas * spread
    return Observational(
        before_mean=center,
        before_points=len(points),
        lower_limit=low,
        upper_limit=high,
        after=float(after),
        change=float(after) - center,
        outside_limits=bool(after < low or after > high),
    )

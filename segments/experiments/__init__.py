"""Experiment statistics, pure: holdout assignment, planning, readouts.

- :mod:`segments.experiments.assign` puts entities into the holdout by a salted hash of
  their key, so a customer stays on the same side across refreshes and databases.
- :mod:`segments.experiments.plan` computes the sample size an experiment needs for its
  minimum detectable effect (statsmodels power classes) and refuses a plan that cannot
  reach it.
- :mod:`segments.experiments.stats` reads an experiment out: Welch difference, relative
  lift by the delta method, CUPED, an always-valid confidence sequence for daily looks,
  the sample-ratio-mismatch check, multiple-KPI corrections, and the observational
  before/after reading used when there is no holdout.

Everything works on numpy arrays or per-arm summaries (count, mean, variance), and the
summary functions broadcast, so thousands of simulated experiments run as one array
operation. Nothing here knows the store, Slack or the session.
"""

from segments.experiments.assign import holdout_mask
from segments.experiments.plan import Plan, plan_experiment
from segments.experiments.stats import (
    Comparison,
    Observational,
    SampleRatio,
    Summary,
    adjust_pvalues,
    compare,
    compare_summaries,
    observational,
    sample_ratio,
    sequential_rho,
)

__all__ = [
    "Comparison",
    "Observational",
    "Plan",
    "SampleRatio",
    "Summary",
    "adjust_pvalues",
    "compare",
    "compare_summaries",
    "holdout_mask",
    "observational",
    "plan_experiment",
    "sample_ratio",
    "sequential_rho",
]

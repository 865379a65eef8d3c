"""The experiment statistics, proved by simulation.

Every simulation is vectorised: thousands of experiments are one array operation.
Arm counts and 0/1 KPIs are drawn as binomial counts (exact for proportions); mean KPIs
are drawn as raw skewed values. Margins are three binomial standard errors of the
simulated rate, so a correct implementation fails about once in a thousand runs of a
different seed, and the seeds are fixed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from segments.errors import SegopsError
from segments.experiments import (
    Summary,
    adjust_pvalues,
    compare,
    compare_summaries,
    holdout_mask,
    observational,
    plan_experiment,
    sample_ratio,
)

ALPHA = 0.05


def margin(rate: float, trials: int) -> float:
    return 3 * math.sqrt(rate * (1 - rate) / trials)


def proportion_peeks(
    rng: np.random.Generator,
    *,
    experiments: int,
    days: int,
    per_day: int,
    share: float,
    base: float,
    lift: float,
) -> tuple[Summary, Summary]:
    """Cumulative per-arm summaries, shape (experiments, days), of a 0/1 KPI."""
    holdout_day = rng.binomial(per_day, share, size=(experiments, days))
    treatment_day = per_day - holdout_day
    succ_h = rng.binomial(holdout_day, base)
    succ_t = rng.binomial(treatment_day, base * (1 + lift))
    arms = []
    for n_day, k_day in ((treatment_day, succ_t), (holdout_day, succ_h)):
        n = n_day.cumsum(axis=1).astype(float)
        k = k_day.cumsum(axis=1).astype(float)
        p = k / n
        arms.append(Summary(n=n, mean=p, var=p * (1 - p) * n / (n - 1)))
    return arms[0], arms[1]


def mean_peeks(
    rng: np.random.Generator, *, experiments: int, days: int, per_day: int, share: float
) -> tuple[Summary, Summary]:
    """Cumulative per-arm summaries of a skewed (exponential) KPI with no effect."""
    values = rng.exponential(4.0, size=(experiments, days, per_day))
    held = rng.random(size=(experiments, days, per_day)) < share
    arms = []
    for mask in (~held, held):
        n = mask.sum(axis=2).cumsum(axis=1).astype(float)
        s1 = np.where(mask, values, 0).sum(axis=2).cumsum(axis=1)
        s2 = np.where(mask, values**2, 0).sum(axis=2).cumsum(axis=1)
        mean = s1 / n
        arms.append(Summary(n=n, mean=mean, var=(s2 - n * mean**2) / (n - 1)))
    return arms[0], arms[1]


def aa_rates(treatment: Summary, holdout: Summary, planned_n: float) -> tuple[float, float]:
    """(always-valid, naive fixed-horizon) false-positive rates over daily peeks."""
    result = compare_summaries(treatment, holdout, alpha=ALPHA, planned_n=planned_n)
    always_valid = np.asarray(result.seq_significant).any(axis=1).mean()
    naive = np.asarray(result.significant).any(axis=1).mean()
    return float(always_valid), float(naive)


def test_daily_peeks_at_a_proportion_keep_false_positives_at_alpha() -> None:
    rng = np.random.default_rng(13)
    t, h = proportion_peeks(
        rng, experiments=1000, days=30, per_day=400, share=0.1, base=0.2, lift=0.0
    )
    fpr, naive = aa_rates(t, h, planned_n=30 * 400)
    assert fpr <= ALPHA + margin(ALPHA, 1000)
    # Peeking at the fixed-horizon interval every day is what inflates false positives.
    assert naive > ALPHA + margin(ALPHA, 1000)


def test_daily_peeks_at_a_skewed_mean_keep_false_positives_at_alpha() -> None:
    rng = np.random.default_rng(14)
    t, h = mean_peeks(rng, experiments=1000, days=20, per_day=100, share=0.2)
    fpr, naive = aa_rates(t, h, planned_n=20 * 100)
    assert fpr <= ALPHA + margin(ALPHA, 1000)
    assert naive > fpr


@pytest.mark.slow
def test_ten_thousand_aa_experiments_with_sixty_daily_peeks() -> None:
    rng = np.random.default_rng(15)
    t, h = proportion_peeks(
        rng, experiments=10_000, days=60, per_day=500, share=0.1, base=0.05, lift=0.0
    )
    fpr, _ = aa_rates(t, h, planned_n=60 * 500)
    assert fpr <= ALPHA + margin(ALPHA, 10_000)


@pytest.mark.parametrize(("base", "mde"), [(0.2, 0.1), (0.05, -0.3)])
def test_planned_sample_detects_the_planned_effect_of_a_proportion(base: float, mde: float) -> None:
    plan = plan_experiment(
        kind="proportion",
        baseline=base,
        sd=math.sqrt(base * (1 - base)),
        mde=mde,
        share=0.1,
        available=10**9,
    )
    rng = np.random.default_rng(16)
    runs = 2000
    k_t = rng.binomial(plan.needed_treatment, base * (1 + mde), size=runs)
    k_h = rng.binomial(plan.needed_holdout, base, size=runs)
    arms = []
    for n, k in ((plan.needed_treatment, k_t), (plan.needed_holdout, k_h)):
        p = k / n
        arms.append(Summary(n=np.full(runs, n), mean=p, var=p * (1 - p) * n / (n - 1)))
    result = compare_summaries(arms[0], arms[1], alpha=ALPHA)
    power = float(np.asarray(result.significant).mean())
    assert power >= plan.power - margin(plan.power, runs)
    true_lift = mde
    covered = (np.asarray(result.lift_low) <= true_lift) & (
        true_lift <= np.asarray(result.lift_high)
    )
    assert covered.mean() >= 1 - ALPHA - margin(1 - ALPHA, runs)


def test_planned_sample_detects_the_planned_effect_of_a_mean() -> None:
    plan = plan_experiment(kind="mean", baseline=10.0, sd=3.0, mde=0.03, share=0.1, available=0)
    rng = np.random.default_rng(17)
    runs = 1000
    t = rng.normal(10.3, 3.0, size=(runs, plan.needed_treatment))
    h = rng.normal(10.0, 3.0, size=(runs, plan.needed_holdout))
    result = compare_summaries(
        Summary(plan.needed_treatment, t.mean(axis=1), t.var(axis=1, ddof=1)),
        Summary(plan.needed_holdout, h.mean(axis=1), h.var(axis=1, ddof=1)),
    )
    power = float(np.asarray(result.significant).mean())
    assert power >= plan.power - margin(plan.power, runs)


def test_a_52_48_split_on_a_50_50_design_is_caught() -> None:
    rng = np.random.default_rng(18)
    n = 100_000
    held = rng.binomial(n, 0.48, size=1000)
    check = sample_ratio(n - held, held, share=0.5)
    assert np.asarray(check.mismatch).mean() >= 0.99


def test_a_correct_split_at_a_million_is_not_flagged() -> None:
    rng = np.random.default_rng(19)
    n = 1_000_000
    held = rng.binomial(n, 0.5, size=1000)
    check = sample_ratio(n - held, held, share=0.5)
    assert not np.asarray(check.mismatch).any()
    # Without the deviation floor the chi-square alone alarms at about its p limit.
    alone = sample_ratio(n - held, held, share=0.5, min_deviation=0.0)
    assert np.asarray(alone.mismatch).mean() <= 0.001 + margin(0.001, 1000)


def test_the_hashed_holdout_of_a_million_keys_passes_the_ratio_check() -> None:
    keys = np.array([f"A{i:07d}" for i in range(1_000_000)], dtype=object)
    held = holdout_mask(keys, salt="spring-winback", share=0.5)
    check = sample_ratio(int((~held).sum()), int(held.sum()), share=0.5)
    assert not check.mismatch


def test_holdout_is_stable_across_refreshes_and_order() -> None:
    keys = np.array([f"A{i:06d}" for i in range(20_000)], dtype=object)
    first = holdout_mask(keys, salt="exp-1", share=0.1)
    rng = np.random.default_rng(20)
    order = rng.permutation(len(keys))[:15_000]  # a later refresh: fewer rows, shuffled
    later = holdout_mask(keys[order], salt="exp-1", share=0.1)
    assert (later == first[order]).all()
    assert abs(first.mean() - 0.1) <= margin(0.1, len(keys))
    other = holdout_mask(keys, salt="exp-2", share=0.1)
    assert (other != first).mean() > 0.1  # a new salt reshuffles


def test_a_larger_share_keeps_everyone_already_held_out() -> None:
    keys = [f"k{i}" for i in range(5000)]
    small = holdout_mask(keys, salt="s", share=0.1)
    large = holdout_mask(keys, salt="s", share=0.2)
    assert (large[small]).all()


@pytest.mark.parametrize("share", [0.0, -0.1, 0.51, 1.0])
def test_holdout_share_outside_bounds_is_refused(share: float) -> None:
    with pytest.raises(SegopsError, match=r"holdout share .* above 0 and at most 0.5"):
        holdout_mask(["a"], salt="s", share=share)


def test_cuped_narrows_the_interval_and_keeps_the_estimate_unbiased() -> None:
    rng = np.random.default_rng(21)
    runs, n_t, n_h = 400, 900, 100
    pre_t = rng.normal(10, 3, size=(runs, n_t))
    pre_h = rng.normal(10, 3, size=(runs, n_h))
    y_t = pre_t + rng.normal(0.5, 1, size=(runs, n_t))
    y_h = pre_h + rng.normal(0.0, 1, size=(runs, n_h))
    plain = [compare(y_t[i], y_h[i]) for i in range(runs)]
    cuped = [
        compare(y_t[i], y_h[i], treatment_pre=pre_t[i], holdout_pre=pre_h[i]) for i in range(runs)
    ]
    width_plain = np.mean([c.diff_high - c.diff_low for c in plain])
    width_cuped = np.mean([c.diff_high - c.diff_low for c in cuped])
    assert width_cuped < 0.5 * width_plain
    assert abs(np.mean([c.diff for c in cuped]) - 0.5) < 0.02
    covered = np.mean([c.diff_low <= 0.5 <= c.diff_high for c in cuped])
    assert covered >= 1 - ALPHA - margin(1 - ALPHA, runs)
    assert cuped[0].cuped_variance_reduction > 0.8


def test_the_always_valid_interval_is_wider_than_the_fixed_one() -> None:
    rng = np.random.default_rng(22)
    result = compare(rng.normal(1, 1, 5000), rng.normal(1, 1, 500))
    assert result.seq_diff_low < result.diff_low < result.diff_high < result.seq_diff_high
    assert result.seq_lift_low < result.lift_low < result.lift_high < result.seq_lift_high


def test_a_readout_needs_both_arms() -> None:
    with pytest.raises(SegopsError, match="at least 2 entities in each arm"):
        compare(np.ones(10), np.ones(1))


def test_too_small_a_segment_is_refused_with_the_numbers() -> None:
    plan = plan_experiment(
        kind="proportion", baseline=0.2, sd=0.4, mde=0.1, share=0.1, available=5000
    )
    assert not plan.enough
    assert plan.needed > 5000
    message = plan.shortfall("trial-users")
    assert f"{plan.needed:,}" in message and "5,000" in message and "trial-users" in message


def test_holm_and_benjamini_hochberg_correct_several_kpis() -> None:
    adjusted, reject = adjust_pvalues([0.01, 0.04, 0.03], method="holm")
    assert adjusted == pytest.approx([0.03, 0.06, 0.06])
    assert reject == [True, False, False]
    adjusted, reject = adjust_pvalues([0.01, 0.04, 0.03], method="fdr_bh")
    assert adjusted == pytest.approx([0.03, 0.04, 0.04])
    assert reject == [True, True, True]


def test_observational_reading_uses_control_limits_and_no_lift() -> None:
    reading = observational([0.20, 0.21, 0.19, 0.20], 0.26)
    assert reading.label == "observational"
    assert reading.outside_limits
    assert "lift" not in reading.to_dict()
    assert not observational([0.20, 0.21, 0.19, 0.20], 0.205).outside_limits
    with pytest.raises(SegopsError, match="at least 2 snapshots before"):
        observational([0.2], 0.3)

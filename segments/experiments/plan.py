"""Planning: how many entities an experiment needs, and a refusal when it has fewer.

The minimum detectable effect (``mde``) is relative to the baseline: 0.05 means a 5 %
change of the KPI's mean (of its rate, for a proportion). The effect size is the change
over the standard deviation the readout's (Welch, unpooled) test will see: for a mean,
the KPI's standard deviation among members; for a proportion, the two rates' Bernoulli
variances weighted by the split (``sigma^2 = (v_h + v_t / r) / (1 + 1 / r)`` with
``r = treatment / holdout``), so the plan matches the test it is read with.
``statsmodels.stats.power.NormalIndPower`` solves for the holdout arm's size at the
declared alpha and power with the arms in the ratio of the split, two-sided.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from segments.errors import SegopsError
from segments.experiments.assign import check_share

Kind = Literal["mean", "proportion"]
ALPHA = 0.05
POWER = 0.8


@dataclass(frozen=True)
class Plan:
    """What an experiment needs and what it has."""

    kind: Kind
    baseline: float
    sd: float
    mde: float
    share: float
    alpha: float
    power: float
    effect_size: float
    needed_holdout: int
    needed_treatment: int
    available: int

    @property
    def needed(self) -> int:
        return self.needed_holdout + self.needed_treatment

    @property
    def enough(self) -> bool:
        return self.available >= self.needed

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "needed": self.needed, "enough": self.enough}

    def shortfall(self, segment: str) -> str:
        """The one-line refusal naming the numbers."""
        return (
            f"segment {segment!r} is too small for this experiment: detecting a "
            f"{self.mde:.1%} change of {self.baseline:.4g} at alpha {self.alpha} and power "
            f"{self.power} with a {self.share:.0%} holdout needs {self.needed:,} entities "
            f"({self.needed_holdout:,} held out), it has {self.available:,}"
        )


def effect_size(kind: Kind, *, baseline: float, sd: float, mde: float, ratio: float) -> float:
    """The standardised effect of a relative change ``mde`` of the baseline."""
    if kind == "proportion":
        if not 0 < baseline < 1:
            raise SegopsError(f"a proportion's baseline must be between 0 and 1, not {baseline}")
        target = baseline * (1 + mde)
        if not 0 < target < 1:
            raise SegopsError(
                f"a {mde:.0%} change of the rate {baseline:.3g} leaves the range 0 to 1"
            )
        v_h, v_t = baseline * (1 - baseline), target * (1 - target)
        sigma = math.sqrt((v_h + v_t / ratio) / (1 + 1 / ratio))
        return abs(target - baseline) / sigma
    if sd <= 0 or not math.isfinite(sd):
        raise SegopsError("the KPI does not vary among members: no effect can be measured")
    return abs(mde * baseline) / sd


def plan_experiment(
    *,
    kind: Kind,
    baseline: float,
    sd: float,
    mde: float,
    share: float,
    available: int,
    alpha: float = ALPHA,
    power: float = POWER,
) -> Plan:
    """The sample size for ``mde`` at ``alpha``/``power`` with a ``share`` holdout."""
    share = check_share(share)
    if mde == 0 or not math.isfinite(mde):
        raise SegopsError("the minimum detectable effect must be a non-zero number")
    if baseline == 0:
        raise SegopsError("the KPI's baseline is 0: a relative effect is undefined")
    ratio = (1 - share) / share
    size = effect_size(kind, baseline=baseline, sd=sd, mde=mde, ratio=ratio)
    if size == 0:
        raise SegopsError("the minimum detectable effect rounds to no change")
    from statsmodels.stats.power import NormalIndPower  # heavy: only when planning

    holdout = NormalIndPower().solve_power(
        effect_size=size, alpha=alpha, power=power, ratio=ratio, alternative="two-sided"
    )
    needed_holdout = math.ceil(float(holdout))
    return Plan(
        kind=kind,
        baseline=float(baseline),
        sd=float(sd),
        mde=float(mde),
        share=share,
        alpha=alpha,
        power=power,
        effect_size=float(size),
        needed_holdout=needed_holdout,
        needed_treatment=math.ceil(needed_holdout * ratio),
        available=int(available),
    )

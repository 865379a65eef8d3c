"""Per-segment drift thresholds from the workspace, and a baseline that catches a slow creep
and a full turnover at a stable size."""

from __future__ import annotations

from datetime import timedelta

import pytest

from segments.workspace import WorkspaceError
from tests import factories
from tests.factories import AS_OF

DAYS = [AS_OF - timedelta(days=30), AS_OF - timedelta(days=20), AS_OF - timedelta(days=10), AS_OF]


def with_trial(**extra):
    return [dict(s, **extra) if s["name"] == "trial" else s for s in factories.SEGMENTS]


def grow_trials(fx, count: int) -> None:
    starters = fx.crm.index[fx.crm.plan == "starter"][:count]
    fx.crm.loc[starters, "plan"] = "trial"
    fx.write_data()


def trial(report):
    return next(s for s in report.segments if s.segment == "trial")


def kinds(outcome) -> list[str]:
    return [a.kind for a in outcome.alerts]


@pytest.mark.parametrize(
    ("drift", "alerts"),
    [
        (None, True),
        ({"size_warning_change": 0.8, "size_critical_change": 0.9}, False),
    ],
)
def test_a_segment_s_own_size_thresholds_decide(engine, tmp_path, drift, alerts):
    segments = with_trial(drift=drift) if drift else None
    fx = factories.applied(engine, tmp_path, accounts=600, segments=segments)
    first = trial(fx.refresh(engine, DAYS[0])).size
    grow_trials(fx, int(first * 0.4))
    moved = trial(fx.refresh(engine, DAYS[1]))
    assert moved.size >= first * 1.35
    assert ("size_change" in kinds(moved)) is alerts


def test_a_lower_threshold_alerts_where_the_default_stays_quiet(engine, tmp_path):
    segments = with_trial(drift={"size_warning_change": 0.05, "size_min_members_moved": 5})
    fx = factories.applied(engine, tmp_path, accounts=600, segments=segments)
    first = trial(fx.refresh(engine, DAYS[0])).size
    grow_trials(fx, int(first * 0.1))
    assert "size_change" in kinds(trial(fx.refresh(engine, DAYS[1])))


@pytest.mark.parametrize(
    ("drift", "message"),
    [
        ({"size_warnign_change": 0.3}, "unknown drift threshold 'size_warnign_change'"),
        ({"psi_warning": 0.9}, "psi_warning must not exceed psi_critical"),
        ({"baseline": "last month"}, "drift.baseline"),
        ({"baseline": "rolling", "baseline_window": 1}, "baseline_window"),
        ({"min_size": 4}, "min_size is set on the segment itself"),
    ],
)
def test_bad_drift_settings_are_refused_naming_the_segment(tmp_path, drift, message):
    with pytest.raises(WorkspaceError) as refused:
        factories.build(tmp_path, segments=with_trial(drift=drift)).ws()
    assert "segment 'trial'" in str(refused.value) and message in str(refused.value)


@pytest.mark.parametrize("baseline", ["rolling", DAYS[0].isoformat()])
def test_a_slow_creep_alerts_against_the_baseline(engine, tmp_path, baseline):
    fx = factories.applied(
        engine, tmp_path, accounts=1000, segments=with_trial(drift={"baseline": baseline})
    )
    first = trial(fx.refresh(engine, DAYS[0])).size
    seen = []
    for day in DAYS[1:]:
        grow_trials(fx, int(first * 0.09))
        seen.append(trial(fx.refresh(engine, day)))
    assert all("size_change" not in kinds(o) for o in seen)  # each step is small
    assert "baseline_size" not in kinds(seen[0])
    last = next(a for a in seen[-1].alerts if a.kind == "baseline_size")
    assert last.details["baseline_as_of"] == DAYS[0].isoformat()
    assert last.message.startswith(f"Since the baseline of {DAYS[0].isoformat()}, size rose")


def test_a_full_turnover_at_a_stable_size_alerts_against_the_baseline(engine, tmp_path):
    fx = factories.applied(
        engine, tmp_path, accounts=600, segments=with_trial(drift={"baseline": "rolling"})
    )
    before = trial(fx.refresh(engine, DAYS[0]))
    trials = fx.crm.index[fx.crm.plan == "trial"]
    starters = fx.crm.index[fx.crm.plan == "starter"][: len(trials)]
    fx.crm.loc[trials, "plan"] = "pro"
    fx.crm.loc[starters, "plan"] = "trial"
    fx.write_data()
    fx.refresh(engine, DAYS[1])
    after = trial(fx.refresh(engine, DAYS[2]))
    assert abs(after.size - before.size) < 0.1 * before.size  # a stable size
    assert "size_change" not in kinds(after)
    turnover = next(a for a in after.alerts if a.kind == "turnover")
    assert turnover.severity == "critical" and turnover.details["turnover"] == 1.0


def test_no_baseline_no_baseline_alerts(engine, tmp_path):
    fx = factories.applied(engine, tmp_path, accounts=1000)
    first = trial(fx.refresh(engine, DAYS[0])).size
    for day in DAYS[1:]:
        grow_trials(fx, int(first * 0.09))
        outcome = trial(fx.refresh(engine, day))
    assert not {"baseline_size", "turnover"} & set(kinds(outcome))

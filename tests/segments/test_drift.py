from __future__ import annotations

import json
from datetime import date

import numpy as np
import pandas as pd
import pytest

from segments.drift import (
    Alert,
    DriftThresholds,
    ProfileColumns,
    detect,
    population_stability_index,
    profile,
)
from segments.errors import SegopsError
from segments.schema import Schema
from segments.table import FrameTable


def _profile(frame: pd.DataFrame, reference: dict | None = None, **kwargs) -> dict:
    return profile(frame, list(frame.columns), Schema.from_frame(frame), reference, **kwargs)


def _pair(before: pd.DataFrame, after: pd.DataFrame) -> tuple[dict, dict]:
    """Profiles of two snapshots, the second binned on the first's edges."""
    previous = _profile(before)
    return previous, _profile(after, previous)


def _drift(previous: dict, current: dict, kpis: tuple[str, ...] = ()) -> list[Alert]:
    return detect(
        size=current["size"],
        previous_size=previous["size"],
        stats=current,
        previous_stats=previous,
        kpis=list(kpis),
    )


def _kinds(alerts: list[Alert]) -> list[tuple[str, str]]:
    return [(a.kind, a.severity) for a in alerts]


def _plans(counts: dict[str, int], seed: int = 0) -> pd.DataFrame:
    values = np.concatenate([np.full(n, plan, dtype=object) for plan, n in counts.items()])
    return pd.DataFrame({"plan": np.random.default_rng(seed).permutation(values)})


def _every_kind(n: int, seed: int = 0) -> pd.DataFrame:
    """One column of each kind and dtype a loaded frame can hold, nulls in each."""
    rng = np.random.default_rng(seed)
    gaps = rng.random((6, n)) < 0.1
    plans = pd.Index(["team", "pro", "free", "enterprise", "unused"], dtype="str")
    days = pd.to_timedelta(np.where(gaps[0], np.nan, rng.integers(0, 400, n)), unit="D")
    return pd.DataFrame(
        {
            "mrr": np.where(gaps[1], np.nan, rng.lognormal(4, 1, n)),
            "seats": pd.array(np.where(gaps[2], None, rng.integers(0, 5, n)), dtype="Int64"),
            "plan": pd.Categorical.from_codes(rng.integers(-1, 4, n), categories=plans),
            "region": pd.Series(
                np.where(gaps[3], None, rng.choice(["eu", "us", "apac"], n)), dtype="str"
            ),
            "trial": pd.array(np.where(gaps[4], None, rng.random(n) < 0.3), dtype="boolean"),
            "signup": pd.Timestamp("2025-01-01") + days,
        },
        index=pd.Index([f"a{i}" for i in range(n)], dtype="str"),
    )


# --------------------------------------------------------------------------- profile


def test_profile_of_numbers_has_moments_nulls_and_decile_histogram() -> None:
    frame = pd.DataFrame({"seats": [float(i) for i in range(1, 101)] + [None] * 5})

    stats = _profile(frame)["columns"]["seats"]

    assert (stats["count"], stats["nulls"]) == (100, 5)
    assert stats["mean"] == pytest.approx(50.5)
    assert stats["std"] == pytest.approx(np.std(np.arange(1, 101), ddof=1))
    assert len(stats["edges"]) == 9
    assert stats["hist"] == [10] * 10


def test_profile_reuses_the_reference_edges() -> None:
    before = pd.DataFrame({"seats": np.arange(100.0)})
    after = pd.DataFrame({"seats": np.arange(100.0) + 1000})

    previous, current = _pair(before, after)

    assert current["columns"]["seats"]["edges"] == previous["columns"]["seats"]["edges"]
    assert current["columns"]["seats"]["hist"] == [0] * 9 + [100]


def test_profile_keeps_top_twenty_categories_and_pools_the_rest() -> None:
    frame = _plans({f"p{i:02d}": 30 - i for i in range(25)})

    stats = _profile(frame)["columns"]["plan"]

    n = sum(30 - i for i in range(25))
    assert list(stats["shares"]) == [f"p{i:02d}" for i in range(20)]
    assert stats["shares"]["p00"] == pytest.approx(30 / n)
    assert stats["other"] == pytest.approx(sum(30 - i for i in range(20, 25)) / n)


def test_profile_of_booleans_gives_shares_and_rate() -> None:
    frame = pd.DataFrame({"trial": [True] * 30 + [False] * 70})

    stats = _profile(frame)["columns"]["trial"]

    assert stats["shares"] == {"false": 0.7, "true": 0.3}
    assert stats["mean"] == pytest.approx(0.3)


def test_profile_counts_dates_in_days_since_epoch_or_before_as_of() -> None:
    frame = pd.DataFrame({"signup": pd.to_datetime(["2026-01-01", "2026-01-11", None])})

    epoch = _profile(frame)["columns"]["signup"]
    aged = _profile(frame, as_of=date(2026, 1, 31))["columns"]["signup"]

    assert epoch["mean"] == pytest.approx((pd.Timestamp("2026-01-06") - pd.Timestamp(0)).days)
    assert (aged["mean"], aged["count"], aged["nulls"]) == (25.0, 2, 1)


def test_profile_is_plain_json() -> None:
    frame = pd.DataFrame(
        {
            "seats": [1, 2, None],
            "plan": ["pro", None, "team"],
            "trial": [True, False, True],
            "signup": pd.to_datetime(["2026-01-01", None, "2026-02-01"]),
        }
    )

    stats = _profile(frame)

    assert json.loads(json.dumps(stats, allow_nan=False)) == stats


MASKS = {
    "none": lambda rng, n: np.zeros(n, dtype=bool),
    "all": lambda rng, n: np.ones(n, dtype=bool),
    "one row": lambda rng, n: np.arange(n) == 7,
    "sparse": lambda rng, n: rng.random(n) < 0.05,
    "dense": lambda rng, n: rng.random(n) < 0.7,
}


@pytest.mark.parametrize("with_reference", [False, True], ids=["first", "with-reference"])
@pytest.mark.parametrize("as_of", [None, date(2026, 3, 1)], ids=["epoch", "as-of"])
@pytest.mark.parametrize("mask_name", list(MASKS))
def test_profile_of_a_mask_equals_profile_of_the_member_rows(
    mask_name: str, as_of: date | None, with_reference: bool
) -> None:
    frame = _every_kind(2_000)
    schema = Schema.from_frame(frame)
    columns = list(frame.columns)
    rng = np.random.default_rng(1)
    mask = MASKS[mask_name](rng, len(frame))
    reference = None
    if with_reference:
        reference = profile(frame.iloc[::3], columns, schema, None, as_of=as_of)
    cache = ProfileColumns(frame, schema, as_of=as_of)

    fast = profile(frame, columns, schema, reference, as_of=as_of, mask=mask, cache=cache)
    slow = profile(frame.loc[mask, columns], columns, schema, reference, as_of=as_of)

    assert json.dumps(fast) == json.dumps(slow)  # same keys, numbers and share order
    assert fast["size"] == int(mask.sum())


def test_profile_cache_serves_many_masks() -> None:
    frame = _every_kind(1_000, seed=3)
    schema = Schema.from_frame(frame)
    cache = ProfileColumns(frame, schema)
    rng = np.random.default_rng(4)

    for _ in range(5):
        mask = rng.random(len(frame)) < 0.3
        fast = profile(frame, ["plan", "mrr"], schema, mask=mask, cache=cache)
        assert fast == profile(frame[mask], ["plan", "mrr"], schema)


def test_profiling_one_column_at_a_time_on_a_table_gives_the_whole_profile() -> None:
    """What the refresh does to bound memory: a column at a time, converted columns let go
    in between, over a table rather than a frame."""
    frame = _every_kind(1_500, seed=5)
    schema = Schema.from_frame(frame)
    table = FrameTable(frame)
    columns = list(frame.columns)
    mask = np.random.default_rng(6).random(len(frame)) < 0.4
    reference = profile(frame.iloc[::2], columns, schema, None, as_of=date(2026, 3, 1))
    whole = profile(frame, columns, schema, reference, as_of=date(2026, 3, 1), mask=mask)
    cache = ProfileColumns(table, schema, as_of=date(2026, 3, 1))
    parts: dict = {}
    for column in columns:
        one = profile(
            table, [column], schema, reference, as_of=date(2026, 3, 1), mask=mask, cache=cache
        )
        parts.update(one["columns"])
        cache.forget([column])
        assert cache._converted == {}
    assert json.dumps({**whole, "columns": parts}) == json.dumps(whole)


def test_profile_breaks_category_ties_by_label_not_category_order() -> None:
    plans = pd.Categorical(
        ["team", "pro", "team", "pro", "free"], categories=["team", "pro", "free"]
    )
    frame = pd.DataFrame({"plan": plans})

    stats = _profile(frame)["columns"]["plan"]

    assert list(stats["shares"]) == ["pro", "team", "free"]


def test_profile_puts_a_value_on_a_cut_point_in_the_bin_above() -> None:
    frame = pd.DataFrame({"seats": [0.0, 1.0, 1.0, 2.0, 3.0, 3.0, 3.0, 5.0]})
    reference = {"columns": {"seats": {"kind": "number", "origin": "value", "edges": [1, 2, 3]}}}

    stats = _profile(frame, reference)["columns"]["seats"]

    assert stats["hist"] == [1, 2, 1, 4]


def test_profile_rejects_a_cache_of_another_frame() -> None:
    frame = _every_kind(10)
    schema = Schema.from_frame(frame)
    cache = ProfileColumns(frame.copy(), schema)

    with pytest.raises(ValueError, match="another frame"):
        profile(frame, ["mrr"], schema, mask=np.ones(10, dtype=bool), cache=cache)


def test_profile_rejects_a_mask_of_the_wrong_length() -> None:
    frame = _every_kind(10)

    with pytest.raises(ValueError, match="10 booleans"):
        profile(frame, ["mrr"], Schema.from_frame(frame), mask=np.ones(9, dtype=bool))


def test_profile_names_a_column_missing_from_the_data() -> None:
    frame = pd.DataFrame({"seats": [1, 2]})
    schema = Schema.from_frame(pd.DataFrame({"seats": [1], "plan": ["pro"]}))

    with pytest.raises(SegopsError, match="'plan'"):
        profile(frame, ["plan"], schema, None)


# --------------------------------------------------------------------------- size


def test_size_drop_of_a_third_warns_with_the_numbers() -> None:
    alerts = detect(size=830, previous_size=1204)

    assert _kinds(alerts) == [("size_change", "warning")]
    assert alerts[0].message == "Size fell 31% (1,204 -> 830, -374)"
    assert alerts[0].details["change"] == -374


def test_size_halving_is_critical() -> None:
    alerts = detect(size=1000, previous_size=2000)

    assert _kinds(alerts) == [("size_change", "critical")]


def test_small_segment_halving_does_not_alert() -> None:
    assert detect(size=4, previous_size=8) == []


def test_big_segment_moving_under_twenty_percent_does_not_alert() -> None:
    assert detect(size=9_000, previous_size=10_000) == []


def test_size_below_minimum_alerts() -> None:
    alerts = detect(size=40, previous_size=42, thresholds=DriftThresholds(min_size=50))

    assert _kinds(alerts) == [("min_size", "warning")]
    assert alerts[0].message == "Size 40 is below the minimum of 50"


# --------------------------------------------------------------------------- control limits

STEADY = [1000, 1012, 995, 1008, 990, 1003]


def test_control_limit_needs_five_past_sizes() -> None:
    assert detect(size=1100, previous_size=1003, history_sizes=STEADY[-4:]) == []


def test_size_outside_control_limits_alerts_with_enough_history() -> None:
    alerts = detect(size=1100, previous_size=1003, history_sizes=STEADY[-5:])

    assert _kinds(alerts) == [("control_limit", "warning")]
    assert "above its control limit" in alerts[0].message


def test_size_inside_control_limits_is_quiet() -> None:
    assert detect(size=1020, previous_size=1003, history_sizes=STEADY) == []


def test_flat_history_does_not_alert_on_a_few_members() -> None:
    assert detect(size=505, previous_size=500, history_sizes=[500] * 8) == []


# --------------------------------------------------------------------------- composition


def test_tiny_shift_in_a_large_sample_does_not_alert() -> None:
    rng = np.random.default_rng(5)
    before = pd.DataFrame({"mrr": rng.normal(100, 20, 50_000)})
    after = pd.DataFrame({"mrr": rng.normal(101, 20, 50_000)})

    assert _drift(*_pair(before, after)) == []


def test_psi_from_tiny_categories_stays_under_the_share_floor() -> None:
    tail = [f"new{i}" for i in range(4)]
    before = _plans({"pro": 50_000, "team": 50_000, **dict.fromkeys(tail, 10)})
    after = _plans({"pro": 46_000, "team": 46_000, **dict.fromkeys(tail, 2_000)})

    psi = population_stability_index(
        np.array([50_000, 50_000] + [10] * 4), np.array([46_000, 46_000] + [2_000] * 4)
    )
    assert psi > 0.2
    assert _drift(*_pair(before, after)) == []


def test_small_samples_with_a_big_swing_do_not_alert() -> None:
    before = _plans({"pro": 40, "team": 40})
    after = _plans({"pro": 70, "team": 10})

    assert _drift(*_pair(before, after)) == []


def test_noise_between_samples_of_a_hundred_does_not_alert() -> None:
    rng = np.random.default_rng(11)
    alerts = []
    for _ in range(50):
        before = pd.DataFrame({"mrr": rng.lognormal(4, 1, 120)})
        after = pd.DataFrame({"mrr": rng.lognormal(4, 1, 120)})
        alerts += _drift(*_pair(before, after))

    assert alerts == []


def test_real_category_shift_warns() -> None:
    before = _plans({"pro": 500, "team": 300, "free": 200})
    after = _plans({"pro": 240, "team": 310, "free": 450}, seed=1)

    alerts = _drift(*_pair(before, after))

    assert _kinds(alerts) == [("composition", "warning")]
    assert alerts[0].message.startswith("Composition of plan shifted (PSI 0.")
    assert alerts[0].message.endswith("pro 50% -> 24% (-26 pts)")


def test_large_numeric_shift_is_critical() -> None:
    rng = np.random.default_rng(8)
    before = pd.DataFrame({"mrr": rng.normal(100, 20, 5_000)})
    after = pd.DataFrame({"mrr": rng.normal(130, 20, 5_000)})

    alerts = _drift(*_pair(before, after))

    assert _kinds(alerts) == [("composition", "critical")]
    assert alerts[0].details["psi"] >= 0.5


# --------------------------------------------------------------------------- kpi


def test_kpi_swing_in_a_small_segment_does_not_alert() -> None:
    rng = np.random.default_rng(2)
    before = pd.DataFrame({"nps": rng.normal(5, 3, 12)})
    after = pd.DataFrame({"nps": rng.normal(8, 3, 12)})

    assert _drift(*_pair(before, after), kpis=("nps",)) == []


def test_kpi_tiny_shift_in_a_large_segment_does_not_alert() -> None:
    rng = np.random.default_rng(3)
    before = pd.DataFrame({"mrr": rng.normal(100, 40, 100_000)})
    after = pd.DataFrame({"mrr": rng.normal(103, 40, 100_000)})

    assert _drift(*_pair(before, after), kpis=("mrr",)) == []


def test_kpi_real_shift_warns_with_the_means() -> None:
    rng = np.random.default_rng(4)
    before = pd.DataFrame({"mrr": rng.normal(100, 40, 2_000)})
    after = pd.DataFrame({"mrr": rng.normal(115, 40, 2_000)})

    alerts = _drift(*_pair(before, after), kpis=("mrr",))

    assert _kinds(alerts) == [("kpi", "warning")]
    assert alerts[0].message.startswith("mrr average rose 1")
    assert 0.2 <= alerts[0].details["effect_size"] < 0.5


def test_kpi_large_rate_shift_is_critical() -> None:
    before = pd.DataFrame({"churned": [True] * 100 + [False] * 900})
    after = pd.DataFrame({"churned": [True] * 400 + [False] * 600})

    alerts = _drift(*_pair(before, after), kpis=("churned",))

    assert _kinds(alerts) == [("kpi", "critical")]
    assert alerts[0].message.startswith("churned rate rose from 10.0% to 40.0% (+30.0 pts")


# --------------------------------------------------------------------------- thresholds


def test_thresholds_take_per_segment_overrides() -> None:
    custom = DriftThresholds().with_overrides({"size_warning_change": 0.05, "min_size": 10})

    assert _kinds(detect(size=900, previous_size=1000, thresholds=custom)) == [
        ("size_change", "warning")
    ]


def test_thresholds_reject_an_unknown_name() -> None:
    with pytest.raises(SegopsError, match="unknown drift threshold 'psi'"):
        DriftThresholds().with_overrides({"psi": 0.1})

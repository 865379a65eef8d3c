"""Holdout experiments end to end: plan, start, hold out on each refresh, read out, close."""

from __future__ import annotations

import copy
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from sqlmodel import func, select

from commands import experiments
from commands.learnings import list_learnings
from commands.stats import members
from segments import membership
from segments.errors import SegopsError
from segments.workspace import WorkspaceError
from store.db import session_scope
from store.entities import entity_keys
from store.models import Experiment, ExperimentHoldout, Learning, Segment, SegmentResult
from tests import factories
from tests.factories import SEGMENTS, START

EXPERIMENT = {
    "kpi": "logins_30d",
    "direction": "increase",
    "mde": 0.3,
    "window_days": 30,
    "holdout": 0.3,
    "statement": "An onboarding call gets small teams logging in more.",
}


def with_experiment(**changes) -> list[dict]:
    segments = copy.deepcopy(SEGMENTS)
    smb = next(s for s in segments if s["name"] == "smb")
    smb["experiment"] = {**EXPERIMENT, **changes}
    return segments


@pytest.fixture
def fx(engine, tmp_path):
    fx = factories.build(tmp_path, accounts=1000, segments=with_experiment())
    fx.apply(engine)
    fx.refresh(engine, START)
    return fx


def held_keys(engine, segment: str = "smb") -> set[str]:
    held = experiments.holdout_ids(engine, segment)
    with session_scope(engine) as session:
        keys = entity_keys(session)
    return set(keys[membership.to_ids(held).astype(np.int64)])


def add_logins(fx, keys: list[str], *, first, count: int = 3) -> None:
    rows = [
        {
            "account_id": key,
            "ts": (pd.Timestamp(first) + pd.Timedelta(days=i, hours=9)).strftime(
                "%Y-%m-%d %H:%M:%S"
            ),
            "event": "login",
            "value": 1,
        }
        for key in keys
        for i in range(count)
    ]
    fx.events = (
        pd.concat([fx.events, pd.DataFrame(rows)])
        .sort_values(["ts", "account_id"], kind="stable")
        .reset_index(drop=True)
    )
    fx.write_data()


def count(engine, model) -> int:
    with session_scope(engine) as session:
        return session.exec(select(func.count()).select_from(model)).one()


def test_the_plan_names_the_sample_it_needs(engine, fx) -> None:
    plan = experiments.plan(engine, fx.ws(), "smb")
    assert plan.available == len(members(engine, "smb"))
    assert plan.enough and 0 < plan.needed <= plan.available
    assert plan.needed_holdout == pytest.approx(plan.needed * 0.3, rel=0.02)


def test_a_segment_too_small_is_refused_with_the_numbers(engine, tmp_path) -> None:
    fx = factories.build(tmp_path, accounts=1000, segments=with_experiment(mde=0.02))
    fx.apply(engine)
    fx.refresh(engine, START)
    size = len(members(engine, "smb"))
    with pytest.raises(SegopsError, match=rf"too small .* needs [\d,]+ entities .* has {size:,}"):
        experiments.start(engine, fx.ws(), "smb", by="U111")
    assert count(engine, Experiment) == 0
    assert count(engine, Learning) == 0


def test_start_holds_out_a_hashed_share_that_stays_put_across_refreshes(engine, fx) -> None:
    experiments.start(engine, fx.ws(), "smb", by="U111")
    first = held_keys(engine)
    before = set(members(engine, "smb"))
    assert abs(len(first) / len(before) - 0.3) < 0.06
    assert first <= before
    fx.refresh(engine, START + timedelta(days=10))
    later = held_keys(engine)
    after = set(members(engine, "smb"))
    assert later <= after
    # Members present on both days keep their side; newcomers are assigned by the hash.
    assert first & after == later & before
    assert count(engine, ExperimentHoldout) == 2


def test_syncs_get_no_holdout_for_segments_without_an_experiment(engine, fx) -> None:
    experiments.start(engine, fx.ws(), "smb", by="U111")
    assert len(experiments.holdout_ids(engine, "trial")) == 0
    assert len(experiments.holdout_ids(engine, "smb")) > 0


def test_a_readout_before_any_data_is_refused(engine, fx) -> None:
    experiments.start(engine, fx.ws(), "smb", by="U111")
    with pytest.raises(SegopsError, match="no data after that day to read out yet"):
        experiments.readout(engine, fx.ws(), segment="smb")


def test_a_second_experiment_on_the_segment_is_refused(engine, fx) -> None:
    experiments.start(engine, fx.ws(), "smb", by="U111")
    with pytest.raises(SegopsError, match="already running"):
        experiments.start(engine, fx.ws(), "smb", by="U111")
    assert count(engine, Experiment) == 1


def test_a_real_effect_is_covered_and_recorded_when_the_window_closes(engine, fx) -> None:
    view = experiments.start(engine, fx.ws(), "smb", by="U111")
    held = held_keys(engine)
    treated = sorted(set(members(engine, "smb")) - held)
    add_logins(fx, treated, first=START + timedelta(days=5))
    interim = experiments.readout(engine, fx.ws(), segment="smb", as_of=START + timedelta(days=15))
    assert interim.phase == "interim" and interim.blocked is None
    low, high = interim.kpis[0]["interval"]
    assert low <= 3.0 <= high and low > 0
    assert interim.verdict == "ahead"
    # The always-valid interval is wider than the fixed-horizon one on the same data.
    assert interim.kpis[0]["seq_diff_low"] < interim.kpis[0]["diff_low"]
    assert experiments.close_due(engine, fx.ws(), as_of=START + timedelta(days=20)) == []

    done = experiments.close_due(engine, fx.ws(), as_of=START + timedelta(days=30))
    assert [r.experiment_id for r in done] == [view.id]
    final = done[0]
    assert final.phase == "final" and final.verdict == "validated"
    low, high = final.kpis[0]["interval"]
    assert low <= 3.0 <= high
    (learning,) = [x for x in list_learnings(engine, segment="smb") if x.kind == "experiment"]
    assert learning.verdict == "validated"
    assert learning.effect_text.startswith("logins_30d +") and "validated" in learning.effect_text
    assert learning.decided_by == "U111"
    with session_scope(engine) as session:
        assert session.get(Experiment, view.id).status == "closed"
    assert experiments.close_due(engine, fx.ws(), as_of=START + timedelta(days=31)) == []


def test_no_effect_stays_inconclusive(engine, fx) -> None:
    experiments.start(engine, fx.ws(), "smb", by="U111")
    final = experiments.readout(engine, fx.ws(), segment="smb", as_of=START + timedelta(days=30))
    assert final.verdict == "inconclusive"
    low, high = final.kpis[0]["interval"]
    assert low < 0 < high


def test_a_holdout_lost_from_the_data_blocks_the_readout(engine, fx) -> None:
    experiments.start(engine, fx.ws(), "smb", by="U111")
    held = held_keys(engine)
    lost = sorted(held)[: len(held) // 2]
    fx.crm = fx.crm[~fx.crm["account_id"].isin(lost)]
    fx.events = fx.events[~fx.events["account_id"].isin(lost)]
    fx.write_data()
    result = experiments.readout(engine, fx.ws(), segment="smb", as_of=START + timedelta(days=15))
    assert result.blocked is not None and "sample ratio mismatch" in result.blocked
    assert result.kpis == [] and result.verdict is None
    assert result.ratio["mismatch"] is True


def test_the_experiment_kpi_is_profiled_on_every_refresh(engine, fx) -> None:
    with session_scope(engine) as session:
        smb = session.exec(select(Segment).where(Segment.name == "smb")).one()
        stats = session.exec(
            select(SegmentResult.stats).where(SegmentResult.segment_id == smb.id)
        ).all()
    assert stats and all(set(s["kpis"]) == {"seats", "logins_30d"} for s in stats)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"kpi": "revenue"}, r"experiment: KPI 'revenue' is not in the sources"),
        ({"holdout": 0.6}, r"holdout share 0.6 must be above 0 and at most 0.5"),
        ({"holdout": 0}, r"holdout share 0.0 must be above 0 and at most 0.5"),
        ({"also": ["nps"]}, r"experiment: KPI 'nps' is not in the sources"),
    ],
)
def test_bad_experiment_declarations_are_refused(tmp_path, changes, message) -> None:
    fx = factories.build(tmp_path, segments=with_experiment(**changes))
    with pytest.raises(WorkspaceError, match=message):
        fx.ws()


def test_a_segment_without_a_declaration_cannot_start(engine, fx) -> None:
    with pytest.raises(SegopsError, match="declares no experiment"):
        experiments.start(engine, fx.ws(), "trial", by="U111")


def test_a_stopped_experiment_holds_no_one_out_any_more(engine, fx) -> None:
    experiments.start(engine, fx.ws(), "smb", by="U111")
    with pytest.raises(SegopsError, match="needs a reason"):
        experiments.stop(engine, "smb", by="U111", reason=" ")
    experiments.stop(engine, "smb", by="U222", reason="the call script changed")
    fx.refresh(engine, START + timedelta(days=10))
    assert len(experiments.holdout_ids(engine, "smb")) == 0
    (entry,) = list_learnings(engine, segment="smb")
    assert entry.verdict == "inconclusive"
    assert entry.effect_text == "stopped by U222 on day 0: the call script changed"
    with pytest.raises(SegopsError, match="no experiment is running"):
        experiments.stop(engine, "smb", by="U111", reason="again")


def test_several_kpis_are_read_with_the_holm_correction(engine, tmp_path) -> None:
    fx = factories.build(tmp_path, accounts=1000, segments=with_experiment(also=["seats"]))
    fx.apply(engine)
    fx.refresh(engine, START)
    experiments.start(engine, fx.ws(), "smb", by="U111")
    result = experiments.readout(engine, fx.ws(), segment="smb", as_of=START + timedelta(days=30))
    assert [k["kpi"] for k in result.kpis] == ["logins_30d", "seats"]
    assert result.kpis[0]["primary"] and not result.kpis[1]["primary"]
    raw = sorted(k["p_value"] for k in result.kpis)
    adjusted = sorted(k["adjusted_p"] for k in result.kpis)
    assert adjusted[0] == pytest.approx(min(1.0, 2 * raw[0]))
    assert all(k["adjusted_p"] >= k["p_value"] for k in result.kpis)

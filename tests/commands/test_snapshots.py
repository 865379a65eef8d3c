"""Memberships over time (as of a day, who joined and left), lineage, and segments that
refer to a blocked segment."""

from __future__ import annotations

from datetime import timedelta

import pytest

from commands.refresh import refresh
from commands.snapshots import lineage, member_export
from segments.errors import SegopsError
from tests import factories
from tests.factories import AS_OF

DAY1 = AS_OF - timedelta(days=10)
DAY2 = AS_OF


@pytest.fixture
def fx(engine, tmp_path):
    fx = factories.refreshed(engine, tmp_path, as_of=DAY1)
    starters = fx.crm.index[fx.crm.plan == "starter"][:15]
    trials = fx.crm.index[fx.crm.plan == "trial"][:5]
    fx.crm.loc[starters, "plan"] = "trial"
    fx.crm.loc[trials, "plan"] = "pro"
    fx.write_data()
    fx.refresh(engine, DAY2)
    return fx


def trial_ids(fx, day) -> set[str]:
    crm = fx.crm_at(day)
    return set(crm.index[crm.plan == "trial"])


def test_members_as_of_a_day_read_that_day_s_published_refresh(engine, fx):
    now = member_export(engine, "trial")
    assert (now.as_of, set(now.ids)) == (DAY2.isoformat(), trial_ids(fx, DAY2))
    between = member_export(engine, "trial", as_of=DAY2 - timedelta(days=1))
    assert between.as_of == DAY1.isoformat() and between.version == 1
    assert len(between.ids) != len(now.ids)
    with pytest.raises(SegopsError, match="no published refresh on or before"):
        member_export(engine, "trial", as_of=DAY1 - timedelta(days=1))


def test_joined_and_left_compare_with_the_refresh_before(engine, fx):
    before = set(member_export(engine, "trial", as_of=DAY1).ids)
    after = set(member_export(engine, "trial").ids)
    joined = member_export(engine, "trial", change="joined")
    left = member_export(engine, "trial", change="left")
    assert joined.compared_with == DAY1.isoformat()
    assert set(joined.ids) == after - before and len(joined.ids) >= 15
    assert set(left.ids) == before - after and len(left.ids) == 5
    since = member_export(engine, "trial", change="joined", since=DAY1 + timedelta(days=2))
    assert since.ids == joined.ids
    first = member_export(engine, "trial", as_of=DAY1, change="joined")
    assert first.compared_with is None and set(first.ids) == before


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"change": "stayed"}, "must be joined or left"),
        ({"since": DAY1}, "--since needs --joined or --left"),
        ({"change": "left", "since": DAY2}, "must be before the refresh of"),
    ],
)
def test_bad_requests_are_named(engine, fx, kwargs, message):
    with pytest.raises(SegopsError, match=message):
        member_export(engine, "trial", **kwargs)


def test_lineage_names_sources_features_references_and_dependants(engine, fx):
    view = lineage(engine, fx.ws(), "engaged-trial")
    assert view.sources == ["crm", "product"]
    assert list(view.features) == ["logins_30d"] and view.features["logins_30d"]["agg"] == "count"
    assert view.columns == ["logins_30d", "plan"]
    assert [(r.name, r.version, r.as_of) for r in view.references] == [
        ("trial", 1, DAY2.isoformat())
    ]
    assert view.data_fingerprint and view.as_of == DAY2.isoformat()
    trial = lineage(engine, fx.ws(), "trial")
    assert trial.sources == ["crm"] and trial.features == {}
    assert [d.name for d in trial.dependants] == ["engaged-trial"]
    assert lineage(engine, None, "trial").sources == []


def test_a_segment_referring_to_a_blocked_segment_is_blocked_with_the_reason(engine, tmp_path):
    segments = factories.SEGMENTS.copy()
    segments = [
        dict(s, min_size=100_000, block_on_min_size=True) if s["name"] == "trial" else s
        for s in segments
    ]
    fx = factories.applied(engine, tmp_path, segments=segments)
    report = refresh(engine, fx.ws(), as_of=AS_OF)
    by_name = {s.segment: s for s in report.segments}
    assert by_name["trial"].status == "blocked"
    engaged = by_name["engaged-trial"]
    assert engaged.status == "blocked" and engaged.joined == 0
    assert engaged.quality_failures == [
        "refers to segment 'trial', which is blocked: "
        + next(a.message for a in by_name["trial"].alerts if a.kind == "min_size")
    ]
    assert [a.kind for a in engaged.alerts] == ["quality_reference"]
    assert by_name["smb"].status == "published"
    assert member_export(engine, "engaged-trial").ids == []

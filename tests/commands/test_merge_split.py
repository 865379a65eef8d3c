"""Merging and splitting from the workspace file: the new segment is created as a merge or
a split naming the segments (and versions) it came from, and each source's archive, direct
or proposed, says what it went into."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import func, select

from commands.catalog import history
from commands.errors import Refused
from commands.governance import apply_governed
from commands.proposals import get_proposal
from commands.stats import members
from segments.workspace import WorkspaceError
from store.db import session_scope
from store.models import Proposal, Segment, SegmentOrigin, SegmentVersion
from tests import factories
from tests.factories import APPROVER, OWNER, PROPOSER

DAY1 = factories.AS_OF - timedelta(days=1)


@pytest.fixture
def fx(engine, tmp_path):
    return factories.applied(engine, tmp_path)


def counts(engine) -> dict[str, int]:
    with session_scope(engine) as session:
        return {
            model.__name__: session.exec(select(func.count()).select_from(model)).one()
            for model in (Segment, SegmentVersion, Proposal)
        }


def new_segment(fx, name: str, rule: str, **extra) -> None:
    fx.segments.append(
        {
            "name": name,
            "title": name.title(),
            "tier": "strategic",
            "owner": OWNER,
            "approvers": [APPROVER],
            "rule": rule,
            **extra,
        }
    )


def merged(fx):
    fx.segments[:] = [s for s in fx.segments if s["name"] not in ("enterprise", "smb")]
    new_segment(
        fx, "paying", "plan in ('starter', 'pro', 'enterprise')", merged_from=["enterprise", "smb"]
    )
    fx.write_workspace()
    return fx.ws()


def test_a_merge_creates_the_segment_as_a_merge_and_archives_its_sources_naming_it(engine, fx):
    result = apply_governed(
        engine, merged(fx), user=PROPOSER, reason="one paying segment", approved_by=APPROVER
    )
    assert result.created == ["paying"] and sorted(result.archived) == ["enterprise", "smb"]
    (first,) = history(engine, "paying")
    assert first.change_kind == "merge"
    assert first.reason == "one paying segment (merged from 'enterprise' (v1), 'smb' (v1))"
    for source in ("enterprise", "smb"):
        latest = history(engine, source)[0]
        assert (latest.change_kind, latest.approver) == ("archive", APPROVER)
        assert latest.reason == "one paying segment (merged into 'paying')"


def test_without_approval_the_sources_archives_are_proposed_naming_the_merge(engine, fx):
    result = apply_governed(engine, merged(fx), user=PROPOSER, reason="one paying segment")
    assert result.created == ["paying"] and sorted(result.proposed) == ["enterprise", "smb"]
    for number in result.proposed.values():
        view = get_proposal(engine, number)
        assert view.kind == "archive"
        assert view.reason == "one paying segment (merged into 'paying')"
    assert history(engine, "enterprise")[0].change_kind == "create"


def test_a_split_creates_parts_naming_the_parent_and_the_archive_names_the_parts(engine, fx):
    fx.segments[:] = [s for s in fx.segments if s["name"] != "smb"]
    new_segment(fx, "smb-starter", "plan = 'starter' and seats < 50", split_from="smb")
    new_segment(fx, "smb-pro", "plan = 'pro' and seats < 50", split_from="smb")
    fx.write_workspace()
    result = apply_governed(engine, fx.ws(), user=PROPOSER, reason="two motions", approved_by=OWNER)
    assert sorted(result.created) == ["smb-pro", "smb-starter"] and result.archived == ["smb"]
    part = history(engine, "smb-pro")[0]
    assert (part.change_kind, part.reason) == ("split", "two motions (split from 'smb' (v1))")
    assert history(engine, "smb")[0].reason == "two motions (split into 'smb-starter', 'smb-pro')"
    again = apply_governed(engine, fx.ws(), user=PROPOSER, reason="two motions")
    assert not again.changed and not again.proposed


def test_a_split_may_keep_its_parent(engine, fx):
    new_segment(fx, "trial-team", "plan = 'trial' and seats >= 3", split_from="trial")
    fx.write_workspace()
    result = apply_governed(engine, fx.ws(), user=PROPOSER)
    assert result.created == ["trial-team"] and result.archived == [] and not result.proposed
    assert history(engine, "trial-team")[0].reason == "split from 'trial' (v1)"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda fx: new_segment(fx, "paying", "plan = 'pro'", merged_from=["nothing", "smb"]),
            "segment 'paying': merged_from 'nothing', but the catalog has no segment 'nothing'",
        ),
        (
            lambda fx: new_segment(fx, "paying", "plan = 'pro'", merged_from=["smb", "enterprise"]),
            "segment 'paying' is merged from 'smb', which the file keeps active",
        ),
        (
            lambda fx: new_segment(
                fx, "paying", "plan = 'pro'", merged_from=["smb", "enterprise"], split_from="smb"
            ),
            "merged_from and split_from together",
        ),
    ],
)
def test_a_merge_or_split_that_does_not_fit_the_catalog_is_refused(engine, fx, change, message):
    before = counts(engine)
    change(fx)
    fx.write_workspace()
    with pytest.raises(Refused, match=message):
        apply_governed(engine, fx.ws(), user=PROPOSER, reason="why", approved_by=APPROVER)
    assert counts(engine) == before


def test_merging_a_segment_others_refer_to_is_refused_naming_them(engine, fx):
    fx.segments[:] = [s for s in fx.segments if s["name"] not in ("trial", "smb")]
    new_segment(fx, "small", "plan in ('trial', 'starter')", merged_from=["trial", "smb"])
    fx.write_workspace()
    with pytest.raises(WorkspaceError, match="'engaged-trial': rule: unknown segment 'trial'"):
        fx.ws()


def origins_of(engine, name: str) -> list[tuple[str, str, int]]:
    """(kind, source name, source version) of each segment that fed ``name``."""
    with session_scope(engine) as session:
        target = session.exec(select(Segment).where(Segment.name == name)).one()
        rows = session.exec(
            select(SegmentOrigin, Segment, SegmentVersion)
            .join(Segment, Segment.id == SegmentOrigin.source_segment_id)
            .join(SegmentVersion, SegmentVersion.id == SegmentOrigin.source_version_id)
            .where(SegmentOrigin.segment_id == target.id)
            .order_by(SegmentOrigin.id)
        ).all()
        return [(o.kind, s.name, v.version) for o, s, v in rows]


def test_a_merge_and_a_split_record_which_segments_fed_them(engine, fx):
    apply_governed(
        engine, merged(fx), user=OWNER, reason="one paying segment", approved_by=APPROVER
    )
    assert origins_of(engine, "paying") == [("merge", "enterprise", 1), ("merge", "smb", 1)]
    new_segment(fx, "trial-team", "plan = 'trial' and seats >= 3", split_from="trial")
    fx.write_workspace()
    apply_governed(engine, fx.ws(), user=OWNER, reason="teams", approved_by=APPROVER)
    assert origins_of(engine, "trial-team") == [("split", "trial", 1)]
    assert origins_of(engine, "trial") == []


def test_a_merged_segment_s_first_refresh_is_compared_with_the_union_of_its_sources(engine, fx):
    fx.refresh(engine, DAY1)
    union = set(members(engine, "enterprise")) | set(members(engine, "smb"))
    apply_governed(
        engine, merged(fx), user=OWNER, reason="one paying segment", approved_by=APPROVER
    )
    report = fx.refresh(engine, factories.AS_OF)
    paying = next(s for s in report.segments if s.segment == "paying")
    now = set(members(engine, "paying"))
    assert paying.origin == {"kind": "merge", "sources": ["enterprise", "smb"]}
    assert paying.previous_size == len(union)
    assert (paying.joined, paying.left) == (len(now - union), len(union - now))
    assert not [a for a in paying.alerts if a.kind == "size_change"]  # about the same size


def test_a_split_is_compared_with_its_parent_and_members_outside_it_are_flagged(engine, fx):
    fx.refresh(engine, DAY1)
    parent = set(members(engine, "smb"))
    new_segment(fx, "smb-starter", "plan = 'starter' and seats < 50", split_from="smb")
    new_segment(fx, "starters", "plan in ('starter', 'trial')", split_from="smb")
    fx.write_workspace()
    apply_governed(engine, fx.ws(), user=OWNER, reason="by plan", approved_by=APPROVER)
    report = fx.refresh(engine, factories.AS_OF)
    outcomes = {s.segment: s for s in report.segments}
    part, sloppy = outcomes["smb-starter"], outcomes["starters"]
    assert part.origin == {"kind": "split", "sources": ["smb"]} and part.previous_size is None
    assert (part.joined, part.left) == (len(set(members(engine, "smb-starter")) - parent), 0)
    assert not [a for a in part.alerts if a.kind == "split_outside"]
    outside = len(set(members(engine, "starters")) - parent)
    assert outside > 0
    (flag,) = [a for a in sloppy.alerts if a.kind == "split_outside"]
    assert flag.message == f"{outside} members are not in 'smb', which this segment was split from"

"""Numbers carry their definition: every result knows the version that computed it, the
read side says so, and a refresh after a definition change reports the change instead of
raising drift for what the change itself explains."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from commands.catalog import history, list_segments, show_segment
from commands.proposals import decide, propose
from commands.refresh import definition_change_text
from commands.stats import trend_versions
from store.db import session_scope
from store.models import OutboxMessage, SegmentResult, SegmentVersion
from store.results import past_sizes
from tests import factories
from tests.factories import AS_OF, OWNER, PROPOSER

WIDER = "plan in ('trial', 'starter')"
DAY2 = AS_OF + timedelta(days=1)


@pytest.fixture
def fx(engine, tmp_path):
    return factories.refreshed(engine, tmp_path, as_of=AS_OF - timedelta(days=1))


def approve(engine, fx, *, kind="edit", changes=None) -> int:
    view = propose(
        engine,
        fx.ws(),
        segment="trial",
        proposer=PROPOSER,
        kind=kind,
        changes=changes or {"rule": WIDER},
        reason="starters behave like trials",
    )
    decide(engine, proposal_id=view.id, user=OWNER, approve=True, via="cli")
    return view.id


def outcome(report, name="trial"):
    return next(s for s in report.segments if s.segment == name)


def test_after_an_approved_change_the_numbers_say_they_are_the_old_definition_s(engine, fx):
    proposal = approve(engine, fx)
    shown = show_segment(engine, "trial", privacy_floor=1)
    assert shown["version"] == 2
    stats = shown["stats"]
    assert (stats["version"], stats["current_version"], stats["definition_changed"]) == (
        1,
        2,
        True,
    )
    from commands.proposals import get_proposal

    assert stats["expected_size"] == get_proposal(engine, proposal).impact["size_after"]
    assert stats["expected_size"] > stats["size"]
    row = next(r for r in list_segments(engine, privacy_floor=1) if r.name == "trial")
    assert (row.version, row.size_version) == (2, 1)


def test_a_refresh_after_the_change_reports_it_and_raises_no_drift_for_it(engine, fx):
    proposal = approve(engine, fx)
    before = show_segment(engine, "trial", privacy_floor=1)["stats"]
    report = fx.refresh(engine, AS_OF)
    trial = outcome(report)
    assert trial.status == "published"
    change = trial.definition_change
    assert change == {
        "from_version": 1,
        "to_version": 2,
        "previous_size": before["size"],
        "size": trial.size,
        "expected_size": before["expected_size"],
        "proposal": proposal,
    }
    assert trial.size > 1.2 * before["size"]  # a move that would be drift under one definition
    assert [a.kind for a in trial.alerts if a.kind in ("size_change", "control_limit")] == []
    assert definition_change_text(change).startswith(
        f"definition changed (v1 -> v2): {before['size']:,} -> {trial.size:,}, "
    )
    assert f"from proposal #{proposal}'s preview" in definition_change_text(change)
    assert (
        report.to_dict()["segments"][[s.segment for s in report.segments].index("trial")][
            "definition_changed"
        ]
        == change
    )
    with session_scope(engine) as session:
        summary = session.exec(
            select(OutboxMessage).where(
                OutboxMessage.kind.in_(("refresh_summary", "refresh_detail"))  # type: ignore[attr-defined]
            )
        ).all()
    texts = [str(m.blocks) for m in summary if "Definition changed" in str(m.blocks)]
    assert len(texts) == 1 and "v1 → v2" in texts[0] and "`trial`" in texts[0]
    stats = show_segment(engine, "trial", privacy_floor=1)["stats"]
    assert (stats["version"], stats["definition_changed"]) == (2, False)


def test_a_size_far_from_the_proposal_s_preview_is_still_drift(engine, fx):
    approve(engine, fx)
    pros = fx.crm.index[fx.crm.plan == "pro"][:60]
    fx.crm.loc[pros, "plan"] = "starter"
    fx.write_data()
    trial = outcome(fx.refresh(engine, AS_OF))
    assert trial.definition_change is not None
    assert trial.size >= trial.definition_change["expected_size"] + 50
    assert "size_change" in [a.kind for a in trial.alerts]


def test_a_persona_edit_is_not_a_definition_change(engine, fx):
    approve(engine, fx, kind="persona", changes={"persona": {"summary": "Teams on a trial"}})
    trials = fx.crm.index[fx.crm.plan == "starter"][:60]
    fx.crm.loc[trials, "plan"] = "trial"
    fx.write_data()
    trial = outcome(fx.refresh(engine, AS_OF))
    assert trial.definition_change is None
    assert "size_change" in [a.kind for a in trial.alerts]
    assert show_segment(engine, "trial", privacy_floor=1)["stats"]["definition_changed"] is False


def test_history_and_trend_name_the_version_behind_each_number(engine, fx):
    first = show_segment(engine, "trial", privacy_floor=1)["stats"]["size"]
    approve(engine, fx)
    second = outcome(fx.refresh(engine, AS_OF)).size
    versions = {v.version: v for v in history(engine, "trial", privacy_floor=1)}
    assert (versions[1].refreshes, versions[1].last_size) == (1, first)
    assert (versions[2].refreshes, versions[2].last_size, versions[2].last_as_of) == (
        1,
        second,
        AS_OF.isoformat(),
    )
    assert history(engine, "trial", privacy_floor=10_000)[0].last_size is None
    assert [
        (p["size"], p["version"]) for p in trend_versions(engine, "trial", privacy_floor=1)
    ] == [
        (first, 1),
        (second, 2),
    ]


def test_control_limits_use_only_the_same_definition_s_past(engine, fx):
    approve(engine, fx)
    fx.refresh(engine, AS_OF)
    fx.refresh(engine, DAY2)
    with session_scope(engine) as session:
        rows = session.exec(
            select(SegmentResult.version_id, SegmentVersion.version)
            .join(SegmentVersion, SegmentVersion.id == SegmentResult.version_id)
            .where(SegmentVersion.version == 2)
        ).all()
        v2 = {r[0] for r in rows}
        segment_id = session.exec(
            select(SegmentResult.segment_id).where(SegmentResult.version_id.in_(v2))
        ).first()
        every = past_sizes(session, segment_id=segment_id, limit=12)
        same = past_sizes(session, segment_id=segment_id, limit=12, version_ids=v2)
        earlier = past_sizes(session, segment_id=segment_id, limit=12, before=DAY2)
    assert len(every) == 3 and len(same) == 2 and len(earlier) == 2
    assert same == every[1:]


def test_a_preview_under_the_privacy_floor_is_not_told_by_the_notice(engine, fx):
    from briefs.wording import definition_notice
    from commands.persona import brief_context
    from commands.proposals import get_proposal
    from commands.settings import Settings

    proposal = approve(engine, fx, changes={"rule": "plan = 'trial' and seats >= 4"})
    preview = get_proposal(engine, proposal).impact["size_after"]
    assert 0 < preview < 40
    floor = preview + 1
    stats = show_segment(engine, "trial", privacy_floor=floor)["stats"]
    assert stats["size"] >= floor and stats["expected_size"] is None
    assert definition_notice(stats) == "definition changed since last refresh (v1 -> v2)"
    row = next(r for r in list_segments(engine, privacy_floor=floor) if r.name == "trial")
    assert row.definition_changed and row.expected_size is None
    brief = brief_context(engine, "trial", settings=Settings(SEGOPS_PRIVACY_FLOOR=floor))
    assert brief["stats"]["definition_changed"] and brief["stats"]["expected_size"] is None
    shown = show_segment(engine, "trial", privacy_floor=1)["stats"]
    assert definition_notice(shown).endswith(f", preview: {preview:,} members")

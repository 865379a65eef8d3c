"""The learnings library: entries for applied changes and experiments, observational
readings when a change's window closes, notes, search, and briefs citing them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import func, select

from commands import learnings
from commands.persona import brief_context
from commands.proposals import decide, propose
from commands.settings import Settings
from segments.errors import SegopsError
from store.db import session_scope
from store.models import Learning
from tests import factories
from tests.factories import APPROVER, OWNER, PROPOSER, START

HYPOTHESIS = {
    "kpi": "seats",
    "direction": "increase",
    "mde": 0.1,
    "window_days": 10,
    "statement": "Bigger teams expand faster.",
}


@pytest.fixture
def fx(engine, tmp_path):
    return factories.applied(engine, tmp_path)


def count(engine) -> int:
    with session_scope(engine) as session:
        return session.exec(select(func.count()).select_from(Learning)).one()


def test_creating_the_catalog_records_no_learning(engine, fx) -> None:
    assert count(engine) == 0


def test_a_yaml_change_with_a_hypothesis_becomes_a_learning(engine, fx) -> None:
    fx.segment("smb")["rule"] = "plan in ('starter', 'pro') and seats < 40"
    fx.segment("smb")["hypothesis"] = HYPOTHESIS
    fx.write_workspace()
    fx.apply(engine, reason="tighter mid-size cut", author="U444")
    (entry,) = learnings.list_learnings(engine, segment="smb")
    assert entry.kind == "change"
    before, after = entry.title.removeprefix("rule: ").split(" -> ")
    assert "seats < 50" in before and "seats < 40" in after
    assert entry.reason == "tighter mid-size cut"
    assert entry.decided_by == "U444"
    assert entry.hypothesis["kpi"] == "seats"
    assert entry.effect_text is None


def test_an_approved_proposal_records_who_decided_and_drops_an_old_hypothesis(engine, fx) -> None:
    view = propose(
        engine,
        fx.ws(),
        segment="smb",
        proposer=PROPOSER,
        kind="edit",
        changes={"rule": "plan = 'pro' and seats < 50", "hypothesis": HYPOTHESIS},
        reason="pro teams only",
    )
    decide(engine, proposal_id=view.id, user=OWNER, approve=True, via="button")
    first = learnings.list_learnings(engine, segment="smb")[0]
    assert first.decided_by == OWNER and first.reason == "pro teams only"
    assert first.hypothesis["statement"] == "Bigger teams expand faster."
    second = propose(
        engine,
        fx.ws(),
        segment="smb",
        proposer=PROPOSER,
        kind="edit",
        changes={"rule": "plan = 'pro' and seats < 45"},
        reason="a little smaller",
    )
    decide(engine, proposal_id=second.id, user=APPROVER, approve=True, via="button")
    newest = learnings.list_learnings(engine, segment="smb")[0]
    assert newest.decided_by == APPROVER
    assert newest.hypothesis == {}  # the first change's hypothesis is not carried over


def test_a_change_window_closes_with_an_observational_reading(engine, fx) -> None:
    fx.refresh(engine, START)
    fx.refresh(engine, START + timedelta(days=5))
    fx.refresh(engine, START + timedelta(days=10))
    fx.segment("smb")["rule"] = "plan in ('starter', 'pro') and seats < 30"
    fx.segment("smb")["hypothesis"] = HYPOTHESIS
    fx.write_workspace()
    fx.apply(engine, reason="smaller teams")
    fx.refresh(engine, START + timedelta(days=15))
    ws = fx.ws()
    assert learnings.close_change_windows(engine, ws, as_of=START + timedelta(days=15)) == 0
    fx.refresh(engine, START + timedelta(days=25))
    assert learnings.close_change_windows(engine, ws, as_of=START + timedelta(days=25)) == 1
    (entry,) = learnings.list_learnings(engine, segment="smb")
    assert entry.verdict == "observational"
    assert entry.effect_text.startswith("observational, no holdout: seats ")
    assert "control limits" in entry.effect_text and "3 snapshots before" in entry.effect_text
    assert "lift" not in entry.effect_text
    assert learnings.close_change_windows(engine, ws, as_of=START + timedelta(days=30)) == 0


def test_notes_are_scrubbed_and_bad_notes_refused(engine, fx) -> None:
    fx.segment("smb")["hypothesis"] = HYPOTHESIS
    fx.write_workspace()
    fx.apply(engine)
    (entry,) = learnings.list_learnings(engine)
    view = learnings.add_note(engine, entry.id, author="U555", text="ask jo@acme.io first")
    assert view.notes[0]["text"] == "ask [email] first"
    with pytest.raises(SegopsError, match="no learning #999"):
        learnings.add_note(engine, 999, author="U555", text="x")
    with pytest.raises(SegopsError, match="the note is empty"):
        learnings.add_note(engine, entry.id, author="U555", text="   ")
    assert len(learnings.show_learning(engine, entry.id).notes) == 1


def test_search_by_segment_or_words(engine, fx) -> None:
    fx.segment("smb")["hypothesis"] = HYPOTHESIS
    fx.segment("trial")["rule"] = "plan = 'trial' and seats >= 2"
    fx.write_workspace()
    fx.apply(engine, reason="drop one-seat trials")
    assert {e.segment for e in learnings.search(engine, "trial")} == {"trial"}
    assert [e.segment for e in learnings.search(engine, "seats >= 2")] == ["trial"]
    assert {e.segment for e in learnings.search(engine, "one-seat trials")} == {"smb", "trial"}
    assert learnings.search(engine, "nothing like this") == []
    assert len(learnings.search(engine, "")) == 2


def test_briefs_cite_the_segments_learnings(engine, fx) -> None:
    fx.segment("enterprise")["hypothesis"] = HYPOTHESIS
    fx.segment("enterprise")["rule"] = "plan = 'enterprise' or seats >= 40"
    fx.write_workspace()
    fx.apply(engine, reason="include 40-seat teams")
    ctx = brief_context(engine, "enterprise", settings=Settings(SEGOPS_PRIVACY_FLOOR=1))
    (cited,) = ctx["learnings"]
    assert "seats >= 40" in cited["title"] and cited["effect"] is None

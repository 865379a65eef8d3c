"""The clinic agenda: what it gathers, the coverage audit from the bitmaps, the weekly post."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from briefs.blocks import blocks_text
from commands.agenda import agenda, queue_agenda
from commands.feedback import add_feedback
from commands.proposals import propose
from commands.stats import members
from store.db import session_scope
from store.models import OutboxMessage
from tests import factories
from tests.factories import PROPOSER, SEGMENTS, START, _segment

NOW = datetime(2026, 4, 6, 9, 30, tzinfo=UTC)  # a Monday


@pytest.fixture
def fx(engine, tmp_path):
    # No enterprise segment: those accounts are in no segment.
    segments = [s for s in copy.deepcopy(SEGMENTS) if s["name"] != "enterprise"] + [
        _segment(
            "smb-twin", "Almost the same", "tactical", "plan in ('starter', 'pro') and seats < 49"
        )
    ]
    fx = factories.applied(engine, tmp_path, segments=segments)
    fx.refresh(engine, START)
    return fx


def test_the_coverage_audit_is_measured_on_the_memberships(engine, fx) -> None:
    ctx = agenda(engine, ws=fx.ws(), now=NOW, privacy_floor=1)
    audit = ctx["coverage"]
    covered = set()
    for name in ("trial", "engaged-trial", "smb", "smb-twin"):
        covered |= set(members(engine, name))
    universe = set(fx.crm_at(START).index)
    assert audit["universe"] == len(universe)
    assert audit["uncovered"] == len(universe - covered) > 0
    assert audit["uncovered_share"] == pytest.approx(len(universe - covered) / len(universe))
    smb, twin = set(members(engine, "smb")), set(members(engine, "smb-twin"))
    assert [(p["a"], p["b"]) for p in audit["pairs"]] == [("smb", "smb-twin")]
    assert audit["pairs"][0]["jaccard"] == pytest.approx(
        len(smb & twin) / len(smb | twin), abs=1e-3
    )
    inside = {(i["inner"], i["outer"]) for i in audit["inside"]}
    assert ("engaged-trial", "trial") in inside
    # Equal memberships are a pair to merge, not one segment inside the other.
    assert (("smb-twin", "smb") in inside) == (twin < smb)
    assert ("trial", "engaged-trial") not in inside


def test_the_agenda_lists_proposals_feedback_and_learnings(engine, fx) -> None:
    propose(
        engine,
        fx.ws(),
        segment="trial",
        proposer=PROPOSER,
        kind="edit",
        changes={"rule": "plan = 'trial' and seats >= 2"},
        reason="one-seat trials never convert",
    )
    for text in ("pricing page confuses them", "pricing is too high", "wants SSO"):
        add_feedback(engine, segment="smb", author="U555", text=text, origin="cli")
    fx.segment("smb")["hypothesis"] = {
        "kpi": "seats",
        "direction": "increase",
        "mde": 0.1,
        "window_days": 14,
    }
    fx.write_workspace()
    fx.apply(engine, reason="track seats")
    ctx = agenda(engine, ws=fx.ws(), since=datetime.now(UTC) - timedelta(hours=1))
    assert [p["segment"] for p in ctx["proposals"]] == ["trial"]
    (themes,) = ctx["feedback"]
    assert themes["segment"] == "smb" and themes["count"] == 3
    assert "pricing" in themes["themes"]
    assert themes["quotes"] == ["pricing page confuses them", "pricing is too high"]
    assert [entry["segment"] for entry in ctx["learnings"]] == ["smb"]


def test_the_weekly_post_is_queued_once_per_week(engine, fx) -> None:
    assert queue_agenda(engine, channel="C999", ws=fx.ws(), now=NOW) >= 1
    assert queue_agenda(engine, channel="C999", ws=fx.ws(), now=NOW + timedelta(hours=2)) == 0
    with session_scope(engine) as session:
        rows = session.exec(
            select(OutboxMessage).where(OutboxMessage.kind == "clinic_agenda")
        ).all()
    assert {r.channel for r in rows} == {"C999"}
    for block in rows[0].blocks:
        if block["type"] == "actions":  # Slack wants action ids unique within a block
            ids = [e["action_id"] for e in block["elements"]]
            assert len(ids) == len(set(ids))
    text = blocks_text(rows[0].blocks)
    assert "Segmentation clinic agenda" in text and "`smb` and `smb-twin` overlap" in text
    assert queue_agenda(engine, channel="C999", ws=fx.ws(), now=NOW + timedelta(days=7)) >= 1

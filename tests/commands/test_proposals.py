"""Change proposals: parsing, validation, impact, authorisation and exactly-once decisions."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import func, select

from commands.catalog import history
from commands.errors import AlreadyDecided, NotAuthorised, Refused, StaleProposal, UnknownSegment
from commands.proposals import (
    decide,
    deciding,
    find_by_message,
    parse_proposal_text,
    pending_for,
    pending_older_than,
    proposal_context,
    propose,
    set_message,
)
from segments.errors import SegopsError
from store.db import session_scope
from store.models import Proposal, SegmentVersion
from tests import factories
from tests.factories import APPROVER, OWNER, PROPOSER

STRANGER = "U999"


@pytest.fixture
def fx(engine, tmp_path):
    return factories.applied(engine, tmp_path)


def count(engine, model) -> int:
    with session_scope(engine) as session:
        return session.exec(select(func.count()).select_from(model)).one()


def edit(engine, segment="trial", *, proposer=PROPOSER, rule=None, ws=None, reason="why not"):
    """A rule edit proposed without a workspace (no data needed, impact not measured)."""
    return propose(
        engine,
        ws,
        segment=segment,
        proposer=proposer,
        kind="edit",
        changes={"rule": rule or "plan = 'trial' and seats >= 2"},
        reason=reason,
    )


# --- parsing the Slack form ------------------------------------------------------------


def test_parse_rule_edit():
    req = parse_proposal_text("trial rule: plan = 'trial' and seats >= 2 reason: one-seat noise")
    assert (req.segment, req.kind, req.changes, req.reason) == (
        "trial",
        "edit",
        {"rule": "plan = 'trial' and seats >= 2"},
        "one-seat noise",
    )


def test_parse_undoes_slack_escapes_and_curly_quotes():
    req = parse_proposal_text("trial rule: plan = \u2018trial\u2019 and seats &gt;= 2 reason: x")
    assert req.changes == {"rule": "plan = 'trial' and seats >= 2"}


def test_parse_ignores_reason_inside_a_quoted_value():
    req = parse_proposal_text("trial rule: note = 'reason: none' reason: real one")
    assert (req.changes["rule"], req.reason) == ("note = 'reason: none'", "real one")


def test_parse_rename_and_archive():
    assert parse_proposal_text("trial rename: trials reason: plural").changes == {"name": "trials"}
    archive = parse_proposal_text("trial archive reason: replaced")
    assert (archive.kind, archive.changes, archive.reason) == (
        "archive",
        {"status": "archived"},
        "replaced",
    )


@pytest.mark.parametrize(
    "text",
    ["trial rule: plan = 'pro'", "trial", "trial rename: a b reason: x", "trial archive now"],
)
def test_parse_errors_carry_the_usage_line(text):
    with pytest.raises(SegopsError, match="usage: NAME rule: NEW RULE reason: WHY"):
        parse_proposal_text(text)


# --- validation ------------------------------------------------------------------------


def test_rule_syntax_error_names_the_position_and_writes_nothing(engine, fx):
    with pytest.raises(SegopsError, match=r"segment 'trial': rule: .* at line 1, column 20"):
        edit(engine, rule="plan = 'trial' and and seats > 1", ws=fx.ws())
    assert count(engine, Proposal) == 0


def test_unknown_column_is_named_with_a_suggestion(engine, fx):
    with pytest.raises(SegopsError, match=r"unknown column 'seets' \(did you mean 'seats'\?\)"):
        edit(engine, rule="seets >= 2", ws=fx.ws())
    assert count(engine, Proposal) == 0


def test_archiving_a_referenced_segment_is_refused_but_renaming_it_is_proposed(engine, fx):
    with pytest.raises(SegopsError, match=r"used by in_segment\(\"trial\"\) in 'engaged-trial'"):
        propose(
            engine,
            fx.ws(),
            segment="trial",
            proposer=PROPOSER,
            kind="archive",
            changes={},
            reason="done",
        )
    assert count(engine, Proposal) == 0
    # A rename rewrites the reference when approved (tests/commands/test_renaming.py).
    view = propose(
        engine,
        fx.ws(),
        segment="trial",
        proposer=PROPOSER,
        kind="rename",
        changes={"name": "trials"},
        reason="plural",
    )
    assert (view.kind, view.status) == ("rename", "pending")


def test_rename_onto_an_existing_name_is_refused(engine, fx):
    with pytest.raises(SegopsError, match="a segment named 'enterprise' already exists"):
        propose(
            engine,
            fx.ws(),
            segment="smb",
            proposer=PROPOSER,
            kind="rename",
            changes={"name": "enterprise"},
            reason="merge",
        )


def test_reference_cycle_is_refused(engine, fx):
    with pytest.raises(SegopsError, match="reference cycle"):
        edit(engine, rule="in_segment('engaged-trial')", ws=fx.ws())


def test_without_a_workspace_unknown_segment_references_are_still_caught(engine, fx):
    with pytest.raises(SegopsError, match="unknown segment 'nope'"):
        edit(engine, rule="in_segment('nope')")


def test_unknown_segment_suggests_the_closest_name(engine, fx):
    with pytest.raises(UnknownSegment, match=r"did you mean 'trial'\?"):
        edit(engine, segment="trail")


def test_missing_reason_is_refused(engine, fx):
    with pytest.raises(SegopsError, match="needs a reason"):
        edit(engine, reason="  ")
    assert count(engine, Proposal) == 0


def test_archiving_a_core_segment_without_a_reason_is_refused(engine, fx):
    with pytest.raises(Refused, match="segment 'enterprise' is core"):
        propose(
            engine,
            None,
            segment="enterprise",
            proposer=PROPOSER,
            kind="archive",
            changes={},
            reason="",
        )


def test_a_change_that_changes_nothing_is_refused(engine, fx):
    with pytest.raises(SegopsError, match="does not change"):
        edit(engine, rule="plan='trial'")


def test_an_edit_cannot_rename(engine, fx):
    with pytest.raises(SegopsError, match="cannot change name"):
        propose(
            engine,
            None,
            segment="trial",
            proposer=PROPOSER,
            kind="edit",
            changes={"name": "x"},
            reason="r",
        )


def test_proposal_is_pending_against_the_current_version(engine, fx):
    view = edit(engine)
    assert (view.status, view.base_version, view.segment) == ("pending", 1, "trial")
    assert view.changes == {"rule": "plan = 'trial' and seats >= 2"}


# --- impact ----------------------------------------------------------------------------


@pytest.fixture
def refreshed(engine, tmp_path):
    return factories.refreshed(engine, tmp_path)


def test_impact_matches_an_independent_pandas_computation(engine, refreshed):
    crm = refreshed.crm_at(factories.AS_OF)
    before = (crm["plan"] == "enterprise") | (crm["seats"] >= 50)
    after = (crm["seats"] >= 30) & (crm["seats"] < 100)
    view = edit(
        engine,
        segment="enterprise",
        rule="seats >= 30 and seats < 100",
        ws=refreshed.ws(),
    )
    assert view.impact == {
        "size_now": int(before.sum()),
        "size_after": int(after.sum()),
        "joined": int((after & ~before).sum()),
        "left": int((before & ~after).sum()),
        "as_of": factories.AS_OF.isoformat(),
    }
    assert view.impact["joined"] > 0 and view.impact["left"] > 0


def test_archive_impact_empties_the_segment(engine, refreshed):
    size = int((refreshed.crm_at(factories.AS_OF)["plan"] == "trial").sum())
    view = propose(
        engine,
        refreshed.ws(),
        segment="engaged-trial",
        proposer=PROPOSER,
        kind="archive",
        changes={},
        reason="folded into trial",
    )
    assert view.impact is not None
    assert view.impact["size_after"] == 0
    assert view.impact["left"] == view.impact["size_now"] <= size


def test_persona_change_is_not_measured(engine, fx):
    view = propose(
        engine,
        fx.ws(),
        segment="trial",
        proposer=PROPOSER,
        kind="persona",
        changes={"persona": {"summary": "Curious small teams"}},
        reason="clearer",
    )
    assert view.impact is None
    assert view.changes == {"persona": {"summary": "Curious small teams"}}


def test_without_a_workspace_impact_is_none(engine, fx):
    view = edit(engine)
    assert view.impact is None
    assert "no workspace" in view.impact_note


# --- authorisation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("segment", "proposer", "decider", "allowed"),
    [
        ("trial", PROPOSER, OWNER, True),
        ("trial", PROPOSER, APPROVER, True),
        ("trial", PROPOSER, STRANGER, False),
        ("trial", PROPOSER, PROPOSER, False),
        ("trial", OWNER, OWNER, True),  # the owner may approve their own non-core change
        ("trial", APPROVER, APPROVER, False),  # an approver may not
        ("enterprise", OWNER, OWNER, False),  # nor may the owner of a core segment
        ("enterprise", OWNER, APPROVER, True),
        ("enterprise", PROPOSER, OWNER, True),
    ],
)
def test_who_may_approve(engine, fx, segment, proposer, decider, allowed):
    rule = "plan = 'enterprise'" if segment == "enterprise" else None
    view = edit(engine, segment, proposer=proposer, rule=rule)
    if allowed:
        decision = decide(engine, proposal_id=view.id, user=decider, approve=True, via="button")
        assert decision.status == "approved"
    else:
        with pytest.raises(NotAuthorised):
            decide(engine, proposal_id=view.id, user=decider, approve=True, via="button")
        assert count(engine, SegmentVersion) == 4


def test_a_stranger_is_told_who_can_decide(engine, fx):
    view = edit(engine)
    expected = f"only the owner @U111 or approvers @U222 can decide on proposal #{view.id}"
    with pytest.raises(NotAuthorised, match=expected):
        decide(engine, proposal_id=view.id, user=STRANGER, approve=False, via="reaction")


def test_an_approver_may_withdraw_their_own_proposal_by_rejecting_it(engine, fx):
    view = edit(engine, proposer=APPROVER)
    decision = decide(engine, proposal_id=view.id, user=APPROVER, approve=False, via="cli")
    assert decision.status == "rejected"


# --- deciding exactly once -------------------------------------------------------------


def test_approve_records_a_version_with_proposer_approver_and_reason(engine, fx):
    view = edit(engine, reason="one-seat trials are noise")
    decision = decide(engine, proposal_id=view.id, user=OWNER, approve=True, via="button")
    latest = history(engine, "trial")[0]
    assert (decision.version, latest.version) == (2, 2)
    assert (latest.change_kind, latest.author, latest.approver, latest.reason) == (
        "edit",
        PROPOSER,
        OWNER,
        "one-seat trials are noise",
    )
    assert latest.rule == "plan = 'trial' and seats >= 2"


def test_approved_rename_renames_the_segment(engine, fx):
    view = propose(
        engine,
        fx.ws(),
        segment="smb",
        proposer=PROPOSER,
        kind="rename",
        changes={"name": "mid-market"},
        reason="clearer",
    )
    decide(engine, proposal_id=view.id, user=APPROVER, approve=True, via="button")
    assert history(engine, "mid-market")[0].change_kind == "rename"
    with pytest.raises(UnknownSegment):
        history(engine, "smb")


def test_reject_writes_no_version_and_records_the_decider(engine, fx):
    view = edit(engine)
    decision = decide(engine, proposal_id=view.id, user=APPROVER, approve=False, via="reaction")
    assert (decision.status, decision.decided_by, decision.decision_via) == (
        "rejected",
        APPROVER,
        "reaction",
    )
    assert datetime.fromisoformat(decision.decided_at) <= datetime.now(UTC)
    assert decision.version is None
    assert count(engine, SegmentVersion) == 4


def test_a_second_decision_is_already_decided_and_applies_nothing(engine, fx):
    view = edit(engine)
    decide(engine, proposal_id=view.id, user=OWNER, approve=True, via="button")
    with pytest.raises(AlreadyDecided, match=f"#{view.id} was already approved by @U111"):
        decide(engine, proposal_id=view.id, user=APPROVER, approve=True, via="reaction")
    assert count(engine, SegmentVersion) == 5


def test_concurrent_decisions_apply_exactly_once(engine, fx):
    view = edit(engine)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def click(user: str, via: str) -> None:
        barrier.wait()
        try:
            decide(engine, proposal_id=view.id, user=user, approve=True, via=via)
            outcomes.append("applied")
        except AlreadyDecided:
            outcomes.append("already")

    threads = [
        threading.Thread(target=click, args=(OWNER, "button")),
        threading.Thread(target=click, args=(APPROVER, "reaction")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["already", "applied"]
    assert count(engine, SegmentVersion) == 5


def race(monkeypatch, action) -> None:
    """Run ``action`` right after the next decision passed its checks, before it claims."""
    real = deciding.authorise

    def authorise_then_race(**kwargs) -> None:
        real(**kwargs)
        monkeypatch.setattr(deciding, "authorise", real)
        action()

    monkeypatch.setattr(deciding, "authorise", authorise_then_race)


def test_a_decision_that_loses_the_race_after_its_checks_applies_nothing(engine, fx, monkeypatch):
    view = edit(engine)
    race(
        monkeypatch,
        lambda: decide(engine, proposal_id=view.id, user=APPROVER, approve=True, via="reaction"),
    )
    with pytest.raises(AlreadyDecided):
        decide(engine, proposal_id=view.id, user=OWNER, approve=True, via="button")
    assert count(engine, SegmentVersion) == 5
    assert history(engine, "trial")[0].approver == APPROVER


def test_a_segment_changed_during_the_decision_makes_it_stale(engine, fx, monkeypatch):
    first = edit(engine, rule="plan = 'trial' and seats >= 2")
    second = edit(engine, rule="plan = 'trial' and seats >= 3")
    race(
        monkeypatch,
        lambda: decide(engine, proposal_id=first.id, user=OWNER, approve=True, via="button"),
    )
    with pytest.raises(StaleProposal):
        decide(engine, proposal_id=second.id, user=OWNER, approve=True, via="button")
    assert [v.rule for v in history(engine, "trial")][:1] == ["plan = 'trial' and seats >= 2"]
    assert count(engine, SegmentVersion) == 5


def test_a_proposal_made_before_the_segment_changed_is_stale(engine, fx):
    first = edit(engine, rule="plan = 'trial' and seats >= 2")
    second = edit(engine, rule="plan = 'trial' and seats >= 3")
    decide(engine, proposal_id=first.id, user=OWNER, approve=True, via="button")
    with pytest.raises(StaleProposal, match=f"proposal #{second.id} is stale"):
        decide(engine, proposal_id=second.id, user=OWNER, approve=True, via="button")
    assert count(engine, SegmentVersion) == 5
    with session_scope(engine) as session:
        assert session.get(Proposal, second.id).status == "stale"


# --- Slack bookkeeping and queries -----------------------------------------------------


def test_a_posted_proposal_is_found_by_its_message(engine, fx):
    view = edit(engine)
    set_message(engine, view.id, "C111", "1700000000.000100")
    assert find_by_message(engine, "C111", "1700000000.000100") == view.id
    assert find_by_message(engine, "C111", "1700000000.000999") is None
    decision = decide(engine, proposal_id=view.id, user=OWNER, approve=False, via="reaction")
    assert (decision.channel, decision.message_ts) == ("C111", "1700000000.000100")


def test_pending_for_lists_what_a_user_may_decide(engine, fx):
    view = edit(engine)
    assert [p.id for p in pending_for(engine, APPROVER)] == [view.id]
    assert pending_for(engine, STRANGER) == []
    decide(engine, proposal_id=view.id, user=OWNER, approve=False, via="cli")
    assert pending_for(engine, OWNER) == []


def test_pending_older_than_finds_forgotten_proposals(engine, fx):
    view = edit(engine)
    assert pending_older_than(engine, 2) == []
    with session_scope(engine) as session:
        row = session.get(Proposal, view.id)
        row.created_at = datetime.now(UTC) - timedelta(days=3)
        session.add(row)
    assert [p.id for p in pending_older_than(engine, 2)] == [view.id]


def test_proposal_context_shows_the_diff_and_renders(engine, fx):
    from briefs.render import render_text

    view = edit(engine)
    decide(engine, proposal_id=view.id, user=OWNER, approve=True, via="button")
    ctx = proposal_context(engine, view.id)
    assert ctx["proposal"]["changes"] == [
        {"field": "rule", "before": "plan = 'trial'", "after": "plan = 'trial' and seats >= 2"}
    ]
    assert (ctx["proposal"]["status"], ctx["proposal"]["applied_version"]) == ("approved", 2)
    assert "seats &gt;= 2" in render_text("proposal", ctx)

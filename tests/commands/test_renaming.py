"""Renaming a segment keeps the segment: its versions, memberships, alerts and feedback
follow the new name, and the rules that refer to it are rewritten in the same change."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import func, select

from commands.catalog import export_workspace, history
from commands.errors import Refused
from commands.feedback import add_feedback, list_feedback
from commands.governance import apply_governed, rename_segment
from commands.proposals import decide, get_proposal, propose
from commands.snapshots import member_export
from commands.stats import members
from segments.workspace import load_workspace
from store.db import session_scope
from store.models import Proposal, Segment, SegmentVersion
from tests import factories
from tests.factories import APPROVER, AS_OF, OWNER, PROPOSER


@pytest.fixture
def fx(engine, tmp_path):
    fx = factories.refreshed(engine, tmp_path)
    add_feedback(engine, segment="trial", author=OWNER, text="they ask for SSO", origin="cli")
    return fx


def counts(engine) -> dict[str, int]:
    with session_scope(engine) as session:
        return {
            model.__name__: session.exec(select(func.count()).select_from(model)).one()
            for model in (Segment, SegmentVersion, Proposal)
        }


def renamed_in_file(fx, *, dependant_rule: str | None = 'in_segment("trials") and logins_30d >= 4'):
    fx.segment("trial").update(name="trials", renamed_from="trial")
    if dependant_rule is not None:
        fx.segment("engaged-trial")["rule"] = dependant_rule
    fx.write_workspace()
    return fx.ws()


def test_a_file_renaming_a_segment_keeps_its_history_members_and_feedback(engine, fx):
    before_members = members(engine, "trial")
    result = apply_governed(
        engine, renamed_in_file(fx), user=PROPOSER, reason="plural", approved_by=OWNER
    )
    assert result.renamed == {"trial": "trials"} and result.archived == []
    assert result.created == [] and result.updated == ["engaged-trial"]
    versions = history(engine, "trials")
    assert [(v.version, v.change_kind, v.approver) for v in versions] == [
        (2, "rename", OWNER),
        (1, "create", None),
    ]
    assert versions[1].refreshes == 1  # the refresh made under the old name stays with it
    assert members(engine, "trials") == before_members
    assert member_export(engine, "trials", as_of=AS_OF).ids == before_members
    assert [f.text for f in list_feedback(engine, segment="trials")] == ["they ask for SSO"]
    with pytest.raises(Exception, match="trial"):
        history(engine, "trial")
    dependant = history(engine, "engaged-trial")[0]
    assert dependant.rule == "in_segment('trials') and logins_30d >= 4"
    assert (dependant.change_kind, dependant.approver) == ("edit", OWNER)
    assert "renamed" in dependant.reason


def test_the_next_refresh_computes_the_renamed_segment_and_its_dependant(engine, fx):
    apply_governed(engine, renamed_in_file(fx), user=PROPOSER, reason="plural", approved_by=OWNER)
    report = fx.refresh(engine, AS_OF + timedelta(days=1))
    outcomes = {o.segment: o for o in report.segments}
    assert "trial" not in outcomes
    assert outcomes["trials"].status == "published"
    assert outcomes["trials"].definition_change is None  # a new name is not a new rule
    assert outcomes["engaged-trial"].status == "published"
    assert set(members(engine, "engaged-trial")) <= set(members(engine, "trials"))
    assert outcomes["trials"].previous_size == len(member_export(engine, "trials", as_of=AS_OF).ids)


def test_a_rename_the_file_cannot_apply_directly_is_proposed_and_approval_rewrites_references(
    engine, fx
):
    before = counts(engine)
    result = apply_governed(engine, renamed_in_file(fx), user=PROPOSER, reason="plural")
    assert list(result.proposed) == ["trial"] and result.renamed == {}
    assert counts(engine)["SegmentVersion"] == before["SegmentVersion"]
    view = get_proposal(engine, result.proposed["trial"])
    assert (view.kind, view.changes) == ("rename", {"name": "trials"})
    decide(engine, proposal_id=view.id, user=OWNER, approve=True, via="cli")
    assert history(engine, "trials")[0].change_kind == "rename"
    assert history(engine, "engaged-trial")[0].rule.startswith("in_segment('trials')")
    again = apply_governed(engine, fx.ws(), user=PROPOSER, reason="plural")
    assert not again.changed and not again.proposed and not again.pending


def test_a_rename_proposed_in_slack_rewrites_the_rules_that_refer_to_it(engine, fx):
    view = propose(
        engine,
        fx.ws(),
        segment="trial",
        proposer=PROPOSER,
        kind="rename",
        changes={"name": "trials"},
        reason="plural",
    )
    decide(engine, proposal_id=view.id, user=OWNER, approve=True, via="button")
    assert history(engine, "engaged-trial")[0].rule.startswith("in_segment('trials')")
    exported = fx.root / "exported.yaml"
    exported.write_text(export_workspace(engine, fx.ws()))
    assert not apply_governed(engine, load_workspace(exported), user=PROPOSER).changed


def test_the_cli_rename_goes_through_the_same_rules(engine, fx):
    result = rename_segment(
        engine,
        fx.ws(),
        old="trial",
        new="trials",
        user=PROPOSER,
        reason="plural",
        approved_by=APPROVER,
    )
    assert result.renamed == {"trial": "trials"}
    assert history(engine, "trials")[0].approver == APPROVER
    assert history(engine, "engaged-trial")[0].rule.startswith("in_segment('trials')")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            {"rule": "plan = 'trial' and seats >= 2"},
            "'trial' is renamed to 'trials' and its rule changed too: apply the rename alone",
        ),
        (
            {"renamed_from": "nothing"},
            "renamed_from 'nothing', but the catalog has no segment 'nothing'",
        ),
    ],
)
def test_a_rename_mixed_with_other_changes_or_of_an_unknown_segment_is_refused(
    engine, fx, edit, message
):
    before = counts(engine)
    fx.segment("trial").update({"name": "trials", "renamed_from": "trial", **edit})
    fx.segment("engaged-trial")["rule"] = 'in_segment("trials") and logins_30d >= 4'
    fx.write_workspace()
    with pytest.raises(Refused, match=message):
        apply_governed(engine, fx.ws(), user=PROPOSER, reason="plural", approved_by=OWNER)
    assert counts(engine) == before


def test_a_dependant_changing_more_than_its_reference_is_refused(engine, fx):
    before = counts(engine)
    ws = renamed_in_file(fx, dependant_rule='in_segment("trials") and logins_30d >= 5')
    with pytest.raises(Refused, match="'engaged-trial' refers to 'trial', which this file renames"):
        apply_governed(engine, ws, user=PROPOSER, reason="plural", approved_by=OWNER)
    assert counts(engine) == before


def test_renaming_to_a_name_in_use_is_refused(engine, fx):
    with pytest.raises(Refused, match="a segment named 'smb' already exists"):
        rename_segment(engine, fx.ws(), old="trial", new="smb", user=PROPOSER, approved_by=OWNER)
    with pytest.raises(Refused, match="must be a slug"):
        rename_segment(engine, fx.ws(), old="trial", new="Trials!", user=PROPOSER)

"""``segops apply`` under the catalog's rules: changes become proposals unless they may be
applied directly, and a file that has not seen the catalog's latest version is refused."""

from __future__ import annotations

import pytest
import yaml
from sqlmodel import func, select

from commands.catalog import export_workspace, history
from commands.errors import NotAuthorised, Refused
from commands.governance import apply_governed
from commands.proposals import decide, find_by_message, get_proposal
from segments.workspace import load_workspace
from store.db import session_scope
from store.models import OutboxMessage, Proposal, SegmentVersion
from tests import factories
from tests.factories import APPROVER, CHANNEL, OWNER, PROPOSER

ENTERPRISE_RULE = "plan = 'enterprise' or seats >= 40"


@pytest.fixture
def fx(engine, tmp_path):
    return factories.applied(engine, tmp_path)


def counts(engine) -> dict[str, int]:
    with session_scope(engine) as session:
        return {
            model.__name__: session.exec(select(func.count()).select_from(model)).one()
            for model in (SegmentVersion, Proposal, OutboxMessage)
        }


def edited(fx, name: str = "enterprise", **changes):
    fx.segment(name).update(changes)
    fx.write_workspace()
    return fx.ws()


def apply(engine, ws, **kwargs):
    kwargs.setdefault("user", PROPOSER)
    kwargs.setdefault("reason", "forty seats is enterprise now")
    return apply_governed(engine, ws, **kwargs)


def test_a_change_to_an_existing_segment_becomes_a_proposal_with_its_impact(engine, fx):
    before = counts(engine)
    result = apply(engine, edited(fx, rule=ENTERPRISE_RULE))
    assert result.updated == [] and list(result.proposed) == ["enterprise"]
    assert counts(engine)["SegmentVersion"] == before["SegmentVersion"]
    view = get_proposal(engine, result.proposed["enterprise"])
    assert (view.kind, view.status, view.proposer) == ("edit", "pending", PROPOSER)
    assert view.changes == {"rule": ENTERPRISE_RULE}
    assert view.impact is not None and view.impact["size_after"] >= view.impact["size_now"]
    with session_scope(engine) as session:
        message = session.exec(select(OutboxMessage).where(OutboxMessage.kind == "proposal")).one()
    assert message.channel == CHANNEL
    actions = [b for b in message.blocks if b["type"] == "actions"]
    assert [e["action_id"] for e in actions[0]["elements"]] == [
        "proposal_approve",
        "proposal_reject",
    ]


def test_applying_the_same_file_again_does_not_propose_twice(engine, fx):
    ws = edited(fx, rule=ENTERPRISE_RULE)
    first = apply(engine, ws)
    again = apply(engine, ws)
    assert again.proposed == {} and again.pending == first.proposed
    assert counts(engine)["Proposal"] == 1


def test_a_proposal_needs_a_reason_and_nothing_is_written_without_one(engine, fx):
    before = counts(engine)
    with pytest.raises(Refused, match="'enterprise' need approval.*--reason"):
        apply(engine, edited(fx, rule=ENTERPRISE_RULE), reason=None)
    assert counts(engine) == before


def test_tiers_configured_to_apply_directly_change_at_once(engine, fx):
    ws = edited(fx, "trial", rule="plan = 'trial' and seats >= 2")
    result = apply(engine, ws, direct_tiers=frozenset({"tactical"}))
    assert result.updated == ["trial"] and result.proposed == {}
    assert history(engine, "trial")[0].author == PROPOSER


def test_a_core_segment_never_applies_directly_even_with_its_tier_lowered_in_the_file(engine, fx):
    ws = edited(fx, tier="tactical", rule=ENTERPRISE_RULE)
    result = apply(engine, ws, direct_tiers=frozenset({"tactical", "strategic"}))
    assert list(result.proposed) == ["enterprise"] and result.updated == []
    assert get_proposal(engine, result.proposed["enterprise"]).changes["tier"] == "tactical"


def test_an_approval_by_a_listed_approver_applies_and_is_recorded(engine, fx):
    result = apply(engine, edited(fx, rule=ENTERPRISE_RULE), approved_by=APPROVER)
    assert result.updated == ["enterprise"] and result.proposed == {}
    latest = history(engine, "enterprise")[0]
    assert (latest.version, latest.author, latest.approver) == (2, PROPOSER, APPROVER)


@pytest.mark.parametrize(
    ("user", "approver", "message"),
    [
        (PROPOSER, "U999", "only the owner @U111 or approvers @U222 can decide on the change"),
        (OWNER, OWNER, "cannot approve your own change to a core segment: ask @U222"),
    ],
)
def test_an_approval_the_rules_do_not_allow_is_refused_and_nothing_written(
    engine, fx, user, approver, message
):
    before = counts(engine)
    with pytest.raises(NotAuthorised, match=message):
        apply(engine, edited(fx, rule=ENTERPRISE_RULE), user=user, approved_by=approver)
    assert counts(engine) == before


def test_the_approver_is_checked_against_the_catalog_not_the_file(engine, fx):
    ws = edited(fx, rule=ENTERPRISE_RULE, approvers=[APPROVER, "U999"])
    with pytest.raises(NotAuthorised):
        apply(engine, ws, approved_by="U999")


def test_removing_a_segment_proposes_to_archive_it(engine, fx):
    fx.segments = [s for s in fx.segments if s["name"] != "smb"]
    fx.write_workspace()
    result = apply(engine, fx.ws())
    view = get_proposal(engine, result.proposed["smb"])
    assert (view.kind, view.changes) == ("archive", {"status": "archived"})
    assert result.archived == []


def test_a_new_segment_is_created_at_once(engine, fx):
    fx.segments.append(factories._segment("pro", "Pro", "strategic", "plan = 'pro'"))
    fx.write_workspace()
    result = apply(engine, fx.ws())
    assert result.created == ["pro"] and result.proposed == {}


# --- files that have not seen the catalog's latest version ----------------------------


def approve_in_slack(engine, fx):
    """A rule change proposed and approved after the file was written (as in Slack)."""
    proposed = apply(engine, edited(fx, rule=ENTERPRISE_RULE))
    decide(
        engine,
        proposal_id=proposed.proposed["enterprise"],
        user=APPROVER,
        approve=True,
        via="button",
    )


def test_re_applying_the_old_file_after_an_approval_is_refused(engine, fx):
    fx.segment("enterprise")["rule"] = factories.SEGMENTS[0]["rule"]
    old = factories.build(fx.root.parent / "old").ws()
    approve_in_slack(engine, fx)
    before = counts(engine)
    with pytest.raises(Refused) as refused:
        apply(engine, old)
    line = str(refused.value)
    assert (
        "segment 'enterprise': the file is based on version 1 but the catalog is at version 2"
        in line
    )
    assert "approved by @U222" in line and "differs from it in rule" in line
    assert "run 'segops export'" in line and "\n" not in line
    assert counts(engine) == before


def test_an_exported_file_edited_becomes_a_proposal(engine, fx):
    approve_in_slack(engine, fx)
    path = fx.root / "exported.yaml"
    exported = yaml.safe_load(export_workspace(engine, fx.ws()))
    enterprise = next(s for s in exported["segments"] if s["name"] == "enterprise")
    assert enterprise["based_on"] == 2
    enterprise["rule"] = "plan = 'enterprise' or seats >= 30"
    path.write_text(yaml.safe_dump(exported, sort_keys=False))
    result = apply(engine, load_workspace(path))
    assert list(result.proposed) == ["enterprise"]


def test_an_exported_file_applies_as_a_no_op(engine, fx):
    approve_in_slack(engine, fx)
    path = fx.root / "exported.yaml"
    path.write_text(export_workspace(engine, fx.ws()))
    result = apply(engine, load_workspace(path))
    assert not result.changed and result.proposed == {} and result.pending == {}


def test_a_file_based_on_an_older_version_is_refused(engine, fx):
    path = fx.root / "exported.yaml"
    path.write_text(export_workspace(engine, fx.ws()))
    approve_in_slack(engine, fx)
    data = yaml.safe_load(path.read_text())
    next(s for s in data["segments"] if s["name"] == "enterprise")["title"] = "Big accounts"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(Refused, match="based on version 1 but the catalog is at version 2"):
        apply(engine, load_workspace(path))


def test_force_with_a_reason_applies_over_an_unseen_version_and_says_so(engine, fx):
    fx.segment("enterprise")["rule"] = factories.SEGMENTS[0]["rule"]
    old = factories.build(fx.root.parent / "old").ws()
    approve_in_slack(engine, fx)
    with pytest.raises(Refused, match="--force needs --reason"):
        apply(engine, old, force=True, reason=None)
    result = apply(engine, old, force=True, reason="the old rule was right", approved_by=OWNER)
    assert result.updated == ["enterprise"]
    latest = history(engine, "enterprise")[0]
    assert latest.version == 3 and latest.approver == OWNER
    assert latest.reason == (
        "the old rule was right (applied over version 2, which the file had not seen)"
    )


def test_a_queued_proposal_is_found_by_its_posted_message(engine, fx):
    result = apply(engine, edited(fx, rule=ENTERPRISE_RULE))
    with session_scope(engine) as session:
        message = session.exec(select(OutboxMessage).where(OutboxMessage.kind == "proposal")).one()
        message.status, message.ts = "sent", "1700000000.000200"
        session.add(message)
    assert find_by_message(engine, CHANNEL, "1700000000.000200") == result.proposed["enterprise"]
    assert find_by_message(engine, CHANNEL, "1700000000.000999") is None


def test_a_file_whose_own_proposal_was_approved_can_be_edited_again(engine, fx):
    approve_in_slack(engine, fx)  # proposed from this file, then approved
    result = apply(engine, edited(fx, rule="plan = 'enterprise' or seats >= 30"))
    assert list(result.proposed) == ["enterprise"]


def test_an_edited_file_after_a_proposal_made_in_slack_is_refused(engine, fx):
    from commands.proposals import propose

    view = propose(
        engine,
        None,
        segment="smb",
        proposer=PROPOSER,
        kind="edit",
        changes={"title": "SMB accounts on starter or pro"},
        reason="clearer",
    )
    decide(engine, proposal_id=view.id, user=OWNER, approve=True, via="button")
    with pytest.raises(Refused, match="segment 'smb': the file is based on version 1"):
        apply(engine, edited(fx, "smb", rule="plan in ('starter', 'pro') and seats < 40"))


def test_a_copy_of_an_older_version_is_refused_whoever_made_the_newer_one(engine, fx):
    old = factories.build(fx.root.parent / "old").ws()
    ws = edited(fx, "trial", rule="plan = 'trial' and seats >= 2")
    apply(engine, ws, direct_tiers=frozenset({"tactical"}))
    with pytest.raises(Refused, match="segment 'trial': the file is based on version 1 but"):
        apply(engine, old, direct_tiers=frozenset({"tactical"}))

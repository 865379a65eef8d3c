"""A proposal carries its hypothesis: ``expect:`` in the one-line form, checked against the
sources, stored with the change and recorded in the learnings when it is approved."""

from __future__ import annotations

import pytest
from sqlmodel import func, select

from commands.learnings import list_learnings
from commands.proposals import decide, parse_proposal_text, propose
from segments.errors import SegopsError
from store.db import session_scope
from store.models import Proposal
from tests import factories
from tests.factories import OWNER, PROPOSER


def test_expect_becomes_the_hypothesis_of_a_rule_change() -> None:
    request = parse_proposal_text(
        "smb rule: seats < 40 reason: focus on small teams expect: seats down 20% in 14 days"
    )
    assert request.reason == "focus on small teams"
    assert request.changes == {
        "rule": "seats < 40",
        "hypothesis": {"kpi": "seats", "direction": "decrease", "mde": 0.2, "window_days": 14},
    }


@pytest.mark.parametrize(
    "text",
    [
        "smb rule: seats < 40 reason: x expect: fewer seats",
        "smb rule: seats < 40 reason: x expect: seats sideways 5% in 3 days",
    ],
)
def test_an_unreadable_expectation_names_the_form(text: str) -> None:
    with pytest.raises(SegopsError, match=r"cannot read the expectation: expect: KPI up\|down"):
        parse_proposal_text(text)


def test_a_hypothesis_on_a_kpi_the_sources_lack_is_refused(engine, tmp_path) -> None:
    fx = factories.applied(engine, tmp_path)
    request = parse_proposal_text("smb rule: seats < 40 reason: x expect: nps up 5% in 30 days")
    with pytest.raises(SegopsError, match="hypothesis: KPI 'nps' is not in the sources"):
        propose(
            engine,
            fx.ws(),
            segment=request.segment,
            proposer=PROPOSER,
            kind=request.kind,
            changes=request.changes,
            reason=request.reason,
        )
    with session_scope(engine) as session:
        assert session.exec(select(func.count()).select_from(Proposal)).one() == 0


def test_an_approved_proposal_records_its_hypothesis(engine, tmp_path) -> None:
    fx = factories.applied(engine, tmp_path)
    request = parse_proposal_text(
        "smb rule: plan = 'pro' and seats < 50 reason: pro only expect: seats up 10% in 28 days"
    )
    view = propose(
        engine,
        fx.ws(),
        segment=request.segment,
        proposer=PROPOSER,
        kind=request.kind,
        changes=request.changes,
        reason=request.reason,
    )
    assert view.changes["hypothesis"]["kpi"] == "seats"
    decide(engine, proposal_id=view.id, user=OWNER, approve=True, via="button")
    (entry,) = list_learnings(engine, segment="smb")
    assert entry.hypothesis["direction"] == "increase" and entry.hypothesis["window_days"] == 28
    assert entry.reason == "pro only" and entry.decided_by == OWNER

"""``/segment merge`` and ``/segment split`` through the real app: the new segment is
created as a merge or split, the sources' archives are proposed with their impact left to
the worker, and only the owners and approvers of the sources may ask."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from commands.catalog import history
from commands.settings import Settings
from store.db import session_scope
from store.models import Job, OutboxMessage, Proposal, Segment
from tests import factories
from tests.commands.test_merge_split import origins_of
from tests.factories import OWNER, PROPOSER
from tests.slack import FakeSlack, bot_settings, post_command

MERGE = "merge paying enterprise smb rule: plan != 'trial' reason: one paying segment"


@pytest.fixture
def fx(engine: Engine, tmp_path) -> factories.Factory:
    return factories.refreshed(engine, tmp_path)


@pytest.fixture
def slack_settings(fake_slack: FakeSlack, engine: Engine, fx: factories.Factory) -> Settings:
    return bot_settings(
        fake_slack,
        engine,
        SEGOPS_WORKSPACE=str(fx.path),
    )


def reply(server, fake: FakeSlack, text: str, user: str) -> str:
    fake.reset()
    post_command(
        server.events_url, "/segment", text, user_id=user, response_url=fake.response_url()
    )
    return fake.wait_for("response_url")[0].body["text"]


def test_an_owner_merges_and_the_archives_are_proposed_for_the_worker_to_measure(
    engine, slack_app, slack_server, fake_slack: FakeSlack
):
    text = reply(slack_server, fake_slack, MERGE, OWNER)
    assert text.startswith(":twisted_rightwards_arrows: Created `paying`, merged from")
    assert "Archiving `enterprise` (#" in text and "is proposed in their channels" in text
    assert history(engine, "paying")[0].change_kind == "merge"
    assert origins_of(engine, "paying") == [("merge", "enterprise", 1), ("merge", "smb", 1)]
    with session_scope(engine) as session:
        pending = session.exec(select(Proposal).where(Proposal.status == "pending")).all()
        assert sorted(p.kind for p in pending) == ["archive", "archive"]
        assert all(p.impact.get("pending") for p in pending), [p.impact for p in pending]
        assert len(session.exec(select(Job).where(Job.kind == "preview")).all()) == 2
        queued = session.exec(select(OutboxMessage).where(OutboxMessage.kind == "proposal"))
        assert len(queued.all()) == 2


def test_someone_who_does_not_own_the_sources_is_refused_and_nothing_is_written(
    engine, slack_app, slack_server, fake_slack: FakeSlack
):
    text = reply(slack_server, fake_slack, MERGE, PROPOSER)
    assert text.startswith(":no_entry: Not authorised: only the owner or approvers of")
    with session_scope(engine) as session:
        assert session.exec(select(Segment).where(Segment.name == "paying")).first() is None
        assert session.exec(select(Proposal)).all() == []


def test_a_split_keeps_its_parent_and_a_malformed_one_is_told_how(
    engine, slack_app, slack_server, fake_slack: FakeSlack
):
    text = reply(
        slack_server,
        fake_slack,
        "split smb-starter smb rule: plan = 'starter' and seats < 50 reason: by plan",
        OWNER,
    )
    assert "Created `smb-starter`, split from `smb`." in text
    assert origins_of(engine, "smb-starter") == [("split", "smb", 1)]
    answer = post_command(slack_server.events_url, "/segment", "split part smb reason: x")
    assert answer.status == 200
    assert "a merge or split needs the new segment's rule" in answer.body.decode()

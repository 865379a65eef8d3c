"""Decisions and alert clicks while another process holds the database: they wait and are
recorded, or the person is told nothing was recorded. A click never silently vanishes.

The "cannot be recorded" cases hold SQLite's write lock: on PostgreSQL a held row lock
makes the decision wait (the first test), it never reports the database busy.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from bot.app import build_app, shutdown
from bot.server import BackgroundServer
from commands import proposals
from commands.settings import Settings
from store.db import session_scope
from store.models import Alert, Proposal, Segment
from tests.bot.conftest import APPROVER, OWNER, REP, database_held
from tests.slack import FakeSlack, post_action, post_event, wait_until

pytestmark = [pytest.mark.usefixtures("catalog"), pytest.mark.slow]


@pytest.fixture
def server(slack_settings: Settings, engine: Engine, request) -> Iterator[BackgroundServer]:
    budget = getattr(request, "param", 20.0)
    app = build_app(slack_settings.model_copy(update={"write_budget": budget}), engine=engine)
    with BackgroundServer(app, threads=8) as running:
        yield running
    shutdown(app)


@pytest.fixture
def pending(engine: Engine) -> tuple[int, str, str]:
    """A pending proposal on ``trial`` by the rep, posted as message ``ts`` in C111."""
    view = proposals.propose(
        engine,
        None,
        segment="trial",
        proposer=REP,
        kind="edit",
        changes={"rule": "plan = 'trial' and seats >= 2"},
        reason="one-seat trials are noise",
    )
    proposals.set_message(engine, view.id, "C111", "1700000001.000100")
    return view.id, "C111", "1700000001.000100"


def status_of(engine: Engine, proposal_id: int) -> str:
    with session_scope(engine) as session:
        return session.get(Proposal, proposal_id).status


def answers(fake: FakeSlack, key: str) -> list[str]:
    return [c.body["text"] for c in fake.calls_to("response_url") if c.path.endswith("/" + key)]


def test_an_approval_clicked_while_the_database_is_held_waits_and_is_applied(
    server, fake_slack: FakeSlack, engine: Engine, pending
):
    proposal_id, channel, ts = pending
    with database_held(engine, seconds=6.5):  # longer than SQLite's own 5 s busy wait
        response = post_action(
            server.events_url,
            "proposal_approve",
            str(proposal_id),
            user_id=APPROVER,
            channel_id=channel,
            message_ts=ts,
            response_url=fake_slack.response_url("click"),
        )
        assert response.status == 200
    wait_until(lambda: status_of(engine, proposal_id) == "approved", timeout=25, message="applied")
    [update] = fake_slack.wait_for("chat.update", timeout=10)
    assert (update.body["channel"], update.body["ts"]) == (channel, ts)
    assert answers(fake_slack, "click") == []  # nothing to tell: the message shows it


SQLITE_ONLY = pytest.mark.parametrize("engine", ["sqlite"], indirect=True)


@SQLITE_ONLY
@pytest.mark.parametrize("server", [1.0], indirect=True)
def test_an_approval_that_cannot_be_recorded_tells_the_approver(
    server, fake_slack: FakeSlack, engine: Engine, pending
):
    proposal_id, channel, ts = pending
    with database_held(engine, seconds=8):
        post_action(
            server.events_url,
            "proposal_approve",
            str(proposal_id),
            user_id=APPROVER,
            channel_id=channel,
            message_ts=ts,
            response_url=fake_slack.response_url("click"),
        )
        told = wait_until(lambda: answers(fake_slack, "click"), timeout=15, message="told")
    assert "was not recorded" in told[0] and f"#{proposal_id}" in told[0]
    assert status_of(engine, proposal_id) == "pending"
    assert fake_slack.calls_to("chat.update") == []


def test_a_reaction_while_the_database_is_held_is_recorded_once_it_is_free(
    server, fake_slack: FakeSlack, engine: Engine, pending
):
    """SQLite: the delivery is answered 503 at once and Slack's retry decides. PostgreSQL:
    the decision waits for the held rows."""
    proposal_id, channel, ts = pending
    reaction = {
        "type": "reaction_added",
        "user": OWNER,
        "reaction": "white_check_mark",
        "item": {"type": "message", "channel": channel, "ts": ts},
        "item_user": "U0BOT",
    }
    with database_held(engine, seconds=3):
        first = post_event(server.events_url, reaction, event_id="EvHeld")
    assert first.status == (503 if engine.dialect.name == "sqlite" else 200)
    if first.status == 503:
        retry = post_event(server.events_url, reaction, event_id="EvHeld", retry_num=1)
        assert retry.status == 200
    wait_until(lambda: status_of(engine, proposal_id) == "approved", timeout=15, message="applied")
    with session_scope(engine) as session:
        assert session.get(Proposal, proposal_id).decision_via == "reaction"


@SQLITE_ONLY
@pytest.mark.parametrize("server", [1.0], indirect=True)
def test_an_alert_acknowledgement_that_cannot_be_recorded_tells_the_owner(
    server, fake_slack: FakeSlack, engine: Engine
):
    with session_scope(engine) as session:
        segment = session.exec(select(Segment)).one()
        alert = Alert(
            segment_id=segment.id,
            kind="size_change",
            severity="warning",
            message="Trial accounts grew 40%",
            details={},
            fingerprint="f" * 64,
        )
        session.add(alert)
        session.flush()
        alert_id = alert.id
    with database_held(engine, seconds=8):
        post_action(
            server.events_url,
            "alert_ack",
            str(alert_id),
            user_id=OWNER,
            response_url=fake_slack.response_url("ack"),
        )
        told = wait_until(lambda: answers(fake_slack, "ack"), timeout=15, message="told")
    assert "was not recorded" in told[0] and f"alert #{alert_id}" in told[0]
    with session_scope(engine) as session:
        assert session.get(Alert, alert_id).status == "open"

"""The clinic agenda's buttons through the real app: they act, and leave the agenda alone."""

from __future__ import annotations

import json
from datetime import date

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from store.db import session_scope
from store.models import Alert, Segment, SegmentResult, Snapshot
from tests.bot.conftest import OWNER, REP
from tests.bot.test_proposals_slack import proposal, propose, replies_to, settle
from tests.slack import FakeSlack, post_action, wait_until

pytestmark = pytest.mark.usefixtures("catalog")

AGENDA = ("C999", "1700000099.000100")  # where the agenda post is


def click_agenda(server, fake: FakeSlack, action: str, value: int, user: str, key: str) -> None:
    response = post_action(
        server.events_url,
        f"{action}_{value}",
        str(value),
        user_id=user,
        channel_id=AGENDA[0],
        message_ts=AGENDA[1],
        response_url=fake.response_url(key),
    )
    assert response.status == 200


def updates(fake: FakeSlack) -> list[tuple[str, str]]:
    return [(c.body["channel"], c.body["ts"]) for c in fake.calls_to("chat.update")]


def test_approve_from_the_agenda_updates_the_proposal_not_the_agenda(
    slack_app, slack_server, fake_slack: FakeSlack, engine: Engine
) -> None:
    proposal_id, channel, ts = propose(slack_server, fake_slack, engine)
    click_agenda(slack_server, fake_slack, "agenda_approve", proposal_id, OWNER, "approve")
    wait_until(lambda: replies_to(fake_slack, "approve"), message="private note")
    settle(slack_app)
    assert proposal(engine, proposal_id).status == "approved"
    assert (
        f"proposal #{proposal_id} on `trial` approved"
        in replies_to(fake_slack, "approve")[0]["text"]
    )
    assert updates(fake_slack) == [(channel, ts)]


def test_a_stranger_cannot_decide_from_the_agenda(
    slack_app, slack_server, fake_slack: FakeSlack, engine: Engine
) -> None:
    proposal_id, _channel, _ts = propose(slack_server, fake_slack, engine)
    click_agenda(slack_server, fake_slack, "agenda_reject", proposal_id, REP, "no")
    wait_until(lambda: replies_to(fake_slack, "no"), message="private note")
    settle(slack_app)
    assert proposal(engine, proposal_id).status == "pending"
    assert "Not authorised" in replies_to(fake_slack, "no")[0]["text"]
    assert updates(fake_slack) == []


def test_acknowledge_from_the_agenda(
    slack_app, slack_server, fake_slack: FakeSlack, engine: Engine
) -> None:
    with session_scope(engine) as session:
        segment = session.exec(select(Segment)).first()
        alert = Alert(
            segment_id=segment.id,
            kind="size_change",
            severity="warning",
            message="Size rose 40%",
            fingerprint="f1",
        )
        session.add(alert)
        session.flush()
        alert_id = alert.id
    click_agenda(slack_server, fake_slack, "agenda_ack", alert_id, OWNER, "ack")
    wait_until(lambda: replies_to(fake_slack, "ack"), message="private note")
    settle(slack_app)
    with session_scope(engine) as session:
        stored = session.get(Alert, alert_id)
        assert stored.status == "acknowledged" and stored.acknowledged_by == OWNER
    assert "acknowledged" in replies_to(fake_slack, "ack")[0]["text"]
    assert updates(fake_slack) == []


def test_open_proposal_from_the_agenda_opens_the_form(
    slack_app, slack_server, fake_slack: FakeSlack, engine: Engine
) -> None:
    with session_scope(engine) as session:
        segment = session.exec(select(Segment)).first()
        snapshot = Snapshot(as_of=date(2026, 3, 1), status="published", data_fingerprint="f")
        session.add(snapshot)
        session.flush()
        result = SegmentResult(
            snapshot_id=snapshot.id,
            segment_id=segment.id,
            version_id=segment.current_version_id,
            status="published",
            size=40,
        )
        session.add(result)
        session.flush()
        alert = Alert(
            segment_id=segment.id,
            result_id=result.id,
            kind="size_change",
            severity="warning",
            message="Size rose 40%",
            fingerprint="f2",
        )
        session.add(alert)
        session.flush()
        alert_id = alert.id
    click_agenda(slack_server, fake_slack, "agenda_propose", alert_id, OWNER, "form")
    wait_until(lambda: fake_slack.calls_to("views.open"), message="form opened")
    settle(slack_app)
    (opened,) = fake_slack.calls_to("views.open")
    assert "Size rose 40%" in json.dumps(opened.body)
    assert updates(fake_slack) == []

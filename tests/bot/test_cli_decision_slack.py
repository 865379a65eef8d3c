"""A proposal decided on the command line updates its Slack message in place, through the
outbox: the message the app posted after ``/segment propose``, and the one ``segops
apply`` queued (edited once it is posted, even when decided before delivery)."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest
import yaml
from slack_sdk import WebClient
from sqlmodel import select

from bot.delivery import deliver_due
from cli.app import main
from store.db import session_scope
from store.models import OutboxMessage, Proposal
from tests.bot.conftest import OWNER, REP
from tests.bot.test_proposals_slack import propose
from tests.slack import BOT_TOKEN, Call, FakeSlack

pytestmark = pytest.mark.usefixtures("catalog")


def cli(monkeypatch: pytest.MonkeyPatch, capsys, engine, *args: str) -> tuple[int, str]:
    monkeypatch.setenv("DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setattr(sys, "argv", ["segops", *args])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def deliver(engine, fake: FakeSlack):
    return deliver_due(engine, WebClient(token=BOT_TOKEN, base_url=fake.url))


def blocks_of(call: Call) -> list[dict[str, Any]]:
    blocks = call.body["blocks"]
    return json.loads(blocks) if isinstance(blocks, str) else blocks


def buttons(call: Call) -> list[str]:
    return [
        e["action_id"] for b in blocks_of(call) if b["type"] == "actions" for e in b["elements"]
    ]


def test_a_cli_approval_replaces_the_buttons_of_the_posted_proposal(
    slack_app, slack_server, fake_slack: FakeSlack, engine, monkeypatch, capsys
):
    number, channel, ts = propose(slack_server, fake_slack, engine)
    code, out = cli(monkeypatch, capsys, engine, "proposals", "approve", str(number), "--as", OWNER)
    assert code == 0, out
    fake_slack.reset()
    stats = deliver(engine, fake_slack)
    (update,) = fake_slack.calls_to("chat.update")
    assert (update.body["channel"], update.body["ts"]) == (channel, ts)
    assert buttons(update) == []
    shown = json.dumps(blocks_of(update))
    assert (
        f"Approved by <@{OWNER}>" in shown and "via cli" in shown and "now definition v2" in shown
    )
    assert stats.sent == 1 and fake_slack.calls_to("chat.postMessage") == []
    fake_slack.reset()
    assert deliver(engine, fake_slack).sent == 0  # updated once


def test_a_proposal_queued_by_apply_and_rejected_before_delivery_is_posted_then_updated(
    slack_app, fake_slack: FakeSlack, engine, monkeypatch, capsys, catalog
):
    data = yaml.safe_load(catalog.read_text())
    data["segments"][0]["rule"] = "plan = 'trial' and seats >= 2"
    catalog.write_text(yaml.safe_dump(data, sort_keys=False))
    code, out = cli(
        monkeypatch, capsys, engine, "apply", str(catalog), "--as", REP, "--reason", "noise"
    )
    assert code == 0, out
    with session_scope(engine) as session:
        (number,) = session.exec(select(Proposal.id)).all()
    code, out = cli(monkeypatch, capsys, engine, "proposals", "reject", str(number), "--as", OWNER)
    assert code == 0, out
    fake_slack.reset()
    deliver(engine, fake_slack)
    (posted,) = fake_slack.calls_to("chat.postMessage")
    assert "proposal_approve" in buttons(posted)
    (update,) = fake_slack.calls_to("chat.update")
    assert update.body["ts"] == posted.reply.body["ts"]
    assert update.body["channel"] == posted.reply.body["channel"]
    assert buttons(update) == [] and f"Rejected by <@{OWNER}>" in json.dumps(blocks_of(update))
    with session_scope(engine) as session:
        edit = session.exec(
            select(OutboxMessage).where(OutboxMessage.kind == "proposal_update")
        ).one()
        assert (edit.status, edit.ts) == ("sent", posted.reply.body["ts"])


def test_a_cli_decision_on_a_proposal_never_posted_queues_nothing(
    engine, monkeypatch, capsys, tmp_path
):
    from commands.proposals import propose as propose_change

    view = propose_change(
        engine,
        None,
        segment="trial",
        proposer=REP,
        kind="edit",
        changes={"rule": "plan = 'trial' and seats >= 2"},
        reason="noise",
    )
    code, out = cli(
        monkeypatch, capsys, engine, "proposals", "approve", str(view.id), "--as", OWNER
    )
    assert code == 0, out
    with session_scope(engine) as session:
        assert session.exec(select(OutboxMessage)).all() == []


def test_an_edit_of_a_message_that_was_never_posted_is_dead_without_a_fallback(
    engine, fake_slack: FakeSlack
):
    from store.outbox import add_edit

    with session_scope(engine) as session:
        add_edit(
            session,
            key="proposal:9:approved",
            kind="proposal_update",
            channel="C111",
            edits="key:proposal:9",
            message={"text": "Proposal #9 approved", "blocks": []},
        )
    stats = deliver(engine, fake_slack)
    assert (stats.dead, stats.fallbacks) == (1, 0)
    assert fake_slack.calls_to("chat.update") == [] and fake_slack.api_calls() == []
    with session_scope(engine) as session:
        row = session.exec(select(OutboxMessage)).one()
        assert (row.status, row.last_error) == ("dead", "the message it edits was never posted")

"""One source of truth across Slack and the command line: a change approved in Slack is
never undone by re-applying an old file, a file edit becomes a proposal posted to Slack,
and the command line decides it under the same rules."""

from __future__ import annotations

import json
import sys

import pytest
import yaml
from slack_sdk import WebClient
from sqlalchemy import Engine

from bot.app import shutdown
from bot.delivery import deliver_due
from cli.app import main
from commands.catalog import history
from store.db import session_scope
from store.models import Proposal
from tests.bot.conftest import APPROVER, OWNER, REP
from tests.slack import BOT_TOKEN, FakeSlack, post_action, post_command, post_event, wait_until

pytestmark = [pytest.mark.usefixtures("catalog"), pytest.mark.slow]

CRM = "account_id,plan,seats\nA1,trial,1\nA2,trial,4\nA3,pro,12\nA4,trial,2\n"


def run(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["segops", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def cli_env(monkeypatch, engine: Engine, catalog):
    (catalog.parent / "crm.csv").write_text(CRM)
    monkeypatch.setenv("DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("SEGOPS_WORKSPACE", str(catalog))
    return catalog


def proposal_row(engine: Engine, proposal_id: int) -> Proposal:
    with session_scope(engine) as session:
        return session.get(Proposal, proposal_id)


def test_slack_approval_then_old_file_refused_then_exported_edit_proposed_and_approved_by_cli(
    slack_app, slack_server, fake_slack: FakeSlack, engine: Engine, cli_env, monkeypatch, capsys
):
    # 1. A change proposed and approved in Slack.
    post_command(
        slack_server.events_url,
        "/segment",
        "propose trial rule: plan = 'trial' and seats >= 2 reason: one-seat trials are noise",
        user_id=REP,
        response_url=fake_slack.response_url("proposed"),
    )
    posted = fake_slack.wait_for("chat.postMessage")[0]
    channel, ts = posted.reply.body["channel"], posted.reply.body["ts"]
    wait_until(lambda: proposal_row(engine, 1).message_ts == ts, message="proposal posted")
    post_action(
        slack_server.events_url,
        "proposal_approve",
        "1",
        user_id=APPROVER,
        channel_id=channel,
        message_ts=ts,
        response_url=fake_slack.response_url("click"),
    )
    wait_until(lambda: proposal_row(engine, 1).status == "approved", message="approved")
    shutdown(slack_app, wait=True)
    assert [v.version for v in history(engine, "trial")] == [2, 1]

    # 2. Re-applying the old file is refused in one line, naming what it would undo.
    code, _, err = run(monkeypatch, capsys, "apply", str(cli_env), "--as", REP, "--reason", "x")
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "the file is based on version 1 but the catalog is at version 2" in err
    assert f"approved by @{APPROVER}" in err and "differs from it in rule" in err
    assert "segops export" in err
    assert [v.version for v in history(engine, "trial")] == [2, 1]

    # 3. Export, edit, apply: a proposal, posted to the segment's channel by the worker.
    exported = cli_env.with_name("exported.yaml")
    assert run(monkeypatch, capsys, "export", "-o", str(exported))[0] == 0
    data = yaml.safe_load(exported.read_text())
    assert data["segments"][0]["based_on"] == 2
    data["segments"][0]["rule"] = "plan = 'trial' and seats >= 3"
    exported.write_text(yaml.safe_dump(data, sort_keys=False))
    code, out, err = run(
        monkeypatch, capsys, "apply", str(exported), "--as", REP, "--reason", "three seats"
    )
    assert code == 0, err
    assert "trial: proposal #2 awaits its owner's approval" in out
    assert [v.version for v in history(engine, "trial")] == [2, 1]
    stats = deliver_due(engine, WebClient(token=BOT_TOKEN, base_url=fake_slack.url))
    assert stats.sent >= 1
    queued = fake_slack.calls_to("chat.postMessage")[-1]
    assert queued.body["channel"] == "C111" and "Proposal #2" in queued.body["text"]

    code, out, _ = run(monkeypatch, capsys, "proposals", "list", "--json")
    (pending,) = json.loads(out)
    assert (pending["id"], pending["proposer"], pending["impact"]) == (
        2,
        REP,
        {
            "size_now": 2,
            "size_after": 1,
            "joined": 0,
            "left": 1,
            "as_of": pending["impact"]["as_of"],
        },
    )

    # 4. The proposer cannot approve; the owner approves by the command line, once.
    code, _, err = run(monkeypatch, capsys, "proposals", "approve", "2", "--as", REP)
    assert code == 1 and "only the owner @U111 or approvers @U222 can decide" in err
    code, out, _ = run(monkeypatch, capsys, "proposals", "approve", "2", "--as", OWNER)
    assert code == 0 and "approved proposal #2: 'trial' is now version 3" in out
    code, _, err = run(monkeypatch, capsys, "proposals", "approve", "2", "--as", OWNER)
    assert code == 1 and "proposal #2 was already approved by @U111" in err
    versions = history(engine, "trial")
    assert [v.version for v in versions] == [3, 2, 1]
    assert (versions[0].author, versions[0].approver, versions[0].reason) == (
        REP,
        OWNER,
        "three seats",
    )
    assert proposal_row(engine, 2).decision_via == "cli"

    # The edited file, applied again, is what the catalog now holds.
    code, out, _ = run(monkeypatch, capsys, "apply", str(exported), "--as", REP)
    assert code == 0 and "nothing to change" in out


def test_an_owner_reacting_to_a_proposal_the_file_made_approves_it(
    slack_app, slack_server, fake_slack: FakeSlack, engine: Engine, cli_env, monkeypatch, capsys
):
    data = yaml.safe_load(cli_env.read_text())
    data["segments"][0]["rule"] = "plan = 'trial' and seats >= 3"
    cli_env.write_text(yaml.safe_dump(data, sort_keys=False))
    code, _, err = run(monkeypatch, capsys, "apply", str(cli_env), "--as", REP, "--reason", "r")
    assert code == 0, err
    deliver_due(engine, WebClient(token=BOT_TOKEN, base_url=fake_slack.url))
    posted = fake_slack.calls_to("chat.postMessage")[-1]
    reaction = {
        "type": "reaction_added",
        "user": OWNER,
        "reaction": "white_check_mark",
        "item": {
            "type": "message",
            "channel": posted.reply.body["channel"],
            "ts": posted.reply.body["ts"],
        },
        "item_user": "U0BOT",
    }
    assert post_event(slack_server.events_url, reaction, event_id="EvFile").status == 200
    wait_until(lambda: proposal_row(engine, 1).status == "approved", message="approved")
    latest = history(engine, "trial")[0]
    assert (latest.version, latest.author, latest.approver) == (2, REP, OWNER)

"""The privacy floor is one policy: the CLI and Slack hide the same small-segment stats."""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path

import pytest
import yaml
from sqlalchemy import Engine

from cli.app import main
from commands.catalog import apply_workspace
from commands.refresh import refresh
from segments.workspace import load_workspace
from tests.bot.conftest import WORKSPACE
from tests.slack import FakeSlack, post_command

CRM = "account_id,plan,seats\nA1,trial,3\nA2,trial,4\nA3,pro,40\n"


@pytest.fixture
def small_trial(engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``trial`` refreshed with 2 members, under the default privacy floor of 10."""
    (tmp_path / "crm.csv").write_text(CRM)
    path = tmp_path / "workspace.yaml"
    path.write_text(yaml.safe_dump(WORKSPACE, sort_keys=False))
    ws = load_workspace(path)
    apply_workspace(engine, ws, reason="set up", author="U111")
    refresh(engine, ws, as_of=date(2026, 6, 30), notify=False)
    monkeypatch.setenv("DATABASE_URL", engine.url.render_as_string(hide_password=False))
    return path


def cli_json(monkeypatch: pytest.MonkeyPatch, capsys, *args: str):
    monkeypatch.setattr(sys, "argv", ["segops", *args, "--json"])
    try:
        main()
    except SystemExit as exc:
        assert not exc.code, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def slack_reply(slack_server, fake_slack: FakeSlack, text: str) -> str:
    fake_slack.reset()
    post_command(slack_server.events_url, "/segment", text, response_url=fake_slack.response_url())
    reply = fake_slack.wait_for("response_url")[0].body
    return reply["text"] + json.dumps(reply.get("blocks") or [])


def test_cli_and_slack_hide_the_same_small_segment_stats(
    small_trial, slack_server, fake_slack: FakeSlack, monkeypatch, capsys
):
    shown = cli_json(monkeypatch, capsys, "show", "trial")
    assert shown["hidden"] is True and shown["privacy_floor"] == 10
    stats = shown["stats"]
    assert (stats["size"], stats["joined"], stats["left"], stats["kpis"]) == (None, None, None, {})
    assert [size for _, size in stats["trend"]] == [None]
    listed = cli_json(monkeypatch, capsys, "list")
    assert [row["size"] for row in listed if row["name"] == "trial"] == [None]
    drift = cli_json(monkeypatch, capsys, "drift", "trial")
    assert [size for _, size in drift["trend"]] == [None]

    show = slack_reply(slack_server, fake_slack, "show trial")
    assert "fewer than 10 members" in show and "joined" not in show
    listing = slack_reply(slack_server, fake_slack, "list")
    assert "size hidden" in listing and "2 members" not in listing
    trend = slack_reply(slack_server, fake_slack, "drift trial")
    assert "fewer than 10" in trend and ": 2" not in trend


def test_at_the_floor_the_size_and_movement_are_shown(small_trial, monkeypatch, capsys):
    monkeypatch.setenv("SEGOPS_PRIVACY_FLOOR", "2")
    shown = cli_json(monkeypatch, capsys, "show", "trial")
    assert (shown["hidden"], shown["stats"]["size"], shown["stats"]["joined"]) == (False, 2, 2)

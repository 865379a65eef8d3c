"""An approved proposal re-records the segment's live/batch classification for the new
version, by button (through the real app) and on the command line, so a live segment
stays live after a change instead of waiting for the next ``segops apply``."""

from __future__ import annotations

import sys

import pytest
from sqlalchemy import Engine

from bot.app import shutdown
from cli.app import main
from commands.catalog import show_segment
from commands.proposals import propose, set_message
from commands.settings import Settings
from tests import live
from tests.slack import FakeSlack, bot_settings, post_action

OTHER = "U0OTHER1"
TS = "1700000001.000100"


@pytest.fixture
def setup(engine: Engine, tmp_path) -> live.LiveSetup:
    built = live.build(tmp_path)
    built.applied(engine)
    return built


@pytest.fixture
def slack_settings(fake_slack: FakeSlack, engine: Engine, setup: live.LiveSetup) -> Settings:
    """The bot's settings, with the live workspace as ``SEGOPS_WORKSPACE``."""
    return bot_settings(
        fake_slack,
        engine,
        SEGOPS_WORKSPACE=str(setup.path),
    )


def proposed(engine: Engine, rule: str) -> int:
    view = propose(
        engine,
        None,
        segment="active",
        proposer=OTHER,
        kind="edit",
        changes={"rule": rule},
        reason="two logins are too few",
    )
    set_message(engine, view.id, "C0LIVE001", TS)
    return view.id


def live_of(engine: Engine) -> dict:
    shown = show_segment(engine, "active", privacy_floor=1)
    return {"version": shown["version"], **shown["live"]}


def test_an_approval_by_button_classifies_the_new_version(
    engine, setup, slack_app, slack_server, fake_slack: FakeSlack
):
    assert live_of(engine)["mode"] == "live"
    number = proposed(engine, "logins_7d >= 3")
    post_action(
        slack_server.events_url,
        "proposal_approve",
        str(number),
        user_id=live.OWNER,
        channel_id="C0LIVE001",
        message_ts=TS,
        response_url=fake_slack.response_url(),
    )
    shutdown(slack_app, wait=True)
    after = live_of(engine)
    assert after["version"] == 2 and after["mode"] == "live", after


def test_an_approval_on_the_command_line_classifies_the_new_version(
    engine, setup, monkeypatch: pytest.MonkeyPatch, capsys
):
    number = proposed(engine, "logins_7d >= 2 and in_segment('pros')")
    monkeypatch.setenv("DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("SEGOPS_WORKSPACE", str(setup.path))
    monkeypatch.setattr(
        sys, "argv", ["segops", "proposals", "approve", str(number), "--as", live.OWNER]
    )
    try:
        main()
    except SystemExit as exc:
        assert not exc.code, capsys.readouterr().err
    after = live_of(engine)
    assert after["version"] == 2 and after["mode"] == "batch"
    assert any("pros" in reason for reason in after["reasons"]), after

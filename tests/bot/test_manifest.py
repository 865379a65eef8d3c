"""The app manifest and the registered listeners describe the same app."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine

from bot.listeners import register_listeners
from bot.listeners.views.modals import feedback_modal, proposal_modal
from bot.server import EVENTS_PATH
from briefs.render import PACKAGE_TEMPLATES
from commands.settings import Settings
from tests.slack import post_command, post_event, post_shortcut

MANIFEST = json.loads((Path(__file__).parents[2] / "manifest.json").read_text())
FEATURES, SETTINGS = MANIFEST["features"], MANIFEST["settings"]
COMMANDS = {c["command"] for c in FEATURES["slash_commands"]}
SHORTCUTS = {s["callback_id"]: s["type"] for s in FEATURES["shortcuts"]}
EVENTS = set(SETTINGS["event_subscriptions"]["bot_events"])


class Recorder:
    """Stands in for the bolt App and records what each ``register`` wires."""

    def __init__(self) -> None:
        self.wired: dict[str, set[str]] = defaultdict(set)

    def __getattr__(self, kind: str):
        def listen(constraint: str, *args: Any, **kwargs: Any):
            self.wired[kind].add(constraint)
            return lambda *functions, **named: None

        return listen


@pytest.fixture
def wired() -> dict[str, set[str]]:
    recorder = Recorder()
    engine = create_engine("sqlite://")  # never queried: registering touches no database
    register_listeners(recorder, engine=engine, settings=Settings())  # type: ignore[arg-type]
    return recorder.wired


def test_every_wired_slash_command_is_in_the_manifest_and_vice_versa(wired):
    assert wired["command"] == COMMANDS


def test_every_wired_shortcut_is_in_the_manifest_and_vice_versa(wired):
    assert wired["shortcut"] == set(SHORTCUTS)


def test_every_wired_event_is_subscribed_and_vice_versa(wired):
    assert wired["event"] == EVENTS


def test_every_button_in_the_brief_templates_has_a_listener(wired):
    # An action id that ends in a template expression (agenda_ack_{{ id }}) is checked
    # with a sample id against the listeners wired by pattern.
    buttons = {
        m.group(1) + ("1" if m.group(2) else "")
        for template in PACKAGE_TEMPLATES.glob("*.j2")
        for m in re.finditer(r"<button action=([A-Za-z0-9_]+)(\{\{)?", template.read_text())
    }
    names = {w for w in wired["action"] if isinstance(w, str)}
    patterns = [w for w in wired["action"] if isinstance(w, re.Pattern)]
    assert buttons
    assert all(b in names or any(p.fullmatch(b) for p in patterns) for b in buttons), buttons


def test_every_modal_we_open_has_a_submission_listener(wired):
    opened = {
        feedback_modal(segments=["trial"], metadata={})["callback_id"],
        proposal_modal(segment={"name": "trial", "rule": "x"}, metadata={})["callback_id"],
    }
    assert wired["view"] == opened


def test_every_request_url_is_the_events_path():
    urls = [c["url"] for c in FEATURES["slash_commands"]]
    urls.append(SETTINGS["event_subscriptions"]["request_url"])
    urls.append(SETTINGS["interactivity"]["request_url"])
    assert {url.split("/", 3)[-1] for url in urls} == {EVENTS_PATH.lstrip("/")}
    assert SETTINGS["interactivity"]["is_enabled"] is True


def test_the_bot_has_the_scopes_its_calls_need():
    scopes = set(MANIFEST["oauth_config"]["scopes"]["bot"])
    needed = {
        "commands",  # slash commands and shortcuts
        "chat:write",  # posts, updates, ephemeral replies
        "im:write",  # conversations.open for fallback DMs
        "channels:history",  # delivery looks its posts up after a crash
        "groups:history",
        "im:history",
        "channels:read",  # the id of a channel configured by name
        "groups:read",
        "reactions:read",  # reaction_added
        "files:write",  # charts
        "files:read",  # files.info: an inline chart is processed
    }
    assert needed <= scopes


# --- through the real app: a listener answers every manifest entry ------------------------


@pytest.mark.usefixtures("catalog")
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_manifest_command_is_answered(slack_server, command):
    assert post_command(slack_server.events_url, command, "").status == 200


@pytest.mark.usefixtures("catalog")
@pytest.mark.parametrize("callback_id", sorted(SHORTCUTS))
def test_every_manifest_shortcut_is_answered(slack_server, callback_id):
    message = {"text": "they asked for SSO", "ts": "1700000001.000100"}
    is_message = SHORTCUTS[callback_id] == "message"
    response = post_shortcut(
        slack_server.events_url, callback_id, message=message if is_message else None
    )
    assert response.status == 200


@pytest.mark.usefixtures("catalog")
@pytest.mark.parametrize("event", sorted(EVENTS))
def test_every_subscribed_event_is_answered(slack_server, event):
    item = {"type": "message", "channel": "C111", "ts": "1700000001.000100"}
    payload = {"type": event, "user": "U111", "tab": "home", "item": item, "reaction": "x"}
    assert post_event(slack_server.events_url, payload).status == 200


def test_an_event_without_a_listener_is_not_answered(slack_server):
    payload = {"type": "member_joined_channel", "user": "U111", "channel": "C111"}
    assert post_event(slack_server.events_url, payload).status == 404

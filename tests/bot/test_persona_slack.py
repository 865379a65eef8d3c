"""Persona briefs through the real app: Slack's limits, did-you-mean, sharing, every kind."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from slack_bolt import App
from sqlalchemy import Engine

from bot.app import shutdown
from briefs.blocks import blocks_text
from commands.catalog import apply_workspace
from segments.workspace import load_workspace
from tests.bot.conftest import OWNER, REP, WORKSPACE
from tests.briefs.limits import assert_message_ok, words
from tests.slack import FakeSlack, Reply, post_action, post_command, row_counts

POINTS = [f"Point {i:03d}: open with the admin console and the audit trail" for i in range(150)]
QUESTIONS = [f"Question {i:02d}: who signs off on a rollout of this size?" for i in range(12)]
RATIONALE = " ".join(f"reason{i:04d}" for i in range(600))  # 6,000 characters, no breaks
BIG = {
    "name": "big",
    "title": "Big accounts",
    "tier": "strategic",
    "owner": OWNER,
    "approvers": [],
    "channel": "C111",
    "rule": "seats >= 100",
    "rationale": RATIONALE,
    "persona": {
        "summary": "Large teams with a security review",
        "talking_points": POINTS,
        "discovery_questions": QUESTIONS,
    },
}


@pytest.fixture
def big_catalog(engine: Engine, tmp_path: Path) -> None:
    """The ``trial`` catalog plus ``big``, whose persona overflows one Slack message."""
    data = copy.deepcopy(WORKSPACE)
    data["segments"].append(BIG)
    path = tmp_path / "workspace.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    apply_workspace(engine, load_workspace(path), reason="set up", author=OWNER)


pytestmark = pytest.mark.usefixtures("big_catalog")


def settle(app: App) -> None:
    """Wait until every listener and lazy function started so far has finished."""
    shutdown(app, wait=True)


def decoded(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def persona(server, fake: FakeSlack, text: str) -> None:
    post_command(server.events_url, "/persona", text, user_id=REP, response_url=fake.response_url())


def answers(fake: FakeSlack) -> list[dict[str, Any]]:
    """The messages sent back through the command's response_url, in order."""
    return [
        {**c.body, "blocks": decoded(c.body.get("blocks") or [])}
        for c in fake.calls_to("response_url")
    ]


def all_text(messages: list[dict[str, Any]]) -> str:
    return "\n".join(blocks_text(m["blocks"]) for m in messages)


def test_an_oversized_brief_arrives_as_several_messages_within_slacks_limits(
    slack_app, slack_server, fake_slack: FakeSlack
):
    persona(slack_server, fake_slack, "big")
    settle(slack_app)
    messages = answers(fake_slack)
    assert len(messages) >= 2
    for message in messages:
        assert_message_ok(message)  # <= 50 blocks, sections <= 3,000, JSON <= 11,000
        assert len(blocks_text(message["blocks"])) < 11_000
    text = all_text(messages)
    assert all(point in text for point in POINTS)
    assert words(RATIONALE) in words(text)
    assert messages[0]["blocks"][0]["text"]["text"] == "Big accounts · persona brief"


def test_an_unknown_segment_gets_a_did_you_mean(slack_app, slack_server, fake_slack: FakeSlack):
    persona(slack_server, fake_slack, "bgi")
    settle(slack_app)
    (reply,) = answers(fake_slack)
    assert "unknown segment 'bgi' (did you mean 'big'?)" in reply["text"]
    assert fake_slack.calls_to("chat.postMessage") == []


def test_talking_points_list_every_point(slack_app, slack_server, fake_slack: FakeSlack):
    persona(slack_server, fake_slack, "big talking-points")
    settle(slack_app)
    messages = answers(fake_slack)
    assert messages[0]["blocks"][0]["text"]["text"] == "Big accounts · talking points"
    for message in messages:
        assert_message_ok(message)
    assert all(point in all_text(messages) for point in POINTS)


def test_the_discovery_guide_asks_the_personas_questions(
    slack_app, slack_server, fake_slack: FakeSlack
):
    persona(slack_server, fake_slack, "big discovery")
    settle(slack_app)
    (message,) = answers(fake_slack)
    assert message["blocks"][0]["text"]["text"] == "Big accounts · discovery guide"
    assert all(question in all_text([message]) for question in QUESTIONS)


def share(server, fake: FakeSlack, value: str) -> None:
    post_action(
        server.events_url,
        "persona_share",
        value,
        user_id=REP,
        channel_id="C111",
        response_url=fake.response_url("share"),
    )


def test_sharing_posts_the_brief_to_the_channel_without_the_share_button(
    slack_app, slack_server, fake_slack: FakeSlack, engine: Engine
):
    before = row_counts(engine)
    share(slack_server, fake_slack, "trial|brief")
    settle(slack_app)
    (posted,) = fake_slack.calls_to("chat.postMessage")
    blocks = decoded(posted.body["blocks"])
    assert posted.body["channel"] == "C111" and "thread_ts" not in posted.body
    assert blocks[0]["text"]["text"] == "Trial accounts · persona brief"
    assert "persona_share" not in json.dumps(blocks)
    assert fake_slack.calls_to("response_url") == []
    assert row_counts(engine) == before


def test_sharing_an_oversized_brief_threads_the_later_parts(
    slack_app, slack_server, fake_slack: FakeSlack
):
    share(slack_server, fake_slack, "big|brief")
    settle(slack_app)
    first, *rest = fake_slack.calls_to("chat.postMessage")
    assert rest and {c.body.get("thread_ts") for c in rest} == {first.reply.body["ts"]}
    messages = [{**c.body, "blocks": decoded(c.body["blocks"])} for c in [first, *rest]]
    for message in messages:
        assert_message_ok(message)
    assert all(point in all_text(messages) for point in POINTS)


def test_sharing_where_the_bot_cannot_post_tells_the_user(
    slack_app, slack_server, fake_slack: FakeSlack
):
    fake_slack.fail_next("chat.postMessage", Reply.error("not_in_channel"))
    share(slack_server, fake_slack, "trial|brief")
    settle(slack_app)
    (told,) = answers(fake_slack)
    assert "could not post in this channel (not_in_channel)" in told["text"]
    assert told["replace_original"] is False


def test_sharing_in_a_channel_shared_with_another_organisation_is_refused(
    slack_app, slack_server, fake_slack: FakeSlack
):
    fake_slack.shared_channels.add("C111")
    share(slack_server, fake_slack, "trial|brief")
    settle(slack_app)
    (told,) = answers(fake_slack)
    assert "shared with another organisation" in told["text"]
    assert fake_slack.calls_to("chat.postMessage") == []
    (checked,) = fake_slack.calls_to("conversations.info")
    assert checked.body["channel"] == "C111"


def test_sharing_where_the_channel_cannot_be_checked_posts_nothing(
    slack_app, slack_server, fake_slack: FakeSlack
):
    fake_slack.fail_next("conversations.info", Reply.error("missing_scope"))
    share(slack_server, fake_slack, "trial|brief")
    settle(slack_app)
    (told,) = answers(fake_slack)
    assert "could not check whether this channel is shared (missing_scope)" in told["text"]
    assert fake_slack.calls_to("chat.postMessage") == []

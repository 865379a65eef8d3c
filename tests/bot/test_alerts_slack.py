"""Drift-alert buttons through the real app, on an alert a real refresh raised and posted.

A refresh that moved most starter accounts into ``enterprise`` queues a drift alert;
the outbox delivery posts it to the fake Slack, and the buttons of that message are
clicked with signed requests.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from slack_bolt import App
from slack_sdk import WebClient
from sqlalchemy import Engine
from sqlmodel import select

from bot.app import shutdown
from bot.delivery import deliver_due
from store.db import session_scope
from store.models import Alert, OutboxMessage
from tests.commands.test_alerts import DRIFT_DAY, _drift_template, drift, drift_alerts  # noqa: F401 (fixtures)
from tests.factories import APPROVER, OWNER, PROPOSER
from tests.slack import BOT_TOKEN, Call, FakeSlack, post_action


def settle(app: App) -> None:
    """Wait until every listener and lazy function started so far has finished."""
    shutdown(app, wait=True)


def decoded(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def enterprise_row(engine: Engine) -> OutboxMessage:
    with session_scope(engine) as session:
        return session.exec(
            select(OutboxMessage).where(OutboxMessage.idempotency_key.like("drift:%:enterprise"))
        ).one()


@pytest.fixture
def posted(request, engine: Engine, fake_slack: FakeSlack) -> dict[str, Any]:
    """The enterprise drift alert, posted to the fake Slack: its channel, ts and alerts."""
    request.getfixturevalue("drift")
    row = enterprise_row(engine)
    client = WebClient(token=BOT_TOKEN, base_url=fake_slack.url)
    answer = client.chat_postMessage(channel=row.channel, text=row.text, blocks=row.blocks)
    fake_slack.reset()
    alerts = drift_alerts(engine, "enterprise")
    return {"channel": answer["channel"], "ts": answer["ts"], "alerts": alerts}


def press(
    server,
    fake: FakeSlack,
    posted: dict,
    action: str,
    user: str,
    index: int = 0,
    message_blocks: list[dict[str, Any]] | None = None,
):
    """Click ``action`` in the posted message (its buttons name alert ``index``, the first
    open one); private replies go to ``user``."""
    return post_action(
        server.events_url,
        action,
        str(posted["alerts"][index].id),
        user_id=user,
        channel_id=posted["channel"],
        message_ts=posted["ts"],
        response_url=fake.response_url(user),
        message_blocks=message_blocks,
    )


def alert(engine: Engine, alert_id: int) -> Alert:
    with session_scope(engine) as session:
        return session.get(Alert, alert_id)


def ack_values(update: Call) -> set[str]:
    return {
        element["value"]
        for block in decoded(update.body["blocks"])
        if block["type"] == "actions"
        for element in block["elements"]
        if element["action_id"] == "alert_ack"
    }


def test_the_drift_alert_is_delivered_with_its_chart(
    request, engine: Engine, fake_slack: FakeSlack
):
    request.getfixturevalue("drift")
    (entry,) = enterprise_row(engine).files
    assert set(entry["chart"]) >= {"series", "title"}  # the chart's data, drawn at delivery
    assert "content_b64" not in entry
    stats = deliver_due(engine, WebClient(token=BOT_TOKEN, base_url=fake_slack.url))
    assert (stats.dead, stats.fallbacks) == (0, 0)
    row = enterprise_row(engine)
    assert row.status == "sent" and row.ts
    (upload,) = [
        c
        for c in fake_slack.calls_to("files.completeUploadExternal", ok=True)
        if "enterprise accounts: size" in c.body["files"].lower()
    ]
    assert "channel_id" not in upload.body  # shown inside the alert, not beside it
    (post,) = [
        c for c in fake_slack.calls_to("chat.postMessage", ok=True) if c.reply.body["ts"] == row.ts
    ]
    images = [b for b in decoded(post.body["blocks"]) if b["type"] == "image"]
    assert [b["slack_file"]["id"] for b in images] == [json.loads(upload.body["files"])[0]["id"]]
    assert any(raw.startswith(b"\x89PNG\r\n") for raw in fake_slack.uploads.values())


def test_the_owner_acknowledges_and_the_message_shows_it(
    slack_app, slack_server, fake_slack: FakeSlack, engine: Engine, posted
):
    first, second = posted["alerts"][:2]
    response = press(slack_server, fake_slack, posted, "alert_ack", OWNER)
    assert (response.status, response.body) == (200, b"")
    settle(slack_app)
    (update,) = fake_slack.calls_to("chat.update")
    assert (update.body["channel"], update.body["ts"]) == (posted["channel"], posted["ts"])
    assert f"Acknowledged by <@{OWNER}>" in json.dumps(decoded(update.body["blocks"]))
    assert ack_values(update) == set()  # one set of buttons, for the whole message
    for shown in (first, second):
        row = alert(engine, shown.id)
        assert (row.status, row.acknowledged_by) == ("acknowledged", OWNER)


def test_the_chart_inside_the_alert_stays_when_the_message_shows_the_ack(
    slack_app, slack_server, fake_slack: FakeSlack, engine: Engine, posted
):
    client = WebClient(token=BOT_TOKEN, base_url=fake_slack.url)
    fake_slack.processing_delay = 0.0
    file_id = client.files_upload_v2(content=b"\x89PNG", filename="c.png")["files"][0]["id"]
    fake_slack.reset()
    rendered = enterprise_row(engine).blocks
    as_slack_has_it = [  # Slack's copy of an image block carries fields of its own
        rendered[0],
        {
            "type": "image",
            "block_id": "x1",
            "slack_file": {"id": file_id},
            "image_url": "https://files.slack.com/files-tmb/T111-F1/c_720.png",
            "image_width": 960,
            "image_height": 540,
            "alt_text": "Enterprise accounts: size",
            "title": {"type": "plain_text", "text": "Enterprise accounts: size"},
        },
        *rendered[1:],
    ]
    press(slack_server, fake_slack, posted, "alert_ack", OWNER, message_blocks=as_slack_has_it)
    settle(slack_app)
    (update,) = fake_slack.calls_to("chat.update", ok=True)
    blocks = decoded(update.body["blocks"])
    (image,) = [b for b in blocks if b["type"] == "image"]
    assert image["slack_file"] == {"id": file_id} and "image_url" not in image
    assert image["alt_text"] == "Enterprise accounts: size"
    first_section = next(i for i, b in enumerate(blocks) if b["type"] == "section")
    assert blocks.index(image) == first_section + 1  # after the headline, as posted
    assert f"Acknowledged by <@{OWNER}>" in json.dumps(blocks)


def test_a_second_ack_is_a_no_op(
    slack_app, slack_server, fake_slack: FakeSlack, engine: Engine, posted
):
    press(slack_server, fake_slack, posted, "alert_ack", OWNER)
    fake_slack.wait_for("chat.update")
    press(slack_server, fake_slack, posted, "alert_ack", APPROVER)
    settle(slack_app)
    assert len(fake_slack.calls_to("chat.update")) == 1
    assert fake_slack.calls_to("response_url") == []
    assert alert(engine, posted["alerts"][0].id).acknowledged_by == OWNER


def test_someone_else_cannot_acknowledge_and_nothing_changes(
    slack_app, slack_server, fake_slack: FakeSlack, engine: Engine, posted
):
    press(slack_server, fake_slack, posted, "alert_ack", PROPOSER)
    settle(slack_app)
    (told,) = fake_slack.calls_to("response_url")
    assert told.body["text"].startswith(":no_entry: Not authorised: only the owner <@U111>")
    assert told.body["replace_original"] is False
    assert fake_slack.calls_to("chat.update") == []
    assert alert(engine, posted["alerts"][0].id).status == "open"


def test_an_approver_cannot_mute_and_nothing_changes(
    slack_app, slack_server, fake_slack: FakeSlack, engine: Engine, posted
):
    press(slack_server, fake_slack, posted, "alert_mute", APPROVER)
    settle(slack_app)
    (told,) = fake_slack.calls_to("response_url")
    assert f"Not authorised: only the owner <@{OWNER}> can mute" in told.body["text"]
    assert fake_slack.calls_to("chat.update") == []
    row = alert(engine, posted["alerts"][0].id)
    assert (row.status, row.muted_until) == ("open", None)


def test_the_owner_mutes_for_a_week_and_the_message_shows_until_when(
    slack_app, slack_server, fake_slack: FakeSlack, engine: Engine, posted
):
    clicked = datetime.now(UTC)
    press(slack_server, fake_slack, posted, "alert_mute", OWNER)
    settle(slack_app)
    row = alert(engine, posted["alerts"][0].id)
    assert row.status == "muted"
    assert timedelta(0) <= row.muted_until - (clicked + timedelta(days=7)) < timedelta(minutes=1)
    (update,) = fake_slack.calls_to("chat.update")
    until = row.muted_until.strftime("%Y-%m-%d %H:%M UTC")
    assert f"Muted until {until}" in json.dumps(decoded(update.body["blocks"]), ensure_ascii=False)


def test_open_proposal_opens_the_form_for_the_alerts_segment(
    slack_app, slack_server, fake_slack: FakeSlack, posted
):
    press(slack_server, fake_slack, posted, "alert_propose", PROPOSER)
    settle(slack_app)
    (opened,) = fake_slack.calls_to("views.open")
    view = decoded(opened.body["view"])
    assert view["callback_id"] == "propose_submit"
    assert json.loads(view["private_metadata"]) == {
        "segment": "enterprise",
        "channel": posted["channel"],
    }
    reason = next(b for b in view["blocks"] if b["block_id"] == "reason")["element"]
    assert reason["initial_value"].startswith(f"Drift alert of {DRIFT_DAY.isoformat()}: ")
    assert posted["alerts"][0].message in reason["initial_value"]

"""Through the real app: a drift alert of a segment under the privacy floor is delivered,
re-rendered after *Acknowledge* and listed by ``/segment drift`` without its size."""

from __future__ import annotations

import json
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient

from bot.delivery import deliver_due
from tests.commands.test_alert_privacy import (
    SMALL,
    button_value,
    drift_row,
    revealing,
    shrunk,  # noqa: F401 (fixture)
)
from tests.factories import OWNER
from tests.slack import BOT_TOKEN, FakeSlack, post_action, post_command


def decoded(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def test_the_posted_alert_its_update_and_the_drift_reply_name_no_small_size(
    shrunk,  # noqa: F811
    engine,
    slack_app: App,
    slack_server,
    fake_slack: FakeSlack,
):
    deliver_due(engine, WebClient(token=BOT_TOKEN, base_url=fake_slack.url))
    row = drift_row(engine)
    (post,) = [c for c in fake_slack.calls_to("chat.postMessage") if c.body["text"] == row.text]
    assert "under the privacy floor of 10" in post.body["text"]  # the notification
    fake_slack.reset()
    post_action(
        slack_server.events_url,
        "alert_ack",
        str(button_value(row)),
        user_id=OWNER,
        channel_id=row.channel,
        message_ts=row.ts,
        response_url=fake_slack.response_url(OWNER),
    )
    (update,) = fake_slack.wait_for("chat.update")
    updated = update.body["text"] + json.dumps(decoded(update.body["blocks"]), ensure_ascii=False)
    assert f"Acknowledged by <@{OWNER}>" in updated
    assert "under the privacy floor of 10" in updated
    for text in revealing(SMALL):
        assert text not in updated

    fake_slack.reset()
    post_command(
        slack_server.events_url, "/segment", "drift trial", response_url=fake_slack.response_url()
    )
    reply = fake_slack.wait_for("response_url")[0].body["text"]
    assert "size_change: Members changed; the numbers are under the privacy floor" in reply
    for text in revealing(SMALL):
        assert text not in reply

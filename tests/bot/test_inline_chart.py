"""A chart marked ``inline`` is shown inside its message once Slack has processed it,
else it goes first in the message's thread; the fake Web API refuses image blocks the
way Slack does."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import Engine, select

from bot.delivery import deliver_due
from store.db import session_scope
from store.models import OutboxMessage
from tests.slack import BOT_TOKEN, FakeSlack, Reply

PNG = b"\x89PNG\r\n\x1a\n fake chart"
BLOCKS = [
    {"type": "header", "text": {"type": "plain_text", "text": "Churn risk +37 %"}},
    {"type": "section", "text": {"type": "mrkdwn", "text": "647 members, up from 472"}},
    {"type": "section", "text": {"type": "mrkdwn", "text": "Failed payments: 0.25 → 0.56"}},
    {"type": "actions", "elements": [{"type": "button", "action_id": "alert_ack", "value": "1"}]},
]
CHART = {
    "content_b64": base64.b64encode(PNG).decode(),
    "filename": "churn-risk.png",
    "title": "Churn risk: size",
    "inline": True,
}


@pytest.fixture
def client(fake_slack: FakeSlack) -> WebClient:
    return WebClient(token=BOT_TOKEN, base_url=fake_slack.url)


def queue(engine: Engine, **fields: Any) -> None:
    values: dict[str, Any] = {
        "idempotency_key": "drift:1:churn-risk",
        "kind": "drift_alert",
        "channel": "C111",
        "text": "Churn risk +37 %",
        "blocks": BLOCKS,
        "files": [CHART],
        "next_attempt_at": datetime.now(UTC),
    }
    values.update(fields)
    with session_scope(engine) as session:
        session.add(OutboxMessage(**values))


def sent(engine: Engine) -> OutboxMessage:
    with session_scope(engine) as session:
        return session.scalars(select(OutboxMessage)).one()


def blocks_of(call) -> list[dict[str, Any]]:
    blocks = call.body.get("blocks") or []
    return json.loads(blocks) if isinstance(blocks, str) else blocks


def test_the_chart_is_inside_the_message_once_slack_has_processed_it(
    engine, fake_slack: FakeSlack, client
):
    queue(engine)
    assert deliver_due(engine, client).sent == 1
    (complete,) = fake_slack.calls_to("files.completeUploadExternal")
    assert "channel_id" not in complete.body  # not shared on its own: the message shows it
    ((file_id, uploaded),) = fake_slack.uploads.items()
    assert uploaded == PNG
    assert len(fake_slack.calls_to("files.info")) >= 2  # asked until it was processed
    (post,) = fake_slack.calls_to("chat.postMessage")
    assert post.ok
    blocks = blocks_of(post)
    assert [b["type"] for b in blocks] == ["header", "section", "image", "section", "actions"]
    image = blocks[2]
    assert image["slack_file"] == {"id": file_id}
    assert image["alt_text"] == image["title"]["text"] == "Churn risk: size"
    assert fake_slack.calls_to("files.delete") == []
    assert sent(engine).status == "sent"


def test_a_chart_not_processed_in_time_goes_first_in_the_thread(
    engine, fake_slack: FakeSlack, client
):
    fake_slack.processing_delay = 60.0
    queue(engine)
    assert deliver_due(engine, client, inline_wait=0.3).sent == 1
    (post,) = fake_slack.calls_to("chat.postMessage")
    assert "image" not in [b["type"] for b in blocks_of(post)]
    unshared, threaded = fake_slack.calls_to("files.completeUploadExternal")
    assert "channel_id" not in unshared.body
    assert (threaded.body["channel_id"], threaded.body["thread_ts"]) == ("C111", sent(engine).ts)
    (deleted,) = fake_slack.calls_to("files.delete")
    assert deleted.body["file"] == json.loads(unshared.body["files"])[0]["id"]


def test_an_image_slack_refuses_is_left_out_and_threaded_posting_once(
    engine, fake_slack: FakeSlack, client
):
    refused = Reply(
        body={
            "ok": False,
            "error": "invalid_blocks",
            "errors": ["invalid slack file [json-pointer:/blocks/2/slack_file]"],
        }
    )
    fake_slack.fail_next("chat.postMessage", refused)
    queue(engine)
    assert deliver_due(engine, client).sent == 1
    first, second = fake_slack.calls_to("chat.postMessage")
    assert not first.ok and "image" in [b["type"] for b in blocks_of(first)]
    assert second.ok and "image" not in [b["type"] for b in blocks_of(second)]
    assert len(fake_slack.channels["C111"]) == 1  # one message, never two
    threaded = fake_slack.calls_to("files.completeUploadExternal")[-1]
    assert threaded.body["thread_ts"] == sent(engine).ts


def test_other_refusals_kill_the_row_as_before(engine, fake_slack: FakeSlack, client):
    fake_slack.missing_channels.add("C111")
    queue(engine)
    stats = deliver_due(engine, client)
    assert (stats.sent, stats.dead) == (0, 1)
    assert sent(engine).status == "dead"


def test_charts_not_marked_inline_still_go_to_the_thread(engine, fake_slack: FakeSlack, client):
    queue(engine, files=[{k: v for k, v in CHART.items() if k != "inline"}])
    assert deliver_due(engine, client).sent == 1
    (complete,) = fake_slack.calls_to("files.completeUploadExternal")
    assert complete.body["thread_ts"] == sent(engine).ts
    assert fake_slack.calls_to("files.info") == []


# --- the fake is as strict as Slack -------------------------------------------------------


def image(**fields: Any) -> list[dict[str, Any]]:
    return [{"type": "image", **fields}]


def refusal(client: WebClient, blocks: list[dict[str, Any]]) -> list[str]:
    with pytest.raises(SlackApiError) as refused:
        client.chat_postMessage(channel="C111", text="x", blocks=blocks)
    assert refused.value.response["error"] == "invalid_blocks"
    return refused.value.response["errors"]


def test_the_fake_refuses_image_blocks_slack_refuses(fake_slack: FakeSlack, client):
    fake_slack.processing_delay = 60.0
    upload = client.files_upload_v2(content=PNG, filename="c.png")
    file_id = upload["files"][0]["id"]
    assert client.files_info(file=file_id)["file"]["mimetype"] == ""
    (error,) = refusal(client, image(slack_file={"id": file_id}, alt_text="chart"))
    assert error == "invalid slack file [json-pointer:/blocks/0/slack_file]"  # not processed
    (error,) = refusal(client, image(slack_file={"id": "F1"}, alt_text="chart"))
    assert error.startswith("input must match regex pattern")
    assert refusal(client, image(slack_file={"id": "F0000009999"}, alt_text="chart")) == [
        "invalid slack file [json-pointer:/blocks/0/slack_file]"  # never uploaded
    ]
    missing, processing = refusal(client, image(slack_file={"id": file_id}))
    assert missing.startswith("missing required field: alt_text")
    assert processing.startswith("invalid slack file")
    fake_slack.processing_delay = 0.0
    assert client.files_info(file=file_id)["file"]["mimetype"] == "image/png"
    client.chat_postMessage(
        channel="C111", text="x", blocks=image(slack_file={"id": file_id}, alt_text="chart")
    )
    refusal(
        client,
        image(slack_file={"id": file_id}, image_url="https://example.com/c.png", alt_text="c"),
    )
    with pytest.raises(SlackApiError) as unknown:
        client.api_call("files.completeUploadExternal", json={"files": [{"id": "F0000008888"}]})
    assert unknown.value.response["error"] == "file_not_found"

"""The outbox delivery loop against the fake Slack Web API, driven by a fake clock."""

from __future__ import annotations

import base64
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import Engine, select

from bot.delivery import (
    CLAIM_LEASE,
    MAX_ATTEMPTS,
    METADATA_EVENT_TYPE,
    DeliveryStats,
    backoff,
    deliver_due,
)
from store.db import session_scope
from store.models import OutboxMessage
from tests.slack import BOT_TOKEN, FakeSlack, Reply


@pytest.fixture
def t0() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def client(fake_slack: FakeSlack) -> WebClient:
    return WebClient(token=BOT_TOKEN, base_url=fake_slack.url)


def queue(engine: Engine, key: str, at: datetime, **fields: Any) -> None:
    values: dict[str, Any] = {"kind": "summary", "channel": "C111", "text": f"message {key}"}
    values.update(fields)
    with session_scope(engine) as session:
        session.add(OutboxMessage(idempotency_key=key, next_attempt_at=at, **values))


def row(engine: Engine, key: str) -> OutboxMessage:
    with session_scope(engine) as session:
        return session.scalars(
            select(OutboxMessage).where(OutboxMessage.idempotency_key == key)
        ).one()


def posts(fake: FakeSlack) -> list:
    return fake.calls_to("chat.postMessage")


# --- posting ---------------------------------------------------------------------------


def test_pending_message_is_posted_with_its_key_in_metadata(engine, fake_slack, client, t0):
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*Trial* grew 4%"}}]
    queue(engine, "refresh:1:C111", t0, text="Trial grew 4%", blocks=blocks)
    stats = deliver_due(engine, client, now=t0)
    assert stats == DeliveryStats(sent=1)
    (call,) = posts(fake_slack)
    assert call.body["channel"] == "C111"
    assert (call.body["text"], call.body["blocks"]) == ("Trial grew 4%", blocks)
    assert call.body["metadata"] == {
        "event_type": METADATA_EVENT_TYPE,
        "event_payload": {"key": "refresh:1:C111", "part": 0},
    }
    sent = row(engine, "refresh:1:C111")
    assert (sent.status, sent.ts, sent.sent_at) == ("sent", call.reply.body["ts"], t0)


def test_message_not_yet_due_is_left_alone(engine, fake_slack, client, t0):
    queue(engine, "later", t0 + timedelta(minutes=1))
    assert deliver_due(engine, client, now=t0) == DeliveryStats()
    assert fake_slack.api_calls() == []


def test_thread_reply_is_posted_under_its_parent(engine, fake_slack, client, t0):
    queue(engine, "group", t0)
    queue(engine, "group#2", t0, thread_key="group")
    deliver_due(engine, client, now=t0)
    parent, reply = posts(fake_slack)
    assert "thread_ts" not in parent.body
    assert reply.body["thread_ts"] == parent.reply.body["ts"] == row(engine, "group").ts


def test_reply_waits_while_its_parent_is_not_sent(engine, fake_slack, client, t0):
    queue(engine, "group", t0)
    queue(engine, "group#2", t0, thread_key="group")
    fake_slack.fail_next("chat.postMessage", Reply.error("internal_error"))
    stats = deliver_due(engine, client, now=t0)
    assert (stats.retried, stats.deferred, stats.sent) == (1, 1, 0)
    assert len(posts(fake_slack)) == 1
    assert row(engine, "group#2").attempts == 0


def test_reply_to_an_undeliverable_parent_is_posted_on_its_own(engine, fake_slack, client, t0):
    queue(engine, "group", t0, status="dead")
    queue(engine, "group#2", t0, thread_key="group")
    deliver_due(engine, client, now=t0)
    (call,) = posts(fake_slack)
    assert "thread_ts" not in call.body


def test_files_are_uploaded_into_the_messages_thread(engine, fake_slack, client, t0):
    png = b"\x89PNG fake chart"
    encoded = base64.b64encode(png).decode()
    files = [{"bytes_b64": encoded, "filename": "trend.png", "title": "Trend"}]
    queue(engine, "alert", t0, files=files)
    assert deliver_due(engine, client, now=t0).sent == 1
    (complete,) = fake_slack.calls_to("files.completeUploadExternal")
    assert complete.body["thread_ts"] == row(engine, "alert").ts
    assert complete.body["channel_id"] == "C111"
    assert list(fake_slack.uploads.values()) == [png]


def test_message_for_a_user_goes_to_their_dm(engine, fake_slack, client, t0):
    queue(engine, "dm", t0, channel="U222")
    deliver_due(engine, client, now=t0)
    assert fake_slack.calls_to("conversations.open")[0].body["users"] == "U222"
    assert posts(fake_slack)[0].body["channel"] == "DU222"


def test_long_message_is_split_and_every_part_carries_the_key(engine, fake_slack, client, t0):
    blocks = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"line {i}"}} for i in range(60)
    ]
    queue(engine, "long", t0, blocks=blocks)
    deliver_due(engine, client, now=t0)
    assert [len(c.body["blocks"]) for c in posts(fake_slack)] == [50, 10]
    assert fake_slack.posted_keys() == {"long#0": 1, "long#1": 1}
    assert row(engine, "long").ts == posts(fake_slack)[0].reply.body["ts"]


# --- failures --------------------------------------------------------------------------


def test_rate_limit_waits_exactly_retry_after_and_holds_the_channel(engine, fake_slack, client, t0):
    queue(engine, "a", t0)
    queue(engine, "b", t0)
    queue(engine, "c", t0, channel="C222")
    fake_slack.fail_next("chat.postMessage", Reply.rate_limited(7))
    stats = deliver_due(engine, client, now=t0)
    assert (stats.retried, stats.deferred, stats.sent) == (1, 1, 1)
    limited = row(engine, "a")
    assert (limited.status, limited.attempts) == ("pending", 1)
    assert limited.next_attempt_at == t0 + timedelta(seconds=7)
    assert "Retry-After 7s" in limited.last_error
    assert row(engine, "b").attempts == 0
    assert row(engine, "c").status == "sent"


def test_server_errors_back_off_exponentially_with_jitter(engine, fake_slack, client, t0):
    queue(engine, "a", t0)
    fake_slack.fail_next("chat.postMessage", Reply.server_error(503), Reply.server_error(500))
    deliver_due(engine, client, now=t0)
    first = row(engine, "a").next_attempt_at - t0
    assert timedelta(seconds=2.5) <= first <= timedelta(seconds=5)
    t1 = row(engine, "a").next_attempt_at
    deliver_due(engine, client, now=t1)
    second = row(engine, "a").next_attempt_at - t1
    assert timedelta(seconds=5) <= second <= timedelta(seconds=10)
    assert row(engine, "a").status == "sending"  # a 5xx answer may hide a post: look first


def test_unreachable_slack_is_retried(engine, t0):
    unreachable = WebClient(token=BOT_TOKEN, base_url="http://127.0.0.1:9/api/", timeout=2)
    unreachable.retry_handlers = []
    queue(engine, "a", t0)
    assert deliver_due(engine, unreachable, now=t0).retried == 1
    assert row(engine, "a").status in ("pending", "sending")


def test_backoff_grows_and_is_capped():
    rng = random.Random(3)
    steps = [backoff(n, rng).total_seconds() for n in range(1, 12)]
    for attempt, seconds in enumerate(steps, start=1):
        step = min(1800, 5 * 2 ** (attempt - 1))
        assert step / 2 <= seconds <= step


def test_missing_channel_is_dead_and_its_owner_gets_a_dm(engine, fake_slack, client, t0):
    fake_slack.missing_channels.add("C404")
    queue(engine, "summary", t0, channel="C404", text="Trial grew 4%", fallback_user="U111")
    stats = deliver_due(engine, client, now=t0)
    assert (stats.dead, stats.fallbacks, stats.sent) == (1, 1, 1)
    dead = row(engine, "summary")
    assert (dead.status, dead.last_error) == ("dead", "channel_not_found")
    assert fake_slack.calls_to("conversations.open")[0].body["users"] == "U111"
    dm = posts(fake_slack)[-1]
    assert dm.body["channel"] == "DU111"
    assert "channel_not_found" in dm.body["text"] and "Trial grew 4%" in dm.body["text"]


@pytest.mark.parametrize("error", ["not_in_channel", "is_archived"])
def test_channel_the_bot_cannot_post_to_is_undeliverable(engine, fake_slack, client, t0, error):
    fake_slack.fail_next("chat.postMessage", Reply.error(error))
    queue(engine, "summary", t0, fallback_user="U111")
    deliver_due(engine, client, now=t0)
    assert row(engine, "summary").status == "dead"
    assert error in row(engine, "summary:undeliverable").text


def test_invalid_auth_is_retried_not_undeliverable(engine, fake_slack, client, t0):
    fake_slack.fail_next("chat.postMessage", Reply.error("invalid_auth"))
    queue(engine, "summary", t0, fallback_user="U111")
    assert deliver_due(engine, client, now=t0).retried == 1
    assert (row(engine, "summary").status, row(engine, "summary").last_error) == (
        "pending",
        "invalid_auth",
    )
    assert fake_slack.calls_to("conversations.open") == []


def test_transient_failures_give_up_after_max_attempts(engine, fake_slack, client, t0):
    queue(engine, "a", t0, attempts=MAX_ATTEMPTS - 1, fallback_user="U111")
    fake_slack.fail_next("chat.postMessage", Reply.error("internal_error"))
    stats = deliver_due(engine, client, now=t0)
    assert stats.dead == 1
    assert row(engine, "a").last_error.startswith(f"gave up after {MAX_ATTEMPTS} attempts")


# --- exactly once ----------------------------------------------------------------------


class Crash(Exception):
    """The process dies right after Slack accepted the post, before the row is marked."""


class CrashAfterPost(WebClient):
    def chat_postMessage(self, **kwargs: Any):  # noqa: N802 (the SDK's name)
        super().chat_postMessage(**kwargs)
        raise Crash


def test_crash_between_post_and_mark_is_recovered_without_reposting(engine, fake_slack, client, t0):
    queue(engine, "summary", t0)
    with pytest.raises(Crash):
        deliver_due(engine, CrashAfterPost(token=BOT_TOKEN, base_url=fake_slack.url), now=t0)
    assert row(engine, "summary").status == "sending"

    restarted = deliver_due(engine, client, now=t0 + CLAIM_LEASE + timedelta(seconds=1))
    assert restarted == DeliveryStats(recovered=1)
    assert len(posts(fake_slack)) == 1
    history = fake_slack.calls_to("conversations.history")[0].body
    assert history["channel"] == "C111" and history["include_all_metadata"] in ("1", "true")
    recovered = row(engine, "summary")
    assert (recovered.status, recovered.ts) == ("sent", fake_slack.posted("C111")[0]["ts"])


def test_channel_given_by_name_is_recovered_through_its_id(engine, fake_slack, client, t0):
    queue(engine, "summary", t0, channel="#growth")
    with pytest.raises(Crash):
        deliver_due(engine, CrashAfterPost(token=BOT_TOKEN, base_url=fake_slack.url), now=t0)
    later = t0 + CLAIM_LEASE + timedelta(seconds=1)
    assert deliver_due(engine, client, now=later) == DeliveryStats(recovered=1)
    assert fake_slack.calls_to("conversations.history")[0].body["channel"] == "C777"
    assert fake_slack.posted_keys() == {"summary#0": 1}


def test_channel_given_by_name_is_stored_as_its_id_once_posted(engine, fake_slack, client, t0):
    queue(engine, "summary", t0, channel="#growth")
    deliver_due(engine, client, now=t0)
    assert (row(engine, "summary").channel, row(engine, "summary").status) == ("C777", "sent")


def test_a_chart_for_a_channel_given_by_name_is_uploaded_by_its_id(engine, fake_slack, client, t0):
    files = [{"bytes_b64": base64.b64encode(b"png").decode(), "filename": "sizes.png"}]
    queue(engine, "summary", t0, channel="#growth", files=files)
    queue(engine, "other", t0, channel="growth", files=files)
    assert deliver_due(engine, client, now=t0).sent == 2
    uploads = fake_slack.calls_to("files.completeUploadExternal")
    assert [c.body["channel_id"] for c in uploads] == ["C777", "C777"]
    assert all(c.reply.ok for c in uploads)
    assert {c.body["channel"] for c in posts(fake_slack)} == {"C777"}
    assert len(fake_slack.calls_to("conversations.list")) == 1  # resolved once per run
    assert row(engine, "other").channel == "C777"


def test_the_fake_web_api_refuses_an_upload_to_a_channel_name(fake_slack, client):
    with pytest.raises(SlackApiError) as refused:
        client.api_call(
            "files.completeUploadExternal",
            json={"files": [{"id": "F1"}], "channel_id": "#growth"},
        )
    assert refused.value.response["error"] == "channel_not_found"


def test_row_being_sent_is_left_alone_until_its_claim_expires(engine, fake_slack, client, t0):
    queue(engine, "summary", t0)
    with pytest.raises(Crash):
        deliver_due(engine, CrashAfterPost(token=BOT_TOKEN, base_url=fake_slack.url), now=t0)
    calls = len(fake_slack.api_calls())
    assert deliver_due(engine, client, now=t0 + CLAIM_LEASE / 2) == DeliveryStats()
    assert len(fake_slack.api_calls()) == calls


def test_post_whose_answer_was_lost_is_found_in_history(engine, fake_slack, client, t0):
    queue(engine, "summary", t0)
    fake_slack.fail_next("chat.postMessage", Reply.lost(502))
    assert deliver_due(engine, client, now=t0).retried == 1
    stats = deliver_due(engine, client, now=row(engine, "summary").next_attempt_at)
    assert stats == DeliveryStats(recovered=1)
    assert fake_slack.posted_keys() == {"summary#0": 1}


def test_lost_thread_reply_is_found_among_the_replies(engine, fake_slack, client, t0):
    queue(engine, "group", t0)
    deliver_due(engine, client, now=t0)
    queue(engine, "group#2", t0, thread_key="group")
    fake_slack.fail_next("chat.postMessage", Reply.lost(500))
    deliver_due(engine, client, now=t0)
    deliver_due(engine, client, now=row(engine, "group#2").next_attempt_at)
    assert fake_slack.calls_to("conversations.replies")
    assert fake_slack.posted_keys() == {"group#0": 1, "group#2#0": 1}
    assert row(engine, "group#2").status == "sent"


@pytest.fixture
def faulty_slack(fake_slack: FakeSlack) -> Iterator[FakeSlack]:
    """30 % of calls fail: 429 with Retry-After, 500/503, or a post whose answer is lost."""
    rng = random.Random(20260301)

    def faults(api: str, body: dict[str, Any]) -> Reply | None:
        if rng.random() >= 0.3:
            return None
        return rng.choice(
            [
                Reply.rate_limited(rng.randint(1, 30)),
                Reply.server_error(500),
                Reply.server_error(503),
                Reply.lost(502),
            ]
        )

    fake_slack.faults = faults
    yield fake_slack
    fake_slack.faults = None


def test_200_messages_through_30_percent_faults_are_each_posted_exactly_once(
    engine, faulty_slack, client, t0
):
    channels = ["C101", "C102", "C103", "C104"]
    with session_scope(engine) as session:
        for i in range(200):
            session.add(
                OutboxMessage(
                    idempotency_key=f"msg-{i}",
                    kind="summary",
                    channel=channels[i % 4],
                    text=f"message {i}",
                    next_attempt_at=t0,
                )
            )
    now, total, rng = t0, DeliveryStats(), random.Random(1)
    for _ in range(200):
        total += deliver_due(engine, client, now=now, batch=500, rng=rng)
        with session_scope(engine) as session:
            left = session.scalars(
                select(OutboxMessage.id).where(OutboxMessage.status != "sent")
            ).all()
        if not left:
            break
        now += timedelta(minutes=5)
    assert left == []
    assert faulty_slack.posted_keys() == {f"msg-{i}#0": 1 for i in range(200)}
    assert total.sent + total.recovered == 200 and total.dead == 0
    assert total.retried > 0 and total.recovered > 0
    with session_scope(engine) as session:
        stored = {r.idempotency_key: r.ts for r in session.scalars(select(OutboxMessage))}
    posted = {m["metadata"]["event_payload"]["key"]: m["ts"] for m in faulty_slack.posted()}
    assert stored == posted

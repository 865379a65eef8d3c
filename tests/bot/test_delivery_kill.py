"""A delivery worker killed with SIGKILL mid-delivery loses nothing and duplicates nothing."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from slack_sdk import WebClient
from sqlalchemy import select

from bot.delivery import deliver_due
from store.db import make_engine, session_scope
from store.models import OutboxMessage
from tests.slack import BOT_TOKEN, Reply

MESSAGES = 120


def _deliver_until_killed(url: str, base_url: str) -> None:
    """Child process: the worker's delivery loop, as fast as it can go."""
    engine = make_engine(url)
    client = WebClient(token=BOT_TOKEN, base_url=base_url)
    rng = random.Random(os.getpid())
    while True:
        deliver_due(engine, client, batch=10, rng=rng)


@pytest.mark.slow
def test_worker_killed_mid_delivery_then_restarted_posts_each_message_once(engine, fake_slack):
    rng = random.Random(7)
    lock = multiprocessing.Lock()

    def faults(api: str, body: dict[str, Any]) -> Reply | None:
        if api == "chat.postMessage":
            time.sleep(0.01)  # slow enough that the kill lands mid-batch
        with lock:
            roll = rng.random()
        if roll >= 0.3:
            return None
        return rng.choice([Reply.rate_limited(1), Reply.server_error(503), Reply.lost(502)])

    fake_slack.faults = faults
    start = datetime.now(UTC)
    with session_scope(engine) as session:
        for i in range(MESSAGES):
            session.add(
                OutboxMessage(
                    idempotency_key=f"kill-{i}",
                    kind="summary",
                    channel=f"C10{i % 3}",
                    text=f"message {i}",
                    next_attempt_at=start,
                )
            )

    url = engine.url.render_as_string(hide_password=False)
    child = multiprocessing.get_context("spawn").Process(
        target=_deliver_until_killed, args=(url, fake_slack.url)
    )
    child.start()
    deadline = time.monotonic() + 120
    while sum(fake_slack.posted_keys().values()) < MESSAGES // 3:
        assert child.is_alive(), "the delivery loop died on its own"
        assert time.monotonic() < deadline, "the delivery loop made no progress"
        time.sleep(0.02)
    os.kill(child.pid, signal.SIGKILL)
    child.join(30)
    assert sum(fake_slack.posted_keys().values()) < MESSAGES, "killed too late to matter"

    # A new worker takes over; clocks move on so claims and backoffs expire.
    client = WebClient(token=BOT_TOKEN, base_url=fake_slack.url)
    now = datetime.now(UTC)
    for _ in range(300):
        deliver_due(engine, client, now=now, batch=50, rng=rng)
        with session_scope(engine) as session:
            left = session.scalars(
                select(OutboxMessage.idempotency_key).where(OutboxMessage.status != "sent")
            ).all()
        if not left:
            break
        now += timedelta(minutes=5)
    assert left == []
    assert fake_slack.posted_keys() == {f"kill-{i}#0": 1 for i in range(MESSAGES)}

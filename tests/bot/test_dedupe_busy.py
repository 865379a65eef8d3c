"""An Events API delivery that finds the database busy is answered 503 at once (nothing
written) so Slack delivers it again, instead of waiting past Slack's 3 s budget."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import Engine, text

from bot.dedupe import CLAIM_WAIT, is_processed
from store.db import make_engine
from tests.slack import FakeSlack, post_event, wait_until

REACTION = {
    "type": "reaction_added",
    "user": "U111",
    "reaction": "tada",
    "item": {"type": "message", "channel": "C111", "ts": "1700000001.000100"},
    "item_user": "U0BOT",
}


@contextmanager
def claim_held(engine: Engine, event_id: str) -> Iterator[None]:
    """Another web process has inserted the claim of ``event_id`` and not committed yet.

    On SQLite that holds the write lock; on PostgreSQL the row's unique key.
    """
    other = make_engine(engine.url)
    taken, done = threading.Event(), threading.Event()

    def hold() -> None:
        with other.connect() as connection:
            connection.execute(
                text("INSERT INTO slack_event (event_id, received_at) VALUES (:id, :now)"),
                {"id": event_id, "now": datetime.now(UTC).replace(tzinfo=None)},
            )
            taken.set()
            done.wait(30)
            connection.rollback()

    holder = threading.Thread(target=hold)
    holder.start()
    assert taken.wait(10)
    try:
        yield
    finally:
        done.set()
        holder.join()
        other.dispose()


def test_a_delivery_that_finds_the_database_busy_gets_503_fast_and_its_retry_runs(
    slack_server, fake_slack: FakeSlack, engine: Engine
):
    with claim_held(engine, "EvBusy"):
        started = time.monotonic()
        busy = post_event(slack_server.events_url, REACTION, event_id="EvBusy")
        waited = time.monotonic() - started
        assert busy.status == 503
        assert waited < CLAIM_WAIT + 1.5  # well inside Slack's 3 s, not SQLite's 5 s wait
        assert not is_processed(engine, "EvBusy")
    retried = post_event(slack_server.events_url, REACTION, event_id="EvBusy", retry_num=1)
    assert retried.status == 200
    wait_until(lambda: is_processed(engine, "EvBusy"), message="the retry processed")


def test_a_delivery_on_a_free_database_is_claimed_as_before(
    slack_server, fake_slack: FakeSlack, engine: Engine
):
    answer = post_event(slack_server.events_url, REACTION, event_id="EvFree")
    assert answer.status == 200
    wait_until(lambda: is_processed(engine, "EvFree"), message="processed")
    again = post_event(slack_server.events_url, REACTION, event_id="EvFree", retry_num=1)
    assert again.status == 200

"""``POST /events`` mounted in the Slack server as ``segops serve`` mounts it: the token,
the schema, the limits, idempotent resends, and nothing on the log when a batch is refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from slack_bolt import App
from sqlalchemy import Engine

from bot.server import BackgroundServer
from cli.stream import event_routes
from commands.settings import Settings
from segments.live import MAX_BATCH
from stream.consumer import Consumer
from stream.log import EventLog
from tests.live import LiveSetup, event
from tests.slack import post, post_command, row_counts
from tests.stream.conftest import REDIS_URL

TOKEN = "events-secret-1"


@pytest.fixture
def server(
    slack_app: App, engine: Engine, live_setup: LiveSetup, event_log: EventLog
) -> Iterator[BackgroundServer]:
    settings = Settings(
        DATABASE_URL=engine.url.render_as_string(hide_password=False),
        SEGOPS_EVENTS_TOKEN=TOKEN,
        SEGOPS_STREAM=event_log.stream,
        SEGOPS_REDIS_URL=REDIS_URL,
    )
    routes = event_routes(settings, engine, live_setup.path)
    with BackgroundServer(slack_app, threads=4, routes=routes) as running:
        yield running


def send(server: BackgroundServer, body: object, token: str | None = TOKEN, **kw):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return post(
        server.url + "/events",
        data,
        content_type="application/json",
        secret=None,
        timestamp=None,
        headers=headers,
        **kw,
    )


def now() -> datetime:
    return datetime.now(UTC)


def test_an_accepted_batch_is_on_the_log_and_applied_once(
    server, engine, live_setup, event_log
) -> None:
    batch = [event("h1", "a0", "login", now()), event("h2", "a0", "login", now())]
    first = send(server, {"events": [*batch, batch[0]]})
    assert first.status == 202
    assert json.loads(first.body) == {"accepted": 2, "duplicates": 1}
    again = send(server, {"events": batch})  # a client retrying the whole batch
    assert again.status == 202
    assert event_log.status()["length"] == 4
    consumer = Consumer(
        engine, live_setup.workspace, event_log, name="h", lateness=timedelta(hours=1)
    )
    for _ in range(3):
        consumer.step()
    assert consumer.totals.applied == 2 and consumer.totals.duplicates == 2


@pytest.mark.parametrize("token", [None, "wrong"])
def test_without_the_token_nothing_is_accepted(server, event_log, engine, token) -> None:
    before = row_counts(engine)
    answer = send(server, {"events": [event("u1", "a0", "login", now())]}, token=token)
    assert answer.status == 401
    assert json.loads(answer.body) == {"error": "invalid token"}
    assert event_log.status()["length"] == 0
    assert row_counts(engine) == before


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (b"{not json", 400, "body: not JSON"),
        ([1, 2], 400, 'body: expected {"events": [...]}'),
        ({"events": []}, 400, "events: empty"),
        (
            {"events": [event(f"o{i}", "a0", "login", now()) for i in range(MAX_BATCH + 1)]},
            413,
            f"batch of {MAX_BATCH + 1} events; at most {MAX_BATCH}",
        ),
        (
            {"events": [event("g1", "a0", "login", now()), event("g2", "ghost", "login", now())]},
            422,
            "events[1]: entity: unknown 'ghost'",
        ),
        (
            {"events": [{"id": "m1", "entity": "a0", "ts": now().isoformat()}]},
            422,
            "events[0]: event: missing",
        ),
        (
            {"events": [{**event("t1", "a0", "login", now()), "value": "ten"}]},
            422,
            "events[0]: value: must be a number or null",
        ),
        (
            {"events": [{**event("t2", "a0", "login", now()), "ts": 12}]},
            422,
            "events[0]: ts: must be an ISO 8601 time string",
        ),
    ],
)
def test_refused_batches_say_why_and_put_nothing_on_the_log(
    server, event_log, body, status, error
) -> None:
    answer = send(server, body)
    assert answer.status == status
    assert json.loads(answer.body)["error"] == error
    assert answer.headers["content-type"] == "application/json"
    assert event_log.status()["length"] == 0


def test_an_oversize_body_is_refused_before_it_is_read(server, event_log) -> None:
    answer = send(server, b"{" + b" " * (2 << 20) + b"}")
    assert answer.status == 413
    assert "at most" in json.loads(answer.body)["error"]
    assert event_log.status()["length"] == 0


def test_slack_requests_still_need_their_signature(server) -> None:
    answer = post_command(server.events_url, "/persona", "active", secret="not-the-secret")
    assert answer.status == 401

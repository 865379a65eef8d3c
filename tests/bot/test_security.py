"""Only requests signed by Slack, within five minutes, reach the app: 401 and nothing changed."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from slack_bolt.request import BoltRequest
from slack_sdk.signature import Clock
from sqlalchemy import Engine

from bot.server import VerifySlackRequest
from store.db import make_engine
from tests.slack import (
    FORM,
    SIGNING_SECRET,
    FakeSlack,
    Response,
    command_body,
    post_action,
    post_command,
    post_event,
    row_counts,
    sign,
)

pytestmark = pytest.mark.usefixtures("catalog")


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """SQLite only here: the signature gate runs before any database work."""
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


def _feedback(url: str, **kwargs) -> Response:
    return post_command(url, "/feedback", "trial prospects ask for SSO", **kwargs)


def _event(url: str, **kwargs) -> Response:
    return post_event(url, {"type": "app_home_opened", "user": "U111", "tab": "home"}, **kwargs)


def _click(url: str, **kwargs) -> Response:
    return post_action(url, "proposal_approve", "1", **kwargs)


PAYLOADS: dict[str, Callable[..., Response]] = {
    "command": _feedback,
    "event": _event,
    "action": _click,
}
# Stale and future timestamps are correctly signed: a replay outside the five-minute window.
# They are offsets from the moment the request is sent (never from import time: a long
# suite would otherwise drift them back inside the window).
FORGERIES = {
    "forged signature": {"signature": "v0=" + "0" * 64},
    "wrong secret": {"secret": "not-the-signing-secret"},
    "unsigned": {"secret": None},
    "stale timestamp (6 min)": {"timestamp_offset": -6 * 60},
    "future timestamp (6 min)": {"timestamp_offset": 6 * 60},
    "missing timestamp": {"timestamp": None},
    "non-numeric timestamp": {"timestamp": "yesterday"},
    "empty timestamp": {"timestamp": ""},
}


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("forgery", FORGERIES)
def test_forged_request_gets_401_and_changes_nothing(
    slack_server, fake_slack: FakeSlack, engine: Engine, payload: str, forgery: str
):
    before = row_counts(engine)
    forged = dict(FORGERIES[forgery])
    if "timestamp_offset" in forged:
        forged["timestamp"] = int(time.time()) + forged.pop("timestamp_offset")
    response = PAYLOADS[payload](slack_server.events_url, **forged)
    assert response.status == 401
    assert response.json() == {"error": "invalid request"}
    assert fake_slack.api_calls() == []
    assert row_counts(engine) == before


def test_signed_command_is_accepted_and_acts(slack_server, fake_slack: FakeSlack, engine: Engine):
    before = row_counts(engine)
    response = _feedback(slack_server.events_url, response_url=fake_slack.response_url("fb"))
    assert response.status == 200
    reply = fake_slack.wait_for("response_url")[0]
    assert "Logged feedback" in reply.body["text"]
    assert row_counts(engine)["feedback"] == before["feedback"] + 1


def test_signature_over_a_different_body_is_refused(slack_server, fake_slack: FakeSlack):
    ts = int(time.time())
    signed_for = command_body("/segment", "help")
    response = post_command(
        slack_server.events_url,
        "/segment",
        "refresh",
        timestamp=ts,
        signature=sign(signed_for, SIGNING_SECRET, ts),
    )
    assert response.status == 401
    assert fake_slack.api_calls() == []


def test_retried_signed_event_outside_the_window_is_refused(slack_server, engine: Engine):
    before = row_counts(engine)
    response = _event(slack_server.events_url, timestamp=int(time.time()) - 301, retry_num=3)
    assert response.status == 401
    assert row_counts(engine) == before


def test_bolt_keeps_its_own_verification(slack_app, fake_slack: FakeSlack):
    body = command_body("/segment", "help")
    ts = str(int(time.time()))
    request = BoltRequest(
        body=body,
        headers={
            "content-type": FORM,
            "x-slack-request-timestamp": ts,
            "x-slack-signature": "v0=" + "f" * 64,
        },
    )
    assert slack_app.dispatch(request).status == 401
    assert fake_slack.api_calls() == []


class FixedClock(Clock):
    def __init__(self, now: float) -> None:
        self.at = now

    def now(self) -> float:
        return self.at


@pytest.mark.parametrize(
    ("timestamp", "signature", "reason"),
    [
        (None, "v0=x", "missing timestamp"),
        ("", "v0=x", "missing timestamp"),
        ("12a", "v0=x", "non-numeric timestamp"),
        ("-100", "v0=x", "non-numeric timestamp"),
        ("1e9", "v0=x", "non-numeric timestamp"),
        ("999699", "v0=x", "stale timestamp"),
        ("1000000", None, "missing signature"),
        ("1000000", "v0=bad", "bad signature"),
    ],
)
def test_gate_names_why_it_rejects(timestamp, signature, reason):
    gate = VerifySlackRequest(lambda environ, start: [], SIGNING_SECRET, clock=FixedClock(1e6))
    assert gate.reason_to_reject(b"body", timestamp, signature) == reason


def test_gate_accepts_a_request_signed_299_seconds_ago():
    gate = VerifySlackRequest(lambda environ, start: [], SIGNING_SECRET, clock=FixedClock(1e6))
    ts = str(int(1e6) - 299)
    assert gate.reason_to_reject(b"body", ts, sign(b"body", SIGNING_SECRET, ts)) == ""

"""The real app behind waitress: health, handshake, commands, event de-duplication, ack latency."""

from __future__ import annotations

import json
import urllib.request

import pytest
from slack_bolt.adapter.socket_mode import SocketModeHandler
from sqlalchemy import Engine, select

from bot.dedupe import is_processed
from bot.server import socket_handler
from cli.bench.slack import ack_latency
from store.db import session_scope
from store.models import Feedback, Proposal, SlackEvent
from tests.slack import (
    SIGNING_SECRET,
    FakeSlack,
    Reply,
    post_action,
    post_command,
    post_event,
    post_shortcut,
    post_url_verification,
    post_view_submission,
    wait_until,
)

pytestmark = pytest.mark.usefixtures("catalog")


def home_opened(user: str = "U111") -> dict:
    return {"type": "app_home_opened", "user": user, "tab": "home", "channel": "D111"}


def published_for(fake: FakeSlack, user: str) -> list:
    return [c for c in fake.calls_to("views.publish") if c.body.get("user_id") == user]


def test_health_check_answers_ok(slack_server):
    with urllib.request.urlopen(slack_server.url + "/healthz", timeout=5) as answer:
        assert (answer.status, answer.read()) == (200, b"ok")


def test_url_verification_challenge_is_answered(slack_server):
    response = post_url_verification(slack_server.events_url, "3eZbrw1aBm2rZgRNFdxV2595E9CY")
    assert response.status == 200
    assert response.json() == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY"}


def test_unknown_path_is_404(slack_server):
    response = post_command(slack_server.url + "/elsewhere", "/segment", "help")
    assert response.status == 404


def test_usage_errors_come_back_in_the_ack(slack_server, fake_slack: FakeSlack):
    response = post_command(slack_server.events_url, "/segment", "frobnicate")
    assert response.status == 200
    assert "unknown subcommand `frobnicate`" in response.text
    assert fake_slack.api_calls() == []


def test_feedback_command_acks_then_saves_and_confirms(
    slack_server, fake_slack: FakeSlack, engine: Engine
):
    response = post_command(
        slack_server.events_url,
        "/feedback",
        "trial buyers want SSO, call +44 20 7946 0958",
        user_id="U333",
        response_url=fake_slack.response_url("fb"),
    )
    assert (response.status, response.body) == (200, b"")
    confirmation = fake_slack.wait_for("response_url")[0].body["text"]
    assert "Logged feedback" in confirmation and "[phone]" in confirmation
    with session_scope(engine) as session:
        saved = session.scalars(select(Feedback)).one()
    assert (saved.author, saved.origin) == ("U333", "slack")


def test_unknown_segment_is_explained_to_the_user(slack_server, fake_slack: FakeSlack):
    post_command(
        slack_server.events_url,
        "/persona",
        "trail",
        response_url=fake_slack.response_url("p"),
    )
    reply = fake_slack.wait_for("response_url")[0].body["text"]
    assert "unknown segment 'trail'" in reply and "did you mean 'trial'" in reply


def test_event_is_claimed_and_marked_processed(slack_server, fake_slack: FakeSlack, engine):
    assert post_event(slack_server.events_url, home_opened(), event_id="Ev1").status == 200
    fake_slack.wait_for("views.publish")
    assert _wait_processed(engine, "Ev1")


def test_retry_of_a_processed_event_is_acked_and_ignored(
    slack_server, fake_slack: FakeSlack, engine: Engine
):
    post_event(slack_server.events_url, home_opened("U111"), event_id="Ev1")
    fake_slack.wait_for("views.publish")
    assert _wait_processed(engine, "Ev1")

    retry = post_event(slack_server.events_url, home_opened("U111"), event_id="Ev1", retry_num=1)
    assert (retry.status, retry.body) == (200, b"")
    # A later event, once handled, shows the retry had its chance to act and did not.
    post_event(slack_server.events_url, home_opened("U222"), event_id="Ev2")
    fake_slack.wait_for("views.publish", where=lambda c: c.body.get("user_id") == "U222")
    assert len(published_for(fake_slack, "U111")) == 1


def test_duplicate_delivery_without_retry_header_is_ignored(
    slack_server, fake_slack: FakeSlack, engine: Engine
):
    with session_scope(engine) as session:
        session.add(SlackEvent(event_id="Ev1"))  # claimed by a delivery still at work
    post_event(slack_server.events_url, home_opened("U111"), event_id="Ev1")
    post_event(slack_server.events_url, home_opened("U222"), event_id="Ev2")
    fake_slack.wait_for("views.publish", where=lambda c: c.body.get("user_id") == "U222")
    assert published_for(fake_slack, "U111") == []


def test_event_whose_first_delivery_failed_is_processed_on_retry(
    slack_server, fake_slack: FakeSlack, engine: Engine
):
    fake_slack.fail_next("views.publish", Reply.server_error())
    post_event(slack_server.events_url, home_opened("U111"), event_id="Ev1")
    fake_slack.wait_for("views.publish")
    assert not is_processed(engine, "Ev1")

    retry = post_event(slack_server.events_url, home_opened("U111"), event_id="Ev1", retry_num=1)
    assert retry.status == 200
    calls = fake_slack.wait_for("views.publish", 2)
    assert [c.ok for c in calls] == [False, True]
    assert _wait_processed(engine, "Ev1")


def test_signed_help_acks_within_slacks_budget_under_50_concurrent_requests(slack_server):
    report = ack_latency(slack_server.events_url, SIGNING_SECRET, requests=50)
    assert report.statuses == {200: 50}
    assert report.p99_ms < 3000


def test_socket_mode_handler_is_built_for_the_app(slack_app):
    handler = socket_handler(slack_app, "xapp-1-A111-111-abc")
    try:
        assert isinstance(handler, SocketModeHandler)
        assert handler.app is slack_app
    finally:
        handler.close()


def test_socket_mode_needs_an_app_token(slack_app):
    with pytest.raises(ValueError, match="SLACK_APP_TOKEN"):
        socket_handler(slack_app, "")


def _wait_processed(engine: Engine, event_id: str) -> bool:
    return wait_until(lambda: is_processed(engine, event_id), message=f"{event_id} processed")


# --- listeners reach their use cases ------------------------------------------------------


def test_persona_brief_is_answered_with_blocks(slack_server, fake_slack: FakeSlack):
    post_command(
        slack_server.events_url, "/persona", "trial", response_url=fake_slack.response_url()
    )
    reply = fake_slack.wait_for("response_url")[0].body
    assert reply["blocks"] and "Trial accounts" in reply["text"]


def test_segment_list_shows_the_catalog(slack_server, fake_slack: FakeSlack):
    post_command(
        slack_server.events_url, "/segment", "list", response_url=fake_slack.response_url()
    )
    reply = fake_slack.wait_for("response_url")[0].body
    assert "`trial`" in json.dumps(reply["blocks"])


@pytest.mark.parametrize("sub", ["show trial", "history trial", "drift trial"])
def test_segment_subcommands_answer(slack_server, fake_slack: FakeSlack, sub: str):
    post_command(slack_server.events_url, "/segment", sub, response_url=fake_slack.response_url())
    assert "trial" in fake_slack.wait_for("response_url")[0].body["text"]


def _propose(slack_server, fake_slack: FakeSlack) -> tuple[str, str]:
    post_command(
        slack_server.events_url,
        "/segment",
        "propose trial rule: plan = 'trial' and seats >= 2 reason: one-seat trials are noise",
        user_id="U333",
        response_url=fake_slack.response_url("propose"),
    )
    posted = fake_slack.wait_for("chat.postMessage")[0]
    assert posted.body["channel"] == "C111"
    assert "proposal_approve" in json.dumps(posted.body["blocks"])
    fake_slack.wait_for("response_url")
    return posted.reply.body["channel"], posted.reply.body["ts"]


def _proposal(engine: Engine) -> Proposal:
    with session_scope(engine) as session:
        return session.scalars(select(Proposal)).one()


def test_proposal_is_posted_and_approved_with_the_button(
    slack_server, fake_slack: FakeSlack, engine: Engine
):
    channel, ts = _propose(slack_server, fake_slack)
    assert (_proposal(engine).channel, _proposal(engine).message_ts) == (channel, ts)
    response = post_action(
        slack_server.events_url,
        "proposal_approve",
        str(_proposal(engine).id),
        user_id="U222",
        channel_id=channel,
        message_ts=ts,
        response_url=fake_slack.response_url("click"),
    )
    assert response.status == 200
    update = fake_slack.wait_for("chat.update")[0].body
    assert (update["channel"], update["ts"]) == (channel, ts)
    assert "proposal_approve" not in json.dumps(update["blocks"])
    assert _proposal(engine).status == "approved"


def test_proposer_cannot_approve_and_is_told_privately(
    slack_server, fake_slack: FakeSlack, engine: Engine
):
    channel, ts = _propose(slack_server, fake_slack)
    post_action(
        slack_server.events_url,
        "proposal_approve",
        str(_proposal(engine).id),
        user_id="U333",
        channel_id=channel,
        message_ts=ts,
        response_url=fake_slack.response_url("click"),
    )
    told = fake_slack.wait_for("response_url", 2)[1].body
    assert "cannot approve" in told["text"] or "only the owner" in told["text"]
    assert told["replace_original"] is False
    assert _proposal(engine).status == "pending"


def test_owner_reaction_rejects_a_proposal(slack_server, fake_slack: FakeSlack, engine: Engine):
    channel, ts = _propose(slack_server, fake_slack)
    reaction = {
        "type": "reaction_added",
        "user": "U111",
        "reaction": "x",
        "item": {"type": "message", "channel": channel, "ts": ts},
        "item_user": "U0BOT",
    }
    assert post_event(slack_server.events_url, reaction, event_id="EvR").status == 200
    fake_slack.wait_for("chat.update")
    assert (_proposal(engine).status, _proposal(engine).decision_via) == ("rejected", "reaction")


def test_message_shortcut_opens_the_feedback_form(slack_server, fake_slack: FakeSlack):
    message = {"text": "they need SSO &amp; SCIM", "ts": "1700000001.000100"}
    post_shortcut(slack_server.events_url, "log_feedback", message=message)
    view = fake_slack.wait_for("views.open")[0].body["view"]
    view = json.loads(view) if isinstance(view, str) else view
    assert view["callback_id"] == "feedback_submit"
    text_input = next(b for b in view["blocks"] if b["block_id"] == "text")["element"]
    assert text_input["initial_value"] == "they need SSO & SCIM"


def test_feedback_form_submission_is_saved(slack_server, fake_slack: FakeSlack, engine: Engine):
    values = {
        "segment": {"value": {"type": "static_select", "selected_option": {"value": "trial"}}},
        "text": {"value": {"type": "plain_text_input", "value": "asked for SSO"}},
        "sentiment": {"value": {"type": "static_select", "selected_option": {"value": "negative"}}},
        "importance": {"value": {"type": "static_select", "selected_option": None}},
        "reference": {"value": {"type": "plain_text_input", "value": None}},
    }
    metadata = json.dumps({"channel": "C111", "ts": "1700000001.000100"})
    response = post_view_submission(
        slack_server.events_url, "feedback_submit", values, private_metadata=metadata
    )
    assert (response.status, response.body) == (200, b"")
    fake_slack.wait_for("chat.postEphemeral")
    with session_scope(engine) as session:
        saved = session.scalars(select(Feedback)).one()
    assert (saved.sentiment, saved.permalink) == (
        "negative",
        "https://t111.slack.com/archives/C111/p1700000001000100",
    )


def test_app_home_shows_the_users_segments(slack_server, fake_slack: FakeSlack):
    post_event(slack_server.events_url, home_opened("U111"))
    view = fake_slack.wait_for("views.publish")[0].body["view"]
    view = json.loads(view) if isinstance(view, str) else view
    assert view["type"] == "home" and "Your segments" in json.dumps(view["blocks"])

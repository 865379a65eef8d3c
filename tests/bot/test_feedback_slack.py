"""Field feedback through the real app: the form, redaction, and field errors that write nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from slack_bolt import App
from sqlalchemy import Engine
from sqlmodel import select

from bot.app import shutdown
from store.db import session_scope
from store.models import Feedback
from tests.bot.conftest import REP
from tests.slack import (
    FakeSlack,
    command_body,
    post,
    post_command,
    post_view_submission,
    row_counts,
)

pytestmark = pytest.mark.usefixtures("catalog")


def settle(app: App) -> None:
    """Wait until every listener and lazy function started so far has finished."""
    shutdown(app, wait=True)


def form(segment: dict[str, Any], text: str) -> dict[str, Any]:
    """``state.values`` of a feedback form with optional fields left empty."""
    return {
        "segment": {"value": segment},
        "text": {"value": {"type": "plain_text_input", "value": text}},
        "sentiment": {"value": {"type": "static_select", "selected_option": None}},
        "importance": {"value": {"type": "static_select", "selected_option": None}},
        "reference": {"value": {"type": "plain_text_input", "value": None}},
    }


def chosen(name: str) -> dict[str, Any]:
    return {"type": "static_select", "selected_option": {"value": name}}


def typed(name: str) -> dict[str, Any]:
    return {"type": "plain_text_input", "value": name}


def submit(server, values: dict[str, Any]):
    metadata = json.dumps({"channel": "C111"})
    return post_view_submission(
        server.events_url, "feedback_submit", values, private_metadata=metadata, user_id=REP
    )


def test_feedback_alone_opens_the_form(slack_app, slack_server, fake_slack: FakeSlack):
    body = command_body("/feedback", "", user_id=REP, trigger_id="7.111.form")
    response = post(slack_server.events_url, body, content_type="application/x-www-form-urlencoded")
    assert (response.status, response.body) == (200, b"")
    settle(slack_app)
    (opened,) = fake_slack.calls_to("views.open")
    view = opened.body["view"]
    view = json.loads(view) if isinstance(view, str) else view
    assert opened.body["trigger_id"] == "7.111.form"
    assert view["callback_id"] == "feedback_submit"
    assert json.loads(view["private_metadata"]) == {"channel": "C111"}
    assert {b["block_id"] for b in view["blocks"]} >= {"segment", "text"}


def test_feedback_text_is_stored_redacted(
    slack_app, slack_server, fake_slack: FakeSlack, engine: Engine
):
    post_command(
        slack_server.events_url,
        "/feedback",
        "trial wants SSO before the pilot, write to jo@example.com",
        user_id=REP,
        response_url=fake_slack.response_url("fb"),
    )
    settle(slack_app)
    with session_scope(engine) as session:
        saved = session.exec(select(Feedback)).one()
    assert saved.text == "wants SSO before the pilot, write to [email]"
    assert (saved.author, saved.origin) == (REP, "slack")
    (confirmation,) = fake_slack.calls_to("response_url")
    assert "[email]" in confirmation.body["text"]
    assert "jo@example.com" not in confirmation.body["text"]


def test_an_empty_observation_gets_a_field_error_and_writes_nothing(
    slack_app, slack_server, fake_slack: FakeSlack, engine: Engine
):
    before = row_counts(engine)
    response = submit(slack_server, form(chosen("trial"), "   "))
    assert response.status == 200
    assert response.json() == {
        "response_action": "errors",
        "errors": {"text": "Say what you heard from the customer."},
    }
    settle(slack_app)
    assert fake_slack.api_calls() == []
    assert row_counts(engine) == before


def test_an_unknown_segment_in_the_form_gets_a_field_error_and_writes_nothing(
    slack_app, slack_server, fake_slack: FakeSlack, engine: Engine
):
    before = row_counts(engine)
    response = submit(slack_server, form(typed("trail"), "asked for SSO"))
    assert response.json() == {
        "response_action": "errors",
        "errors": {"segment": "unknown segment 'trail' (did you mean 'trial'?)"},
    }
    settle(slack_app)
    assert fake_slack.api_calls() == []
    assert row_counts(engine) == before


def test_a_valid_form_closes_and_is_saved_redacted(
    slack_app, slack_server, fake_slack: FakeSlack, engine: Engine
):
    response = submit(slack_server, form(typed("trial"), "call me on +44 20 7946 0958"))
    assert (response.status, response.body) == (200, b"")
    settle(slack_app)
    with session_scope(engine) as session:
        saved = session.exec(select(Feedback)).one()
    assert saved.text == "call me on [phone]"
    (told,) = fake_slack.calls_to("chat.postEphemeral")
    assert (told.body["channel"], told.body["user"]) == ("C111", REP)

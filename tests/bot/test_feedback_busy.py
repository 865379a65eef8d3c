"""Feedback while another process holds the database: it waits and is stored, or the rep
is told and gets their words back. Acknowledged always means stored."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from bot.app import build_app, shutdown
from bot.server import BackgroundServer
from commands.settings import Settings
from store.db import session_scope
from store.models import Feedback
from tests.bot.conftest import REP, database_held
from tests.slack import FakeSlack, post_command

pytestmark = [pytest.mark.usefixtures("catalog"), pytest.mark.slow]


@pytest.fixture
def server(slack_settings: Settings, engine: Engine, request) -> Iterator[BackgroundServer]:
    budget = getattr(request, "param", 20.0)
    app = build_app(slack_settings.model_copy(update={"write_budget": budget}), engine=engine)
    with BackgroundServer(app, threads=8) as running:
        yield running
    shutdown(app)


def feedback_rows(engine: Engine) -> list[str]:
    with session_scope(engine) as session:
        return list(session.exec(select(Feedback.text)).all())


def test_feedback_sent_while_the_database_is_held_waits_and_is_stored(
    server, fake_slack: FakeSlack, engine: Engine
):
    with database_held(engine, seconds=6.5):  # longer than SQLite's own 5 s busy wait
        response = post_command(
            server.events_url,
            "/feedback",
            "trial they asked for SSO before buying",
            user_id=REP,
            response_url=fake_slack.response_url(),
        )
        assert response.status == 200
        time.sleep(0.5)
        assert feedback_rows(engine) == []
    reply = fake_slack.wait_for("response_url", timeout=20)[0].body
    assert reply["text"].startswith(":memo: Logged feedback")
    assert feedback_rows(engine) == ["they asked for SSO before buying"]


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)  # PostgreSQL waits on the row
@pytest.mark.parametrize("server", [1.0], indirect=True)
def test_feedback_that_cannot_be_stored_is_given_back_to_the_rep(
    server, fake_slack: FakeSlack, engine: Engine
):
    with database_held(engine, seconds=8):
        post_command(
            server.events_url,
            "/feedback",
            "trial pricing <page> confused them",
            user_id=REP,
            response_url=fake_slack.response_url(),
        )
        reply = fake_slack.wait_for("response_url", timeout=20)[0].body
    assert "nothing was saved" in reply["text"] and "send it again" in reply["text"]
    assert reply["text"].endswith("What you wrote:\n> pricing &lt;page&gt; confused them")
    assert feedback_rows(engine) == []

"""``/segment learnings`` through the real app: list, search, add a note, bad input."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from sqlalchemy import Engine

from bot.app import shutdown
from commands.catalog import apply_workspace
from commands.learnings import list_learnings, show_learning
from segments.workspace import load_workspace
from tests.bot.conftest import OWNER, REP, WORKSPACE
from tests.slack import FakeSlack, post_command, row_counts


@pytest.fixture
def learned(engine: Engine, tmp_path: Path, catalog: Path) -> int:
    """The ``trial`` catalog changed once with a hypothesis: one learning."""
    data = copy.deepcopy(WORKSPACE)
    trial = data["segments"][0]
    trial["rule"] = "plan = 'trial' and seats >= 2"
    trial["hypothesis"] = {
        "kpi": "seats",
        "direction": "increase",
        "mde": 0.2,
        "window_days": 14,
        "statement": "Teams of two convert",
    }
    catalog.write_text(yaml.safe_dump(data, sort_keys=False))
    apply_workspace(
        engine, load_workspace(catalog), reason="one-seat trials never buy", author=OWNER
    )
    (entry,) = list_learnings(engine)
    return entry.id


def ask(slack_app, slack_server, fake_slack: FakeSlack, text: str) -> str:
    before = len(fake_slack.calls_to("response_url"))
    response = post_command(
        slack_server.events_url,
        "/segment",
        text,
        user_id=REP,
        response_url=fake_slack.response_url(),
    )
    assert response.status == 200
    shutdown(slack_app, wait=True)
    replies = fake_slack.calls_to("response_url")[before:]
    assert len(replies) == 1
    return replies[0].body["text"]


def test_learnings_of_a_segment_show_what_why_and_who(
    slack_app, slack_server, fake_slack, learned
) -> None:
    text = ask(slack_app, slack_server, fake_slack, "learnings trial")
    assert f"#{learned}" in text and "`trial`" in text
    assert "seats &gt;= 2" in text or "seats >= 2" in text
    assert "why: one-seat trials never buy" in text
    assert f"<@{OWNER}>" in text
    assert "effect recorded when its window closes" in text


def test_search_words_that_match_nothing_say_so(
    slack_app, slack_server, fake_slack, learned
) -> None:
    text = ask(slack_app, slack_server, fake_slack, "learnings pricing page")
    assert "No learnings yet for that" in text


def test_a_note_from_slack_is_scrubbed_and_kept(
    slack_app, slack_server, fake_slack, learned, engine
) -> None:
    text = ask(
        slack_app, slack_server, fake_slack, f"learnings note {learned} call jo@acme.io first"
    )
    assert f"#{learned}" in text
    (note,) = show_learning(engine, learned).notes
    assert note["author"] == REP and note["text"] == "call [email] first"


def test_a_bad_note_gets_the_usage_and_writes_nothing(
    slack_app, slack_server, fake_slack, learned, engine
) -> None:
    before = row_counts(engine)
    for text in ("learnings note abc hello", "learnings note 999 hello"):
        response = post_command(
            slack_server.events_url,
            "/segment",
            text,
            user_id=REP,
            response_url=fake_slack.response_url(),
        )
        assert response.status == 200
    shutdown(slack_app, wait=True)
    replies = sorted(c.body["text"] for c in fake_slack.calls_to("response_url"))
    assert len(replies) == 2
    assert any("usage: `/segment learnings note ID WHAT-YOU-WANT-TO-ADD`" in r for r in replies)
    assert any("no learning #999" in r for r in replies)
    assert row_counts(engine) == before

"""App Home through the real app: an owner's segments and decisions, everyone else's catalog."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from slack_bolt import App
from sqlalchemy import Engine, func
from sqlmodel import select

from bot.app import shutdown
from bot.listeners.home.app_home_opened import Home
from briefs.blocks import blocks_text
from commands.feedback import add_feedback
from commands.proposals import propose, set_message
from commands.settings import Settings
from store.db import session_scope
from store.models import SegmentVersion
from tests.commands.test_alerts import _drift_template, drift  # noqa: F401 (fixtures)
from tests.factories import APPROVER, OWNER, PROPOSER
from tests.slack import TEAM_ID, FakeSlack, post_event, post_interactive

PROPOSAL_TS = "1700000001.000100"


def settle(app: App) -> None:
    """Wait until every listener and lazy function started so far has finished."""
    shutdown(app, wait=True)


def decoded(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


@pytest.fixture
def proposal_id(request, engine: Engine) -> int:
    """A pending rule change to ``trial``, posted in C111, on the refreshed ``drift``
    catalog (owner U111; open alerts on ``enterprise``, which also gets two field notes).
    """
    request.getfixturevalue("drift")
    for text in ("asked for SSO and SCIM", "security review took a quarter"):
        add_feedback(engine, segment="enterprise", author=PROPOSER, text=text, origin="slack")
    proposal = propose(
        engine,
        None,
        segment="trial",
        proposer=PROPOSER,
        kind="edit",
        changes={"rule": "plan = 'trial' and seats >= 2"},
        reason="one-seat trials are noise",
    )
    set_message(engine, proposal.id, "C111", PROPOSAL_TS)
    return proposal.id


def home_of(server, fake: FakeSlack, app: App, user: str) -> dict[str, Any]:
    """Open ``user``'s Home tab and return the view published for them."""
    post_event(server.events_url, {"type": "app_home_opened", "user": user, "tab": "home"})
    settle(app)
    (published,) = fake.calls_to("views.publish")
    assert published.body["user_id"] == user
    return decoded(published.body["view"])


def section(blocks: list[dict[str, Any]], needle: str) -> str:
    return next(
        b["text"]["text"] for b in blocks if needle in (b.get("text") or {}).get("text", "")
    )


def buttons(blocks: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [
        (e["action_id"], e["value"])
        for b in blocks
        if b["type"] == "actions"
        for e in b["elements"]
    ]


def test_the_owner_sees_each_segments_health(
    slack_app, slack_server, fake_slack: FakeSlack, proposal_id: int
):
    blocks = home_of(slack_server, fake_slack, slack_app, OWNER)["blocks"]
    assert blocks[0]["text"]["text"] == "Your segments · 4 segments"
    enterprise = section(blocks, "`enterprise`")
    assert "*Enterprise accounts* `enterprise` · core · v1 · active" in enterprise
    assert re.search(r"[\d,]+ members · last refresh 2026-03-30", enterprise)
    assert re.search(r"Trend [▁▂▃▄▅▆▇█]{2} over 2 refreshes", enterprise)
    assert "⚠️ 2 open alerts · 📝 2 field notes in 30 days" in enterprise
    assert "✅ 0 open alerts · 📝 0 field notes in 30 days" in section(blocks, "`trial`")


def test_the_owner_sees_pending_proposals_with_approve_and_reject(
    slack_app, slack_server, fake_slack: FakeSlack, proposal_id: int
):
    blocks = home_of(slack_server, fake_slack, slack_app, OWNER)["blocks"]
    pending = section(blocks, f"Proposal #{proposal_id}")
    assert f"edit `trial` · by <@{PROPOSER}>" in pending
    assert "one-seat trials are noise" in pending
    assert buttons(blocks) == [
        ("proposal_approve", str(proposal_id)),
        ("proposal_reject", str(proposal_id)),
    ]


def test_someone_who_owns_nothing_sees_the_catalog_and_how_to_ask(
    slack_app, slack_server, fake_slack: FakeSlack, proposal_id: int
):
    blocks = home_of(slack_server, fake_slack, slack_app, PROPOSER)["blocks"]
    text = blocks_text(blocks)
    assert blocks[0]["text"]["text"] == "Segment catalog · 4 segments"
    assert "*Enterprise accounts* `enterprise`" in text
    assert "`/persona <segment>`" in text and "`/feedback <segment> <what you heard>`" in text
    assert "Your segments" not in text and "Waiting for your decision" not in text
    assert buttons(blocks) == []


def test_an_approver_who_owns_nothing_sees_what_waits_for_them(
    slack_app, slack_server, fake_slack: FakeSlack, proposal_id: int
):
    blocks = home_of(slack_server, fake_slack, slack_app, APPROVER)["blocks"]
    assert blocks[0]["text"]["text"] == "Segment catalog · 4 segments"
    assert ("proposal_approve", str(proposal_id)) in buttons(blocks)


def click_from_home(server, user: str, proposal_id: int) -> int:
    """A signed Approve click on the Home tab (no channel, no response_url)."""
    payload = {
        "type": "block_actions",
        "team": {"id": TEAM_ID, "domain": "t111"},
        "user": {"id": user, "username": user.lower(), "team_id": TEAM_ID},
        "api_app_id": "A111",
        "token": "legacy-verification-token",
        "container": {"type": "view", "view_id": "V0HOME"},
        "trigger_id": "9.111.home",
        "view": {"id": "V0HOME", "type": "home", "team_id": TEAM_ID, "blocks": []},
        "actions": [
            {
                "type": "button",
                "action_id": "proposal_approve",
                "block_id": "b1",
                "value": str(proposal_id),
                "action_ts": "1700000002.000200",
            }
        ],
    }
    return post_interactive(server.events_url, payload).status


def versions(engine: Engine) -> int:
    with session_scope(engine) as session:
        return session.exec(select(func.count()).select_from(SegmentVersion)).one()


def test_approving_from_home_updates_the_proposal_message_and_the_home_tab(
    slack_app, slack_server, fake_slack: FakeSlack, engine: Engine, proposal_id: int
):
    assert click_from_home(slack_server, APPROVER, proposal_id) == 200
    settle(slack_app)
    (update,) = fake_slack.calls_to("chat.update")
    assert (update.body["channel"], update.body["ts"]) == ("C111", PROPOSAL_TS)
    (published,) = fake_slack.calls_to("views.publish")
    home = decoded(published.body["view"])
    assert published.body["user_id"] == APPROVER and buttons(home["blocks"]) == []
    assert versions(engine) == 5


def test_a_refused_click_from_home_is_explained_in_a_direct_message(
    slack_app, slack_server, fake_slack: FakeSlack, engine: Engine, proposal_id: int
):
    assert click_from_home(slack_server, PROPOSER, proposal_id) == 200
    settle(slack_app)
    (told,) = fake_slack.calls_to("chat.postMessage")
    assert told.body["channel"] == PROPOSER
    assert told.body["text"].startswith(":no_entry: Not authorised: only the owner <@U111>")
    assert fake_slack.calls_to("chat.update") == []
    assert versions(engine) == 4


def test_sizes_under_the_privacy_floor_are_not_shown(engine: Engine, proposal_id: int):
    settings = Settings(SEGOPS_PRIVACY_FLOOR=100_000)
    home = Home(engine, settings)
    ctx = home.home_context(OWNER)
    assert {s["size"] for s in ctx["segments"]} == {None}
    assert {size for s in ctx["segments"] for _day, size in s["trend"]} == {None}
    text = blocks_text(home.home_view(OWNER)["blocks"])
    assert "Fewer than 100,000 members · last refresh 2026-03-30" in text
    assert "Trend" not in text

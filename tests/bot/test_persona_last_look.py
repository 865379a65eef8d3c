"""/persona tells the person asking what changed since they last read the brief: the
members who joined and left between the refresh they saw and the current one, and a
new definition version; a first read says so. Through the real app, signed requests."""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine, func
from sqlmodel import select

from bot.app import shutdown
from briefs.blocks import blocks_text
from commands.catalog import apply_workspace
from commands.refresh import refresh
from segments.workspace import load_workspace
from store.db import session_scope
from store.models import BriefView
from tests.bot.conftest import OWNER, REP, WORKSPACE
from tests.slack import FakeSlack, post_action, post_command

DAY1, DAY2 = date(2026, 6, 30), date(2026, 7, 31)


def crm(plans: dict[str, str]) -> str:
    return "account_id,plan,seats\n" + "".join(f"{a},{p},5\n" for a, p in plans.items())


FIRST = {f"A{i:03d}": "trial" for i in range(1, 31)} | {f"A{i:03d}": "pro" for i in range(31, 41)}
SECOND = (
    FIRST
    | {f"A{i:03d}": "pro" for i in range(1, 6)}  # five trials convert: they leave
    | {f"A{i:03d}": "trial" for i in range(41, 44)}  # three new trials join
    | {"A044": "beta", "A045": "beta"}  # and two beta accounts, under the new rule
)


class Workspace:
    def __init__(self, engine: Engine, root: Path) -> None:
        self.engine, self.root = engine, root

    def publish(self, plans: dict[str, str], rule: str, as_of: date) -> None:
        data = copy.deepcopy(WORKSPACE)
        data["segments"][0]["rule"] = rule
        (self.root / "crm.csv").write_text(crm(plans))
        path = self.root / "workspace.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        ws = load_workspace(path)
        apply_workspace(self.engine, ws, reason="set up", author=OWNER)
        refresh(self.engine, ws, as_of=as_of, notify=False)


@pytest.fixture
def workspace(engine: Engine, tmp_path: Path) -> Workspace:
    ws = Workspace(engine, tmp_path)
    ws.publish(FIRST, "plan = 'trial'", DAY1)
    return ws


def look(server, fake: FakeSlack, user: str, text: str = "trial") -> list[str]:
    """The "since you last looked" lines of the brief ``user`` gets for ``/persona text``
    (one message: the brief of ``trial`` is short)."""
    fake.reset()
    post_command(
        server.events_url, "/persona", text, user_id=user, response_url=fake.response_url()
    )
    replies = [c.body for c in fake.wait_for("response_url")]
    shown = "\n".join(blocks_text(_blocks(r)) for r in replies)
    return [line for line in shown.splitlines() if "look" in line.lower()]


def _blocks(reply: dict[str, Any]) -> list[dict[str, Any]]:
    blocks = reply.get("blocks") or []
    return json.loads(blocks) if isinstance(blocks, str) else blocks


def views(engine: Engine) -> int:
    with session_scope(engine) as session:
        return session.exec(select(func.count()).select_from(BriefView)).one()


def test_a_rep_sees_who_joined_and_left_since_their_last_read_and_the_new_definition(
    workspace: Workspace, engine: Engine, slack_server, fake_slack: FakeSlack
):
    today = datetime.now(UTC).date().isoformat()
    (first,) = look(slack_server, fake_slack, REP)
    assert first.startswith("👋 First look at this segment")

    workspace.publish(SECOND, "plan in ('trial', 'beta')", DAY2)
    (since,) = look(slack_server, fake_slack, REP, "trial talking-points")
    before = {a for a, p in FIRST.items() if p == "trial"}
    after = {a for a, p in SECOND.items() if p in ("trial", "beta")}
    joined, left = len(after - before), len(before - after)
    assert (joined, left) == (5, 5)
    assert since == (
        f"👀 Since you last looked on {today}: +{joined} joined · {left} left, definition v1 → v2"
    )

    (again,) = look(slack_server, fake_slack, REP, "trial discovery")
    assert again == f"👀 Since you last looked on {today}: nobody joined or left"
    (other,) = look(slack_server, fake_slack, OWNER)  # each person their own
    assert other.startswith("👋 First look")
    assert views(engine) == 2


def test_sizes_under_the_privacy_floor_are_not_told_and_a_shared_brief_has_no_such_line(
    workspace: Workspace, engine: Engine, slack_app, slack_server, fake_slack: FakeSlack
):
    look(slack_server, fake_slack, REP)
    small = {a: ("pro" if a > "A004" else p) for a, p in FIRST.items()}  # 4 trials left
    workspace.publish(small, "plan = 'trial'", DAY2)
    (since,) = look(slack_server, fake_slack, REP)
    assert since.endswith(": sizes hidden under the privacy floor")
    assert "joined" not in since

    fake_slack.reset()
    recorded = views(engine)
    post_action(
        slack_server.events_url,
        "persona_share",
        "trial|brief",
        user_id=REP,
        channel_id="C111",
        response_url=fake_slack.response_url("share"),
    )
    shutdown(slack_app, wait=True)
    (posted,) = fake_slack.calls_to("chat.postMessage")
    shared = blocks_text(_blocks(posted.body))
    assert "look" not in shared.lower()  # the channel reads no one's personal line
    assert views(engine) == recorded

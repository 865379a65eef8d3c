"""Change proposals through the real app: who may decide, exactly once, stale, reject, forms.

Every test drives the bolt app behind waitress with signed requests against the fake
Slack Web API, then ``settle``s the app (waits for every lazy function started so far)
before it asserts on the recorded Web API calls and on the database.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from slack_bolt import App
from sqlalchemy import Engine, func
from sqlmodel import select

from bot.app import shutdown
from store.db import session_scope
from store.models import Proposal, Segment, SegmentVersion
from tests.bot.conftest import APPROVER, OWNER, REP
from tests.slack import (
    Call,
    FakeSlack,
    Response,
    post_action,
    post_command,
    post_event,
    post_view_submission,
    row_counts,
    wait_until,
)

pytestmark = pytest.mark.usefixtures("catalog")

STRANGER = "U999"
EDIT = "propose trial rule: plan = 'trial' and seats >= 2 reason: one-seat trials are noise"


def settle(app: App) -> None:
    """Wait until every listener and lazy function started so far has finished."""
    shutdown(app, wait=True)


def decoded(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def has_buttons(call: Call) -> bool:
    return any(b["type"] == "actions" for b in decoded(call.body["blocks"]))


def propose(server, fake: FakeSlack, engine: Engine, text: str = EDIT) -> tuple[int, str, str]:
    """Propose through ``/segment`` as the rep; (proposal id, channel, ts) once it is posted."""
    key = f"propose-{len(fake.calls_to('chat.postMessage'))}"
    post_command(
        server.events_url, "/segment", text, user_id=REP, response_url=fake.response_url(key)
    )
    # The confirmation to the proposer comes after the post and after the proposal
    # remembers where it was posted.
    wait_until(lambda: replies_to(fake, key), message="proposal confirmed")
    posted = fake.calls_to("chat.postMessage")[-1]
    channel, ts = posted.reply.body["channel"], posted.reply.body["ts"]
    with session_scope(engine) as session:
        found = session.exec(
            select(Proposal.id).where(Proposal.channel == channel, Proposal.message_ts == ts)
        ).one()
    return found, channel, ts


def proposal(engine: Engine, proposal_id: int) -> Proposal:
    with session_scope(engine) as session:
        return session.get(Proposal, proposal_id)


def versions(engine: Engine) -> int:
    with session_scope(engine) as session:
        return session.exec(select(func.count()).select_from(SegmentVersion)).one()


def click(
    server,
    fake: FakeSlack,
    action: str,
    proposal_id: int,
    user: str,
    channel: str,
    ts: str,
    *,
    key: str = "click",
    **kwargs: Any,
) -> Response:
    """One signed button click on the proposal message; private replies go to ``key``."""
    return post_action(
        server.events_url,
        action,
        str(proposal_id),
        user_id=user,
        channel_id=channel,
        message_ts=ts,
        response_url=fake.response_url(key),
        **kwargs,
    )


def replies_to(fake: FakeSlack, key: str) -> list[dict[str, Any]]:
    return [c.body for c in fake.calls_to("response_url") if c.path.endswith("/" + key)]


def test_a_stranger_clicking_approve_is_told_privately_and_nothing_changes(
    slack_app, slack_server, fake_slack: FakeSlack, engine: Engine
):
    proposal_id, channel, ts = propose(slack_server, fake_slack, engine)
    before = row_counts(engine)
    response = click(
        slack_server,
        fake_slack,
        "proposal_approve",
        proposal_id,
        STRANGER,
        channel,
        ts,
        key="stranger",
    )
    assert (response.status, response.body) == (200, b"")
    settle(slack_app)
    (told,) = replies_to(fake_slack, "stranger")
    assert told["text"].startswith(":no_entry: Not authorised: only the owner <@U111>")
    assert told["replace_original"] is False and told.get("response_type") != "in_channel"
    assert fake_slack.calls_to("chat.update") == []
    assert proposal(engine, proposal_id).status == "pending"
    assert row_counts(engine) == before


def test_two_clicks_back_to_back_apply_one_version_and_update_the_message_once(
    slack_app, slack_server, fake_slack: FakeSlack, engine: Engine
):
    proposal_id, channel, ts = propose(slack_server, fake_slack, engine)
    for _ in range(2):
        response = click(
            slack_server, fake_slack, "proposal_approve", proposal_id, APPROVER, channel, ts
        )
        assert response.status == 200
    settle(slack_app)
    (update,) = fake_slack.calls_to("chat.update")
    assert (update.body["channel"], update.body["ts"]) == (channel, ts)
    assert not has_buttons(update)
    assert proposal(engine, proposal_id).status == "approved"
    assert versions(engine) == 2


def test_two_concurrent_clicks_apply_one_version_and_update_the_message_once(
    slack_app, slack_server, fake_slack: FakeSlack, engine: Engine
):
    proposal_id, channel, ts = propose(slack_server, fake_slack, engine)
    start = threading.Barrier(2)
    statuses: list[int] = []

    def approve(user: str) -> None:
        start.wait()
        statuses.append(
            click(
                slack_server, fake_slack, "proposal_approve", proposal_id, user, channel, ts
            ).status
        )

    threads = [threading.Thread(target=approve, args=(u,)) for u in (APPROVER, OWNER)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    settle(slack_app)
    assert statuses == [200, 200]
    (update,) = fake_slack.calls_to("chat.update")
    assert not has_buttons(update)
    row = proposal(engine, proposal_id)
    assert (row.status, row.decided_by in (APPROVER, OWNER)) == ("approved", True)
    assert versions(engine) == 2


def test_a_retried_action_delivery_is_a_no_op(
    slack_app, slack_server, fake_slack: FakeSlack, engine: Engine
):
    proposal_id, channel, ts = propose(slack_server, fake_slack, engine)
    click(slack_server, fake_slack, "proposal_approve", proposal_id, APPROVER, channel, ts)
    fake_slack.wait_for("chat.update")
    calls_before = len(fake_slack.api_calls())
    retry = {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
    response = click(
        slack_server,
        fake_slack,
        "proposal_approve",
        proposal_id,
        APPROVER,
        channel,
        ts,
        headers=retry,
    )
    assert (response.status, response.body) == (200, b"")
    settle(slack_app)
    assert len(fake_slack.api_calls()) == calls_before
    assert versions(engine) == 2


def test_a_reaction_racing_a_button_applies_once(
    slack_app, slack_server, fake_slack: FakeSlack, engine: Engine
):
    proposal_id, channel, ts = propose(slack_server, fake_slack, engine)
    reaction = {
        "type": "reaction_added",
        "user": OWNER,
        "reaction": "white_check_mark",
        "item": {"type": "message", "channel": channel, "ts": ts},
        "item_user": "U0BOT",
    }
    start = threading.Barrier(2)
    senders = [
        lambda: post_event(slack_server.events_url, reaction, event_id="EvRace"),
        lambda: click(
            slack_server, fake_slack, "proposal_approve", proposal_id, APPROVER, channel, ts
        ),
    ]

    def send(index: int) -> None:
        start.wait()
        senders[index]()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    settle(slack_app)
    assert len(fake_slack.calls_to("chat.update")) == 1
    assert proposal(engine, proposal_id).decision_via in ("reaction", "button")
    assert versions(engine) == 2


def test_a_stale_proposal_cannot_be_applied_and_the_user_is_told(
    slack_app, slack_server, fake_slack: FakeSlack, engine: Engine
):
    first, channel, first_ts = propose(slack_server, fake_slack, engine)
    second, _, second_ts = propose(
        slack_server,
        fake_slack,
        engine,
        "propose trial rule: plan = 'trial' and seats >= 5 reason: bigger",
    )
    click(slack_server, fake_slack, "proposal_approve", first, OWNER, channel, first_ts)
    fake_slack.wait_for("chat.update")
    click(
        slack_server,
        fake_slack,
        "proposal_approve",
        second,
        OWNER,
        channel,
        second_ts,
        key="stale",
    )
    settle(slack_app)
    (told,) = replies_to(fake_slack, "stale")
    assert f"proposal #{second} is stale" in told["text"]
    stale_update = fake_slack.calls_to("chat.update")[-1]
    assert stale_update.body["ts"] == second_ts and not has_buttons(stale_update)
    assert "Stale" in json.dumps(decoded(stale_update.body["blocks"]))
    assert proposal(engine, second).status == "stale"
    assert versions(engine) == 2


def test_reject_updates_the_message_and_writes_no_version(
    slack_app, slack_server, fake_slack: FakeSlack, engine: Engine
):
    proposal_id, channel, ts = propose(slack_server, fake_slack, engine)
    click(slack_server, fake_slack, "proposal_reject", proposal_id, OWNER, channel, ts)
    settle(slack_app)
    (update,) = fake_slack.calls_to("chat.update")
    assert not has_buttons(update)
    assert "Rejected by <@U111>" in json.dumps(decoded(update.body["blocks"]))
    assert proposal(engine, proposal_id).status == "rejected"
    assert versions(engine) == 1


def test_malformed_propose_text_gets_a_usage_reply_in_the_ack(
    slack_app, slack_server, fake_slack: FakeSlack, engine: Engine
):
    before = row_counts(engine)
    response = post_command(
        slack_server.events_url, "/segment", "propose trial rule: plan = 'pro'", user_id=REP
    )
    assert response.status == 200
    assert "needs a reason" in response.text and "usage:" in response.text
    settle(slack_app)
    assert fake_slack.api_calls() == []
    assert row_counts(engine) == before


def segment_row(engine: Engine) -> Segment:
    with session_scope(engine) as session:
        return session.exec(select(Segment)).one()


def latest_version(engine: Engine) -> SegmentVersion:
    with session_scope(engine) as session:
        return session.exec(select(SegmentVersion).order_by(SegmentVersion.id.desc())).first()


def test_the_rename_form_renames_the_segment_once_approved(
    slack_app, slack_server, fake_slack: FakeSlack, engine: Engine
):
    text = "propose trial rename: trials reason: plural like the others"
    proposal_id, channel, ts = propose(slack_server, fake_slack, engine, text)
    assert proposal(engine, proposal_id).changes == {"name": "trials"}
    click(slack_server, fake_slack, "proposal_approve", proposal_id, APPROVER, channel, ts)
    settle(slack_app)
    assert segment_row(engine).name == "trials"
    version = latest_version(engine)
    assert (version.change_kind, version.author, version.approver) == ("rename", REP, APPROVER)


def test_the_archive_form_archives_the_segment_once_approved(
    slack_app, slack_server, fake_slack: FakeSlack, engine: Engine
):
    text = "propose trial archive reason: replaced by self-serve"
    proposal_id, channel, ts = propose(slack_server, fake_slack, engine, text)
    click(slack_server, fake_slack, "proposal_approve", proposal_id, OWNER, channel, ts)
    settle(slack_app)
    assert segment_row(engine).status == "archived"
    assert latest_version(engine).change_kind == "archive"


def form_values(kind: str, reason: str, name: str = "") -> dict[str, Any]:
    def text(value: str) -> dict[str, Any]:
        return {"value": {"type": "plain_text_input", "value": value}}

    return {
        "kind": {"value": {"type": "static_select", "selected_option": {"value": kind}}},
        "rule": text("plan = 'trial'"),
        "title": text("Trial accounts"),
        "name": text(name),
        "summary": text(""),
        "reason": text(reason),
    }


def test_the_rename_modal_posts_a_rename_proposal(
    slack_app, slack_server, fake_slack: FakeSlack, engine: Engine
):
    metadata = json.dumps({"segment": "trial", "channel": "C111"})
    response = post_view_submission(
        slack_server.events_url,
        "propose_submit",
        form_values("rename", "plural like the others", name="trials"),
        private_metadata=metadata,
        user_id=REP,
    )
    assert (response.status, response.body) == (200, b"")
    settle(slack_app)
    (posted,) = fake_slack.calls_to("chat.postMessage")
    assert posted.body["channel"] == "C111" and has_buttons(posted)
    with session_scope(engine) as session:
        row = session.exec(select(Proposal)).one()
    assert (row.kind, row.changes, row.proposer) == ("rename", {"name": "trials"}, REP)


def test_a_rename_modal_without_a_name_gets_a_field_error_and_writes_nothing(
    slack_app, slack_server, fake_slack: FakeSlack, engine: Engine
):
    before = row_counts(engine)
    response = post_view_submission(
        slack_server.events_url,
        "propose_submit",
        form_values("rename", "plural like the others"),
        private_metadata=json.dumps({"segment": "trial", "channel": "C111"}),
        user_id=REP,
    )
    assert response.json() == {
        "response_action": "errors",
        "errors": {"name": "A rename needs the new name."},
    }
    settle(slack_app)
    assert fake_slack.api_calls() == []
    assert row_counts(engine) == before

"""The Approve sync button of a held sync, through the real app with signed requests."""

from __future__ import annotations

from datetime import UTC, datetime

from pyroaring import BitMap
from slack_bolt import App
from sqlalchemy import Engine, select

from commands.syncs import plan_runs
from store import syncs as store
from store.db import session_scope
from store.models import OutboxMessage, SyncRun
from tests.factories import AS_OF, OWNER, PROPOSER, build
from tests.slack import FakeSlack, post_action
from tests.sync.helpers import with_destinations


def test_held_sync_dm_carries_the_button_and_the_owner_releases_it(
    slack_app: App, slack_server, fake_slack: FakeSlack, engine: Engine, tmp_path
):
    fx = build(tmp_path)
    with_destinations(
        fx, {"exports": {"kind": "files", "path": "exports", "segments": ["enterprise"]}}
    )
    fx.apply(engine)
    fx.refresh(engine, AS_OF)
    now = datetime(2026, 4, 1, tzinfo=UTC)
    plan_runs(engine, fx.ws(), now=now)
    with session_scope(engine) as session:
        # the destination acknowledged one member: the next diff is far over the limit
        run = session.execute(select(SyncRun)).scalar_one()
        store.cancel_open(session, destination_id=run.destination_id)
        state = store.state(session, destination_id=run.destination_id, segment_id=run.segment_id)
        store.acknowledge(
            session, state_id=state.id, add=BitMap([0]), remove=BitMap(), missing=BitMap()
        )
    planned = plan_runs(engine, fx.ws(), now=now, change_limit=0.3, hold_on_alerts=False)
    assert planned[0].status == "held"
    run_id = planned[0].run_id
    with session_scope(engine) as session:
        dm = session.execute(
            select(OutboxMessage).where(OutboxMessage.idempotency_key == f"sync-held:{run_id}")
        ).scalar_one()
    buttons = [e for b in dm.blocks if b["type"] == "actions" for e in b["elements"]]
    assert dm.channel == OWNER
    assert [(b["action_id"], b["value"]) for b in buttons] == [("sync_approve", str(run_id))]

    refused = post_action(
        slack_server.events_url,
        "sync_approve",
        str(run_id),
        user_id=PROPOSER,
        response_url=fake_slack.response_url(PROPOSER),
    )
    assert refused.status == 200
    (told,) = fake_slack.wait_for("response_url")
    assert told.body["text"].startswith(":no_entry: Not authorised: only the owner <@U111>")
    with session_scope(engine) as session:
        assert session.get(SyncRun, run_id).status == "held"

    post_action(
        slack_server.events_url,
        "sync_approve",
        str(run_id),
        user_id=OWNER,
        response_url=fake_slack.response_url(OWNER),
    )
    told = fake_slack.wait_for("response_url", 2)[-1]
    assert told.body["text"].startswith(":white_check_mark: sync #")
    with session_scope(engine) as session:
        row = session.get(SyncRun, run_id)
        assert (row.status, row.error) == ("open", f"approved by {OWNER}")

"""Refreshes and impact previews asked for in Slack run in the worker, not the web process.

The real bolt app is served on a local port with a workspace whose data is on disk;
``/segment refresh`` and ``/segment propose`` only queue their work and answer at
once. A worker pass (``Worker.drain_queue``) then does it and answers the person
through the command's ``response_url`` (the strict fake's), or by DM through the
outbox when Slack refuses that URL.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from slack_sdk import WebClient
from sqlalchemy import Engine
from sqlmodel import select

from commands.settings import Settings
from store.db import session_scope
from store.models import Job, OutboxMessage, Proposal, SegmentResult, Snapshot
from tests.bot.conftest import OWNER, REP
from tests.slack import (
    BOT_TOKEN,
    FakeSlack,
    bot_settings,
    post_command,
    post_view_submission,
    wait_until,
)
from worker.leader import Worker

PROPOSE = "propose trial rule: plan = 'trial' and seats >= 3 reason: one-seat trials are noise"
CRM = "account_id,plan,seats\n" + "".join(
    f"A{i},{'trial' if i % 2 else 'pro'},{i % 5}\n" for i in range(40)
)


@pytest.fixture
def slack_settings(fake_slack: FakeSlack, engine: Engine, catalog: Path) -> Settings:
    """The bot's settings, with the catalog's workspace file and its data on disk."""
    (catalog.parent / "crm.csv").write_text(CRM)
    return bot_settings(
        fake_slack,
        engine,
        SEGOPS_WORKSPACE=str(catalog),
    )


def worker_pass(settings: Settings, engine: Engine, fake: FakeSlack) -> int:
    """One drain of the queue by a worker, as its ``queue`` job does every 2 s."""
    client = WebClient(token=BOT_TOKEN, base_url=fake.url)
    return Worker(settings, engine=engine, client=client).drain_queue()


def replies(fake: FakeSlack, key: str) -> list[dict[str, Any]]:
    return [c.body for c in fake.calls_to("response_url") if c.path.endswith("/" + key)]


def jobs(engine: Engine) -> list[Job]:
    with session_scope(engine) as session:
        return list(session.exec(select(Job).order_by(Job.id)).all())


def snapshots(engine: Engine) -> int:
    with session_scope(engine) as session:
        return len(session.exec(select(Snapshot)).all())


def test_a_refresh_is_queued_by_the_web_and_done_and_answered_by_the_worker(
    slack_server, slack_settings: Settings, fake_slack: FakeSlack, engine: Engine
):
    answer = post_command(
        slack_server.events_url,
        "/segment",
        "refresh trial",
        user_id=OWNER,
        response_url=fake_slack.response_url("refresh"),
    )
    assert answer.status == 200
    queued = wait_until(lambda: replies(fake_slack, "refresh"), message="queued reply")
    assert "Refresh of `trial` queued" in queued[0]["text"]
    [job] = jobs(engine)
    assert (job.kind, job.status, job.requested_by, job.args["only"]) == (
        "refresh",
        "pending",
        OWNER,
        "trial",
    )
    assert snapshots(engine) == 0  # the web process refreshed nothing

    assert worker_pass(slack_settings, engine, fake_slack) == 1

    [job] = jobs(engine)
    assert (job.status, job.attempts) == ("done", 1)
    assert job.replied_at is not None
    assert snapshots(engine) == 1
    with session_scope(engine) as session:
        result = session.exec(select(SegmentResult)).one()
    assert result.size == 20
    done = replies(fake_slack, "refresh")[-1]
    assert done["response_type"] == "ephemeral"
    assert "`trial` published: 20 members" in done["text"]
    assert worker_pass(slack_settings, engine, fake_slack) == 0  # nothing runs twice
    assert len(replies(fake_slack, "refresh")) == 2


def test_a_proposal_is_posted_at_once_and_its_message_shows_the_impact_after_the_worker(
    slack_server, slack_settings: Settings, fake_slack: FakeSlack, engine: Engine
):
    post_command(
        slack_server.events_url,
        "/segment",
        PROPOSE,
        user_id=REP,
        response_url=fake_slack.response_url("propose"),
    )
    confirmed = wait_until(lambda: replies(fake_slack, "propose"), message="confirmation")
    assert "Its impact is being measured" in confirmed[0]["text"]
    posted = fake_slack.wait_for("chat.postMessage")[0]
    assert "impact being measured" in json.dumps(posted.body["blocks"])
    assert "Members now" not in json.dumps(posted.body["blocks"])
    with session_scope(engine) as session:
        stored = session.exec(select(Proposal)).one()
    assert stored.impact.get("pending") is True
    [job] = jobs(engine)
    assert (job.kind, job.args) == ("preview", {"proposal_id": stored.id})

    assert worker_pass(slack_settings, engine, fake_slack) == 1

    with session_scope(engine) as session:
        stored = session.exec(select(Proposal)).one()
    # 20 trial accounts; those with seats 0-2 leave (seats = i % 5 over odd i).
    assert stored.impact["size_now"] == 20
    assert stored.impact["size_after"] == 8
    assert stored.impact["left"] == 12
    [update] = fake_slack.wait_for("chat.update")
    assert (update.body["channel"], update.body["ts"]) == (
        posted.reply.body["channel"],
        posted.reply.body["ts"],
    )
    blocks = json.dumps(update.body["blocks"])
    assert "Members now" in blocks and "proposal_approve" in blocks
    measured = replies(fake_slack, "propose")[-1]
    assert "impact of proposal" in measured["text"] and measured["response_type"] == "ephemeral"


def test_a_job_that_fails_tells_the_person_what_went_wrong(
    slack_server, slack_settings: Settings, fake_slack: FakeSlack, engine: Engine, catalog: Path
):
    post_command(
        slack_server.events_url,
        "/segment",
        "refresh trial",
        user_id=OWNER,
        response_url=fake_slack.response_url("refresh"),
    )
    wait_until(lambda: jobs(engine), message="queued job")
    (catalog.parent / "crm.csv").unlink()  # the export went missing before the worker ran

    worker_pass(slack_settings, engine, fake_slack)

    [job] = jobs(engine)
    assert job.status == "failed"
    assert "crm.csv" in job.error
    told = wait_until(lambda: replies(fake_slack, "refresh")[1:], message="failure reply")
    text = told[0]["text"]
    assert text.startswith(":warning: The refresh of `trial` failed:")
    assert "crm.csv" in text and "Traceback" not in text
    assert snapshots(engine) == 0


def test_an_answer_slack_refuses_at_the_response_url_goes_to_the_person_by_dm(
    slack_server, slack_settings: Settings, fake_slack: FakeSlack, engine: Engine
):
    url = fake_slack.response_url("old")
    post_command(
        slack_server.events_url, "/segment", "refresh trial", user_id=OWNER, response_url=url
    )
    wait_until(lambda: replies(fake_slack, "old"), message="queued reply")
    fake_slack.expire(url)  # as Slack does 30 minutes after the command

    worker_pass(slack_settings, engine, fake_slack)

    refused = [c for c in fake_slack.calls_to("response_url") if not c.ok]
    assert [c.reply.body["error"] for c in refused] == ["expired_url"]
    with session_scope(engine) as session:
        [dm] = session.exec(select(OutboxMessage).where(OutboxMessage.kind == "job_reply")).all()
    assert dm.channel == OWNER
    assert "`trial` published" in dm.text


def test_a_refresh_of_an_unknown_segment_is_refused_and_nothing_is_queued(
    slack_server, fake_slack: FakeSlack, engine: Engine
):
    post_command(
        slack_server.events_url,
        "/segment",
        "refresh nope",
        response_url=fake_slack.response_url("nope"),
    )
    told = wait_until(lambda: replies(fake_slack, "nope"), message="refusal")
    assert told[0]["text"].startswith(":warning:") and "nope" in told[0]["text"]
    assert jobs(engine) == []


def test_the_web_and_the_worker_read_sources_under_the_configured_data_roots(
    fake_slack: FakeSlack, engine: Engine, catalog: Path, tmp_path: Path
):
    from bot.app import build_app, shutdown
    from bot.server import BackgroundServer

    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "crm.csv").write_text(CRM)
    ws = yaml.safe_load(catalog.read_text())
    ws["sources"]["crm"]["path"] = str(shared / "crm.csv")
    inside = tmp_path / "ws"
    inside.mkdir()
    (inside / "workspace.yaml").write_text(yaml.safe_dump(ws))
    settings = bot_settings(
        fake_slack,
        engine,
        SEGOPS_WORKSPACE=str(inside / "workspace.yaml"),
        SEGOPS_DATA_ROOTS=str(shared),
    )
    app = build_app(settings, engine=engine)
    try:
        with BackgroundServer(app, threads=4) as server:
            post_command(
                server.events_url,
                "/segment",
                PROPOSE,
                user_id=REP,
                response_url=fake_slack.response_url("roots"),
            )
            told = wait_until(lambda: replies(fake_slack, "roots"), message="confirmation")
        assert "Its impact is being measured" in told[0]["text"]
        worker_pass(settings, engine, fake_slack)
    finally:
        shutdown(app)
    with session_scope(engine) as session:
        assert session.exec(select(Proposal)).one().impact["size_now"] == 20


def test_a_proposal_from_the_form_is_measured_by_the_worker_and_answered_by_dm(
    slack_server, slack_settings: Settings, fake_slack: FakeSlack, engine: Engine
):
    """The form (also what a drift alert's *Open proposal* opens) has no response_url."""
    from tests.bot.test_proposals_slack import form_values

    values = form_values("edit", "one-seat trials are noise")
    rule = "plan = 'trial' and seats >= 3"
    values["rule"] = {"value": {"type": "plain_text_input", "value": rule}}
    post_view_submission(
        slack_server.events_url,
        "propose_submit",
        values,
        private_metadata=json.dumps({"segment": "trial", "channel": "C111"}),
        user_id=REP,
    )
    [note] = fake_slack.wait_for("chat.postEphemeral")
    assert "Its impact is being measured" in note.body["text"]
    [job] = jobs(engine)
    assert (job.kind, job.response_url, job.requested_by) == ("preview", None, REP)

    worker_pass(slack_settings, engine, fake_slack)

    [update] = fake_slack.wait_for("chat.update")
    assert "Members now" in json.dumps(update.body["blocks"])
    with session_scope(engine) as session:
        [dm] = session.exec(select(OutboxMessage).where(OutboxMessage.kind == "job_reply")).all()
    assert dm.channel == REP and "impact of proposal" in dm.text

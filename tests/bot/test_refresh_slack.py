"""``/segment refresh`` through the real app: who may start it, and a reply that shows
what was published (a blocked segment shows the snapshot still served)."""

from __future__ import annotations

import pytest
from slack_sdk import WebClient
from sqlalchemy import Engine, func
from sqlmodel import select

from commands.settings import Settings
from store.db import session_scope
from store.models import SegmentResult
from tests.bot.conftest import APPROVER, OWNER, REP
from tests.slack import BOT_TOKEN, FakeSlack, bot_settings, post_command, wait_until
from worker.leader import Worker

ADMIN = "U444"
CRM = "account_id,plan,seats\nA1,trial,1\nA2,trial,4\nA3,pro,12\nA4,trial,2\n"


@pytest.fixture
def slack_settings(fake_slack: FakeSlack, engine: Engine, catalog) -> Settings:
    (catalog.parent / "crm.csv").write_text(CRM)
    return bot_settings(
        fake_slack,
        engine,
        SEGOPS_WORKSPACE=str(catalog),
        SEGOPS_REFRESH_ADMINS=f"{ADMIN}, U555",
        SEGOPS_PRIVACY_FLOOR=1,
    )


def ask(
    server, fake: FakeSlack, settings: Settings, engine: Engine, user: str, text: str, key: str
) -> str:
    """The answer to ``/segment <text>``: a refusal at once, or the worker's answer to
    the refresh the web process queued."""
    post_command(
        server.events_url, "/segment", text, user_id=user, response_url=fake.response_url(key)
    )

    def replies() -> list[dict]:
        return [c.body for c in fake.calls_to("response_url") if c.path.endswith("/" + key)]

    first = wait_until(replies, message=f"reply {key}")[0]["text"]
    if "queued" not in first:
        return first
    client = WebClient(token=BOT_TOKEN, base_url=fake.url)
    Worker(settings, engine=engine, client=client).drain_queue()
    return wait_until(lambda: replies()[1:], message=f"answer {key}")[0]["text"]


def results(engine: Engine) -> int:
    with session_scope(engine) as session:
        return session.exec(select(func.count()).select_from(SegmentResult)).one()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "refresh trial",
            "Not authorised: only the owner <@U111> or approvers <@U222> (or a refresh admin) "
            "can refresh segment 'trial'",
        ),
        ("refresh", "refreshing every segment is for refresh admins"),
    ],
)
def test_someone_who_neither_owns_nor_approves_may_not_refresh(
    slack_app, slack_server, slack_settings, fake_slack, engine, text, message
):
    assert message in ask(slack_server, fake_slack, slack_settings, engine, REP, text, "rep")
    assert results(engine) == 0


@pytest.mark.parametrize(("user", "text"), [(APPROVER, "refresh trial"), (ADMIN, "refresh")])
def test_an_approver_or_an_admin_refreshes(
    slack_app, slack_server, slack_settings, fake_slack, engine, user, text
):
    reply = ask(slack_server, fake_slack, slack_settings, engine, user, text, "ok")
    assert "`trial` published: 3 members" in reply
    assert results(engine) == 1


def test_a_blocked_refresh_replies_with_the_snapshot_still_served(
    slack_app, slack_server, slack_settings, fake_slack, engine, catalog
):
    assert "published: 3 members" in ask(
        slack_server, fake_slack, slack_settings, engine, OWNER, "refresh trial", "one"
    )
    blank = "account_id,plan,seats\n" + "".join(f",trial,{i}\n" for i in range(8))
    (catalog.parent / "crm.csv").write_text(blank)
    reply = ask(slack_server, fake_slack, slack_settings, engine, OWNER, "refresh trial", "two")
    assert "`trial` blocked: 3 members" in reply

"""``/segment refresh`` runs on the engine of the bot's settings (``SEGOPS_ENGINE``,
``SEGOPS_DUCKDB_*``), like ``segops refresh``."""

from __future__ import annotations

import pytest
from slack_sdk import WebClient
from sqlalchemy import Engine, func
from sqlmodel import select

from commands.settings import Settings
from store.db import session_scope
from store.models import SegmentResult
from tests.bot.conftest import OWNER
from tests.slack import BOT_TOKEN, FakeSlack, bot_settings, post_command, wait_until
from worker.leader import Worker

CRM = "account_id,plan,seats\nA1,trial,1\nA2,trial,4\nA3,pro,12\nA4,trial,2\n"
ENVIRONMENTS = {
    "duckdb": {"SEGOPS_ENGINE": "duckdb", "SEGOPS_DUCKDB_MEMORY_LIMIT": "1GB"},
    "sql": {"SEGOPS_ENGINE": "sql"},
    "bad-limit": {"SEGOPS_ENGINE": "duckdb", "SEGOPS_DUCKDB_MEMORY_LIMIT": "lots"},
}


@pytest.fixture(params=sorted(ENVIRONMENTS))
def case(request) -> str:
    return request.param


@pytest.fixture
def slack_settings(fake_slack: FakeSlack, engine: Engine, catalog, case) -> Settings:
    (catalog.parent / "crm.csv").write_text(CRM)
    return bot_settings(
        fake_slack,
        engine,
        SEGOPS_WORKSPACE=str(catalog),
        SEGOPS_PRIVACY_FLOOR=1,
        **ENVIRONMENTS[case],
    )


EXPECTED = {
    "duckdb": ("`trial` published: 3 members", 1),
    "sql": ("engine 'sql' needs every source to be a table or query on one database", 0),
    "bad-limit": ("engine 'duckdb': memory limit 'lots' (SEGOPS_DUCKDB_MEMORY_LIMIT)", 0),
}


def test_the_refresh_runs_on_the_engine_of_the_settings(
    slack_app, slack_server, slack_settings, fake_slack, engine, case
):
    post_command(
        slack_server.events_url,
        "/segment",
        "refresh trial",
        user_id=OWNER,
        response_url=fake_slack.response_url("r"),
    )

    def replies() -> list[dict]:
        return [c.body for c in fake_slack.calls_to("response_url") if c.path.endswith("/r")]

    assert "queued" in wait_until(replies, message="queued reply")[0]["text"]
    client = WebClient(token=BOT_TOKEN, base_url=fake_slack.url)
    Worker(slack_settings, engine=engine, client=client).drain_queue()  # the worker refreshes
    message, results = EXPECTED[case]
    assert message in wait_until(lambda: replies()[1:], message="refresh answer")[0]["text"]
    with session_scope(engine) as session:
        assert session.exec(select(func.count()).select_from(SegmentResult)).one() == results

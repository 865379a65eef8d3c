"""Fixtures of the stream tests: a real Redis stream of its own for each test, deleted
after, and a live workspace applied and refreshed on the test database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from stream.log import EventLog
from tests.live import LiveSetup, build
from tests.slack import fake_slack, slack_app, slack_settings  # noqa: F401

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def event_log() -> Iterator[EventLog]:
    log = EventLog.from_url(REDIS_URL, f"segops:test:{uuid.uuid4().hex}")
    log.ensure_group()
    yield log
    log.delete()
    log.client.close()


@pytest.fixture
def live_setup(engine: Engine, tmp_path: Path) -> LiveSetup:
    setup = build(tmp_path)
    setup.applied(engine)
    return setup

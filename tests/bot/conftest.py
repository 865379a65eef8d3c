"""Fixtures for the bot tests: the Slack ones from ``tests.slack`` and a small catalog."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from sqlalchemy import Engine, text

from commands.catalog import apply_workspace
from segments.workspace import load_workspace
from store.db import make_engine
from tests.slack import fake_slack, slack_app, slack_server, slack_settings  # noqa: F401

OWNER, APPROVER, REP = "U111", "U222", "U333"
WORKSPACE = {
    "sources": {
        "crm": {
            "kind": "entity",
            "path": "crm.csv",
            "id": "account_id",
            "columns": {"plan": "string", "seats": "number"},
        }
    },
    "segments": [
        {
            "name": "trial",
            "title": "Trial accounts",
            "tier": "tactical",
            "owner": OWNER,
            "approvers": [APPROVER],
            "channel": "C111",
            "rule": "plan = 'trial'",
            "persona": {"summary": "Teams trying the product"},
        }
    ],
}


@pytest.fixture
def catalog(engine: Engine, tmp_path: Path) -> Path:
    """A catalog with one segment, ``trial`` (owner U111, approver U222, channel C111)."""
    path = tmp_path / "workspace.yaml"
    path.write_text(yaml.safe_dump(WORKSPACE, sort_keys=False))
    apply_workspace(engine, load_workspace(path), reason="set up", author=OWNER)
    return path


@contextmanager
def database_held(engine: Engine, seconds: float) -> Iterator[None]:
    """Another connection holds what a feedback insert needs for ``seconds``.

    SQLite: the write lock (``BEGIN IMMEDIATE``). PostgreSQL: the segment rows, locked
    for update, which the feedback row's foreign key must share.
    """
    other = make_engine(engine.url)
    taken = threading.Event()

    def hold() -> None:
        with other.connect() as connection:
            if engine.dialect.name == "sqlite":
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                connection.execute(text("SELECT id FROM segment FOR UPDATE"))
            taken.set()
            time.sleep(seconds)
            connection.rollback()

    holder = threading.Thread(target=hold)
    holder.start()
    assert taken.wait(10)
    try:
        yield
    finally:
        holder.join()
        other.dispose()

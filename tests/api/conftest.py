"""A refreshed catalog (two refreshes), tokens, and the composed app served over HTTP."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import Engine

from api import build_api
from cli.serving import compose, make_server
from commands.tokens import create_token
from tests.factories import AS_OF, build

EARLY = AS_OF - timedelta(days=10)


@dataclass
class Served:
    url: str
    engine: Engine
    fx: object
    token_all: str
    token_enterprise: str
    client: httpx.Client


@pytest.fixture
def served(engine: Engine, tmp_path) -> Iterator[Served]:
    fx = build(tmp_path)
    fx.apply(engine)
    fx.refresh(engine, EARLY)
    picked = fx.crm.index[:40]
    fx.crm.loc[picked, "seats"] = fx.crm.loc[picked, "seats"].map(lambda s: 5 if s >= 50 else 80)
    fx.write_data()
    fx.refresh(engine, AS_OF)
    every, _ = create_token(engine, name="flags", segments=["*"])
    one, _ = create_token(engine, name="crm", segments=["enterprise"])
    server = make_server(
        compose(build_api(engine), None),
        host="127.0.0.1",
        port=0,
        threads=4,
        asyncore_loop_timeout=0.05,
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    client = httpx.Client(timeout=10)
    try:
        yield Served(f"http://127.0.0.1:{server.effective_port}", engine, fx, every, one, client)
    finally:
        client.close()
        try:
            server.trigger.pull_trigger(server.close)
        except OSError:  # the loop has already closed its trigger: close from here
            server.close()
        thread.join(timeout=5)
        server.task_dispatcher.shutdown()

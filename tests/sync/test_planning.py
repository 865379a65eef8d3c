"""Planning: one unfinished run per destination and segment, even when passes race."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from sqlalchemy import func, select

from commands.syncs import plan_runs
from store.db import session_scope
from store.models import SyncRun
from tests.factories import AS_OF, build
from tests.sync.helpers import with_destinations


def test_concurrent_planners_plan_one_run(engine, tmp_path):
    fx = build(tmp_path)
    with_destinations(
        fx, {"exports": {"kind": "files", "path": "exports", "segments": ["enterprise"]}}
    )
    fx.apply(engine)
    fx.refresh(engine, AS_OF)
    ws = fx.ws()
    now = datetime(2026, 4, 1, tzinfo=UTC)
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def plan() -> None:
        barrier.wait()
        try:
            plan_runs(engine, ws, now=now)
        except Exception as error:  # noqa: BLE001 - a busy database may refuse a planner
            errors.append(error)

    threads = [threading.Thread(target=plan) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with session_scope(engine) as session:
        runs = session.execute(select(func.count()).select_from(SyncRun)).scalar_one()
    assert runs == 1
    assert len(errors) < 4

"""The worker's ``sync`` job (also run right after each successful scheduled refresh)."""

from __future__ import annotations

import pandas as pd

from commands.settings import Settings
from tests.factories import AS_OF, applied
from tests.sync.helpers import members, with_destinations
from worker.jobs import run_syncs
from worker.leader import Worker


def _worker(engine, tmp_path, fx) -> Worker:
    settings = Settings(SEGOPS_WORKSPACE=str(fx.path), SEGOPS_SYNC_HOLD_ON_ALERTS=False)
    worker = Worker(settings, engine=engine, worker_id="w", ttl=5.0, renew_every=0.2)
    worker.step()
    return worker


def test_the_sync_job_sends_what_destinations_lack(engine, tmp_path):
    fx = applied(engine, tmp_path, accounts=60)
    with_destinations(
        fx, {"exports": {"kind": "files", "path": "exports", "segments": ["enterprise"]}}
    )
    worker = _worker(engine, tmp_path, fx)
    try:
        assert worker.scheduler.get_job("sync", jobstore="local") is not None
        fx.refresh(engine, AS_OF)
        run_syncs()
        current = fx.root / "exports" / "enterprise" / "current.csv"
        assert set(pd.read_csv(current, dtype=str)["entity_id"]) == members(engine, "enterprise")
    finally:
        worker.close()


def test_a_broken_destination_never_fails_the_sync_job(engine, tmp_path):
    fx = applied(engine, tmp_path, accounts=60)
    with_destinations(
        fx,
        {
            "hook": {
                "kind": "webhook",
                "url": "http://127.0.0.1:9/unreachable",
                "secret": "not-set",
                "segments": ["enterprise"],
            }
        },
    )
    worker = _worker(engine, tmp_path, fx)
    try:
        fx.refresh(engine, AS_OF)
        run_syncs()  # logs and records the error; raises nothing
        from commands.syncs import status

        entry = status(engine, fx.ws())[0]["segments"][0]
        assert entry["members"] and "is not set" in entry["run"]["last_error"]
    finally:
        worker.close()

"""SQL table destinations (SQLite and PostgreSQL) and files destinations (CSV, Parquet)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from commands.syncs import resync, status
from store.db import make_engine
from tests.factories import AS_OF, build
from tests.sync.helpers import Clock, members, settings, sync_until_quiet, with_destinations

START = datetime(2026, 4, 1, tzinfo=UTC)
EARLY = AS_OF - timedelta(days=10)
LATER = AS_OF


def _churn(fx, share: float = 0.2, seed: int = 1):
    """Move some accounts across the enterprise line (seats >= 50)."""
    rng = __import__("numpy").random.default_rng(seed)
    picked = rng.random(len(fx.crm)) < share
    fx.crm.loc[picked, "seats"] = fx.crm.loc[picked, "seats"].map(lambda s: 5 if s >= 50 else 80)
    fx.write_data()


def _who_was_in(url: str, segment: str, day: date) -> set[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text(
                    "SELECT entity_id FROM segment_membership WHERE segment = :s "
                    "AND valid_from <= :d AND (valid_to IS NULL OR valid_to > :d)"
                ),
                {"s": segment, "d": day},
            )
            return {r[0] for r in rows}
    finally:
        engine.dispose()


def _current(url: str, segment: str) -> set[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text("SELECT entity_id FROM segment_membership_current WHERE segment = :s"),
                {"s": segment},
            )
            return {r[0] for r in rows}
    finally:
        engine.dispose()


def _sql_roundtrip(engine, tmp_path, url):
    fx = build(tmp_path)
    with_destinations(
        fx,
        {"warehouse": {"kind": "sql_table", "url_secret": "warehouse", "tiers": ["core"]}},
    )
    fx.apply(engine)
    cfg = settings(warehouse=url)
    clock = Clock(START)
    fx.refresh(engine, EARLY)
    sync_until_quiet(engine, fx, cfg, clock)
    first = members(engine, "enterprise")
    _churn(fx)
    fx.refresh(engine, LATER)
    sync_until_quiet(engine, fx, cfg, clock)
    second = members(engine, "enterprise")
    assert first != second
    assert status(engine, fx.ws())[0]["segments"][0]["in_step"]
    assert _current(url, "enterprise") == second
    assert _who_was_in(url, "enterprise", EARLY) == first
    assert _who_was_in(url, "enterprise", LATER) == second
    # rebuilding from scratch closes every stay and opens the current ones again
    resync(engine, fx.ws(), destination="warehouse")
    sync_until_quiet(engine, fx, cfg, clock)
    assert _current(url, "enterprise") == second
    assert _who_was_in(url, "enterprise", EARLY) == first


def test_sql_table_on_sqlite_keeps_history_and_a_current_view(engine, tmp_path):
    _sql_roundtrip(engine, tmp_path, f"sqlite:///{tmp_path / 'warehouse.db'}")


@pytest.mark.postgres
def test_sql_table_on_postgresql_keeps_history_and_a_current_view(engine, tmp_path, pg_url):
    _sql_roundtrip(engine, tmp_path, pg_url)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_files_write_snapshot_added_and_removed_per_run(engine, tmp_path, fmt):
    fx = build(tmp_path)
    out = tmp_path / "exports"
    with_destinations(
        fx,
        {"exports": {"kind": "files", "path": str(out), "format": fmt, "segments": ["enterprise"]}},
    )
    fx.apply(engine)
    clock = Clock(START)
    fx.refresh(engine, EARLY)
    sync_until_quiet(engine, fx, settings(), clock)
    first = members(engine, "enterprise")
    _churn(fx)
    fx.refresh(engine, LATER)
    sync_until_quiet(engine, fx, settings(), clock)
    second = members(engine, "enterprise")

    def read(path):
        frame = pd.read_parquet(path) if fmt == "parquet" else pd.read_csv(path, dtype=str)
        return set(frame["entity_id"])

    runs = sorted(p for p in (out / "enterprise").iterdir() if p.is_dir())
    assert [p.name[:10] for p in runs] == [EARLY.isoformat(), LATER.isoformat()]
    assert all((p / "_SUCCESS").exists() for p in runs)
    assert read(runs[0] / f"snapshot.{fmt}") == first == read(runs[0] / f"added.{fmt}")
    assert read(runs[1] / f"snapshot.{fmt}") == second
    assert read(runs[1] / f"added.{fmt}") == second - first
    assert read(runs[1] / f"removed.{fmt}") == first - second
    assert read(out / "enterprise" / f"current.{fmt}") == second
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]


def test_members_held_out_of_an_experiment_are_never_sent(engine, tmp_path):
    from commands import experiments
    from tests.commands.test_experiments import EXPERIMENT, held_keys

    fx = build(tmp_path, accounts=1000)
    smb = next(s for s in fx.segments if s["name"] == "smb")
    smb["experiment"] = dict(EXPERIMENT)
    out = tmp_path / "out"
    with_destinations(fx, {"exports": {"kind": "files", "path": str(out), "segments": ["smb"]}})
    fx.apply(engine)
    fx.refresh(engine, EARLY)
    experiments.start(engine, fx.ws(), "smb", by="U111")
    held = held_keys(engine)
    assert held
    sync_until_quiet(engine, fx, settings(), Clock(START))
    sent = set(pd.read_csv(out / "smb" / "current.csv", dtype=str).iloc[:, 0])
    assert sent == members(engine, "smb") - held

"""Live segments feed their destinations as small diffs: each sync pass sends the joins
and leaves the events made since the last, not the last batch result."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pandas as pd
import yaml

from commands import live
from commands.syncs import plan_runs, status
from sync import run_syncs
from tests.live import LiveSetup, build, event, incoming
from tests.sync.helpers import settings

LATENESS = timedelta(hours=1)


def _with_files(setup: LiveSetup, out: Path) -> None:
    data = yaml.safe_load(setup.path.read_text())
    data["destinations"] = {
        "exports": {"kind": "files", "path": str(out), "segments": ["active", "pros"]}
    }
    setup.path.write_text(yaml.safe_dump(data))


def _current(out: Path, segment: str) -> set[str]:
    frame = pd.read_csv(out / segment / "current.csv", dtype=str)
    return set(frame["entity_id"])


def _added(out: Path, segment: str) -> list[set[str]]:
    runs = sorted(p for p in (out / segment).iterdir() if p.is_dir())
    return [set(pd.read_csv(p / "added.csv", dtype=str)["entity_id"]) for p in runs]


def test_a_live_segment_sends_its_live_joins_and_leaves(engine, tmp_path) -> None:
    setup = build(tmp_path)
    out = tmp_path / "exports"
    _with_files(setup, out)
    ws = setup.applied(engine)
    rt = live.load_runtime(engine, ws, lateness=LATENESS, today=setup.now.date())
    live.build(engine, rt, now=setup.now)
    cfg = settings()
    now = setup.now

    run_syncs(engine, ws, cfg, now=now)
    assert _current(out, "active") == set()  # nobody logged in twice yet
    assert _current(out, "pros") == {"a0", "a2", "a4"}  # a batch segment: its refresh

    logins = [
        event(f"l{n}-{e}", e, "login", now - timedelta(minutes=n))
        for e in ("a1", "a3")
        for n in (1, 2)
    ]
    live.apply_events(engine, rt, incoming(*logins), now=now)  # two logins: both join

    passed = plan_runs(engine, ws, now=now + timedelta(seconds=15), change_limit=100.0)
    planned = {p.segment: p for p in passed}
    assert (planned["active"].source, planned["active"].added) == ("live", 2)
    assert planned["pros"].source == "batch" and planned["pros"].run_id is None
    run_syncs(engine, ws, cfg, now=now + timedelta(seconds=15), plan=False)
    assert _current(out, "active") == {"a1", "a3"}
    [exports] = status(engine, ws)
    by_segment = {e["segment"]: e for e in exports["segments"]}
    assert by_segment["active"]["source"] == "live" and by_segment["active"]["in_step"]
    assert by_segment["active"]["members"] == 2
    assert _added(out, "active")[-1] == {"a1", "a3"}

    # the sweep ends a3's membership eight days later: the next pass sends the leave
    later = now + timedelta(days=8)
    rt = live.load_runtime(engine, ws, lateness=LATENESS, today=later.date())
    live.sweep(engine, rt, now=later)
    run_syncs(engine, ws, cfg, now=later)
    assert _current(out, "active") == set()


def test_a_live_segment_not_built_for_its_version_sends_its_batch_result(engine, tmp_path):
    setup = build(tmp_path)
    out = tmp_path / "exports"
    _with_files(setup, out)
    ws = setup.applied(engine)  # refreshed, but the consumer has not built it yet
    planned = {p.segment: p for p in plan_runs(engine, ws, now=setup.now, change_limit=100.0)}
    assert planned["active"].source == "batch"

"""A short soak: web, worker and CLI side by side on SQLite, and nothing lost or reverted."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from cli.bench.soak import run_soak


@pytest.mark.slow
def test_a_short_soak_loses_nothing_and_reverts_nothing():
    out = io.StringIO()
    [report] = run_soak(seconds=6, console=Console(file=out, width=120))
    assert report["feedback_confirmed"] == report["sent"]["feedback"] > 50
    assert report["feedback_lost"] == 0
    assert report["segments_reverted"] == 0 and report["applies"] >= 1
    assert report["jobs_acked"] == report["jobs"] >= report["sent"]["refresh"] >= 1
    assert report["jobs_lost"] == report["jobs_unfinished"] == report["jobs_unanswered"] == 0
    assert report["drained"] and report["tracebacks"] == 0
    assert "segops bench --soak: integrity" in out.getvalue()

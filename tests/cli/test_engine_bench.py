"""The engine benchmark at a small scale: every path finds the peer's members."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from cli.bench.engines import run_engine_bench


@pytest.mark.slow
def test_the_duckdb_bench_runs_every_path_and_they_agree(tmp_path: Path) -> None:
    out = io.StringIO()
    figures = run_engine_bench(
        engine="duckdb",
        customers=2000,
        events=20000,
        segments=6,
        console=Console(file=out, width=160),
        cache=tmp_path / "cache",
        url=None,
        memory_limit="1GB",
        threads=1,
    )
    paths = figures["paths"]
    assert set(paths) == {"peer", "engine", "refresh", "pandas"}
    peer = paths["peer"]["sizes"]
    assert len(peer) == 6 and sum(peer) > 0
    for path in ("engine", "refresh", "pandas"):
        assert paths[path]["sizes"] == peer, path
    # the compared refresh is the warm one; the cold one ran a day before and filled the store
    refresh = paths["refresh"]
    assert refresh["phases"]["persist"] > 0 and refresh["cold"]["phases"]["persist"] > 0
    text = out.getvalue()
    assert "segops refresh, next day (warm)" in text and "(other day)" in text
    assert "NO" not in text
    # the data is generated once and reused
    assert (tmp_path / "cache" / "2000x20000" / "events.parquet").exists()

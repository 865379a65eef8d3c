"""The process benchmark's bare pandas peer computes the same masks as segops, and the
benchmark runs both processes end to end."""

from __future__ import annotations

import io

import pandas as pd
import pytest
from rich.console import Console

from cli.bench.process import pandas_source, run_process_bench
from cli.bench.refresh import COLUMNS, make_accounts, make_rules
from segments import rules
from segments.evaluate import evaluate_all
from segments.schema import Schema


def test_the_peer_expressions_select_the_members_segops_selects(tmp_path):
    make_accounts(3000, seed=3).to_csv(tmp_path / "a.csv", index=False)
    df = pd.read_csv(
        tmp_path / "a.csv",
        parse_dates=["signup_date", "updated_at"],
        keep_default_na=False,
        na_values=[""],
    )
    texts = make_rules(40, seed=4)
    parsed = {f"s{i}": rules.parse(t) for i, t in enumerate(texts)}
    ours = evaluate_all(parsed, df, Schema(columns=dict(COLUMNS), aliases={}))
    for name, rule in parsed.items():
        peer = eval(pandas_source(rule), {"df": df, "pd": pd})  # noqa: S307 - generated here
        assert peer.to_numpy().sum() > 0 or ours[name].sum() == 0
        assert (peer.to_numpy() == ours[name]).all(), texts[int(name[1:])]


@pytest.mark.slow
def test_the_process_bench_times_both_processes_and_finds_the_same_sizes():
    out = io.StringIO()
    figures = run_process_bench(
        customers=2000, segments=5, console=Console(file=out, width=140), repeat=2
    )
    assert figures["warm_sizes"] == figures["bare_sizes"] == figures["cold_sizes"]
    assert sum(size for size in figures["bare_sizes"] if size) > 0
    assert figures["warm"] > 0 and figures["bare"] > 0
    # every warm run refreshed (a copy of the cold store each time), none found it done
    assert len(figures["warm_runs"]) == len(figures["bare_runs"]) == 2
    assert figures["warm_timings"].get("persist", 0) > 0
    assert "segops refresh (warm)" in out.getvalue() and "yes" in out.getvalue()

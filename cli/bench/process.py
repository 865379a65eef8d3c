"""``segops bench``: the whole ``segops refresh`` process as a user sees it, timed from outside.

On one CSV of N accounts (the columns of :func:`cli.bench.refresh.make_accounts`) and M
random rules, it times fresh processes with the wall clock of this one:

* ``segops refresh`` on a workspace with that CSV as its only source (start-up, load,
  quality gate, evaluate, bitmaps, drift, commit into a scratch SQLite store), once cold
  (the entity dictionary is filled) and then warm (a day later, as a scheduled refresh);
* **bare pandas**: a Python process that imports only pandas, reads the same CSV and
  evaluates the same rules as plain pandas expressions (generated from the parsed rules).

The warm refresh and the peer run ``repeat`` times, alternately, each warm run on a copy of
the store as the cold one left it; the table shows medians (a shared machine's noise moves
single runs by a third). Both print their segment sizes, so the table says whether they
found the same members.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from cli.bench.refresh import AS_OF, COLUMNS, make_accounts, make_rules
from commands.policy import visible_size
from segments import rules

_ops = {"=": "==", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}

FLOOR = 1  # the lowest privacy floor: segops shows every size but an empty one


def pandas_source(rule: rules.Rule) -> str:
    """``rule`` as one plain pandas expression over a frame ``df`` read by ``read_csv``."""
    if isinstance(rule, rules.All | rules.AnyOf):
        joiner = " & " if isinstance(rule, rules.All) else " | "
        return "(" + joiner.join(pandas_source(r) for r in rule.items) + ")"
    if isinstance(rule, rules.Not):
        return f"(~{pandas_source(rule.item)})"
    if not isinstance(rule, rules.Condition):
        raise ValueError(f"the bare pandas peer cannot evaluate {rule!r}")
    col = f"df[{rule.column!r}]"

    def lit(value: Any) -> str:
        if COLUMNS.get(rule.column) == "date" and isinstance(value, str | date):
            return f"pd.Timestamp({str(value)!r})"
        return repr(value)

    if rule.op in _ops:
        test = f"({col} {_ops[rule.op]} {lit(rule.value)})"
        return f"({col}.notna() & {test})" if rule.op == "!=" else test
    if rule.op == "in":
        return f"{col}.isin([{', '.join(lit(v) for v in rule.value)}])"  # type: ignore[union-attr]
    if rule.op == "not in":
        values = ", ".join(lit(v) for v in rule.value)  # type: ignore[union-attr]
        return f"({col}.notna() & ~{col}.isin([{values}]))"
    if rule.op == "between":
        low, high = rule.value  # type: ignore[misc]
        return f"{col}.between({lit(low)}, {lit(high)})"
    if rule.op == "is null":
        return f"{col}.isna()"
    if rule.op == "is not null":
        return f"{col}.notna()"
    raise ValueError(f"the bare pandas peer has no operator {rule.op!r}")


def _peer_script(csv: Path, rule_texts: list[str]) -> str:
    dates = [c for c, kind in COLUMNS.items() if kind == "date"] + ["updated_at"]
    masks = ",\n    ".join(pandas_source(rules.parse(t)) for t in rule_texts)
    return (
        "import json, pandas as pd\n"
        # "NA" is a region here, not a missing value
        f"df = pd.read_csv({str(csv)!r}, parse_dates={dates!r}, keep_default_na=False, "
        "na_values=[''])\n"
        f"masks = [\n    {masks},\n]\n"
        "print(json.dumps([int(m.to_numpy().sum()) for m in masks]))\n"
    )


def _workspace(rule_texts: list[str]) -> dict[str, Any]:
    columns = {**COLUMNS, "updated_at": "date"}
    return {
        "sources": {
            "crm": {
                "kind": "entity",
                "path": "accounts.csv",
                "id": "account_id",
                "timestamp": "updated_at",
                "columns": columns,
            }
        },
        "segments": [
            {
                "name": f"bench-{i:03d}",
                "title": f"Bench segment {i}",
                "owner": "U0BENCH",
                "rule": text,
                "kpis": ["mrr"],
            }
            for i, text in enumerate(rule_texts)
        ],
    }


def _record(figures: dict[str, Any], label: str, runs: list[float], report: Any) -> None:
    figures[label] = statistics.median(runs)
    figures[f"{label}_runs"] = runs
    figures[f"{label}_timings"] = report.get("timings", {})
    figures[f"{label}_sizes"] = [s["size"] for s in report["segments"]]


def _copy_store(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite store (its WAL included), replacing ``target``."""
    for stale in (
        target,
        target.with_name(target.name + "-wal"),
        target.with_name(target.name + "-shm"),
    ):
        stale.unlink(missing_ok=True)
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


def _timed(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"bench process {args[1:3]} failed: {tail[0]}")
    return seconds, done.stdout


def run_process_bench(
    *, customers: int, segments: int, console: Console, repeat: int = 3
) -> dict[str, Any]:
    """Time the refresh process against the bare pandas process; print and return the figures."""
    from commands.catalog import apply_workspace
    from segments.workspace import load_workspace
    from store.db import make_engine, upgrade

    root = Path(tempfile.mkdtemp(prefix="segops-bench-process-"))
    try:
        with console.status("process bench: writing the CSV"):
            make_accounts(customers).to_csv(root / "accounts.csv", index=False)
            rule_texts = make_rules(segments)
            (root / "workspace.yaml").write_text(yaml.safe_dump(_workspace(rule_texts)))
            (root / "peer.py").write_text(_peer_script(root / "accounts.csv", rule_texts))
            url = f"sqlite:///{root / 'bench.db'}"
            engine = make_engine(url)
            upgrade(engine)
            apply_workspace(
                engine, load_workspace(root / "workspace.yaml"), reason="bench", author="bench"
            )
            engine.dispose()
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "SEGOPS_WORKSPACE": str(root / "workspace.yaml"),
            "SEGOPS_PRIVACY_FLOOR": str(FLOOR),
        }
        env.pop("SEGOPS_ENGINE", None)
        segops = [sys.executable, "-c", "from cli.app import script; script()", "refresh", "--json"]
        figures: dict[str, Any] = {"customers": customers, "segments": segments}
        with console.status("process bench: segops refresh (cold)"):
            seconds, out = _timed(
                [*segops, "--as-of", (AS_OF - timedelta(days=1)).isoformat()], env
            )
        _record(figures, "cold", [seconds], json.loads(out))
        _copy_store(root / "bench.db", root / "cold.db")
        warm, bare = [], []
        for round_ in range(1, repeat + 1):
            _copy_store(root / "cold.db", root / "bench.db")
            with console.status(f"process bench: segops refresh (warm, {round_}/{repeat})"):
                seconds, out = _timed([*segops, "--as-of", AS_OF.isoformat()], env)
            warm.append(seconds)
            report = json.loads(out)
            with console.status(f"process bench: bare pandas ({round_}/{repeat})"):
                seconds, peer_out = _timed([sys.executable, str(root / "peer.py")], env)
            bare.append(seconds)
        _record(figures, "warm", warm, report)
        figures["bare"] = statistics.median(bare)
        figures["bare_runs"] = bare
        # segops hides sizes under the privacy floor (an empty segment's too): so does the peer
        figures["bare_sizes"] = [visible_size(size, FLOOR) for size in json.loads(peer_out)]
        _print(console, figures)
        return figures
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _print(console: Console, f: dict[str, Any]) -> None:
    table = Table(
        title=(
            f"segops refresh process: {f['customers']:,}-row CSV x {f['segments']} segments "
            "(wall time from outside)"
        ),
        title_justify="left",
    )
    table.add_column("process")
    table.add_column("seconds (median)", justify="right")
    table.add_column("runs", justify="right")
    table.add_column("vs bare pandas", justify="right")
    table.add_column("same sizes")
    bare = f["bare"]
    table.add_row(
        "bare pandas: read CSV, evaluate the masks",
        f"{bare:.2f}",
        _runs(f["bare_runs"]),
        "1.00x",
        "",
    )
    for label in ("warm", "cold"):
        same = "yes" if f[f"{label}_sizes"] == f["bare_sizes"] else "NO"
        table.add_row(
            f"segops refresh ({label})",
            f"{f[label]:.2f}",
            _runs(f[f"{label}_runs"]),
            f"{f[label] / bare:.2f}x",
            same,
        )
    console.print(table)
    phases = ", ".join(f"{k} {v:.2f}" for k, v in f["warm_timings"].items())
    console.print(f"warm refresh phases (s): {phases}")


def _runs(runs: list[float]) -> str:
    return " ".join(f"{r:.2f}" for r in runs)

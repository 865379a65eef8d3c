"""``segops bench``: a full refresh, phase by phase, against peers in the same run.

The benchmark writes a synthetic account table (N customers, ten columns of every
kind, realistic nulls) and a small events file, draws M random segment rules of
three or four predicates, applies them as a catalog in a scratch SQLite database
and runs two refreshes (a cold one that fills the entity dictionary, then a warm
one a month later). On the same loaded data it times two peers:

* **bare pandas**: the same rules as plain pandas expressions on the frame as
  read from Parquet (object/str dtypes, no caching), which is what a careful
  analyst would write by hand;
* **DuckDB** (optional ``bench`` extra): the same rules compiled to SQL and run
  as one ``SELECT`` over the frame.

It prints each phase, the ratios, the peak RSS and the bytes per stored member.
"""

from __future__ import annotations

import resource
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from segments import rules

AS_OF = date(2026, 6, 30)
PLANS = ["trial", "starter", "pro", "enterprise"]
REGIONS = ["NA", "EMEA", "APAC", "LATAM", "ANZ", "MEA"]
INDUSTRIES = [
    "software",
    "fintech",
    "health",
    "retail",
    "media",
    "education",
    "logistics",
    "manufacturing",
    "travel",
    "energy",
    "gaming",
    "government",
]
BANDS = ["1-10", "11-50", "51-200", "201-1000", "1000+"]
COLUMNS = {
    "plan": "string",
    "region": "string",
    "industry": "string",
    "size_band": "string",
    "seats": "number",
    "mrr": "number",
    "logins_30d": "number",
    "days_since_login": "number",
    "nps": "number",
    "signup_date": "date",
    "is_active": "bool",
}


def make_accounts(n: int, seed: int = 11) -> pd.DataFrame:
    """A synthetic account table with every column kind and realistic nulls."""
    rng = np.random.default_rng(seed)
    days_since = rng.exponential(20, n).round()
    days_since[rng.random(n) < 0.05] = np.nan
    nps = rng.integers(0, 11, n).astype(float)
    nps[rng.random(n) < 0.30] = np.nan
    return pd.DataFrame(
        {
            "account_id": np.char.add("A", np.arange(n).astype(str)),
            "plan": rng.choice(PLANS, n, p=[0.15, 0.4, 0.35, 0.1]),
            "region": rng.choice(REGIONS, n),
            "industry": rng.choice(INDUSTRIES, n),
            "size_band": rng.choice(BANDS, n),
            "seats": rng.integers(1, 500, n),
            "mrr": rng.gamma(2.0, 300.0, n).round(2),
            "logins_30d": rng.poisson(12, n),
            "days_since_login": days_since,
            "nps": nps,
            "signup_date": pd.Timestamp("2022-01-01")
            + pd.to_timedelta(rng.integers(0, 1600, n), unit="D"),
            "is_active": rng.random(n) < 0.8,
            "updated_at": pd.Timestamp(AS_OF) - pd.to_timedelta(rng.integers(0, 2, n), unit="D"),
        }
    )


def make_events(accounts: pd.DataFrame, per_account: float, seed: int = 12) -> pd.DataFrame:
    """Support tickets over the 120 days before AS_OF."""
    rng = np.random.default_rng(seed)
    n = int(len(accounts) * per_account)
    return pd.DataFrame(
        {
            "account_id": accounts["account_id"].to_numpy()[rng.integers(0, len(accounts), n)],
            "ts": pd.Timestamp(AS_OF) - pd.to_timedelta(rng.integers(0, 120 * 24, n), unit="h"),
            "event": rng.choice(["ticket_opened", "ticket_escalated"], n, p=[0.85, 0.15]),
        }
    )


def _predicate(rng: np.random.Generator) -> str:
    kind = rng.integers(0, 10)
    if kind == 0:
        picks = rng.choice(PLANS, rng.integers(1, 3), replace=False)
        return "plan in (" + ", ".join(f"'{p}'" for p in picks) + ")"
    if kind == 1:
        return f"region = '{rng.choice(REGIONS)}'"
    if kind == 2:
        picks = rng.choice(INDUSTRIES, rng.integers(2, 6), replace=False)
        return "industry not in (" + ", ".join(f"'{p}'" for p in picks) + ")"
    if kind == 3:
        return f"seats >= {int(rng.integers(5, 300))}"
    if kind == 4:
        low = int(rng.integers(50, 600))
        return f"mrr between {low} and {low + int(rng.integers(100, 1500))}"
    if kind == 5:
        return f"logins_30d > {int(rng.integers(2, 20))}"
    if kind == 6:
        return (
            "days_since_login is null"
            if rng.random() < 0.3
            else (f"days_since_login <= {int(rng.integers(3, 60))}")
        )
    if kind == 7:
        return f"nps < {int(rng.integers(3, 9))}"
    if kind == 8:
        day = date(2022, 1, 1) + timedelta(days=int(rng.integers(100, 1500)))
        return f"signup_date >= '{day.isoformat()}'"
    return f"is_active = {'true' if rng.random() < 0.7 else 'false'}"


def make_rules(m: int, seed: int = 13) -> list[str]:
    """M random rules of three or four predicates, some with an OR group or a NOT."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(m):
        preds = [_predicate(rng) for _ in range(int(rng.integers(3, 5)))]
        if len(preds) == 4 and rng.random() < 0.5:
            text = f"{preds[0]} and {preds[1]} and ({preds[2]} or {preds[3]})"
        else:
            text = " and ".join(preds)
        if rng.random() < 0.15:
            text = f"not ({preds[0]}) and " + " and ".join(preds[1:])
        out.append(text)
    return out


def _bare_pandas(rule: rules.Rule, df: pd.DataFrame) -> pd.Series:
    """Evaluate a rule the way a person would by hand: plain pandas, no caching."""
    if isinstance(rule, rules.All):
        mask = _bare_pandas(rule.items[0], df)
        for item in rule.items[1:]:
            mask = mask & _bare_pandas(item, df)
        return mask
    if isinstance(rule, rules.AnyOf):
        mask = _bare_pandas(rule.items[0], df)
        for item in rule.items[1:]:
            mask = mask | _bare_pandas(item, df)
        return mask
    if isinstance(rule, rules.Not):
        return ~_bare_pandas(rule.item, df)
    col = df[rule.column]
    value = rule.value
    if COLUMNS.get(rule.column) == "date" and isinstance(value, str):
        value = pd.Timestamp(value)
    ops: dict[str, Callable[[], pd.Series]] = {
        "=": lambda: col == value,
        "!=": lambda: col.notna() & (col != value),
        "<": lambda: col < value,
        "<=": lambda: col <= value,
        ">": lambda: col > value,
        ">=": lambda: col >= value,
        "in": lambda: col.isin(list(value)),
        "not in": lambda: col.notna() & ~col.isin(list(value)),
        "between": lambda: col.between(value[0], value[1]),
        "is null": lambda: col.isna(),
        "is not null": lambda: col.notna(),
    }
    return ops[rule.op]()


def _workspace(root: Path, rule_texts: list[str]) -> dict[str, Any]:
    columns = dict(COLUMNS)
    columns["updated_at"] = "date"
    return {
        "sources": {
            "crm": {
                "kind": "entity",
                "path": "accounts.parquet",
                "id": "account_id",
                "timestamp": "updated_at",
                "columns": columns,
            },
            "support": {
                "kind": "events",
                "path": "tickets.parquet",
                "id": "account_id",
                "timestamp": "ts",
                "event": "event",
            },
        },
        "features": {
            "tickets_30d": {"source": "support", "agg": "count", "window_days": 30},
            "escalations_90d": {
                "source": "support",
                "agg": "count",
                "event": "ticket_escalated",
                "window_days": 90,
            },
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


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _best(fn: Callable[[], Any], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _persona_latency(engine: Any, names: list[str], runs: int = 200) -> dict[str, float]:
    """p50/p95 of rendering ``/persona`` briefs from the store, with feedback to summarise."""
    from commands.feedback import add_feedback
    from commands.persona import render_brief
    from commands.settings import Settings

    rng = np.random.default_rng(5)
    words = ["pricing", "onboarding", "dashboards", "renewal", "integration", "seats", "support"]
    for i in range(300):
        picked = " ".join(rng.choice(words, 4))
        add_feedback(
            engine,
            segment=names[i % len(names)],
            author=f"U{i % 17:04d}",
            text=f"Customer raised {picked} on the call",
            origin="cli",
        )
    settings = Settings()
    times = []
    for i in range(runs):
        started = time.perf_counter()
        render_brief(engine, names[i % len(names)], kind="brief", settings=settings)
        times.append(time.perf_counter() - started)
    times.sort()
    return {"p50_ms": 1000 * times[len(times) // 2], "p95_ms": 1000 * times[int(len(times) * 0.95)]}


def run_bench(
    *,
    customers: int,
    segments: int,
    console: Console,
    keep: Path | None = None,
    extra: Callable[[Any, str], dict[str, Any]] | None = None,
) -> dict:
    """Run the benchmark and print its table; returns the figures.

    ``extra(engine, segment)`` runs on the refreshed store before it is removed (the
    CLI uses it for the Slack ack-latency figures) and its result joins the figures.
    """
    from commands.catalog import apply_workspace
    from commands.refresh import refresh
    from segments.evaluate import evaluate_all
    from segments.sources import load_dataset
    from segments.workspace import load_workspace
    from store.db import make_engine, session_scope, upgrade
    from store.models import SegmentResult

    root = Path(tempfile.mkdtemp(prefix="segops-bench-")) if keep is None else keep
    figures: dict[str, Any] = {"customers": customers, "segments": segments}
    try:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as bar:
            task = bar.add_task("generate data", total=6)
            accounts = make_accounts(customers)
            accounts.to_parquet(root / "accounts.parquet", index=False)
            make_events(accounts, 2.0).to_parquet(root / "tickets.parquet", index=False)
            del accounts
            rule_texts = make_rules(segments)
            (root / "workspace.yaml").write_text(yaml.safe_dump(_workspace(root, rule_texts)))
            ws = load_workspace(root / "workspace.yaml")
            engine = make_engine(f"sqlite:///{root / 'bench.db'}")
            upgrade(engine)
            apply_workspace(engine, ws, reason="bench", author="bench")
            bar.update(task, advance=1, description="cold refresh (fills the entity dictionary)")
            cold = refresh(engine, ws, as_of=AS_OF - timedelta(days=30), notify=False)
            bar.update(task, advance=1, description="warm refresh")
            warm = refresh(engine, ws, as_of=AS_OF, notify=False)
            bar.update(task, advance=1, description="peers: bare pandas")
            raw = pd.read_parquet(root / "accounts.parquet")
            parsed = [rules.parse(t) for t in rule_texts]
            bare = _best(lambda: [_bare_pandas(r, raw).to_numpy() for r in parsed])
            dataset = load_dataset(ws, as_of=AS_OF)
            named = {f"bench-{i:03d}": r for i, r in enumerate(parsed)}
            ours = _best(lambda: evaluate_all(named, dataset.frame, dataset.schema))
            bar.update(task, advance=1, description="peers: DuckDB")
            duck = _duckdb(raw, parsed)
            bar.update(task, advance=1, description="/persona from the store")
            names = [f"bench-{i:03d}" for i in range(min(segments, 5))]
            persona = _persona_latency(engine, names)
            if extra is not None:
                figures.update(extra(engine, names[0]))
        with session_scope(engine) as session:
            from sqlmodel import select

            rows = session.exec(
                select(SegmentResult.size, SegmentResult.bitmap).where(
                    SegmentResult.status == "published"
                )
            ).all()
        stored = sum(len(b or b"") for _, b in rows)
        members = sum(s for s, _ in rows)
        figures.update(
            cold=cold.timings,
            warm=warm.timings,
            bare_pandas_eval=bare,
            segops_eval=ours,
            duckdb_eval=duck,
            persona=persona,
            bytes_per_member=stored / members if members else 0.0,
            density=members / (len(rows) * customers) if rows else 0.0,
            peak_rss_mb=_rss_mb(),
        )
        _print(console, figures)
        return figures
    finally:
        if keep is None:
            shutil.rmtree(root, ignore_errors=True)


def _duckdb(raw: pd.DataFrame, parsed: list[rules.Rule]) -> float | None:
    try:
        import duckdb
    except ImportError:
        return None
    import sqlalchemy as sa
    from sqlalchemy.dialects import postgresql

    from segments.schema import Schema

    schema = Schema(columns=dict(COLUMNS), aliases={})
    table = sa.table("accounts", *(sa.column(c) for c in COLUMNS))
    exprs = []
    for i, rule in enumerate(parsed):
        clause = rules.to_sql(rule, table, schema, {})
        sql = clause.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
        exprs.append(f"({sql}) AS s{i}")
    query = "SELECT " + ", ".join(exprs) + " FROM accounts"
    con = duckdb.connect()
    con.register("accounts", raw)
    return _best(lambda: con.execute(query).fetchnumpy())


def _print(console: Console, f: dict[str, Any]) -> None:
    warm = f["warm"]
    after_load = warm["total"] - warm["load"]  # every phase, the commit included
    table = Table(
        title=f"segops bench: {f['customers']:,} customers x {f['segments']} segments",
        title_justify="left",
    )
    table.add_column("measure")
    table.add_column("seconds", justify="right")
    table.add_column("ratio", justify="right")
    bare = f["bare_pandas_eval"]
    for phase, seconds in warm.items():
        if phase != "total":
            table.add_row(f"warm refresh: {phase}", f"{seconds:.3f}", "")
    table.add_row(
        "[bold]warm refresh after load[/]",
        f"{after_load:.3f}",
        f"{after_load / bare:.2f}x bare pandas",
    )
    table.add_row(
        "cold refresh after load (fills dictionary)",
        f"{f['cold']['total'] - f['cold']['load']:.3f}",
        "",
    )
    table.add_row("bare pandas: evaluate all rules", f"{bare:.3f}", "1.00x")
    table.add_row(
        "segops: evaluate all rules",
        f"{f['segops_eval']:.3f}",
        f"{f['segops_eval'] / bare:.2f}x bare pandas",
    )
    if f["duckdb_eval"] is not None:
        table.add_row(
            "DuckDB: evaluate all rules",
            f"{f['duckdb_eval']:.3f}",
            f"segops {f['segops_eval'] / f['duckdb_eval']:.2f}x DuckDB",
        )
    else:
        table.add_row("DuckDB", "—", "not installed (pip install segops[bench])")
    persona = f["persona"]
    table.add_row(
        "/persona brief from the store (200 renders)",
        f"p50 {persona['p50_ms'] / 1000:.3f}",
        f"p95 {persona['p95_ms']:.0f} ms",
    )
    for name, chart in f.get("charts", {}).items():
        table.add_row(
            f"chart: {name}",
            f"{chart['ms'] / 1000:.3f}",
            f"{chart['ms'] / chart['bare_ms']:.2f}x bare matplotlib",
        )
    for name, ack in f.get("acks", {}).items():
        table.add_row(
            f"ack {name} ({ack.requests} concurrent)",
            f"p50 {ack.p50_ms / 1000:.3f}",
            f"p99 {ack.p99_ms:.0f} ms",
        )
    console.print(table)
    console.print(
        f"peak RSS {f['peak_rss_mb']:,.0f} MB · {f['bytes_per_member']:.3f} bytes per stored "
        f"member (mean density {f['density']:.1%})"
    )

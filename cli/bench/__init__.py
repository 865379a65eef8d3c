"""``segops bench``: one run times a refresh phase by phase against bare pandas and DuckDB
(:mod:`cli.bench.refresh`) and, on the refreshed store, Slack acks from a separate client
process (:mod:`cli.bench.slack`) and chart rendering against bare matplotlib
(:mod:`cli.bench.charts`)."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from cli.bench.refresh import run_bench as run_refresh_bench


def run_bench(*, customers: int, segments: int, console: Console, slack: bool = True) -> dict:
    """Run the whole benchmark and print its table; returns the figures."""

    def extra(engine: Any, segment: str) -> dict[str, Any]:
        from cli.bench.charts import run_chart_bench

        figures: dict[str, Any] = {"charts": run_chart_bench()}
        if slack:
            from cli.bench.slack import run_slack_bench

            figures["acks"] = run_slack_bench(engine, segment=segment)
        return figures

    return run_refresh_bench(customers=customers, segments=segments, console=console, extra=extra)

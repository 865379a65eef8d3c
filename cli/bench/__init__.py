"""``segops bench``: one run times a refresh phase by phase against bare pandas and DuckDB
(:mod:`cli.bench.refresh`), on the refreshed store Slack acks from a separate client
process (:mod:`cli.bench.slack`), and the whole refresh process on a CSV against a bare
pandas process (:mod:`cli.bench.process`)."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from cli.bench.refresh import run_bench as run_refresh_bench


def run_bench(
    *, customers: int, segments: int, console: Console, slack: bool = True, process: bool = True
) -> dict:
    """Run the whole benchmark and print its tables; returns the figures."""

    def acks(engine: Any, segment: str) -> dict[str, Any]:
        from cli.bench.slack import run_slack_bench

        return {"acks": run_slack_bench(engine, segment=segment)}

    figures = run_refresh_bench(
        customers=customers, segments=segments, console=console, extra=acks if slack else None
    )
    if process:
        from cli.bench.process import run_process_bench

        figures["process"] = run_process_bench(
            customers=customers, segments=segments, console=console
        )
    return figures

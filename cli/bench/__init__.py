"""``segops bench``: one run times a refresh phase by phase against bare pandas and DuckDB
(:mod:`cli.bench.refresh`), on the refreshed store Slack acks from a separate client
process (:mod:`cli.bench.slack`) and chart rendering against bare matplotlib
(:mod:`cli.bench.charts`), and the whole refresh process on a CSV against a bare pandas
process (:mod:`cli.bench.process`); ``--web`` alone measures the web process's memory under
concurrent proposals (:mod:`cli.bench.web`); ``--soak SECONDS`` runs web, worker and CLI
side by side and prints an integrity report (:mod:`cli.bench.soak`)."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from cli.bench.refresh import run_bench as run_refresh_bench


def run_bench(
    *,
    customers: int,
    segments: int,
    console: Console,
    slack: bool = True,
    web: bool = False,
    soak: int = 0,
    database_url: str | None = None,
    process: bool = True,
) -> Any:
    """Run the whole benchmark and print its table; returns the figures.

    ``web``: only the memory of ``segops serve`` under concurrent proposals
    (:mod:`cli.bench.web`). ``soak``: only a soak of that many seconds
    (:mod:`cli.bench.soak`), on SQLite and, when ``database_url`` is PostgreSQL, in a
    scratch database on that server too.
    """
    if soak:
        from cli.bench.soak import run_soak

        pg = database_url if database_url and database_url.startswith("postgresql") else None
        return run_soak(seconds=soak, console=console, pg_url=pg)
    if web:
        from cli.bench.web import run_web_bench

        return run_web_bench(customers=customers, console=console)

    def extra(engine: Any, segment: str) -> dict[str, Any]:
        from cli.bench.charts import run_chart_bench

        figures: dict[str, Any] = {"charts": run_chart_bench()}
        if slack:
            from cli.bench.slack import run_slack_bench

            figures["acks"] = run_slack_bench(engine, segment=segment)
        return figures

    figures = run_refresh_bench(
        customers=customers, segments=segments, console=console, extra=extra
    )
    if process:
        from cli.bench.process import run_process_bench

        figures["process"] = run_process_bench(
            customers=customers, segments=segments, console=console
        )
    return figures

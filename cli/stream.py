"""``segops stream``: the live consumer, its status, reconciliation, and the events
endpoint on its own; ``event_routes`` mounts ``POST /events`` into ``segops serve``."""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

stream_app = typer.Typer(
    help="Live segments: consume events, reconcile with the batch refresh.",
    invoke_without_command=True,
)


class _Cli:
    """What a ``segops stream`` command needs from the root command: its settings, the
    ``--workspace`` option, a migrated engine, the console."""

    def __init__(self, ctx: typer.Context) -> None:
        from cli.output import out
        from commands.settings import Settings

        self.settings = Settings()
        self.workspace_option: Path | None = ctx.find_root().params.get("workspace")
        self.out = out

    def engine(self) -> Any:
        from store.db import make_engine, upgrade

        engine = make_engine(self.settings.database_url)
        upgrade(engine)
        return engine

    def workspace_path(self) -> Path:
        path = self.workspace_option or self.settings.workspace
        if path is None:
            self.fail("no workspace file: pass --workspace FILE or set SEGOPS_WORKSPACE")
        return path

    def fail(self, message: str) -> Any:
        from rich.markup import escape

        from cli.output import err

        err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
        raise typer.Exit(1)


def _log(settings: Any) -> Any:
    from stream.log import EventLog

    return EventLog.from_url(settings.redis_url, settings.stream_name)


def event_routes(settings: Any, engine: Any, workspace: Path | None) -> dict[str, Any]:
    """``{"/events": app}`` when ``SEGOPS_EVENTS_TOKEN`` is set (the workspace names the
    events sources), else nothing."""
    if not settings.events_token:
        return {}
    from commands.live import event_sources, mapped_sources
    from segments.workspace import load_workspace
    from stream.http import EVENTS_PATH, events_app

    path = workspace or settings.workspace
    if path is None:
        from segments.errors import SegopsError

        raise SegopsError("POST /events needs the workspace: pass --workspace or SEGOPS_WORKSPACE")
    ws = load_workspace(path)
    app = events_app(
        engine,
        _log(settings),
        token=settings.events_token,
        sources=event_sources(ws),
        mapped=mapped_sources(ws),
    )
    return {EVENTS_PATH: app}


@stream_app.callback()
def consume(
    ctx: typer.Context,
    name: Annotated[
        str | None, typer.Option(help="Consumer name, stable across restarts (host-based).")
    ] = None,
    batch: Annotated[int, typer.Option(min=1, max=5000, help="Events per transaction.")] = 500,
) -> None:
    """Run the live consumer: read the event log, apply, acknowledge (Procfile ``stream``)."""
    if ctx.invoked_subcommand is not None:
        return
    from stream.consumer import Consumer

    cli = _Cli(ctx)
    settings = cli.settings
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    path = cli.workspace_path()

    def load() -> Any:
        from segments.workspace import load_workspace

        return load_workspace(path)

    consumer = Consumer(
        cli.engine(),
        load,
        _log(settings),
        name=name or f"{socket.gethostname()}-stream",
        lateness=timedelta(seconds=settings.stream_lateness),
        batch=batch,
        privacy_floor=settings.privacy_floor,
        templates_dir=settings.templates_dir,
    )
    stop = threading.Event()
    import signal

    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(f"consuming {settings.stream_name} as {consumer.name} (pid {os.getpid()})", flush=True)
    try:
        consumer.run(stop)
    except KeyboardInterrupt:
        pass


@stream_app.command()
def status(ctx: typer.Context, json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Counters (applied, duplicates, late, dead), the log's lag and the live segments."""
    from commands.live import status as live_status

    cli = _Cli(ctx)
    data = live_status(cli.engine())
    try:
        data["log"] = _log(cli.settings).status()
    except Exception as exc:  # noqa: BLE001 - a status line, never a traceback
        data["log"] = {"error": str(exc).splitlines()[0]}
    if json_out:
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
        return
    counts = data["counters"]
    cli.out.print(
        " · ".join(f"{k} {counts.get(k, 0):,}" for k in ("applied", "duplicates", "late", "dead"))
    )
    cli.out.print(f"log {data['log']}")
    for row in data["segments"]:
        cli.out.print(f"{row['segment']}: {row['members']:,} live members")


@stream_app.command()
def reconcile(
    ctx: typer.Context, json_out: Annotated[bool, typer.Option("--json")] = False
) -> None:
    """Compare live segments with today's batch refresh; alert the owner past 0.1 %."""
    from commands.live import reconcile as run_reconcile

    cli = _Cli(ctx)
    found = run_reconcile(
        cli.engine(),
        today=datetime.now(UTC).date(),
        templates_dir=cli.settings.templates_dir,
    )
    if json_out:
        sys.stdout.write(json.dumps([r.to_dict() for r in found], indent=2) + "\n")
        return
    if not found:
        cli.out.print("nothing to reconcile: no live segment has a new batch result for today")
    for r in found:
        verdict = "alerted" if r.alerted else "in step"
        cli.out.print(
            f"{r.segment}: live {r.live:,} · batch {r.batch:,} · {r.differing:,} differ "
            f"({r.share:.2%}) · {verdict}"
        )


@stream_app.command()
def http(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(help="HTTP port.")] = 3001,
    threads: Annotated[int, typer.Option(min=1, max=256)] = 8,
) -> None:
    """Serve only POST /events (without the Slack app)."""
    from waitress import serve

    cli = _Cli(ctx)
    settings = cli.settings
    if not settings.events_token:
        cli.fail("missing environment: SEGOPS_EVENTS_TOKEN")
    routes = event_routes(settings, cli.engine(), cli.workspace_option)
    app = next(iter(routes.values()))
    serve(app, host="0.0.0.0", port=port, threads=threads, ident="segops")

"""``segops sync run|status|retry|resync|approve``: membership syncs to destinations."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from cli import context
from cli.output import out

sync_app = typer.Typer(
    help="Keep destinations (tables, files, webhooks, HubSpot lists) in step with segments.",
    no_args_is_help=True,
)

DestArg = Annotated[str | None, typer.Argument(help="Destination name (default: all).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]


def _ctx(ctx: typer.Context) -> tuple[Any, Any, Any]:
    current = context.settings()
    return context.engine(current), context.workspace(ctx, current), current


_print_json = context.print_json


@sync_app.command("run")
def run(
    ctx: typer.Context,
    destination: DestArg = None,
    segment: Annotated[str | None, typer.Option("--segment", "-s")] = None,
    passes: Annotated[int, typer.Option(min=1, max=100, help="Passes (retries come due).")] = 1,
    json_out: JsonOpt = False,
) -> None:
    """Plan and send what each destination lacks, now."""
    from sync import run_syncs

    engine, ws, settings = _ctx(ctx)
    if destination:
        from commands.syncs import find_destination

        find_destination(ws, destination)
    totals: dict[str, Any] = {}
    for _ in range(passes):
        stats = run_syncs(engine, ws, settings, only=destination, segment=segment)
        for key, value in stats.to_dict().items():
            if isinstance(value, int):
                totals[key] = totals.get(key, 0) + value
            elif isinstance(value, list):
                totals[key] = sorted(set(totals.get(key, [])) | set(value))
            else:
                totals.setdefault(key, {}).update(value)
    if json_out:
        _print_json(totals)
        return
    out.print(
        f"planned {totals['planned']} runs ({totals['held']} held), sent {totals['sent']} batches, "
        f"{totals['retried']} to retry, {totals['dead']} dead"
    )
    for name in totals["disabled"]:
        out.print(f"[red]disabled[/] {escape(name)}")
    for name, error in totals["errors"].items():
        out.print(f"[red]error[/] {escape(name)}: {escape(error)}")
    if totals["errors"]:
        raise typer.Exit(1)


@sync_app.command("status")
def status(ctx: typer.Context, destination: DestArg = None, json_out: JsonOpt = False) -> None:
    """What each destination holds, waits for and last did."""
    from commands.syncs import find_destination
    from commands.syncs import status as sync_status

    engine, ws, _ = _ctx(ctx)
    if destination:
        find_destination(ws, destination)
    rows = sync_status(engine, ws, only=destination)
    if json_out:
        _print_json(rows)
        return
    if not rows:
        out.print("no destinations declared in the workspace")
        return
    table = Table(title="Destinations", title_justify="left")
    for col in ("destination", "segment", "members", "acknowledged", "last run", "note"):
        table.add_column(col, overflow="fold")
    for row in rows:
        head = f"{row['destination']} ({row['label']})"
        if row.get("missing"):
            head += f"\n{row['missing']:,} ids not found, retried later"
        if row["status"] == "disabled":
            head += f"\n[red]disabled[/]: {escape(row['disabled_reason'] or '')}"
        for seg in row["segments"] or [{"segment": "—", "members": None}]:
            run = seg.get("run")
            last = "—"
            note = ""
            if run:
                last = f"#{run['id']} {run['status']} +{run['added']} / -{run['removed']}"
                if run["missing"]:
                    last += f", {run['missing']} ids not found"
                note = run["note"] or run["last_error"] or ""
            state = "in step" if seg.get("in_step") else "behind"
            if seg.get("retiring"):
                state = f"retiring: {seg['retiring']}"
            if seg.get("missing"):
                retry_at = seg.get("missing_retry_at")
                when = f", next try {retry_at.replace('T', ' ')[:16]}" if retry_at else ""
                state += f"; {seg['missing']:,} not found{when}"
            table.add_row(
                escape(head),
                escape(seg["segment"]),
                "—"
                if seg.get("members") is None
                else f"{seg['members']:,}" + (" live" if seg.get("source") == "live" else ""),
                f"{seg.get('acknowledged', 0):,} ({state})",
                escape(last),
                escape(note),
            )
    out.print(table)


@sync_app.command("retry")
def retry(ctx: typer.Context, destination: DestArg = None) -> None:
    """Enable a disabled destination and send its waiting batches and failed syncs now."""
    from commands.syncs import retry as retry_syncs
    from sync import run_syncs

    engine, ws, settings = _ctx(ctx)
    enabled = retry_syncs(engine, ws, destination=destination)
    for name in enabled:
        out.print(f"[green]enabled[/] {escape(name)}")
    stats = run_syncs(engine, ws, settings, only=destination, retry_failed=True)
    out.print(f"sent {stats.sent} batches, {stats.retried} to retry, {stats.dead} dead")


@sync_app.command("resync")
def resync(
    ctx: typer.Context,
    destination: Annotated[str, typer.Argument(help="Destination to rebuild.")],
    segment: Annotated[str | None, typer.Option("--segment", "-s")] = None,
) -> None:
    """Rebuild a destination from scratch: forget what it acknowledged and send everything."""
    from commands.syncs import resync as resync_destination
    from sync import run_syncs

    engine, ws, settings = _ctx(ctx)
    count = resync_destination(engine, ws, destination=destination, segment=segment)
    stats = run_syncs(engine, ws, settings, only=destination, segment=segment)
    out.print(
        f"rebuilding {escape(destination)} for {count} segment(s): "
        f"sent {stats.sent} batches, {stats.retried} to retry"
    )


@sync_app.command("approve")
def approve(
    ctx: typer.Context,
    destination: Annotated[str, typer.Argument(help="Destination.")],
    segment: Annotated[str, typer.Argument(help="Segment whose held sync to release.")],
    by: Annotated[str, typer.Option(help="Who approves (Slack id or name).")] = "cli",
) -> None:
    """Release a sync that waits for approval (a large change, or after drift alerts)."""
    from commands.syncs import approve as approve_run
    from sync import run_syncs

    engine, ws, settings = _ctx(ctx)
    run_id = approve_run(engine, ws, destination=destination, segment=segment, by=by)
    stats = run_syncs(engine, ws, settings, only=destination, segment=segment, plan=False)
    out.print(f"approved run #{run_id}: sent {stats.sent} batches, {stats.retried} to retry")

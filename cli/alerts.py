"""``segops alerts list|ack|mute``: drift and quality alerts from the terminal, under the
same rules as the buttons in Slack (acknowledge: the owner or an approver, for that alert
only; mute: the owner, for that drift until the mute runs out)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from cli.output import out
from cli.shared import AsOpt, JsonOpt, acting_user, engine, print_json, settings

app = typer.Typer(help="Drift and quality alerts: list, acknowledge, mute.", no_args_is_help=True)

AlertId = Annotated[int, typer.Argument(help="The alert number (see 'segops alerts list').")]


@app.command("list")
def list_cmd(
    segment: Annotated[str | None, typer.Option("--segment", "-s")] = None,
    status: Annotated[str, typer.Option(help="open, acknowledged, muted or all.")] = "open",
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    json_out: JsonOpt = False,
) -> None:
    """Alerts, newest first (open ones unless --status says otherwise)."""
    from commands.alerts import list_alerts

    rows = list_alerts(
        engine(),
        segment=segment,
        status=None if status == "all" else status,
        limit=limit,
        privacy_floor=settings().privacy_floor,
    )
    if json_out:
        print_json(rows)
        return
    if not rows:
        out.print(f"no {'' if status == 'all' else status + ' '}alerts")
        return
    table = Table(title="Alerts", title_justify="left")
    for col in ("#", "as of", "segment", "severity", "kind", "status", "message"):
        table.add_column(col, overflow="fold")
    for a in rows:
        shown = a["status"]
        if a["status"] == "acknowledged" and a["acknowledged_by"]:
            shown += f" by {a['acknowledged_by']}"
        elif a["status"] == "muted":
            shown += f" until {a['muted_until'][:10]}"
        table.add_row(
            str(a["id"]),
            a["as_of"] or "—",
            a["segment"],
            a["severity"],
            a["kind"],
            shown,
            a["message"],
        )
    out.print(table)


@app.command()
def ack(alert_id: AlertId, user: AsOpt = None, json_out: JsonOpt = False) -> None:
    """Acknowledge one alert: the same drift is posted again if it turns or grows."""
    from commands.alerts import acknowledge

    current = settings()
    view = acknowledge(
        engine(current), alert_id=alert_id, user=acting_user(user, current, what="acknowledging")
    )
    if json_out:
        print_json(view.to_dict())
        return
    if view.changed:
        out.print(f"acknowledged alert #{view.id} on '{view.segment}': {view.message}")
    else:
        out.print(f"alert #{view.id} was already acknowledged by {view.acknowledged_by}")


@app.command()
def mute(
    alert_id: AlertId,
    user: AsOpt = None,
    days: Annotated[int, typer.Option(help="How long, 1 to 90 days.")] = 7,
    json_out: JsonOpt = False,
) -> None:
    """Mute one alert's drift for some days (owner only); it is posted again after."""
    from commands.alerts import mute as mute_alert

    current = settings()
    view = mute_alert(
        engine(current),
        alert_id=alert_id,
        user=acting_user(user, current, what="muting"),
        days=days,
    )
    if json_out:
        print_json(view.to_dict())
        return
    if view.changed:
        out.print(f"muted alert #{view.id} on '{view.segment}' until {view.muted_until[:10]}")
    else:
        out.print(f"alert #{view.id} is already {view.status}: nothing to mute")

"""Terminal output of the command line: the rich consoles, progress bars and report tables."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def progress() -> Progress:
    """A transient progress bar on stderr, so stdout stays clean for ``--json``."""
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )


def print_report(report, *, privacy_floor: int = 0) -> None:
    """A refresh report as a table (numbers under ``privacy_floor`` hidden)."""
    from commands.policy import is_hidden, visible_outcome

    table = Table(title=f"Refresh {report.as_of}", title_justify="left")
    for col in ("segment", "status", "size", "change", "joined", "left", "alerts"):
        table.add_column(col, justify="right" if col in ("size", "joined", "left") else "left")
    colours = {"published": "green", "blocked": "red", "unchanged": "dim", "skipped": "yellow"}
    for s in report.segments:
        change = "new"
        if s.previous_size is not None:
            delta = s.size - s.previous_size
            change = f"{delta:+,}"
        shown = visible_outcome(s.to_dict(details=True), privacy_floor)
        alerts = (
            s.note or "; ".join(f"{a['severity']}: {a['message']}" for a in shown["alerts"]) or "—"
        )
        if shown.get("definition_changed"):
            from commands.refresh import definition_change_text

            alerts = definition_change_text(shown["definition_changed"]) + (
                f"; {alerts}" if alerts != "—" else ""
            )
        numbers = [f"{s.size:,}", change, f"{s.joined:,}", f"{s.left:,}"]
        if is_hidden(s.size, privacy_floor):
            numbers = [f"< {privacy_floor}", "hidden", "—", "—"]
        elif is_hidden(s.previous_size, privacy_floor):
            numbers[1:] = ["hidden", "—", "—"]
        table.add_row(
            s.segment, f"[{colours.get(s.status, 'white')}]{s.status}[/]", *numbers, alerts
        )
    out.print(table)

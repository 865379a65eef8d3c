"""``segops experiments``, ``segops learnings`` and ``segops agenda``.

Three typer sub-apps registered in :mod:`cli.app`. A user error is a ``SegopsError``,
which ``cli.app.main`` prints as one line on stderr with exit status 1.
"""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from cli.output import out
from commands.settings import Settings
from segments.errors import SegopsError

experiments_app = typer.Typer(
    help="Holdout experiments: plan, start, read out, close.", no_args_is_help=True
)
learnings_app = typer.Typer(
    help="The learnings library: what changes and experiments did.", no_args_is_help=True
)
agenda_app = typer.Typer(help="The segmentation clinic agenda.", invoke_without_command=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
AsOfOpt = Annotated[str | None, typer.Option("--as-of", help="Day YYYY-MM-DD (newest data).")]


def _settings() -> Settings:
    return Settings()


def _engine():
    from store.db import make_engine, upgrade

    engine = make_engine(_settings().database_url)
    upgrade(engine)
    return engine


def _workspace(ctx: typer.Context, required: bool = True):
    """The workspace of ``segops --workspace`` (the root command's option), else
    ``SEGOPS_WORKSPACE``."""
    from segments.workspace import load_workspace

    path: Path | None = ctx.find_root().params.get("workspace") or _settings().workspace
    if path is None:
        if required:
            raise SegopsError("no workspace file: pass --workspace FILE or set SEGOPS_WORKSPACE")
        return None
    return load_workspace(path)


def _day(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise SegopsError(f"--as-of {value!r} is not a date (YYYY-MM-DD)") from None


def _json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


# experiments -----------------------------------------------------------------------------


@experiments_app.command("plan")
def plan_cmd(ctx: typer.Context, segment: str, json_out: JsonOpt = False) -> None:
    """The sample size the segment's declared experiment needs, and what it has."""
    from commands.experiments import plan

    result = plan(_engine(), _workspace(ctx), segment)
    if json_out:
        _json(result.to_dict())
        return
    verdict = "enough" if result.enough else "too small"
    out.print(
        f"{escape(segment)}: {result.kind} KPI baseline {result.baseline:.4g} "
        f"(sd {result.sd:.4g}), "
        f"MDE {result.mde:+.1%}, alpha {result.alpha}, power {result.power}, "
        f"holdout {result.share:.0%}: needs {result.needed:,} "
        f"({result.needed_holdout:,} held out), has {result.available:,}: {verdict}"
    )


@experiments_app.command("start")
def start_cmd(
    ctx: typer.Context,
    segment: str,
    by: Annotated[str, typer.Option(help="Who decided (Slack id or name).")] = "cli",
    json_out: JsonOpt = False,
) -> None:
    """Start the segment's declared experiment on its current members."""
    from commands.experiments import start

    view = start(_engine(), _workspace(ctx), segment, by=by)
    if json_out:
        _json(view.to_dict())
        return
    out.print(
        f"experiment #{view.id} on {escape(view.segment)} started {view.started_on}: "
        f"{view.holdout_share:.0%} held out, reads {escape(view.kpi)} until {view.ends_on}"
    )


@experiments_app.command("readout")
def readout_cmd(
    ctx: typer.Context,
    segment: Annotated[str | None, typer.Argument(help="Segment (its newest experiment).")] = None,
    experiment: Annotated[int | None, typer.Option("--id", help="Experiment id.")] = None,
    as_of: AsOfOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Treatment against holdout: always-valid while running, fixed-horizon at the end."""
    from commands.experiments import readout

    if segment is None and experiment is None:
        raise SegopsError("name a segment or pass --id")
    result = readout(
        _engine(), _workspace(ctx), segment=segment, experiment_id=experiment, as_of=_day(as_of)
    )
    if json_out:
        _json(result.to_dict())
        return
    out.print(f"#{result.experiment_id} {escape(result.segment)} · {result.phase} · {result.as_of}")
    out.print(escape(result.summary))
    for item in result.kpis[1:]:
        out.print(f"  also {escape(item['effect'])} (adjusted p {item['adjusted_p']:.3g})")


@experiments_app.command("stop")
def stop_cmd(
    segment: str,
    reason: Annotated[str, typer.Option(help="Why it stops early.")] = "",
    by: Annotated[str, typer.Option(help="Who decided (Slack id or name).")] = "cli",
) -> None:
    """Stop the segment's running experiment before its window closes."""
    from commands.experiments import stop

    view = stop(_engine(), segment, by=by, reason=reason)
    out.print(f"experiment #{view.id} on {escape(view.segment)} stopped")


@experiments_app.command("list")
def list_cmd(
    segment: Annotated[str | None, typer.Argument()] = None, json_out: JsonOpt = False
) -> None:
    """Experiments, newest first."""
    from commands.experiments import list_experiments

    rows = list_experiments(_engine(), segment=segment)
    if json_out:
        _json([r.to_dict() for r in rows])
        return
    table = Table(title="experiments", title_justify="left")
    for column in ("id", "segment", "kpi", "holdout", "started", "ends", "status"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            str(r.id), r.segment, r.kpi, f"{r.holdout_share:.0%}", r.started_on, r.ends_on, r.status
        )
    out.print(table)


@experiments_app.command("close")
def close_cmd(ctx: typer.Context, as_of: AsOfOpt = None, json_out: JsonOpt = False) -> None:
    """Read out and close every experiment whose window has closed; record the effects."""
    from commands.experiments import close_due

    done = close_due(_engine(), _workspace(ctx), as_of=_day(as_of))
    if json_out:
        _json([r.to_dict() for r in done])
        return
    if not done:
        out.print("no experiment window has closed")
    for r in done:
        out.print(f"closed #{r.experiment_id} {escape(r.segment)}: {escape(r.summary)}")


# learnings -------------------------------------------------------------------------------


@learnings_app.command("list")
def learnings_list(
    query: Annotated[list[str] | None, typer.Argument(help="A segment, or search words.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 20,
    json_out: JsonOpt = False,
) -> None:
    """Learnings, newest first: of a segment, or matching every word."""
    from commands.learnings import search

    rows = search(_engine(), " ".join(query or []), limit=limit)
    if json_out:
        _json([r.to_dict() for r in rows])
        return
    if not rows:
        out.print("no learnings yet")
    for r in rows:
        out.print(escape(f"#{r.id} [{r.segment or '-'}] {r.title}: {r.effect_text or 'pending'}"))


@learnings_app.command("show")
def learnings_show(learning_id: int, json_out: JsonOpt = False) -> None:
    """One learning with its hypothesis, decision, effect and notes."""
    from commands.learnings import show_learning

    view = show_learning(_engine(), learning_id)
    if json_out:
        _json(view.to_dict())
        return
    lines = [
        f"#{view.id} {view.kind} · {view.segment or '-'} · {view.created_at[:10]}",
        f"what: {view.title}",
        f"why: {view.reason or view.hypothesis.get('statement') or '-'}",
        f"decided by: {view.decided_by or '-'}",
        f"effect: {view.effect_text or 'recorded when the window closes'}",
    ]
    lines += [f"note by {n['author']}: {n['text']}" for n in view.notes]
    for line in lines:
        out.print(escape(line))


@learnings_app.command("note")
def learnings_note(
    learning_id: int,
    text: str,
    author: Annotated[str, typer.Option(help="Who writes the note.")] = "cli",
) -> None:
    """Add a note to a learning."""
    from commands.learnings import add_note

    view = add_note(_engine(), learning_id, author=author, text=text)
    out.print(f"#{view.id}: {len(view.notes)} notes")


# agenda ----------------------------------------------------------------------------------


@agenda_app.callback()
def agenda_cmd(
    ctx: typer.Context,
    post: Annotated[
        bool, typer.Option("--post", help="Queue it for the clinic channel too.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """The clinic agenda: drift, proposals, experiments, learnings, feedback, coverage."""
    from briefs.blocks import to_plain
    from briefs.render import renderer
    from commands.agenda import agenda, queue_agenda

    settings = _settings()
    engine = _engine()
    ws = _workspace(ctx, required=False)
    if post:
        if not settings.clinic_channel:
            raise SegopsError("no clinic channel: set SEGOPS_CLINIC_CHANNEL")
        queued = queue_agenda(
            engine,
            channel=settings.clinic_channel,
            ws=ws,
            privacy_floor=settings.privacy_floor,
            templates_dir=settings.templates_dir,
        )
        out.print(f"queued {queued} messages for {escape(settings.clinic_channel)}")
        return
    ctx = agenda(engine, ws=ws, privacy_floor=settings.privacy_floor)
    if json_out:
        _json(ctx)
        return
    text = renderer(settings.templates_dir).render_text("clinic-agenda", ctx)
    out.print(to_plain(text), markup=False, highlight=False)

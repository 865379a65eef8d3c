"""The ``segops`` command line (typer): the composition root, the one place that wires
the use cases (``commands``) to the transports (``bot``), the worker and the terminal.

A user error exits 1 with one clear line on stderr and no traceback. Read
commands take ``--json`` and then print exactly one JSON document.
"""

from __future__ import annotations

import gc
import json
import sys
import tempfile
from contextlib import suppress
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.markup import escape
from rich.table import Table

from cli.alerts import app as alerts_app
from cli.experiments import agenda_app, experiments_app, learnings_app
from cli.output import err, out, print_report, progress
from cli.proposals import app as proposals_app
from cli.stream import stream_app
from cli.sync import sync_app
from cli.tokens import tokens_app
from commands.settings import Settings
from segments.errors import SegopsError

app = typer.Typer(
    name="segops",
    help="Keep customer segments alive: catalog, refresh, drift, briefs and Slack.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
feedback_app = typer.Typer(help="Field feedback tagged to a segment.", no_args_is_help=True)
app.add_typer(feedback_app, name="feedback")
app.add_typer(sync_app, name="sync")
app.add_typer(tokens_app, name="tokens")
app.add_typer(experiments_app, name="experiments")
app.add_typer(learnings_app, name="learnings")
app.add_typer(agenda_app, name="agenda")
app.add_typer(stream_app, name="stream")
app.add_typer(proposals_app, name="proposals")
app.add_typer(alerts_app, name="alerts")


class State:
    settings: Settings
    workspace_option: Path | None = None


state = State()

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]


def _fail(message: str) -> None:
    err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(1)


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _engine():
    from store.db import make_engine, upgrade

    engine = make_engine(state.settings.database_url)
    upgrade(engine)
    return engine


def _workspace_path() -> Path:
    path = state.workspace_option or state.settings.workspace
    if path is None:
        _fail("no workspace file: pass --workspace FILE or set SEGOPS_WORKSPACE")
    return path


def _workspace():
    from segments.workspace import load_workspace

    return load_workspace(_workspace_path(), data_roots=state.settings.data_root_paths)


def _parse_date(value: str | None) -> date:
    if value is None:
        return datetime.now(UTC).date()
    try:
        return date.fromisoformat(value)
    except ValueError:
        _fail(f"--as-of {value!r} is not a date (YYYY-MM-DD)")
        raise


@app.callback()
def main_callback(
    workspace: Annotated[
        Path | None,
        typer.Option("--workspace", "-w", help="Workspace YAML (or SEGOPS_WORKSPACE)."),
    ] = None,
) -> None:
    """segops: segment catalog, refreshes, drift alerts and briefs."""
    try:
        state.settings = Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        _fail(f"configuration: {first['loc'][0]}: {first['msg']}")
    state.workspace_option = workspace


@app.command()
def init() -> None:
    """Create or upgrade the database (idempotent)."""
    from store.db import current_revision

    engine = _engine()
    out.print(f"database ready: revision {current_revision(engine)}")


@app.command()
def apply(
    file: Annotated[Path, typer.Argument(help="Workspace YAML to apply.")],
    reason: Annotated[str | None, typer.Option(help="Why: stored on every new version.")] = None,
    author: Annotated[
        str | None,
        typer.Option("--as", "--author", help="Who applies: a Slack user id (SEGOPS_CLI_USER)."),
    ] = None,
    approved_by: Annotated[
        str | None,
        typer.Option(help="An owner or approver who approved the changes (recorded)."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Apply over versions the file has not seen.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Validate the whole file, then create segments and change or propose the others."""
    from commands.governance import apply_governed
    from segments.workspace import load_workspace

    ws = load_workspace(file, data_roots=state.settings.data_root_paths)
    engine = _engine()
    settings = state.settings
    result = apply_governed(
        engine,
        ws,
        user=(author or settings.cli_user or "cli").strip(),
        reason=reason,
        approved_by=approved_by,
        force=force,
        direct_tiers=settings.direct_tiers,
        templates_dir=settings.templates_dir,
        reactions={"approve": settings.approve_emoji, "reject": settings.reject_emoji},
    )
    _print_applied(result, json_out=json_out)


def _print_applied(result: Any, *, json_out: bool) -> None:
    if json_out:
        _print_json(result.to_dict())
        return
    if not result.changed and not result.proposed and not result.pending:
        out.print(f"nothing to change: {len(result.unchanged)} segments already up to date")
        return
    for old, new in result.renamed.items():
        out.print(f"[yellow] renamed[/] {old} -> {new}")
    for label, names, colour in (
        ("created", result.created, "green"),
        ("updated", result.updated, "yellow"),
        ("archived", result.archived, "red"),
    ):
        for name in names:
            out.print(f"[{colour}]{label:>8}[/] {name}")
    for name, number in result.proposed.items():
        out.print(f"[cyan]proposed[/] {name}: proposal #{number} awaits its owner's approval")
    for name, number in result.pending.items():
        out.print(f"[dim] pending[/] {name}: proposal #{number} already awaits approval")
    out.print(f"{len(result.unchanged)} unchanged")


@app.command()
def rename(
    old: Annotated[str, typer.Argument(help="The segment's current name.")],
    new: Annotated[str, typer.Argument(help="Its new name.")],
    reason: Annotated[str | None, typer.Option(help="Why: stored on the new version.")] = None,
    author: Annotated[
        str | None,
        typer.Option("--as", help="Who renames: a Slack user id (SEGOPS_CLI_USER)."),
    ] = None,
    approved_by: Annotated[
        str | None,
        typer.Option(help="An owner or approver who approved the rename (recorded)."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Rename a segment, keeping its history, memberships, alerts and feedback; rules of
    other segments that refer to it are rewritten. Proposed unless it may apply directly."""
    from commands.governance import rename_segment

    settings = state.settings
    result = rename_segment(
        _engine(),
        _workspace(),
        old=old,
        new=new,
        user=(author or settings.cli_user or "cli").strip(),
        reason=reason,
        approved_by=approved_by,
        direct_tiers=settings.direct_tiers,
        templates_dir=settings.templates_dir,
        reactions={"approve": settings.approve_emoji, "reject": settings.reject_emoji},
    )
    _print_applied(result, json_out=json_out)


def _derive(kind: str, new: str, sources: list[str], rule: str, **options: Any) -> None:
    from commands.governance import derive_segment

    settings = state.settings
    author = options.pop("author")
    json_out = options.pop("json_out")
    result = derive_segment(
        _engine(),
        _workspace(),
        kind=kind,
        new=new,
        sources=sources,
        rule=rule,
        user=(author or settings.cli_user or "cli").strip(),
        direct_tiers=settings.direct_tiers,
        templates_dir=settings.templates_dir,
        reactions={"approve": settings.approve_emoji, "reject": settings.reject_emoji},
        **options,
    )
    _print_applied(result, json_out=json_out)


RuleOpt = Annotated[str, typer.Option(help="The new segment's rule.")]
TitleOpt = Annotated[str | None, typer.Option(help="Its title (default: from the name).")]
ReasonOpt = Annotated[str | None, typer.Option(help="Why: stored on the new versions.")]
AuthorOpt = Annotated[
    str | None, typer.Option("--as", help="Who does it: a Slack user id (SEGOPS_CLI_USER).")
]
ApprovedOpt = Annotated[
    str | None, typer.Option(help="An owner or approver who approved the archives (recorded).")
]


@app.command()
def merge(
    new: Annotated[str, typer.Argument(help="The new segment's name.")],
    sources: Annotated[list[str], typer.Argument(help="The segments it replaces (two or more).")],
    rule: RuleOpt,
    title: TitleOpt = None,
    reason: ReasonOpt = None,
    author: AuthorOpt = None,
    approved_by: ApprovedOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Merge segments into a new one, as a file declaring merged_from does: the new segment
    is created, each source's archive proposed unless it may apply directly."""
    _derive(
        "merge",
        new,
        sources,
        rule,
        title=title,
        reason=reason,
        author=author,
        approved_by=approved_by,
        json_out=json_out,
    )


@app.command()
def split(
    new: Annotated[str, typer.Argument(help="The new part's name.")],
    parent: Annotated[str, typer.Argument(help="The segment it is a part of (it stays).")],
    rule: RuleOpt,
    title: TitleOpt = None,
    reason: ReasonOpt = None,
    author: AuthorOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Split a part off a segment, as a file declaring split_from does: the part is created
    at once and its parent stays (archive it with 'segops apply' when it is done)."""
    _derive(
        "split",
        new,
        [parent],
        rule,
        title=title,
        reason=reason,
        author=author,
        approved_by=None,
        json_out=json_out,
    )


@app.command()
def export(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write.")] = None,
) -> None:
    """Write the catalog back as workspace YAML (round-trips through apply)."""
    from commands.catalog import export_workspace

    text = export_workspace(_engine(), _workspace())
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        out.print(f"wrote {output}")


@app.command("list")
def list_cmd(json_out: JsonOpt = False) -> None:
    """The catalog: every segment with its tier, owner, version and latest size."""
    from commands.catalog import list_segments

    rows = list_segments(_engine(), privacy_floor=state.settings.privacy_floor)
    if json_out:
        _print_json([r.to_dict() for r in rows])
        return
    if not rows:
        out.print(
            "the catalog is empty: apply a workspace with 'segops apply FILE' or try 'segops demo'"
        )
        return
    table = Table(title="Segments", title_justify="left")
    for col in ("name", "title", "tier", "status", "owner", "cadence", "v", "size", "as of"):
        table.add_column(col, justify="right" if col in ("v", "size") else "left")
    for r in rows:
        table.add_row(
            r.name,
            r.title,
            r.tier,
            r.status,
            r.owner,
            r.cadence,
            str(r.version or ""),
            (f"{r.size:,}" if r.size is not None else "—")
            + (f" (v{r.size_version})" if r.definition_changed else ""),
            r.as_of or "never",
        )
    out.print(table)


@app.command()
def show(name: str, json_out: JsonOpt = False) -> None:
    """One segment's current definition and latest stats."""
    from briefs.wording import definition_notice
    from commands.catalog import show_segment

    view = show_segment(_engine(), name, privacy_floor=state.settings.privacy_floor)
    if json_out:
        _print_json(view)
        return
    d = view["definition"]
    out.print(f"[bold]{d['title']}[/] ({d['name']}) · {d['tier']} · v{view['version']}")
    out.print(f"owner {d['owner']} · approvers {', '.join(d['approvers']) or '—'}")
    out.print(f"channel {d.get('channel') or '—'} · cadence {view['cadence']}")
    out.print(f"[bold]rule[/] {d['rule']}")
    out.print(f"[bold]in words[/] {view['criteria']}")
    live = view["live"]
    out.print(f"[bold]{live['mode']}[/] " + escape("; ".join(live["reasons"])))
    if d.get("purpose"):
        out.print(f"[bold]purpose[/] {d['purpose']}")
    stats = view.get("stats")
    if stats and view["hidden"]:
        out.print(
            f"[bold]size[/] fewer than {view['privacy_floor']} members as of {stats['as_of']}"
            f" · computed by v{stats['version']}"
        )
    elif stats:
        change = f" ({stats['change_pct']:+.1f}%)" if stats.get("change_pct") is not None else ""
        out.print(
            f"[bold]size[/] {stats['size']:,}{change} as of {stats['as_of']} · "
            f"+{stats['joined']:,} joined, -{stats['left']:,} left · "
            f"computed by v{stats['version']}"
        )
    else:
        out.print("never refreshed")
    if stats and stats.get("definition_changed"):
        out.print(
            f"[yellow]{escape(definition_notice(stats))}[/]; these numbers are "
            f"v{stats['version']}'s, v{view['version']} is computed by the next refresh"
        )


@app.command()
def history(name: str, json_out: JsonOpt = False) -> None:
    """Every version of a segment with author, approver and reason."""
    from commands.catalog import history as load_history

    floor = state.settings.privacy_floor
    versions = load_history(_engine(), name, privacy_floor=floor)
    if json_out:
        _print_json([v.to_dict() for v in versions])
        return
    table = Table(title=f"History of {name}", title_justify="left")
    for col in ("v", "change", "when", "author", "approver", "reason", "rule", "refreshes"):
        table.add_column(col, overflow="fold")
    for v in versions:
        computed = "—"
        if v.refreshes:
            size = f"{v.last_size:,}" if v.last_size is not None else f"fewer than {floor}"
            computed = f"{v.refreshes}, last {v.last_as_of}: {size}"
        table.add_row(
            str(v.version),
            v.change_kind,
            v.created_at,
            v.author,
            v.approver or "—",
            v.reason or "—",
            v.rule,
            computed,
        )
    out.print(table)


@app.command()
def refresh(
    segment: Annotated[
        list[str] | None, typer.Option("--segment", "-s", help="Only these segments.")
    ] = None,
    as_of: Annotated[str | None, typer.Option(help="Snapshot date YYYY-MM-DD (today).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Load sources, gate quality, compute memberships and drift, publish."""
    from commands.refresh import refresh as run_refresh

    ws = _workspace()
    day = _parse_date(as_of)
    engine = _engine()
    phases = ["load", "quality", "evaluate"]
    with progress() as bar:
        task = bar.add_task(f"refresh {day}", total=len(phases) + 1)

        def step(msg: str) -> None:
            if msg in phases:
                bar.update(task, description=f"refresh {day}: {msg}", advance=1)
            elif msg.startswith("query: "):
                bar.update(task, description=f"refresh {day}: {msg[:80]}")

        report = run_refresh(
            engine,
            ws,
            as_of=day,
            only=segment or None,
            progress=step,
            templates_dir=state.settings.templates_dir,
            engine_name=state.settings.engine,
            engine_options=state.settings.engine_options(),
            privacy_floor=state.settings.privacy_floor,
        )
        bar.update(task, completed=len(phases) + 1)
    floor = state.settings.privacy_floor
    if json_out:
        from commands.policy import visible_outcome

        data = report.to_dict()
        data["segments"] = [
            visible_outcome(s.to_dict(details=True), floor) for s in report.segments
        ]
        _print_json({**data, "timings": report.timings})
        return
    print_report(report, privacy_floor=floor)


@app.command()
def drift(name: str, json_out: JsonOpt = False) -> None:
    """A segment's size trend and its recent alerts."""
    from commands.stats import recent_alerts, size_trend, trend_versions

    engine = _engine()
    points = size_trend(engine, name, privacy_floor=state.settings.privacy_floor)
    versions = trend_versions(engine, name, privacy_floor=state.settings.privacy_floor)
    alerts = recent_alerts(engine, name, privacy_floor=state.settings.privacy_floor)
    if json_out:
        _print_json({"segment": name, "trend": points, "points": versions, "alerts": alerts})
        return
    table = Table(title=f"{name}: size over time", title_justify="left")
    table.add_column("as of")
    table.add_column("size", justify="right")
    table.add_column("computed by")
    floor = state.settings.privacy_floor
    for point in versions:
        size = point["size"]
        table.add_row(
            point["as_of"],
            f"{size:,}" if size is not None else f"fewer than {floor}",
            f"v{point['version']}",
        )
    out.print(table)
    if not alerts:
        out.print("no alerts")
    for a in alerts:
        out.print(
            f"{a['as_of'] or '—'} [{a['severity']}] {a['kind']}: {a['message']} ({a['status']})"
        )


@app.command()
def members(
    name: str,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write.")] = None,
    as_of: Annotated[
        str | None, typer.Option(help="The published refresh of this day (or the one before).")
    ] = None,
    joined: Annotated[
        bool, typer.Option("--joined", help="Only ids that joined in that refresh.")
    ] = False,
    left: Annotated[
        bool, typer.Option("--left", help="Only ids that left in that refresh.")
    ] = False,
    since: Annotated[
        str | None,
        typer.Option(help="With --joined/--left: compare with this day, not the refresh before."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Export the ids of a segment's members (or of those that joined or left), one per line."""
    from commands.snapshots import member_export

    if joined and left:
        _fail("choose one of --joined and --left")
    export = member_export(
        _engine(),
        name,
        as_of=_parse_date(as_of) if as_of else None,
        change="joined" if joined else "left" if left else None,
        since=_parse_date(since) if since else None,
    )
    ids = export.ids
    if json_out:
        _print_json(export.to_dict())
        return
    text = "".join(f"{i}\n" for i in ids)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        err.print(f"wrote {len(ids):,} ids to {output}")
    if export.as_of is not None and (as_of or export.change):
        what = f"{export.change} " if export.change else ""
        against = ""
        if export.change:
            against = (
                f" since {export.compared_with}" if export.compared_with else " (first refresh)"
            )
        err.print(
            f"{len(ids):,} {what}members of {export.segment} as of {export.as_of}{against}, "
            f"computed by v{export.version}"
        )


@app.command()
def lineage(name: str, json_out: JsonOpt = False) -> None:
    """What a segment reads (sources, features, scores, segments) and what reads it."""
    from commands.snapshots import lineage as load_lineage

    path = state.workspace_option or state.settings.workspace
    ws = _workspace() if path is not None else None
    view = load_lineage(_engine(), ws, name)
    if json_out:
        _print_json(view.to_dict())
        return
    refreshed = (
        f"last published {view.as_of} by v{view.result_version}"
        if view.as_of
        else "never refreshed"
    )
    out.print(f"[bold]{view.segment}[/] v{view.version} · {refreshed}")
    if ws is None:
        out.print("sources, features and scores: pass --workspace FILE to see them")
    else:
        out.print(f"[bold]sources[/] {', '.join(view.sources) or '—'}")
        for feature, config in view.features.items():
            window = f" over {config['window_days']} days" if config.get("window_days") else ""
            out.print(f"[bold]feature[/] {feature}: {config['agg']} of {config['source']}{window}")
        for score, config in view.scores.items():
            out.print(f"[bold]score[/] {score}: {', '.join(config['weights'])}")
    out.print(f"[bold]columns[/] {', '.join(view.columns) or '—'}")
    for label, links in (("refers to", view.references), ("used by", view.dependants)):
        for link in links:
            seen = f"published {link.as_of} by v{link.result_version}" if link.as_of else "never"
            out.print(f"[bold]{label}[/] {link.name} v{link.version} ({link.status}; {seen})")
    verbs = {"merge": ("merged from", "merged into"), "split": ("split from", "split into")}
    for origin in view.came_from:
        out.print(f"[bold]{verbs[origin['kind']][0]}[/] {origin['name']} v{origin['version']}")
    for origin in view.went_into:
        out.print(
            f"[bold]{verbs[origin['kind']][1]}[/] {origin['name']} (from v{origin['version']})"
        )


@feedback_app.command("add")
def feedback_add(
    name: str,
    text: str,
    author: Annotated[str, typer.Option(help="Who heard it (Slack id or name).")],
    sentiment: Annotated[str | None, typer.Option(help="positive, neutral or negative.")] = None,
    importance: Annotated[str | None, typer.Option(help="low, medium or high.")] = None,
    reference: Annotated[str | None, typer.Option(help="Deal or account reference.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Log a field observation against a segment (contact details are redacted)."""
    from commands.feedback import add_feedback

    view = add_feedback(
        _engine(),
        segment=name,
        author=author,
        text=text,
        sentiment=sentiment,
        importance=importance,
        reference=reference,
        origin="cli",
    )
    if json_out:
        _print_json(view.to_dict())
        return
    out.print(f"logged feedback #{view.id} on {view.segment}: {view.text}")


@feedback_app.command("list")
def feedback_list(
    segment: Annotated[str | None, typer.Option("--segment", "-s")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    json_out: JsonOpt = False,
) -> None:
    """Recent field feedback, newest first."""
    from commands.feedback import list_feedback

    rows = list_feedback(_engine(), segment=segment, limit=limit)
    if json_out:
        _print_json([r.to_dict() for r in rows])
        return
    table = Table(title="Field feedback", title_justify="left")
    for col in ("#", "when", "segment", "author", "sentiment", "text"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(str(r.id), r.created_at[:16], r.segment, r.author, r.sentiment or "—", r.text)
    out.print(table)


@app.command()
def brief(
    name: str,
    kind: Annotated[str, typer.Option(help="persona, talking-points or discovery.")] = "persona",
    json_out: JsonOpt = False,
) -> None:
    """Render a persona brief, talking points or discovery guide from the catalog."""
    from commands.persona import render_brief

    result = render_brief(_engine(), name, kind=kind, settings=state.settings)
    if json_out:
        _print_json(result)
        return
    out.print(result["plain"], markup=False, highlight=False)


@app.command()
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Where the demo writes its files.")] = Path(
        "demo-output"
    ),
    customers: Annotated[int, typer.Option(min=100, max=200_000)] = 3000,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Every message in full, and the tables.")
    ] = False,
) -> None:
    """Generate sample data, apply the sample catalog and run three monthly refreshes."""
    from cli.demo.run import run_demo

    run_demo(out_dir, customers=customers, console=out, settings=state.settings, verbose=verbose)


@app.command()
def bench(
    customers: Annotated[int, typer.Option(min=1000)] = 1_000_000,
    segments: Annotated[int, typer.Option(min=1, max=500)] = 50,
    slack: Annotated[
        bool, typer.Option("--slack/--no-slack", help="Also time Slack acks (local server).")
    ] = True,
    stream: Annotated[
        bool, typer.Option("--stream", help="Live segments under a stream of events instead.")
    ] = False,
    rate: Annotated[float, typer.Option(min=1, help="--stream: events per second.")] = 1000,
    duration: Annotated[float, typer.Option(min=1, help="--stream: seconds of events.")] = 60,
    web: Annotated[
        bool, typer.Option("--web", help="Only the web process's memory under 50 proposals.")
    ] = False,
    soak: Annotated[
        bool, typer.Option("--soak", help="Only a soak: web, worker and CLI, then a report.")
    ] = False,
    seconds: Annotated[int, typer.Option(min=5, max=3600, help="How long the soak runs.")] = 30,
    engine: Annotated[
        str | None,
        typer.Option(help="duckdb | sql | pandas: a refresh at scale against hand-written SQL."),
    ] = None,
    events: Annotated[int, typer.Option(min=1000, help="Events, with --engine.")] = 10_000_000,
    url: Annotated[str | None, typer.Option(help="PostgreSQL URL for --engine sql.")] = None,
    cache: Annotated[
        Path | None, typer.Option(help="Where generated data is kept between runs.")
    ] = None,
    process: Annotated[
        bool,
        typer.Option(
            "--process/--no-process",
            help="Also time the whole refresh process on a CSV against a bare pandas process.",
        ),
    ] = True,
    json_out: JsonOpt = False,
    refresh: Annotated[
        bool, typer.Option("--refresh/--no-refresh", help="Time a refresh phase by phase.")
    ] = True,
    api: Annotated[
        bool, typer.Option("--api/--no-api", help="Time membership API lookups (1M members).")
    ] = True,
    api_members: Annotated[int, typer.Option(min=1000, max=10_000_000)] = 1_000_000,
) -> None:
    """Time each phase of a refresh against bare pandas and DuckDB on the same data, and the
    whole refresh process on a CSV against a bare pandas process;
    with --engine, a refresh at scale against a hand-written SQL script on that engine;
    with --stream, live segments under a stream of events from a separate producer;
    and membership API lookups against a bare request to the same server."""
    if stream:
        from cli.bench.stream import run_stream_bench

        run_stream_bench(
            customers=customers, segments=segments, rate=rate, duration=duration, console=out
        )
        return
    if engine is not None:
        from cli.bench.engines import run_engine_bench

        if engine not in ("duckdb", "sql", "pandas"):
            raise SegopsError(f"unknown engine {engine!r}: use duckdb, sql or pandas")
        settings = state.settings
        run_engine_bench(
            engine=engine,
            customers=customers,
            events=events,
            segments=segments,
            console=out,
            cache=cache or Path(tempfile.gettempdir()) / "segops-bench-cache",
            url=url,
            memory_limit=settings.duckdb_memory_limit,
            threads=settings.duckdb_threads,
            as_json=json_out,
        )
        return
    if process and not (refresh or web or soak):  # the process bench on its own
        from cli.bench.process import run_process_bench

        run_process_bench(customers=customers, segments=segments, console=out)
    if refresh or web or soak:
        from cli.bench import run_bench

        run_bench(
            customers=customers,
            segments=segments,
            console=out,
            slack=slack,
            web=web,
            soak=seconds if soak else 0,
            database_url=state.settings.database_url,
            process=process,
        )
    if api and not (web or soak):
        from cli.bench.api import print_api_bench, run_api_bench

        print_api_bench(run_api_bench(members=api_members), out, members=api_members)


@app.command()
def serve(
    port: Annotated[int, typer.Option(help="HTTP port.")] = 3000,
    socket: Annotated[bool, typer.Option("--socket", help="Use Socket Mode.")] = False,
    threads: Annotated[int, typer.Option(min=1, max=256)] = 16,
    slack: Annotated[
        bool, typer.Option("--slack/--no-slack", help="Serve the Slack endpoints.")
    ] = True,
    api: Annotated[
        bool, typer.Option("--api/--no-api", help="Serve the membership API on /api/v1.")
    ] = True,
) -> None:
    """Run the Slack app (HTTP on /slack/events, or Socket Mode), the membership API, and
    POST /events for live segments when SEGOPS_EVENTS_TOKEN is set."""
    from bot.app import build_app
    from bot.server import mount, serve_socket, wsgi_app
    from cli.stream import event_routes

    if not slack and not api:
        _fail("nothing to serve: drop --no-slack or --no-api")
    engine = _engine()
    if socket:
        state.settings.require_slack(socket=True)
        serve_socket(build_app(state.settings, engine=engine), state.settings.slack_app_token)
        return
    from api import build_api
    from cli.serving import compose, make_server

    slack_wsgi = None
    if slack:
        state.settings.require_slack()
        slack_wsgi = wsgi_app(build_app(state.settings, engine=engine))
    routes = event_routes(state.settings, engine, state.workspace_option)
    server = make_server(
        mount(compose(build_api(engine) if api else None, slack_wsgi), routes),
        host="0.0.0.0",
        port=port,
        threads=threads,
    )
    server.run()


@app.command()
def worker(
    check: Annotated[
        bool, typer.Option("--check", help="Report the leader and the jobs; exit 1 if unwell.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Run the scheduler (one leader per database) and outbox delivery."""
    if check:
        from worker.leader import check as check_worker

        health = check_worker(state.settings)
        if json_out:
            _print_json(health.to_dict())
        else:
            lease_line = (
                f"leader {health.leader}, lease until {health.lease_expires:%Y-%m-%d %H:%M:%S} UTC"
                if health.leader and health.lease_expires
                else "no worker has led yet"
            )
            out.print(("ok" if health.healthy else "unwell") + f": {lease_line}")
            for job in health.jobs:
                when = f"{job.next_run:%Y-%m-%d %H:%M} UTC" if job.next_run else "paused"
                out.print(f"  {job.id}: next run {when}" + (" · overdue" if job.overdue else ""))
        if not health.healthy:
            raise typer.Exit(1)
        return
    from worker import run_worker

    run_worker(state.settings, workspace=state.workspace_option or state.settings.workspace)


def main() -> None:
    """Console-script entry point: user errors become one line on stderr, exit 1."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        app()
    except SegopsError as exc:
        _error_line(str(exc))
    except SQLAlchemyError as exc:
        _error_line(f"database: {str(exc.orig if hasattr(exc, 'orig') else exc).splitlines()[0]}")
    except OSError as exc:
        _error_line(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "))


def script() -> None:
    """The ``segops`` console script: :func:`main`, then a quick way out of the process."""
    try:
        main()
    finally:
        _leave_quickly()


def _leave_quickly() -> None:
    """The process is about to end: spare it the collector's passes over every object
    left (~0.4 s after a million-row refresh), which would free nothing the OS does not.

    Output is flushed first; ``atexit`` handlers (logging's flush) still run, and the
    refresh and every other command have committed and closed their work by now. Only
    the console script does this: ``main`` called in a long-lived process collects as usual.
    """
    for stream in (sys.stdout, sys.stderr):
        with suppress(Exception):
            stream.flush()
    gc.freeze()


def _error_line(message: str) -> None:
    err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    script()

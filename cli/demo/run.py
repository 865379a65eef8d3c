"""``segops demo``: the whole product on bundled sample data, no Slack needed.

It generates a small B2B SaaS (:mod:`cli.demo.data`), copies the sample workspace
beside it, applies the catalog to a fresh SQLite database in the output folder
and runs three monthly refreshes. A behaviour shift between the first and the
second gives real joins, leaves and a drift alert; a stale billing export before
the third blocks the segments that read billing while the others publish. A holdout
experiment on churn-risk with a real effect is read out after each later refresh
(:mod:`cli.demo.experiment`). Then it proposes a change, approves it as the owner, and
renders a persona brief.

Everything that would go to Slack goes through the real outbox and is printed
here instead; charts are written as PNG files.
"""

from __future__ import annotations

import base64
import shutil
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from rich.console import Console
from rich.panel import Panel
from rich.rule import Rule
from sqlalchemy import Engine
from sqlmodel import select

from briefs.blocks import to_plain
from commands.settings import Settings
from store.db import make_engine, session_scope, upgrade
from store.models import OutboxMessage

FEEDBACK = [
    (
        "U0AAAREP1",
        "Two EMEA accounts said the new invoicing flow keeps rejecting their cards; "
        "one asked us to call +44 20 7946 0958.",
        "negative",
    ),
    (
        "U0AAAREP2",
        "Champion at a pro account left; the new admin (jo@example.com) "
        "does not know the dashboards exist.",
        "negative",
    ),
    (
        "U0AAAREP1",
        "Dashboards broke after the CRM integration changed; they want a health "
        "check before renewal.",
        "neutral",
    ),
]


def _fresh_database(out_dir: Path) -> tuple[Engine, str]:
    db = out_dir / "segops.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    url = f"sqlite:///{db}"
    engine = make_engine(url)
    upgrade(engine)
    return engine, url


def print_outbox(
    engine: Engine, console: Console, files_dir: Path, *, threads: bool = False
) -> int:
    """Print every pending outbox message as Slack would show it; mark them delivered.

    Thread replies are counted under their parent unless ``threads`` is set.
    """
    files_dir.mkdir(parents=True, exist_ok=True)
    shown = 0
    with session_scope(engine) as session:
        rows = session.exec(
            select(OutboxMessage)
            .where(OutboxMessage.status == "pending")
            .order_by(OutboxMessage.id)  # type: ignore[arg-type]
        ).all()
        replies: dict[str, int] = {}
        for row in rows:
            if row.thread_key:
                replies[row.thread_key] = replies.get(row.thread_key, 0) + 1
        for row in rows:
            shown += 1
            _mark_sent(session, row)
            if row.thread_key and not threads:
                continue
            attachments = []
            for item in row.files or []:
                path = files_dir / item["filename"]
                path.write_bytes(base64.b64decode(item["content_b64"]))
                attachments.append(str(path))
            where = (
                f"DM {row.channel}"
                if row.channel.startswith(("U", "W"))
                else f"#{row.channel.lstrip('#')}"
            )
            body = to_plain(_blocks_text(row))
            if attachments:
                body += "\n📎 " + ", ".join(attachments)
            count = replies.get(row.idempotency_key, 0)
            if count and not threads:
                body += f"\n💬 {count} detail {'reply' if count == 1 else 'replies'} in thread"
            console.print(
                Panel(
                    body,
                    title=f"{where} · {row.kind.replace('_', ' ')}",
                    title_align="left",
                    border_style="cyan",
                    expand=False,
                )
            )
    return shown


def _mark_sent(session, row: OutboxMessage) -> None:
    row.status = "sent"
    row.ts = f"demo.{row.id}"
    row.sent_at = datetime.now(UTC)
    session.add(row)


def _blocks_text(row: OutboxMessage) -> str:
    from briefs.blocks import blocks_text

    return blocks_text(row.blocks or []) or row.text


def run_demo(out_dir: Path, *, customers: int, console: Console, settings: Settings) -> None:
    """Run the demo end to end, printing as it goes."""
    from cli.demo import data as sample
    from cli.demo import experiment
    from cli.output import print_report
    from commands.catalog import apply_workspace
    from commands.feedback import add_feedback
    from commands.persona import render_brief
    from commands.proposals import decide, proposal_context, propose
    from commands.refresh import refresh
    from segments.workspace import load_workspace

    out_dir.mkdir(parents=True, exist_ok=True)
    data_dir = out_dir / "data"
    console.print(Rule("segops demo"))
    console.print(f"generating {customers:,} sample accounts in {data_dir} …")
    sample.generate(data_dir, customers=customers)
    workspace_file = out_dir / "workspace.yaml"
    template = resources.files("cli.demo") / "workspace.yaml"
    workspace_file.write_text(template.read_text(encoding="utf-8"), encoding="utf-8")
    ws = load_workspace(workspace_file)
    engine, url = _fresh_database(out_dir)
    slack_dir = out_dir / "slack"
    if slack_dir.exists():
        shutil.rmtree(slack_dir)

    result = apply_workspace(engine, ws, reason="initial catalog", author="U0DEMO")
    console.print(f"applied the catalog: {len(result.created)} segments created")

    dates = list(sample.DEMO_AS_OF)
    story = [
        "the first monthly refresh: every segment is new",
        "September: a cohort of EMEA pro accounts goes quiet and their cards start "
        "failing, while trial conversions jump",
        "October: the billing export arrives 12 days stale",
    ]
    for index, as_of in enumerate(dates):
        if index == len(dates) - 1:
            sample.break_data(data_dir, as_of)
        console.print(Rule(f"refresh as of {as_of}"))
        console.print(f"[italic]{story[min(index, len(story) - 1)]}[/]")
        report = refresh(
            engine,
            ws,
            as_of=as_of,
            templates_dir=settings.templates_dir,
            privacy_floor=settings.privacy_floor,
        )
        print_report(report)
        shown = print_outbox(engine, console, slack_dir)
        console.print(f"[dim]{shown} Slack messages queued and shown above (threads folded)[/]")
        if index == 0:
            true_effect = experiment.start(
                engine, ws, data_dir, [d.replace(day=1) for d in dates[1:]], console
            )
        else:
            experiment.read(engine, ws, as_of, true_effect, console)

    console.print(Rule("field feedback from sales"))
    for author, note, sentiment in FEEDBACK:
        view = add_feedback(
            engine,
            segment="churn-risk",
            author=author,
            text=note,
            sentiment=sentiment,
            origin="cli",
        )
        console.print(f"<@{author}> on churn-risk: {view.text}", markup=False)

    console.print(Rule("a change proposal, routed to the owner"))
    target = ws.segment("power-users")
    new_rule = f"({target.rule}) and seats >= 10"
    view = propose(
        engine,
        ws,
        segment=target.name,
        proposer=target.approvers[0] if target.approvers else "U0DEMO",
        kind="edit",
        changes={"rule": new_rule},
        reason="the beta programme needs teams of ten or more",
    )
    _print_rendered(console, settings, "proposal", proposal_context(engine, view.id))
    decide(engine, proposal_id=view.id, user=target.owner, approve=True, via="button")
    _print_rendered(console, settings, "proposal", proposal_context(engine, view.id))

    console.print(Rule("/persona churn-risk"))
    brief = render_brief(engine, "churn-risk", kind="brief", settings=settings)
    console.print(to_plain(brief["text"]), markup=False, highlight=False)

    console.print(Rule("try it yourself"))
    console.print(
        f"charts and attachments: {slack_dir}\n"
        f"export DATABASE_URL={url} SEGOPS_WORKSPACE={workspace_file}\n"
        "segops list · segops show churn-risk · segops history power-users · "
        "segops drift churn-risk · segops brief churn-risk --kind discovery",
        markup=False,
        highlight=False,
    )


def _print_rendered(console: Console, settings: Settings, kind: str, ctx: dict) -> None:
    from briefs.render import renderer

    text = to_plain(renderer(settings.templates_dir).render_text(kind, ctx))
    console.print(Panel(text, title=kind, title_align="left", border_style="magenta", expand=False))

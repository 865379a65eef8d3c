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
from rich.rule import Rule
from rich.text import Text
from sqlalchemy import Engine
from sqlmodel import select

from cli.demo.view import Posted, render_message, rich_text, write_page
from commands.settings import Settings
from segments.errors import SegopsError
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


PEOPLE = {
    "U0AAAGRW1": "Gabriela (growth lead)",
    "U0AAAGRW2": "Wen (lifecycle marketing)",
    "U0AAACSM1": "Carmen (head of CS)",
    "U0AAACSM2": "Sam (CS operations)",
    "U0AAASAL1": "Salma (head of sales)",
    "U0AAASAL2": "Alex (enterprise AE lead)",
    "U0AAAREV1": "Rhea (revenue operations)",
    "U0AAASUP1": "Sunil (support lead)",
    "U0AAAPRD1": "Priya (product)",
    "U0AAAPTN1": "Tom (partnerships)",
    "U0AAAREP1": "Rita (sales rep)",
    "U0AAAREP2": "Ravi (sales rep)",
    "U0DEMO": "demo",
}
"""The demo's people by Slack id: mentions show their names, as Slack does."""


def _where(channel: str) -> str:
    if channel.startswith(("U", "W")):
        return f"DM @{PEOPLE.get(channel, channel)}"
    return f"#{channel.lstrip('#')}"


def print_outbox(
    engine: Engine,
    console: Console,
    files_dir: Path,
    *,
    threads: bool = False,
    verbose: bool = False,
    featured: set[str] | None = None,
) -> list[Posted]:
    """Show every pending outbox message as Slack would; mark them delivered.

    Each message is one line (where, kind, its notification text), except in full: all of
    them with ``verbose``, else the first message of each kind not yet in ``featured``
    (the churn-risk one when there is one). Thread replies are counted under their parent
    unless ``threads`` is set. Returns the messages with their replies, for the page.
    """
    files_dir.mkdir(parents=True, exist_ok=True)
    featured = set() if featured is None else featured
    posted: list[Posted] = []
    with session_scope(engine) as session:
        rows = session.exec(
            select(OutboxMessage)
            .where(OutboxMessage.status == "pending")
            .order_by(OutboxMessage.id)  # type: ignore[arg-type]
        ).all()
        by_key: dict[str, Posted] = {}
        for row in rows:
            _mark_sent(session, row)
            attachments = []
            for item in row.files or []:
                path = files_dir / item["filename"]
                if item.get("chart"):
                    from briefs.chart import render as render_chart

                    path.write_bytes(render_chart(item["chart"]))
                else:
                    path.write_bytes(base64.b64decode(item["content_b64"]))
                attachments.append(str(path))
            message = Posted(
                _where(row.channel), row.kind.replace("_", " "), row.text, row.blocks, attachments
            )
            parent = by_key.get(row.thread_key or "")
            if parent is not None:
                parent.replies.append(message)
                if not threads:
                    continue
            by_key[row.idempotency_key] = message
            posted.append(message)
    chosen: set[int] = set()
    if not verbose:
        for kind in dict.fromkeys(m.kind for m in posted):
            if kind in featured:
                continue
            of_kind = [i for i, m in enumerate(posted) if m.kind == kind]
            best = next((i for i in of_kind if "churn-risk" in str(posted[i].blocks)), of_kind[0])
            chosen.add(best)
            featured.add(kind)
    for index, message in enumerate(posted):
        if verbose or index in chosen:
            console.print(render_message(message, PEOPLE))
        else:
            line = Text(f"  {message.where} · {message.kind}: ", style="dim")
            line.append(rich_text(message.text.split("\n", 1)[0], PEOPLE))
            if message.files or message.replies:
                line.append(" 📎" if message.files else "", style="dim")
            console.print(line, overflow="ellipsis", no_wrap=True)
    return posted


def _mark_sent(session, row: OutboxMessage) -> None:
    row.status = "sent"
    row.ts = f"demo.{row.id}"
    row.sent_at = datetime.now(UTC)
    session.add(row)


def run_demo(
    out_dir: Path,
    *,
    customers: int,
    console: Console,
    settings: Settings,
    verbose: bool = False,
) -> Path:
    """Run the demo end to end, printing as it goes; returns the page of every message.

    The transcript is short: one line per message, one message of each kind in full and
    the top of the persona brief (``verbose``: every message in full, the refresh tables
    and the whole brief). ``out_dir/messages.html`` shows every message as Slack lays it
    out, charts included.
    """
    from briefs.render import renderer
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
    page: list[tuple[str, list[Posted]]] = []
    featured: set[str] = set()
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
        if verbose:
            print_report(report, privacy_floor=settings.privacy_floor)
        else:
            counts: dict[str, int] = {}
            for outcome in report.segments:
                counts[outcome.status] = counts.get(outcome.status, 0) + 1
            console.print(
                f"[dim]{len(report.segments)} segments: "
                + ", ".join(f"{n} {status}" for status, n in counts.items())
                + "[/]"
            )
        posted = print_outbox(engine, console, slack_dir, verbose=verbose, featured=featured)
        page.append((f"Refresh as of {as_of}: {story[min(index, len(story) - 1)]}", posted))
        if index == 0:
            try:
                true_effect = experiment.start(
                    engine, ws, data_dir, [d.replace(day=1) for d in dates[1:]], console
                )
            except SegopsError as refused:  # a small --customers: planning says no, honestly
                console.print(f"experiment not started: {refused}", markup=False)
                true_effect = None
        elif true_effect is not None:
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
        line = Text(f"@{PEOPLE.get(author, author)}", style="bold blue")
        line.append(f" on churn-risk: {view.text}")
        console.print(line, overflow="ellipsis", no_wrap=not verbose)

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
    r = renderer(settings.templates_dir)
    proposals = []
    where = f"#{(target.channel or 'dm').lstrip('#')}"
    for step in ("pending", "decided"):
        if step == "decided":
            decide(
                engine, proposal_id=view.id, user=target.owner, approve=True, via="button", ws=ws
            )
        (message, *_) = r.render_messages("proposal", proposal_context(engine, view.id))
        shown = Posted(where, "proposal", message["text"], message["blocks"])
        proposals.append(shown)
        if verbose:
            console.print(render_message(shown, PEOPLE))
        else:
            line = Text(f"  {where} · proposal: ", style="dim")
            line.append(rich_text(message["text"], PEOPLE))
            console.print(line, overflow="ellipsis", no_wrap=True)
    page.append(("A change proposal, approved by its owner", proposals))

    console.print(Rule("/persona churn-risk"))
    brief = render_brief(engine, "churn-risk", kind="brief", settings=settings)
    (message, *_) = brief["messages"]
    full = Posted(
        f"DM @{PEOPLE['U0AAAREP1']}", "/persona brief", message["text"], message["blocks"]
    )
    page.append(("/persona churn-risk, as a sales rep sees it", [full]))
    if verbose:
        console.print(render_message(full, PEOPLE))
    else:
        top = []
        for block in message["blocks"]:
            text = (block.get("text") or {}).get("text", "") if block["type"] == "section" else ""
            if text.startswith("*Goals*"):
                break
            top.append(block)
        console.print(render_message(Posted(full.where, full.kind, full.text, top), PEOPLE))

    html_page = write_page(out_dir / "messages.html", page, PEOPLE)
    console.print(Rule("try it yourself"))
    console.print(
        f"every message as Slack lays it out: {html_page}\n"
        f"charts: {slack_dir} · the whole transcript: segops demo --verbose\n"
        f"export DATABASE_URL={url} SEGOPS_WORKSPACE={workspace_file}\n"
        "segops list · show churn-risk · history power-users · drift churn-risk · "
        "brief churn-risk --kind discovery",
        markup=False,
        highlight=False,
    )
    return html_page

"""``segops proposals list|show|approve|reject``: change proposals decided from the
terminal under the same rules as Slack (owner or listed approver, never the proposer
alone on a core segment, a stale proposal refused, each decided exactly once)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from cli.output import out
from cli.shared import AsOpt, JsonOpt, acting_user, engine, print_json, settings

app = typer.Typer(help="Change proposals: list, show, approve, reject.", no_args_is_help=True)

StatusOpt = Annotated[
    str,
    typer.Option(help="pending, approved, rejected, stale or all."),
]


@app.command("list")
def list_cmd(
    status: StatusOpt = "pending",
    segment: Annotated[str | None, typer.Option("--segment", "-s")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Proposals, oldest first (pending ones unless --status says otherwise)."""
    from commands.proposals import list_proposals

    rows = list_proposals(engine(), status=None if status == "all" else status, segment=segment)
    if json_out:
        print_json([r.to_dict() for r in rows])
        return
    if not rows:
        out.print(f"no {'' if status == 'all' else status + ' '}proposals")
        return
    table = Table(title="Proposals", title_justify="left")
    for col in ("#", "segment", "kind", "status", "proposer", "on v", "impact", "reason"):
        table.add_column(col, overflow="fold")
    for r in rows:
        impact = (
            f"{r.impact['size_now']:,} -> {r.impact['size_after']:,}"
            if r.impact
            else (r.impact_note or "—")
        )
        table.add_row(
            str(r.id),
            r.segment,
            r.kind,
            r.status,
            r.proposer,
            str(r.base_version),
            impact,
            r.reason,
        )
    out.print(table)


@app.command()
def show(
    proposal_id: Annotated[int, typer.Argument(help="The proposal number.")],
    json_out: JsonOpt = False,
) -> None:
    """One proposal: what it changes (before and after), its impact and its decision."""
    from briefs.render import render_text
    from commands.proposals import get_proposal, proposal_context

    current = settings()
    made = engine(current)
    if json_out:
        view = get_proposal(made, proposal_id).to_dict()
        view["diff"] = proposal_context(made, proposal_id)["proposal"]["changes"]
        print_json(view)
        return
    ctx = proposal_context(made, proposal_id)
    text = render_text("proposal", ctx, templates_dir=current.templates_dir, plain=True)
    out.print(text, markup=False, highlight=False)


def _decide(proposal_id: int, user: str | None, *, approve: bool, json_out: bool) -> None:
    """Decide under the Slack rules; the proposal's Slack message is updated through the
    outbox, and an approval re-classifies the segment live or batch (with the workspace
    of ``SEGOPS_WORKSPACE``, when set)."""
    from commands.proposals import decide
    from segments.workspace import load_workspace

    current = settings()
    who = acting_user(user, current, what="deciding")
    ws = (
        load_workspace(current.workspace, data_roots=current.data_root_paths)
        if current.workspace
        else None
    )
    decision = decide(
        engine(current),
        proposal_id=proposal_id,
        user=who,
        approve=approve,
        via="cli",
        ws=ws,
        templates_dir=current.templates_dir,
        reactions={"approve": current.approve_emoji, "reject": current.reject_emoji},
    )
    if json_out:
        print_json(decision.to_dict())
        return
    if decision.version is not None:
        out.print(
            f"approved proposal #{decision.proposal_id}: '{decision.segment}' is now "
            f"version {decision.version}"
        )
    else:
        out.print(f"{decision.status} proposal #{decision.proposal_id} on '{decision.segment}'")


@app.command()
def approve(
    proposal_id: Annotated[int, typer.Argument(help="The proposal number.")],
    user: AsOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Approve a pending proposal: its change becomes the segment's next version."""
    _decide(proposal_id, user, approve=True, json_out=json_out)


@app.command()
def reject(
    proposal_id: Annotated[int, typer.Argument(help="The proposal number.")],
    user: AsOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Reject a pending proposal: the segment stays as it is."""
    _decide(proposal_id, user, approve=False, json_out=json_out)

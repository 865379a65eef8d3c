"""``/segment <subcommand>``: list, show, history, drift, propose and refresh.

The ack answers usage errors; the lazy function runs the subcommand and answers
through ``response_url``. A refresh and a proposal's impact preview load the whole
dataset, so they are queued for the worker (:mod:`commands.queue`) and the person is
answered when it is done (:mod:`bot.replies`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from slack_bolt import Ack, Respond
from slack_sdk import WebClient

from bot.listeners.commands.learnings import learnings_reply
from bot.listeners.commands.words import split_words
from bot.listeners.handler import Handler
from bot.listeners.messages import post_proposal, problem
from bot.listeners.views.modals import proposal_modal
from bot.listeners.workspace import load_workspace_of
from briefs.blocks import escape_mrkdwn as esc
from briefs.render import render_messages, render_reply
from commands import catalog, governance, proposals, queue, stats
from commands.permissions import authorise_refresh
from segments.errors import SegopsError

SEGMENT_SUBCOMMANDS = (
    "help",
    "list",
    "show",
    "history",
    "drift",
    "propose",
    "refresh",
    "learnings",
    "merge",
    "split",
)
NEEDS_NAME = ("show", "history", "drift", "propose", "merge", "split")
SEGMENT_USAGE = "\n".join(
    [
        "*segops* · `/segment <subcommand>`",
        "• `list`: the segment catalog",
        "• `show <segment>`: definition and latest stats",
        "• `history <segment>`: every version, who changed it and why",
        "• `drift <segment>`: size over time and recent alerts",
        "• `propose <segment>`: propose a change in a form, or in one line:",
        "    `propose <segment> rule: <new rule> reason: <why>` (also `rename: <name>`, `archive`)",
        "    a rule change may end with `expect: <kpi> up|down <n>% in <days> days`",
        "• `merge <new> <segment> <segment>… rule: <rule> reason: <why>`: a new segment "
        "replacing them (their archives are proposed); "
        "`split <new> <parent> rule: <rule> reason: <why>`: a part of one",
        "• `refresh [segment]`: refresh now (every active segment without a name)",
        "• `learnings [segment | words]`: what past changes and experiments did "
        "(`learnings note <id> <text>` adds a note)",
        "Also `/persona <segment> [brief|talking-points|discovery]` and "
        "`/feedback <segment> <what you heard>`.",
    ]
)


def segment_usage_error(text: str | None) -> str | None:
    """The usage error for ``/segment`` text, or None when it can run."""
    sub, rest = split_words(text)
    if sub in ("", "help"):
        return SEGMENT_USAGE
    if sub not in SEGMENT_SUBCOMMANDS:
        return f"unknown subcommand `{esc(sub)}`.\n{SEGMENT_USAGE}"
    if sub in NEEDS_NAME and not rest:
        return f"usage: `/segment {sub} <segment>`"
    if sub in ("merge", "split"):
        try:
            proposals.parse_derive_text(rest)
        except SegopsError as error:
            return f":warning: {esc(error)}"
    if sub == "propose" and len(rest.split()) > 1:
        try:
            proposals.parse_proposal_text(rest)
        except SegopsError as error:
            return f":warning: {esc(error)}\nOr `/segment propose <segment>` alone for a form."
    return None


class SegmentCommand(Handler):
    """The ``/segment`` listener, bound to one engine and settings."""

    def ack(self, ack: Ack, command: dict[str, Any]) -> None:
        error = segment_usage_error(command.get("text"))
        if error:
            ack(text=error)
        else:
            ack()

    def run(self, command: dict[str, Any], respond: Respond, client: WebClient) -> None:
        if segment_usage_error(command.get("text")):
            return
        sub, rest = split_words(command.get("text"))
        name = rest.split()[0].lower() if rest else ""
        try:
            if sub == "list":
                self._list(respond)
            elif sub == "show":
                respond(text=self._show(name))
            elif sub == "history":
                respond(text=self._history(name))
            elif sub == "drift":
                respond(text=self._drift(name))
            elif sub == "propose":
                self._propose(rest, command, client, respond)
            elif sub == "refresh":
                authorise_refresh(
                    self.engine,
                    user=command.get("user_id") or "",
                    segment=name or None,
                    admins=self.settings.refresh_admin_ids,
                )
                respond(text=self._refresh(name or None, command))
            elif sub in ("merge", "split"):
                respond(text=self._derive(sub, rest, command))
            elif sub == "learnings":
                respond(
                    text=learnings_reply(
                        self.engine, self.settings, rest, user=command.get("user_id", "")
                    )
                )
        except SegopsError as error:
            respond(text=problem(error))

    # subcommands -----------------------------------------------------------------------

    def _list(self, respond: Respond) -> None:
        rows = []
        floor = self.settings.privacy_floor
        for summary in catalog.list_segments(self.engine, privacy_floor=floor):
            rows.append({"channel": None, "open_alerts": 0, **summary.to_dict()})
        messages = render_messages(
            "catalog", {"segments": rows}, templates_dir=self.settings.templates_dir
        )
        for message in messages:
            respond(text=message["text"], blocks=message["blocks"])

    def _show(self, name: str) -> str:
        view = catalog.show_segment(self.engine, name, privacy_floor=self.settings.privacy_floor)
        return render_reply("segment-show", view, templates_dir=self.settings.templates_dir)

    def _history(self, name: str, limit: int = 10) -> str:
        ctx = {"name": name, "versions": catalog.history(self.engine, name), "limit": limit}
        return render_reply("segment-history", ctx, templates_dir=self.settings.templates_dir)

    def _drift(self, name: str) -> str:
        floor = self.settings.privacy_floor
        points = stats.size_trend(self.engine, name, privacy_floor=floor)
        ctx = {
            "name": name,
            "points": [list(point) for point in points],
            "alerts": stats.recent_alerts(self.engine, name, privacy_floor=floor, limit=5),
            "privacy_floor": floor,
        }
        return render_reply("segment-drift", ctx, templates_dir=self.settings.templates_dir)

    def _propose(
        self, text: str, command: dict[str, Any], client: WebClient, respond: Respond
    ) -> None:
        """``propose NAME`` opens the form; ``propose NAME rule: … reason: …`` proposes."""
        if len(text.split()) == 1:
            view = catalog.show_segment(
                self.engine, text.lower(), privacy_floor=self.settings.privacy_floor
            )
            modal = proposal_modal(
                segment=view["definition"],
                metadata={"segment": view["name"], "channel": command.get("channel_id")},
            )
            client.views_open(trigger_id=command["trigger_id"], view=modal)
            return
        request = proposals.parse_proposal_text(text)
        proposal = proposals.propose(
            self.engine,
            load_workspace_of(self.settings),
            segment=request.segment,
            proposer=command["user_id"],
            kind=request.kind,
            changes=request.changes,
            reason=request.reason,
            queue_impact=_reply_to(command),
        )
        channel, _ts = post_proposal(
            client, self.engine, self.settings, proposal, fallback_channel=command.get("channel_id")
        )
        respond(text=proposal_posted(proposal, channel))

    def _derive(self, kind: str, text: str, command: dict[str, Any]) -> str:
        """``merge NEW A B… rule: … reason: …`` or ``split NEW PARENT rule: … reason: …``:
        the new segment is created at once; the archives of merged sources are proposed
        in their channels, their impact measured by the worker."""
        ws = load_workspace_of(self.settings)
        if ws is None:
            raise SegopsError("no workspace file configured: set SEGOPS_WORKSPACE")
        request = proposals.parse_derive_text(text)
        if kind == "split" and len(request.sources) != 1:
            raise SegopsError(f"a split takes one segment, the parent: {proposals.DERIVE_USAGE}")
        result = governance.derive_segment(
            self.engine,
            ws,
            kind=kind,
            new=request.new,
            sources=request.sources,
            rule=request.rule,
            user=command["user_id"],
            reason=request.reason,
            direct_tiers=self.settings.direct_tiers,
            templates_dir=self.settings.templates_dir,
            reactions={
                "approve": self.settings.approve_emoji,
                "reject": self.settings.reject_emoji,
            },
            queue_impact=_reply_to(command),
            owners_only=True,
        )
        verb = "merged from" if kind == "merge" else "split from"
        names = ", ".join(f"`{esc(n)}`" for n in request.sources)
        text = f":twisted_rightwards_arrows: Created `{esc(request.new)}`, {verb} {names}."
        if result.proposed:
            listed = ", ".join(f"`{esc(n)}` (#{i})" for n, i in sorted(result.proposed.items()))
            text += f" Archiving {listed} is proposed in their channels."
        if result.archived:
            text += " Archived " + ", ".join(f"`{esc(n)}`" for n in result.archived) + "."
        return text

    def _refresh(self, only: str | None, command: dict[str, Any]) -> str:
        if load_workspace_of(self.settings) is None:
            raise SegopsError("no workspace file configured: set SEGOPS_WORKSPACE")
        job = queue.queue_refresh(
            self.engine,
            only=only,
            as_of=datetime.now(UTC).date(),
            reply_to=_reply_to(command),
            budget=self.settings.write_budget,
        )
        what = f"of `{esc(job.args['only'])}`" if job.args.get("only") else "of every segment"
        return f":hourglass_flowing_sand: Refresh {what} queued; I'll reply here when it is done."


def _reply_to(command: dict[str, Any]) -> queue.ReplyTo:
    """Where the answer to queued work for ``command`` goes."""
    return queue.ReplyTo(
        user=command.get("user_id"),
        channel=command.get("channel_id"),
        response_url=command.get("response_url"),
    )


def proposal_posted(proposal: proposals.ProposalView, channel: str) -> str:
    """The proposer's confirmation (saying the impact follows when it is being measured)."""
    text = f":ballot_box_with_ballot: Proposal #{proposal.id} posted in <#{channel}>."
    if proposal.impact_pending:
        text += " Its impact is being measured; the message will show it."
    return text

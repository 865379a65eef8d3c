"""Slash commands: ``/segment``, ``/persona`` and ``/feedback``.

Each command acks at once (usage errors go in the ack) and answers through its
``response_url`` from a lazy function, so slow work (a refresh) never delays the ack.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient
from sqlalchemy import Engine

from bot.listeners import feedback_saved, load_workspace_of, post_proposal, problem
from bot.listeners.views.modals import feedback_modal, proposal_modal
from briefs.blocks import escape_mrkdwn as esc
from briefs.render import render_messages
from commands import catalog, proposals, stats
from commands.feedback import add_feedback
from commands.persona import render_brief
from commands.settings import Settings
from segments.errors import SegopsError

logger = logging.getLogger(__name__)

COMMANDS = ("/segment", "/persona", "/feedback")
SEGMENT_SUBCOMMANDS = ("help", "list", "show", "history", "drift", "propose", "refresh")
NEEDS_NAME = ("show", "history", "drift", "propose")
PERSONA_KINDS = ("brief", "talking-points", "discovery")
SEGMENT_USAGE = "\n".join(
    [
        "*segops* · `/segment <subcommand>`",
        "• `list`: the segment catalog",
        "• `show <segment>`: definition and latest stats",
        "• `history <segment>`: every version, who changed it and why",
        "• `drift <segment>`: size over time and recent alerts",
        "• `propose <segment>`: propose a change in a form, or in one line:",
        "    `propose <segment> rule: <new rule> reason: <why>` (also `rename: <name>`, `archive`)",
        "• `refresh [segment]`: refresh now (every active segment without a name)",
        "Also `/persona <segment> [brief|talking-points|discovery]` and "
        "`/feedback <segment> <what you heard>`.",
    ]
)
PERSONA_USAGE = "usage: `/persona <segment> [brief|talking-points|discovery]`"
FEEDBACK_USAGE = "usage: `/feedback <segment> <what you heard>` (or `/feedback` alone for a form)"


def split_words(text: str | None) -> tuple[str, str]:
    """(first word lower-cased, the rest) of a command's text."""
    first, _, rest = (text or "").strip().partition(" ")
    return first.strip().lower(), rest.strip()


def segment_usage_error(text: str | None) -> str | None:
    """The usage error for ``/segment`` text, or None when it can run."""
    sub, rest = split_words(text)
    if sub in ("", "help"):
        return SEGMENT_USAGE
    if sub not in SEGMENT_SUBCOMMANDS:
        return f"unknown subcommand `{esc(sub)}`.\n{SEGMENT_USAGE}"
    if sub in NEEDS_NAME and not rest:
        return f"usage: `/segment {sub} <segment>`"
    if sub == "propose" and len(rest.split()) > 1:
        try:
            proposals.parse_proposal_text(rest)
        except SegopsError as error:
            return f":warning: {esc(error)}\nOr `/segment propose <segment>` alone for a form."
    return None


def persona_usage_error(text: str | None) -> str | None:
    """The usage error for ``/persona`` text, or None when it can run."""
    name, kind = split_words(text)
    if not name:
        return PERSONA_USAGE
    if kind and kind.lower() not in PERSONA_KINDS + ("persona", "talking_points"):
        return f"unknown brief `{esc(kind)}`. {PERSONA_USAGE}"
    return None


def feedback_usage_error(text: str | None) -> str | None:
    """The usage error for ``/feedback`` text, or None when it can run."""
    name, note = split_words(text)
    if name and not note:
        return FEEDBACK_USAGE
    return None


class SlashCommands:
    """The slash-command listeners, bound to one engine and settings."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings

    # acks -----------------------------------------------------------------------------

    def ack_segment(self, ack: Ack, command: dict[str, Any]) -> None:
        error = segment_usage_error(command.get("text"))
        sub, _ = split_words(command.get("text"))
        if error:
            ack(text=error)
        elif sub == "refresh":
            ack(text="Refreshing… I will post the outcome here.")
        else:
            ack()

    def ack_persona(self, ack: Ack, command: dict[str, Any]) -> None:
        error = persona_usage_error(command.get("text"))
        if error:
            ack(text=error)
        else:
            ack()

    def ack_feedback(self, ack: Ack, command: dict[str, Any]) -> None:
        error = feedback_usage_error(command.get("text"))
        if error:
            ack(text=error)
        else:
            ack()

    # work ------------------------------------------------------------------------------

    def run_segment(self, command: dict[str, Any], respond: Respond, client: WebClient) -> None:
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
                respond(text=self._refresh(name or None))
        except SegopsError as error:
            respond(text=problem(error))

    def run_persona(self, command: dict[str, Any], respond: Respond) -> None:
        if persona_usage_error(command.get("text")):
            return
        name, kind = split_words(command.get("text"))
        kind = kind.lower().replace("_", "-") or "brief"
        kind = "brief" if kind == "persona" else kind
        try:
            result = render_brief(self.engine, name, kind=kind, settings=self.settings)
        except SegopsError as error:
            respond(text=problem(error))
            return
        for message in result["messages"]:
            respond(text=message["text"], blocks=message["blocks"])

    def run_feedback(self, command: dict[str, Any], respond: Respond, client: WebClient) -> None:
        if feedback_usage_error(command.get("text")):
            return
        name, note = split_words(command.get("text"))
        if not name:
            view = feedback_modal(
                segments=self._segment_names(),
                metadata={"channel": command.get("channel_id")},
            )
            client.views_open(trigger_id=command["trigger_id"], view=view)
            return
        try:
            saved = add_feedback(
                self.engine,
                segment=name,
                author=command["user_id"],
                text=note,
                origin="slack",
            )
        except SegopsError as error:
            respond(text=problem(error))
            return
        respond(text=feedback_saved(saved.id, saved.segment, saved.text))

    # subcommands -----------------------------------------------------------------------

    def _hidden(self, size: int | None) -> bool:
        return size is not None and size < self.settings.privacy_floor

    def _list(self, respond: Respond) -> None:
        rows = []
        for summary in catalog.list_segments(self.engine):
            row = {"channel": None, "open_alerts": 0, **summary.to_dict()}
            if self._hidden(row.get("size")):
                row["size"] = None
            rows.append(row)
        messages = render_messages(
            "catalog", {"segments": rows}, templates_dir=self.settings.templates_dir
        )
        for message in messages:
            respond(text=message["text"], blocks=message["blocks"])

    def _show(self, name: str) -> str:
        view = catalog.show_segment(self.engine, name)
        d = view["definition"]
        approvers = ", ".join(f"<@{esc(a)}>" for a in d.get("approvers") or []) or "none"
        lines = [
            f"*{esc(d['title'])}* `{esc(d['name'])}` · {esc(d['tier'])} · v{view['version']}"
            f" · {esc(view['status'])}",
            f"Owner <@{esc(d['owner'])}> · approvers {approvers} · "
            f"channel {esc(d.get('channel') or 'none')} · cadence {esc(view['cadence'])}",
            f"*Rule* `{esc(d['rule'])}`",
            f"*In words* {esc(view['criteria'])}",
        ]
        s = view.get("stats")
        if not s:
            lines.append("_Not refreshed yet._")
        elif self._hidden(s["size"]):
            lines.append(
                f"*Size* fewer than {self.settings.privacy_floor} members as of {esc(s['as_of'])}"
            )
        else:
            change = f" ({s['change_pct']:+.1f}%)" if s.get("change_pct") is not None else ""
            lines.append(
                f"*Size* {s['size']:,}{change} as of {esc(s['as_of'])} · "
                f"+{s['joined']:,} joined, -{s['left']:,} left"
            )
        return "\n".join(lines)

    def _history(self, name: str, limit: int = 10) -> str:
        versions = catalog.history(self.engine, name)
        lines = [f"*History of* `{esc(name)}`"]
        for v in versions[:limit]:
            approver = f", approved by <@{esc(v.approver)}>" if v.approver else ""
            reason = f": {esc(v.reason)}" if v.reason else ""
            lines.append(
                f"• v{v.version} {esc(v.change_kind)} on {esc(v.created_at[:10])} by "
                f"<@{esc(v.author)}>{approver}{reason}\n    `{esc(v.rule)}`"
            )
        if len(versions) > limit:
            lines.append(f"_…and {len(versions) - limit} older versions (`segops history`)._")
        return "\n".join(lines)

    def _drift(self, name: str) -> str:
        points = stats.size_trend(self.engine, name)
        alerts = stats.recent_alerts(self.engine, name, limit=5)
        lines = [f"*Drift of* `{esc(name)}`"]
        if not points:
            lines.append("_Not refreshed yet._")
        for as_of, size in points[-8:]:
            shown = (
                f"fewer than {self.settings.privacy_floor}" if self._hidden(size) else f"{size:,}"
            )
            lines.append(f"• {esc(as_of)}: {shown}")
        lines.append("*Recent alerts*" if alerts else "_No alerts._")
        for a in alerts:
            lines.append(
                f"• {esc(a['as_of'] or '—')} {esc(a['severity'])} {esc(a['kind'])}: "
                f"{esc(a['message'])} ({esc(a['status'])})"
            )
        return "\n".join(lines)

    def _propose(
        self, text: str, command: dict[str, Any], client: WebClient, respond: Respond
    ) -> None:
        """``propose NAME`` opens the form; ``propose NAME rule: … reason: …`` proposes."""
        if len(text.split()) == 1:
            view = catalog.show_segment(self.engine, text.lower())
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
        )
        channel, _ts = post_proposal(
            client, self.engine, self.settings, proposal, fallback_channel=command.get("channel_id")
        )
        respond(text=f":ballot_box_with_ballot: Proposal #{proposal.id} posted in <#{channel}>.")

    def _refresh(self, only: str | None) -> str:
        from commands.refresh import refresh  # the data engine loads only when a refresh runs

        ws = load_workspace_of(self.settings)
        if ws is None:
            raise SegopsError("no workspace file configured: set SEGOPS_WORKSPACE")
        as_of = datetime.now(UTC).date()
        report = refresh(
            self.engine,
            ws,
            as_of=as_of,
            only=[only] if only else None,
            templates_dir=self.settings.templates_dir,
        )
        lines = [f"*Refreshed* {len(report.segments)} segment(s) as of {as_of.isoformat()}"]
        for outcome in report.segments:
            size = (
                f"fewer than {self.settings.privacy_floor}"
                if self._hidden(outcome.size)
                else f"{outcome.size:,}"
            )
            lines.append(f"• `{esc(outcome.segment)}` {esc(outcome.status)}: {size} members")
        return "\n".join(lines)

    def _segment_names(self) -> list[str]:
        return [s.name for s in catalog.list_segments(self.engine) if s.status == "active"]


def register(app: App, *, engine: Engine, settings: Settings) -> None:
    """Wire ``/segment``, ``/persona`` and ``/feedback``."""
    handlers = SlashCommands(engine, settings)
    app.command("/segment")(ack=handlers.ack_segment, lazy=[handlers.run_segment])
    app.command("/persona")(ack=handlers.ack_persona, lazy=[handlers.run_persona])
    app.command("/feedback")(ack=handlers.ack_feedback, lazy=[handlers.run_feedback])

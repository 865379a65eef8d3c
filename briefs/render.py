"""Render briefs, summaries and alerts from Jinja2 templates, as text or Block Kit.

One renderer, one loader chain: a user's template folder first (``SEGOPS_TEMPLATES``),
then the templates shipped in this package. A file in the user's folder with the same
name as a built-in (``brief.j2``) replaces it; the built-ins stay reachable as
``builtin/<name>`` so an override can ``{% import "builtin/_macros.j2" as m %}``.

Every template renders one *kind* from a plain dict into the markup described in
:mod:`briefs.blocks`; that markup becomes Slack mrkdwn text (:meth:`Renderer.render_text`,
readable in a terminal too, or decoded fully with ``plain=True``) or Block Kit
(:meth:`Renderer.render_blocks`), and :meth:`Renderer.render_messages` packs the blocks
into postable messages. Undefined names are errors (``StrictUndefined``); keys marked
optional below are tested with ``is defined`` or ``.get``.

Escaping: autoescape is off (the output is not HTML). Every user-provided string goes
through the ``mrkdwn`` filter, which turns ``&``, ``<`` and ``>`` into Slack entities, so
user text can neither mention ``@channel``, fake a link, nor open a markup directive.
Other filters: ``user`` (``U0123`` -> ``<@U0123>``), ``channel``, ``link(url, label)``,
``num`` (thousands separators, ``—`` for None), ``pct`` (percent points, signed),
``signed``, ``plural(n, word)``, ``spark`` (sparkline of a trend), ``when`` (ISO date
or datetime -> ``2026-09-01 14:03 UTC``), ``quote`` (Slack block quote), ``show``
(a changed value, lists joined), ``humanize`` (``size_change`` -> ``Size change``),
``icon`` (severity, status and sentiment -> emoji). All of them escape what they print.

Kinds and their contexts (percentages are percent points: 4.2 means +4.2 %):

``brief``, ``talking-points``, ``discovery`` (``persona`` is an alias of ``brief``)
    segment: {name, title, tier, owner, approvers, channel, purpose, rationale,
    behavior_signals, data_sources, known_limitations, kpis, rule_text, criteria,
    persona: {summary, goals, pains, objections, value_propositions, talking_points,
    discovery_questions}}; version: int; as_of: "YYYY-MM-DD" | None;
    stats: None | {size (None under the privacy floor), previous_size, change_pct,
    trend: [[date, size]], kpis: {name: mean}, hidden: bool, privacy_floor: int};
    feedback: {count, themes: [[phrase, count]], recent: [{author, text, sentiment,
    created_at}]}; optional share: bool (default true) shows "Post to channel".
``refresh-summary``
    segment: {name, title, owner}; as_of; status ("published" | "blocked" |
    "unchanged" | "partial"); size; previous_size; joined; left;
    leave_reasons: [[clause, count]]; quality: {verdict: "passed" | "blocked",
    failures: [message]}; kpis: [{name, value, previous, delta_pct}];
    alerts: [{kind, severity, message}].
``refresh-group`` (several segments that share a channel)
    channel: str | None; as_of; summaries: [refresh-summary contexts, as_of optional].
``drift-alert``
    segment: {name, title, owner}; as_of; severity; alerts: [{kind, severity, message,
    optional id, status ("open" | "acknowledged" | "muted"), acknowledged_by,
    muted_until}]; evidence: {optional size, previous_size, trend: [[date, size]],
    kpis: [{name, value, previous, delta_pct}], shifts: [{column, psi, summary}],
    leave_reasons: [[clause, count]]}. Open alerts with an id get Acknowledge /
    Open proposal / Mute for 7 days buttons (value = alert id).
``blocked-alert``
    segment: {name, title, owner}; as_of; failures: [{kind, source, column, message}];
    current: None | {as_of, size} (the snapshot that stays current).
``blocked-group`` (several blocked segments that share a channel)
    channel; as_of; causes: [{message, kind, source, column, segments: [{name, title,
    owner, current: None | {as_of, size}}]}], grouped by what failed.
``feedback-digest``
    since, until: "YYYY-MM-DD"; total: int; segments: [{segment: {name, title, owner},
    count, sentiment: {positive, neutral, negative}, themes: [[phrase, count]],
    highlights: [{author, text, sentiment, importance, created_at, permalink}]}].
``proposal``
    proposal: {id, kind, status ("pending" | "approved" | "rejected" | "stale"),
    proposer, reason, created_at, decided_by, decided_at, decision_via,
    changes: [{field, before, after}], impact: None | {size_now, size_after, joined,
    left}, optional applied_version}; segment: {name, title, tier, owner, approvers};
    optional reactions: {approve, reject} (emoji names). Pending proposals get
    Approve / Reject buttons (value = proposal id); decided ones say who and when.
``catalog``
    segments: [{name, title, tier, status, owner, channel, version, size, as_of,
    open_alerts}]; optional heading: str.
``home`` (App Home)
    segments: [{name, title, tier, status, version, size, as_of, trend: [[date, size]],
    open_alerts, feedback}] (the user's own); more_segments: int; pending: [{id, kind,
    segment, proposer, reason, created_at, changes: {field: value}}] (with Approve /
    Reject buttons); more_pending: int; catalog: [catalog rows] (shown when the user
    owns nothing); feedback_days: int; privacy_floor: int.

Reply kinds (``REPLY_KINDS``) are short answers to ``/segment show|history|drift|refresh``,
rendered as written (:meth:`Renderer.render_reply`: mrkdwn text, no directives, no
blocks); each template documents its context in its opening comment.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
from types import TracebackType
from typing import Any

import jinja2

from briefs import blocks as bk
from briefs import wording
from segments.errors import SegopsError

PACKAGE_TEMPLATES = Path(__file__).resolve().parent / "templates"
KINDS: tuple[str, ...] = (
    "brief",
    "talking-points",
    "discovery",
    "refresh-summary",
    "refresh-group",
    "drift-alert",
    "blocked-alert",
    "blocked-group",
    "feedback-digest",
    "proposal",
    "catalog",
    "catalog-health",
    "refresh-failed",
    "refresh-recovered",
    "proposal-reminder",
    "home",
    "sync-status",
    "sync-summary",
    "clinic-agenda",
    "live-divergence",
    "live-notice",
)
REPLY_KINDS: tuple[str, ...] = (
    "segment-show",
    "segment-history",
    "segment-drift",
    "segment-refresh",
    "segment-learnings",
)
PERSONA_KINDS: tuple[str, ...] = ("brief", "talking-points", "discovery")
ALIASES = {"persona": "brief", "talking_points": "talking-points"}
ICONS = {
    "critical": "🔴",
    "warning": "🟠",
    "info": "🔵",
    "published": "✅",
    "passed": "✅",
    "approved": "✅",
    "blocked": "⛔",
    "rejected": "❌",
    "unchanged": "⏸️",
    "partial": "🟡",
    "stale": "⌛",
    "pending": "🗳️",
    "acknowledged": "👀",
    "muted": "🔕",
    "positive": "👍",
    "neutral": "😐",
    "negative": "👎",
}
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,}$")
_SAFE_URL = re.compile(r"^https?://[^\s<>|]+$")
_SPARKS = "▁▂▃▄▅▆▇█"


class BriefError(SegopsError):
    """A template is missing, malformed, or needs a key its context does not have."""


def brief_kind(text: str | None) -> str:
    """The persona kind a user typed, canonical (``persona`` -> ``brief``); empty is ``brief``.

    Case does not matter; the aliases of :data:`ALIASES` are accepted. Anything else
    raises :class:`BriefError`.
    """
    word = (text or "").strip().lower() or "brief"
    kind = ALIASES.get(word, word)
    if kind not in PERSONA_KINDS:
        raise BriefError(f"unknown brief kind {word!r} (choose from {', '.join(PERSONA_KINDS)})")
    return kind


def template_name(kind: str) -> str:
    """The template file of a kind (``talking-points`` -> ``talking-points.j2``)."""
    kind = ALIASES.get(kind, kind)
    if kind not in KINDS and kind not in REPLY_KINDS:
        raise BriefError(f"unknown brief kind {kind!r} (choose from {', '.join(KINDS)})")
    return f"{kind}.j2"


class Renderer:
    """Renders every kind through one Jinja2 environment and loader chain."""

    def __init__(self, templates_dir: Path | None = None) -> None:
        loaders: list[jinja2.BaseLoader] = []
        if templates_dir is not None:
            folder = Path(templates_dir)
            if not folder.is_dir():
                raise BriefError(f"template folder {folder} does not exist")
            loaders.append(jinja2.FileSystemLoader(folder))
        builtin = jinja2.FileSystemLoader(PACKAGE_TEMPLATES)
        loaders += [builtin, jinja2.PrefixLoader({"builtin": builtin})]
        self.templates_dir = templates_dir
        self.env = jinja2.Environment(
            loader=jinja2.ChoiceLoader(loaders),
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        self.env.filters.update(FILTERS)

    def render(self, kind: str, ctx: Mapping[str, Any]) -> str:
        """The raw markup of one kind (see :mod:`briefs.blocks`)."""
        name = template_name(kind)
        try:
            return self.env.get_template(name).render(dict(ctx))
        except jinja2.TemplateSyntaxError as exc:
            where = exc.filename or exc.name or name
            raise BriefError(f"template {where} line {exc.lineno}: {exc.message}") from None
        except jinja2.UndefinedError as exc:
            where = _template_line(exc.__traceback__) or name
            raise BriefError(f"template {where}: {exc.message}") from None
        except jinja2.TemplateNotFound as exc:
            raise BriefError(f"template {name}: cannot find template {exc.name!r}") from None
        except jinja2.TemplateError as exc:
            where = _template_line(exc.__traceback__) or name
            raise BriefError(f"template {where}: {exc.message or exc}") from None

    def render_reply(self, kind: str, ctx: Mapping[str, Any]) -> str:
        """A short mrkdwn reply as the template writes it: no directives, no blocks.

        The template's own final newline is dropped.
        """
        text = self.render(kind, ctx)
        return text[:-1] if text.endswith("\n") else text

    def parts(self, kind: str, ctx: Mapping[str, Any]) -> list[bk.Part]:
        """The rendered markup, parsed."""
        try:
            return bk.parse(self.render(kind, ctx))
        except bk.MarkupError as exc:
            raise BriefError(f"template {template_name(kind)}: {exc}") from None

    def render_text(self, kind: str, ctx: Mapping[str, Any], *, plain: bool = False) -> str:
        """Slack mrkdwn; with ``plain`` links and entities are decoded for a terminal."""
        text = bk.to_text(self.parts(kind, ctx))
        return bk.to_plain(text) if plain else text

    def render_blocks(self, kind: str, ctx: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Block Kit blocks, each within Slack's per-block limits."""
        return self._blocks(kind, self.parts(kind, ctx))

    def render_messages(self, kind: str, ctx: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Postable messages ``[{"text", "blocks"}]`` (see :func:`blocks.split_messages`)."""
        parts = self.parts(kind, ctx)
        fallback = next(
            (" ".join(p.lines) for p in parts if p.kind == "header"),
            next((p.text for p in parts if p.lines), ""),
        )
        return bk.split_messages(self._blocks(kind, parts), text=fallback)

    def render_all(self, kind: str, ctx: Mapping[str, Any]) -> dict[str, Any]:
        """Every form of one rendering: ``text`` (mrkdwn), ``plain`` (for a terminal),
        ``blocks`` and postable ``messages``."""
        parts = self.parts(kind, ctx)
        blocks = self._blocks(kind, parts)
        text = bk.to_text(parts)
        fallback = next(
            (" ".join(p.lines) for p in parts if p.kind == "header"),
            next((p.text for p in parts if p.lines), ""),
        )
        return {
            "text": text,
            "plain": bk.to_plain(text),
            "blocks": blocks,
            "messages": bk.split_messages(blocks, text=fallback),
        }

    @staticmethod
    def _blocks(kind: str, parts: list[bk.Part]) -> list[dict[str, Any]]:
        try:
            return bk.to_blocks(parts)
        except bk.MarkupError as exc:
            raise BriefError(f"template {template_name(kind)}: {exc}") from None


@lru_cache(maxsize=8)
def renderer(templates_dir: Path | None = None) -> Renderer:
    """A shared renderer per template folder."""
    return Renderer(templates_dir)


def render_text(
    kind: str,
    ctx: Mapping[str, Any],
    *,
    templates_dir: Path | None = None,
    plain: bool = False,
) -> str:
    """Render one kind as mrkdwn text (``plain=True`` for a terminal)."""
    return renderer(templates_dir).render_text(kind, ctx, plain=plain)


def render_blocks(
    kind: str, ctx: Mapping[str, Any], *, templates_dir: Path | None = None
) -> list[dict[str, Any]]:
    """Render one kind as Block Kit blocks."""
    return renderer(templates_dir).render_blocks(kind, ctx)


def render_messages(
    kind: str, ctx: Mapping[str, Any], *, templates_dir: Path | None = None
) -> list[dict[str, Any]]:
    """Render one kind as postable messages within Slack's limits."""
    return renderer(templates_dir).render_messages(kind, ctx)


def render_reply(kind: str, ctx: Mapping[str, Any], *, templates_dir: Path | None = None) -> str:
    """Render one reply kind (``REPLY_KINDS``) as the mrkdwn text of a short answer."""
    return renderer(templates_dir).render_reply(kind, ctx)


# -- filters ------------------------------------------------------------------------


def _template_line(tb: TracebackType | None) -> str | None:
    found = None
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith(".j2"):
            found = f"{Path(filename).name} line {tb.tb_lineno}"
        tb = tb.tb_next
    return found


def f_user(value: object) -> str:
    if value is None or value == "":
        return "—"
    text = str(value)
    return f"<@{text}>" if _USER_ID.match(text) else bk.escape_mrkdwn(text)


def f_channel(value: object) -> str:
    if value is None or value == "":
        return "—"
    text = str(value)
    if _CHANNEL_ID.match(text):
        return f"<#{text}>"
    return bk.escape_mrkdwn(text if text.startswith("#") else f"#{text}")


def f_link(url: object, label: object = "link") -> str:
    if url and _SAFE_URL.match(str(url)):
        return f"<{url}|{bk.escape_mrkdwn(label)}>"
    return ""


def f_num(value: object, digits: int | None = None) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}".replace("-", "−")
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        if digits is None:
            size = abs(value)
            digits = 0 if size >= 1000 else 1 if size >= 100 else 2
        text = f"{value:,.{digits}f}"
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        return text.replace("-", "−")
    return bk.escape_mrkdwn(value)


def f_pct(value: object, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    number = float(value)  # type: ignore[arg-type]
    if round(number, digits) == 0:
        return f"±{0:.{digits}f}%"
    return f"{number:+.{digits}f}%".replace("-", "−")


def f_signed(value: object, negate: bool = False) -> str:
    if value is None:
        return "—"
    number = -int(value) if negate else int(value)  # type: ignore[call-overload]
    return f"+{number:,}" if number > 0 else f"−{-number:,}" if number < 0 else "0"


def f_plural(value: object, word: str, many: str | None = None) -> str:
    many = many or f"{word}s"
    return f"{f_num(value)} {word if value == 1 else many}"


def f_spark(trend: Sequence[Any]) -> str:
    values = [p[1] if isinstance(p, Sequence) and not isinstance(p, str) else p for p in trend]
    numbers = [float(v) for v in values if v is not None][-24:]
    if not numbers:
        return "—"
    low, high = min(numbers), max(numbers)
    if high == low:
        return _SPARKS[3] * len(numbers)
    scale = (len(_SPARKS) - 1) / (high - low)
    return "".join(_SPARKS[round((v - low) * scale)] for v in numbers)


def f_when(value: object) -> str:
    if value is None or value == "":
        return "—"
    moment = value
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return bk.escape_mrkdwn(value)
        if len(value) <= 10:
            return moment.date().isoformat()
    if isinstance(moment, datetime):
        if moment.tzinfo is not None:
            moment = moment.astimezone(UTC)
        return f"{moment:%Y-%m-%d %H:%M} UTC"
    if isinstance(moment, date):
        return moment.isoformat()
    return bk.escape_mrkdwn(value)


def f_quote(value: object) -> str:
    text = bk.escape_mrkdwn(value).strip()
    return "\n".join(f"> {line}" for line in text.splitlines()) if text else ""


def f_show(value: object, code: bool = False) -> str:
    if value is None or value == "" or value == []:
        return "—"
    if isinstance(value, list | tuple):
        text = ", ".join(str(v) for v in value)
    elif isinstance(value, dict):
        text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    else:
        text = str(value)
    text = bk.escape_mrkdwn(text)
    if not code or "`" in text:
        return text
    return f"```{text}```" if "\n" in text else f"`{text}`"


def f_humanize(value: object) -> str:
    text = str(value or "").replace("_", " ").replace("-", " ").strip()
    return bk.escape_mrkdwn(text[:1].upper() + text[1:])


def f_icon(value: object) -> str:
    return ICONS.get(str(value), "•")


def f_label(name: object, labels: Mapping[str, Any] | None = None) -> str:
    return bk.escape_mrkdwn(wording.label(str(name or ""), labels))


def f_amount(value: object, spec: Mapping[str, Any] | None = None) -> str:
    return bk.escape_mrkdwn(wording.amount(value, spec))  # type: ignore[arg-type]


def f_movement(row: Mapping[str, Any], labels: Mapping[str, Any] | None = None) -> str:
    """A KPI row ``{name, value, previous}`` as ``0.25 → 0.56 per account, up 121 %``."""
    spec = wording.spec_of(row.get("name"), labels)
    text = wording.movement(row.get("value"), row.get("previous"), spec)
    better = wording.verdict(row.get("value"), row.get("previous"), spec)
    return bk.escape_mrkdwn(text + (f" ({better})" if better else ""))


def f_updown(pct: object) -> str:
    """A change in percent as words: ``up 4.2 %``, ``down 31 %``, ``unchanged``."""
    return wording.direction_words(None if pct is None else float(pct))  # type: ignore[arg-type]


def f_members(size: object, previous: object = None) -> str:
    return bk.escape_mrkdwn(wording.members(size, previous))  # type: ignore[arg-type]


def f_notice(stats: Mapping[str, Any] | None) -> str:
    """The definition-change notice of a stats dict (see ``wording.definition_notice``)."""
    return bk.escape_mrkdwn(wording.definition_notice(stats))


def f_clause(text: object, labels: Mapping[str, Any] | None = None, titles: Any = None) -> str:
    return bk.escape_mrkdwn(wording.clause_text(str(text), labels, titles))


def f_finding(alert: Mapping[str, Any], labels: Mapping[str, Any] | None = None) -> dict:
    return {k: bk.escape_mrkdwn(v) for k, v in wording.finding(alert, labels).items()}


def f_headline(alerts: Any, title: object, labels: Mapping[str, Any] | None = None) -> str:
    return bk.escape_mrkdwn(wording.headline(str(title), list(alerts), labels))


FILTERS = {
    "mrkdwn": bk.escape_mrkdwn,
    "user": f_user,
    "channel": f_channel,
    "link": f_link,
    "num": f_num,
    "pct": f_pct,
    "signed": f_signed,
    "plural": f_plural,
    "spark": f_spark,
    "when": f_when,
    "quote": f_quote,
    "show": f_show,
    "humanize": f_humanize,
    "icon": f_icon,
    "label": f_label,
    "amount": f_amount,
    "movement": f_movement,
    "members": f_members,
    "notice": f_notice,
    "updown": f_updown,
    "clause": f_clause,
    "finding": f_finding,
    "headline": f_headline,
}

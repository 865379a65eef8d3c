"""Posted messages shown the way Slack shows them: in a terminal, and as an HTML page.

Slack's mrkdwn (``*bold*``, ``_italic_``, ``~strike~``, `` `code` ``, ``> quotes``,
``<@U123>`` mentions, ``<#C123|name>`` channels, ``<url|label>`` links and the
``&amp; &lt; &gt;`` entities) becomes rich text for the terminal
(:func:`rich_text`) or HTML (:func:`html_text`); Block Kit blocks (header, section
with text or fields, context, divider, actions with buttons, image) become a panel
(:func:`render_message`) or an HTML card (:func:`write_page`). Mentions show the
person's name from ``names`` (the demo's people), as Slack does.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

_LINK = re.compile(r"<([^<>|\s][^<>|]*)(?:\|([^<>]*))?>")
_INLINE = re.compile(
    r"(?P<code>`[^`\n]+`)|(?P<bold>(?<![\w*])\*[^*\n]+\*(?![\w*]))"
    r"|(?P<italic>(?<![\w_])_[^_\n]+_(?![\w_]))|(?P<strike>(?<![\w~])~[^~\n]+~(?![\w~]))"
)
_STYLES = {"code": "bold cyan", "bold": "bold", "italic": "italic", "strike": "strike"}
_TAGS = {"code": "code", "bold": "b", "italic": "i", "strike": "s"}


@dataclass
class Posted:
    """One message as it was posted: where, what kind, its blocks and attachments."""

    where: str
    kind: str
    text: str
    blocks: list[dict[str, Any]]
    files: list[str] = field(default_factory=list)
    replies: list[Posted] = field(default_factory=list)


def unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _quoted(line: str) -> tuple[bool, str]:
    """Whether a line is a block quote (``> `` as Slack writes it), and its text."""
    for mark in ("&gt; ", "> "):
        if line.startswith(mark):
            return True, line[len(mark) :]
    return line in ("&gt;", ">"), "" if line in ("&gt;", ">") else line


def _links(text: str, names: Mapping[str, str]) -> list[tuple[str, str, str | None]]:
    """Split text into ``(kind, text, url)`` pieces: ``plain`` and ``mention``/``link``."""
    out: list[tuple[str, str, str | None]] = []
    last = 0
    for m in _LINK.finditer(text):
        out.append(("plain", text[last : m.start()], None))
        target, label = m.group(1), m.group(2)
        if target.startswith("@"):
            out.append(("mention", "@" + names.get(target[1:], label or target[1:]), None))
        elif target.startswith("#"):
            out.append(("mention", "#" + (label or target[1:]), None))
        elif target.startswith("!"):
            out.append(("mention", "@" + (label or target[1:].split("^")[0]), None))
        else:
            out.append(("link", label or target, target))
        last = m.end()
    out.append(("plain", text[last:], None))
    return [piece for piece in out if piece[1]]


def rich_text(mrkdwn: str, names: Mapping[str, str], style: str = "") -> Text:
    """mrkdwn as rich text: styles applied, mentions as names, entities decoded."""
    result = Text(style=style)
    for line_no, line in enumerate(mrkdwn.split("\n")):
        if line_no:
            result.append("\n")
        quoted, line = _quoted(line)
        if quoted:
            result.append("▎ ", style="dim")
        for kind, piece, url in _links(line, names):
            if kind == "mention":
                result.append(unescape(piece), style="bold blue")
            elif kind == "link":
                result.append(unescape(piece), style=f"underline blue link {url}")
            else:
                _inline(result, piece, "italic dim" if quoted else "")
    return result


def _inline(result: Text, piece: str, base: str) -> None:
    last = 0
    for m in _INLINE.finditer(piece):
        result.append(unescape(piece[last : m.start()]), style=base)
        kind = m.lastgroup or "bold"
        result.append(unescape(m.group()[1:-1]), style=f"{base} {_STYLES[kind]}".strip())
        last = m.end()
    result.append(unescape(piece[last:]), style=base)


def _text_of(obj: Any) -> str:
    return (obj or {}).get("text", "") if isinstance(obj, dict) else str(obj or "")


def render_message(message: Posted, names: Mapping[str, str]) -> Panel:
    """One posted message as a terminal panel laid out like Slack's Block Kit."""
    parts: list[RenderableType] = []
    for block in message.blocks or [{"type": "section", "text": {"text": message.text}}]:
        kind = block.get("type")
        if kind == "header":
            parts.append(Text(_text_of(block.get("text")), style="bold"))
        elif kind == "section":
            if block.get("text"):
                parts.append(rich_text(_text_of(block["text"]), names))
            if block.get("fields"):
                grid = Table.grid(padding=(0, 3))
                grid.add_column()
                grid.add_column()
                cells = [rich_text(_text_of(f), names) for f in block["fields"]]
                for i in range(0, len(cells), 2):
                    grid.add_row(*cells[i : i + 2], *([""] if i + 1 >= len(cells) else []))
                parts.append(grid)
        elif kind == "context":
            for element in block.get("elements", []):
                parts.append(rich_text(_text_of(element), names, style="dim"))
        elif kind == "divider":
            parts.append(Rule(style="dim"))
        elif kind == "actions":
            row = Text()
            for element in block.get("elements", []):
                style = {"primary": "bold white on green", "danger": "bold white on red"}
                row.append(
                    f" {_text_of(element.get('text'))} ", style.get(element.get("style"), "reverse")
                )
                row.append("  ")
            parts.append(row)
        elif kind == "image":
            parts.append(Text(f"🖼  {block.get('alt_text', 'image')}", style="magenta"))
    for path in message.files:
        parts.append(Text(f"📎 {path}", style="magenta"))
    if message.replies:
        count = len(message.replies)
        parts.append(
            Text(f"💬 {count} {'reply' if count == 1 else 'replies'} in thread", style="dim")
        )
    return Panel(
        Group(*parts),
        title=f"{message.where} · {message.kind}",
        title_align="left",
        border_style="cyan",
        expand=False,
        width=88,
    )


# -- HTML -------------------------------------------------------------------------


def html_text(mrkdwn: str, names: Mapping[str, str]) -> str:
    """mrkdwn as HTML: escaped, styled, mentions as names, quotes as block quotes."""
    lines = []
    for line in mrkdwn.split("\n"):
        quoted, line = _quoted(line)
        pieces = []
        for kind, piece, url in _links(line, names):
            shown = html.escape(unescape(piece))
            if kind == "mention":
                pieces.append(f'<span class="mention">{shown}</span>')
            elif kind == "link":
                pieces.append(f'<a href="{html.escape(url or "")}">{shown}</a>')
            else:
                pieces.append(_inline_html(piece))
        text = "".join(pieces)
        lines.append(f'<span class="quote">{text}</span>' if quoted else text)
    return "<br>".join(lines)


def _inline_html(piece: str) -> str:
    out, last = [], 0
    for m in _INLINE.finditer(piece):
        out.append(html.escape(unescape(piece[last : m.start()])))
        tag = _TAGS[m.lastgroup or "bold"]
        out.append(f"<{tag}>{html.escape(unescape(m.group()[1:-1]))}</{tag}>")
        last = m.end()
    out.append(html.escape(unescape(piece[last:])))
    return "".join(out)


def _block_html(block: dict[str, Any], names: Mapping[str, str]) -> str:
    kind = block.get("type")
    if kind == "header":
        return f'<div class="header">{html.escape(_text_of(block.get("text")))}</div>'
    if kind == "section":
        inner = ""
        if block.get("text"):
            inner += f'<div class="text">{html_text(_text_of(block["text"]), names)}</div>'
        if block.get("fields"):
            cells = "".join(
                f'<div class="field">{html_text(_text_of(f), names)}</div>' for f in block["fields"]
            )
            inner += f'<div class="fields">{cells}</div>'
        return f'<div class="section">{inner}</div>'
    if kind == "context":
        items = "".join(
            f"<span>{html_text(_text_of(e), names)}</span>" for e in block.get("elements", [])
        )
        return f'<div class="context">{items}</div>'
    if kind == "divider":
        return '<hr class="divider">'
    if kind == "actions":
        buttons = "".join(
            f'<button type="button" class="button {html.escape(e.get("style", ""))}" '
            f'title="{html.escape(e.get("action_id", ""))}">'
            f"{html.escape(_text_of(e.get('text')))}</button>"
            for e in block.get("elements", [])
        )
        return f'<div class="actions">{buttons}</div>'
    if kind == "image":
        url = block.get("image_url") or ""
        alt = html.escape(block.get("alt_text", ""))
        return f'<img class="image" src="{html.escape(url)}" alt="{alt}">'
    return ""


def _message_html(
    message: Posted, names: Mapping[str, str], base: Path, reply: bool = False
) -> str:
    blocks = message.blocks or [{"type": "section", "text": {"text": message.text}}]
    body = "".join(_block_html(b, names) for b in blocks)
    images = "".join(
        f'<figure class="file"><img src="{html.escape(_relative(p, base))}" '
        f'alt="{html.escape(Path(p).name)}" width="480"><figcaption>'
        f"{html.escape(Path(p).name)}</figcaption></figure>"
        for p in message.files
    )
    replies = ""
    if message.replies:
        inner = "".join(_message_html(r, names, base, reply=True) for r in message.replies)
        replies = (
            f'<details class="thread"><summary>{len(message.replies)} '
            f"{'reply' if len(message.replies) == 1 else 'replies'}</summary>{inner}</details>"
        )
    where = (
        ""
        if reply
        else f'<div class="where">{html.escape(message.where)} · {html.escape(message.kind)}</div>'
    )
    return (
        f'<article class="message{" reply" if reply else ""}">{where}'
        f'<div class="avatar">S</div><div class="body"><div class="author">segops '
        f'<span class="app">APP</span></div>{body}{images}{replies}</div></article>'
    )


def _relative(path: str, base: Path) -> str:
    try:
        return Path(path).resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return Path(path).as_posix()


CSS = """
body{font-family:Lato,'Helvetica Neue',Helvetica,Arial,sans-serif;background:#f8f8f8;margin:0;
color:#1d1c1d;font-size:15px;line-height:1.46}
main{max-width:760px;margin:0 auto;padding:24px}
h1{font-size:20px;margin:8px 0 4px}
p.lead{color:#616061;margin:0 0 20px}
h2{font-size:15px;color:#616061;border-bottom:1px solid #ddd;padding:16px 0 4px;margin:0 0 8px}
.message{background:#fff;border:1px solid #e8e8e8;border-radius:8px;padding:12px 16px 12px 64px;
margin:0 0 14px;position:relative}
.message.reply{border:none;border-left:3px solid #e8e8e8;border-radius:0;margin:8px 0 0;
padding:4px 0 4px 52px}
.where{font-size:12px;color:#616061;margin:-2px 0 4px}
.avatar{position:absolute;left:16px;top:34px;width:36px;height:36px;border-radius:6px;
background:#4a154b;color:#fff;font-weight:700;display:flex;align-items:center;justify-content:center}
.reply .avatar{left:6px;top:6px}
.author{font-weight:900}.app{font-size:10px;background:#ddd;color:#616061;border-radius:3px;
padding:0 3px;font-weight:700;vertical-align:middle}
.header{font-size:18px;font-weight:900;margin:6px 0 4px}
.section{margin:6px 0}
.fields{display:grid;grid-template-columns:1fr 1fr;gap:8px 16px;margin-top:4px}
.context{font-size:12px;color:#616061;margin:6px 0;display:flex;flex-wrap:wrap;gap:8px}
.divider{border:none;border-top:1px solid #ddd;margin:10px 0}
.actions{display:flex;flex-wrap:wrap;gap:8px;margin:8px 0}
.button{font:inherit;font-size:14px;font-weight:700;border:1px solid #bbb;background:#fff;
border-radius:4px;padding:3px 12px;cursor:pointer}
.button.primary{background:#007a5a;border-color:#007a5a;color:#fff}
.button.danger{background:#e01e5a;border-color:#e01e5a;color:#fff}
.mention{background:#e8f5fa;color:#1264a3;border-radius:3px;padding:0 2px}
code{font-family:Monaco,Menlo,Consolas,monospace;font-size:12px;color:#c01343;background:#f7f7f9;
border:1px solid #e1e1e8;border-radius:3px;padding:1px 3px}
.quote{display:inline-block;border-left:4px solid #ddd;padding-left:10px;color:#454245}
.file{margin:8px 0 0}
.file img{max-width:100%;height:auto;border:1px solid #e8e8e8;border-radius:6px}
figcaption{font-size:12px;color:#616061}
details.thread summary{color:#1264a3;font-weight:700;font-size:13px;cursor:pointer;margin-top:6px}
"""


def write_page(
    path: Path,
    sections: Sequence[tuple[str, Iterable[Posted]]],
    names: Mapping[str, str],
    *,
    title: str = "segops demo · every message posted",
) -> Path:
    """Write one self-contained HTML page showing every message, section by section."""
    base = path.parent
    body = []
    for heading, messages in sections:
        items = "".join(_message_html(m, names, base) for m in messages)
        body.append(f"<section><h2>{html.escape(heading)}</h2>{items}</section>")
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<style>{CSS}</style></head><body><main><h1>{html.escape(title)}</h1>"
        '<p class="lead">Each card is one message as Slack lays it out: Block Kit sections, '
        "fields, context lines, buttons and the charts uploaded with it.</p>"
        + "".join(body)
        + "</main></body></html>"
    )
    path.write_text(page, encoding="utf-8")
    return path

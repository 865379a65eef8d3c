"""Brief markup to Slack Block Kit and to text, and Slack's message limits.

Templates render a small line-oriented markup. A line that starts with one of these
directives opens a part; every other line continues the open section, field or
context (or opens a new section)::

    <header>Power users · persona brief          one line of plain text (150 chars)
    <section>*Who they are*                      mrkdwn; the lines below belong to it
    Heavy daily users on paid plans.
    <field label="Members">12,345 (+4.2%)        consecutive fields make one section
    <context>Definition v3 · data as of 2026-08-31
    <divider>
    <button action=persona_share value="power-users|brief" style=primary>Post to channel

Attribute values are bare words or JSON strings (Jinja's ``tojson`` output), so any
value can be passed safely. Text is Slack mrkdwn: user-provided strings must go
through :func:`escape_mrkdwn` (the templates' ``mrkdwn`` filter), which turns ``&``,
``<`` and ``>`` into entities. No escaped string can start a line with ``<``, so user
text can never open a directive; only the template's own lines do. Header and button
labels become ``plain_text``, so their entities are decoded again.

:func:`split_messages` makes any list of blocks postable: it splits long sections,
headers, field and context groups and action rows, and packs the blocks into as many
messages as needed (50 blocks and an 11,000-character budget each), never dropping text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from segments.errors import SegopsError

Block = dict[str, Any]

HEADER_MAX = 150
TEXT_MAX = 3000
FIELD_MAX = 2000
FIELDS_MAX = 10
CONTEXT_ELEMENTS_MAX = 10
ACTIONS_MAX = 25
BUTTON_TEXT_MAX = 75
BUTTON_VALUE_MAX = 2000
BLOCKS_MAX = 50
MESSAGE_BUDGET = 11_000
FALLBACK_MAX = 3000
DIVIDER_TEXT = "─" * 24

_TEXT_KINDS = ("section", "field", "context")
_DIRECTIVE = re.compile(
    r"^\s*<(header|section|field|context|divider|button)"
    r"((?:\s+[a-z_]+=(?:\"(?:[^\"\\]|\\.)*\"|[^\s>\"]+))*)\s*>(.*)$"
)
_LOOKS_LIKE_DIRECTIVE = re.compile(r"^\s*<(header|section|field|context|divider|button)[\s>]")
_ATTR = re.compile(r"([a-z_]+)=(\"(?:[^\"\\]|\\.)*\"|[^\s>\"]+)")
_LINK = re.compile(r"<([^<>|\s][^<>|]*)(?:\|([^<>]*))?>")
_FENCE = "```"


class MarkupError(SegopsError):
    """A template produced markup that cannot become Block Kit."""


def escape_mrkdwn(value: object) -> str:
    """Escape Slack's three control characters; ``None`` becomes an empty string."""
    if value is None:
        return ""
    text = str(value)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def unescape_mrkdwn(text: str) -> str:
    """Undo :func:`escape_mrkdwn` (for ``plain_text`` objects and terminals)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def to_plain(text: str) -> str:
    """mrkdwn for a terminal: links become readable words, entities are decoded."""

    def link(m: re.Match[str]) -> str:
        target, label = m.group(1), m.group(2)
        if target[0] in "@#":
            return target[0] + (label or target[1:])
        if target[0] == "!":
            return label or "@" + target[1:]
        return f"{label} ({target})" if label and label != target else target

    return unescape_mrkdwn(_LINK.sub(link, text))


@dataclass
class Part:
    """One directive of the markup with its attributes and text lines."""

    kind: str
    attrs: dict[str, str] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def parse(markup: str) -> list[Part]:
    """Split rendered markup into parts; blank runs collapse, empty sections vanish.

    Raises :class:`MarkupError` for a directive with malformed attributes.
    """
    parts: list[Part] = []
    current: Part | None = None
    for raw in markup.splitlines():
        line = raw.rstrip()
        match = _DIRECTIVE.match(line)
        if match:
            kind, attrs, rest = match.groups()
            part = Part(kind, _attrs(attrs), [rest.strip()] if rest.strip() else [])
            parts.append(part)
            current = part if kind in _TEXT_KINDS else None
            continue
        if _LOOKS_LIKE_DIRECTIVE.match(line):
            raise MarkupError(f"malformed directive: {line[:80]!r}")
        if current is None:
            if not line.strip():
                continue
            current = Part("section")
            parts.append(current)
        current.lines.append(line)
    kept = []
    for part in parts:
        part.lines = _tidy(part.lines)
        if part.kind in ("header", "section", "context") and not part.lines:
            continue
        kept.append(part)
    return kept


def to_blocks(parts: Sequence[Part]) -> list[Block]:
    """Block Kit for parsed markup (consecutive fields and buttons are grouped)."""
    blocks: list[Block] = []
    for kind, group in _groups(parts):
        if kind == "header":
            text = unescape_mrkdwn(" ".join(group[0].lines))
            blocks.append({"type": "header", "text": _plain(text)})
        elif kind == "section":
            blocks.append({"type": "section", "text": _mrkdwn(group[0].text)})
        elif kind == "context":
            blocks.append({"type": "context", "elements": [_mrkdwn(group[0].text)]})
        elif kind == "divider":
            blocks.append({"type": "divider"})
        elif kind == "field":
            fields = [_mrkdwn(_field_text(p, "\n")) for p in group]
            blocks.append({"type": "section", "fields": fields})
        elif kind == "button":
            blocks.append({"type": "actions", "elements": [_button(p) for p in group]})
    return fit_blocks(blocks)


def to_text(parts: Sequence[Part]) -> str:
    """mrkdwn text for parsed markup: a message body that also reads in a terminal."""
    chunks: list[str] = []
    for kind, group in _groups(parts):
        if kind == "header":
            chunks.append(f"*{' '.join(group[0].lines)}*")
        elif kind in ("section", "context"):
            chunks.append(group[0].text)
        elif kind == "divider":
            chunks.append(DIVIDER_TEXT)
        elif kind == "field":
            chunks.append("\n".join(_field_text(p, ": ") for p in group))
    return "\n\n".join(chunks)


def blocks_text(blocks: Iterable[Block]) -> str:
    """Every piece of text the blocks show, one per line (for fallbacks and checks)."""
    out: list[str] = []
    for block in blocks:
        if "text" in block and isinstance(block["text"], dict):
            out.append(block["text"].get("text", ""))
        for item in block.get("fields", []) + block.get("elements", []):
            if item.get("type") in ("mrkdwn", "plain_text"):
                out.append(item.get("text", ""))
            elif isinstance(item.get("text"), dict):
                out.append(item["text"].get("text", ""))
    return "\n".join(out)


def fit_blocks(blocks: Iterable[Block]) -> list[Block]:
    """Each block within Slack's per-block limits, splitting instead of truncating."""
    fitted: list[Block] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "header":
            fitted.extend(_fit_header(block))
        elif kind == "section":
            fitted.extend(_fit_section(block))
        elif kind == "context":
            fitted.extend(_fit_elements(block, CONTEXT_ELEMENTS_MAX, TEXT_MAX))
        elif kind == "actions":
            fitted.extend(_fit_elements(block, ACTIONS_MAX, TEXT_MAX))
        else:
            fitted.append(block)
    return fitted


def split_messages(blocks: Sequence[Block], *, text: str) -> list[dict[str, Any]]:
    """Pack blocks into postable messages: ``[{"text": fallback, "blocks": [...]}]``.

    Every message holds at most 50 blocks whose JSON stays within an 11,000-character
    budget (Slack rejects roughly 13,000); sections longer than 3,000 characters are
    split at line boundaries, then at spaces; headers longer than 150 characters become
    several headers. A header never ends a message when more follows; dividers at a
    message boundary are dropped. The fallback ``text`` (or, when empty, the first
    text of the blocks) is kept under 3,000 characters; later messages say which part
    they are.
    """
    fitted = fit_blocks(blocks)
    pages: list[list[Block]] = []
    page: list[Block] = []
    for block in fitted:
        if page and (len(page) >= BLOCKS_MAX or _size(page + [block]) > MESSAGE_BUDGET):
            carry: list[Block] = []
            if len(page) > 1 and page[-1]["type"] == "header":
                if _size([page[-1], block]) <= MESSAGE_BUDGET:
                    carry = [page.pop()]
            while page and page[-1]["type"] == "divider":
                page.pop()
            if page:
                pages.append(page)
            page = carry
        if not page and block.get("type") == "divider":
            continue
        page.append(block)
    while page and page[-1]["type"] == "divider" and len(page) > 1:
        page.pop()
    if page or not pages:
        pages.append(page)
    base = _fallback(text, fitted)
    total = len(pages)
    messages = []
    for number, page_blocks in enumerate(pages, start=1):
        if number == 1:
            fallback = base
        else:
            first = base.split("\n", 1)[0]
            fallback = f"{_clip(first, 200)} (continued, {number}/{total})"
        messages.append({"text": fallback, "blocks": page_blocks})
    return messages


IMAGE_TEXT_MAX = 2000


def chart_block(file_id: str, *, title: str) -> Block:
    """An image block showing an uploaded Slack file (``slack_file``), titled."""
    text = _clip(title or "chart", IMAGE_TEXT_MAX)
    return {
        "type": "image",
        "slack_file": {"id": file_id},
        "alt_text": text,
        "title": _plain(text),
    }


def with_image(blocks: Sequence[Block], image: Block) -> list[Block] | None:
    """``blocks`` with ``image`` after the first section (the headline), or None when
    the message would then exceed Slack's limits."""
    out = list(blocks)
    at = next((i + 1 for i, b in enumerate(out) if b.get("type") == "section"), len(out))
    out.insert(at, image)
    if len(out) > BLOCKS_MAX or _size(out) > MESSAGE_BUDGET:
        return None
    return out


def keep_images(blocks: Sequence[Block], shown: Sequence[Block] | None) -> list[Block]:
    """``blocks`` re-rendered for a message that ``shown`` is in Slack: its image blocks
    (a chart added when it was posted) stay where they were put (:func:`with_image`).

    They are built again from the file id and text: Slack's copy of an image block
    carries fields of its own (``image_url``, sizes) that a post may not send back.
    """
    out = list(blocks)
    for block in shown or []:
        file_id = (block.get("slack_file") or {}).get("id")
        if block.get("type") == "image" and file_id:
            image = chart_block(str(file_id), title=str(block.get("alt_text") or ""))
            out = with_image(out, image) or out
    return out


def split_text(text: str, limit: int) -> list[str]:
    """Split text into pieces of at most ``limit`` characters, losing no characters.

    Lines stay whole where they fit; longer lines break at a space in their second
    half, else at the limit, but never inside an entity (``&amp;``) or a link
    (``<@U123>``). A code fence cut in two is closed and reopened. Pieces that would
    be only whitespace are left out.
    """
    if len(text) <= limit:
        return [text]
    fenced = _FENCE in text
    room = limit - 2 * len(_FENCE) - 2 if fenced else limit
    pieces: list[str] = []
    buf: list[str] = []
    size = 0
    for line in text.split("\n"):
        while len(line) > room:
            if buf:
                pieces.append("\n".join(buf))
                buf, size = [], 0
            cut = _cut_point(line, room)
            pieces.append(line[:cut])
            line = line[cut:]
        extra = len(line) + (1 if buf else 0)
        if buf and size + extra > room:
            pieces.append("\n".join(buf))
            buf, size, extra = [], 0, len(line)
        buf.append(line)
        size += extra
    if buf:
        pieces.append("\n".join(buf))
    pieces = [p.strip("\n") for p in pieces if p.strip()]
    return _balance_fences(pieces) if fenced else pieces


# -- helpers ------------------------------------------------------------------------


def _attrs(source: str) -> dict[str, str]:
    attrs = {}
    for key, raw in _ATTR.findall(source or ""):
        value = json.loads(raw) if raw.startswith('"') else raw
        attrs[key] = str(value)
    return attrs


def _tidy(lines: list[str]) -> list[str]:
    out: list[str] = []
    for line in lines:
        if not line.strip() and (not out or not out[-1].strip()):
            continue
        out.append(line)
    while out and not out[-1].strip():
        out.pop()
    return out


def _groups(parts: Sequence[Part]) -> Iterator[tuple[str, list[Part]]]:
    group: list[Part] = []
    for part in parts:
        if group and part.kind in ("field", "button") and group[-1].kind == part.kind:
            group.append(part)
            continue
        if group:
            yield group[0].kind, group
        group = [part]
    if group:
        yield group[0].kind, group


def _field_text(part: Part, joiner: str) -> str:
    label = part.attrs.get("label")
    value = part.text or "—"
    if not label:
        return value
    if joiner != "\n" and "\n" in value:
        joiner = "\n"
    return f"*{escape_mrkdwn(label)}*{joiner}{value}"


def _button(part: Part) -> Block:
    action = part.attrs.get("action")
    if not action:
        raise MarkupError(f"<button> needs action=… (label {part.text!r})")
    label = unescape_mrkdwn(" ".join(part.lines)) or action
    button: Block = {
        "type": "button",
        "text": _plain(_clip(label, BUTTON_TEXT_MAX)),
        "action_id": action,
    }
    if "value" in part.attrs:
        button["value"] = part.attrs["value"][:BUTTON_VALUE_MAX]
    if "url" in part.attrs:
        button["url"] = part.attrs["url"]
    if part.attrs.get("style") in ("primary", "danger"):
        button["style"] = part.attrs["style"]
    return button


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": True}


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text}


def _size(blocks: Block | list[Block]) -> int:
    return len(json.dumps(blocks, ensure_ascii=False))


def _with_id(block: Block, index: int) -> Block:
    if index and "block_id" in block:
        block = {**block, "block_id": f"{block['block_id']}-{index}"}
    return block


def _fit_header(block: Block) -> list[Block]:
    text = block["text"]["text"]
    if len(text) <= HEADER_MAX:
        return [block]
    pieces = []
    while len(text) > HEADER_MAX:
        cut = text.rfind(" ", HEADER_MAX // 2, HEADER_MAX)
        cut = cut if cut > 0 else HEADER_MAX
        pieces.append(text[:cut])
        text = text[cut:].lstrip(" ")
    pieces.append(text)
    return [
        _with_id({**block, "text": {**block["text"], "text": p}}, i)
        for i, p in enumerate(pieces)
        if p
    ]


def _fit_text(text: str, limit: int) -> list[str]:
    """Split by characters, then tighter until every piece's JSON fits the budget."""
    while True:
        pieces = split_text(text, limit)
        if all(_size({"t": p}) <= MESSAGE_BUDGET // 2 for p in pieces) or limit < 64:
            return pieces
        limit //= 2


def _fit_section(block: Block) -> list[Block]:
    out: list[Block] = []
    rest = {k: v for k, v in block.items() if k not in ("text", "fields")}
    text = block.get("text")
    if text is not None:
        pieces = _fit_text(text["text"], TEXT_MAX) if text["text"] else [text["text"]]
        for i, piece in enumerate(pieces):
            part = {**rest, "text": {**text, "text": piece}}
            if i and "accessory" in part:
                del part["accessory"]
            out.append(part)
    fields = block.get("fields")
    if fields:
        split: list[Block] = []
        for item in fields:
            split.extend(_split_element(item, FIELD_MAX))
        for chunk in _chunks(split, FIELDS_MAX):
            part = {k: v for k, v in rest.items() if k != "accessory" or not out}
            out.append({**part, "fields": chunk})
    return [_with_id(b, i) for i, b in enumerate(out)] or [block]


def _fit_elements(block: Block, most: int, limit: int) -> list[Block]:
    elements: list[Block] = []
    for item in block.get("elements", []):
        elements.extend(_split_element(item, limit))
    if len(elements) <= most and _size(block) <= MESSAGE_BUDGET:
        return [block]
    return [
        _with_id({**block, "elements": chunk}, i) for i, chunk in enumerate(_chunks(elements, most))
    ]


def _split_element(item: Block, limit: int) -> list[Block]:
    if item.get("type") in ("mrkdwn", "plain_text") and len(item.get("text", "")) > limit:
        return [{**item, "text": p} for p in _fit_text(item["text"], limit)]
    return [item]


def _chunks(items: list[Block], most: int) -> list[list[Block]]:
    """Consecutive runs of at most ``most`` items whose JSON fits the budget."""
    chunks: list[list[Block]] = []
    chunk: list[Block] = []
    for item in items:
        if chunk and (len(chunk) >= most or _size(chunk + [item]) > MESSAGE_BUDGET - 200):
            chunks.append(chunk)
            chunk = []
        chunk.append(item)
    if chunk:
        chunks.append(chunk)
    return chunks


def _cut_point(line: str, limit: int) -> int:
    cut = line.rfind(" ", limit // 2, limit)
    if cut <= 0:
        cut = limit
    amp = line.rfind("&", max(0, cut - 8), cut)
    if amp > 0 and ";" not in line[amp:cut]:
        cut = amp
    opening = line.rfind("<", 0, cut)
    if opening > 0 and ">" not in line[opening:cut] and cut - opening < limit // 2:
        cut = opening
    return cut


def _balance_fences(pieces: list[str]) -> list[str]:
    out = []
    open_fence = False
    for piece in pieces:
        if open_fence:
            piece = f"{_FENCE}\n{piece}"
        open_fence = piece.count(_FENCE) % 2 == 1
        if open_fence:
            piece = f"{piece}\n{_FENCE}"
        out.append(piece)
    return out


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", limit // 2, limit - 1)
    return text[: cut if cut > 0 else limit - 1].rstrip() + "…"


def _fallback(text: str, blocks: Sequence[Block]) -> str:
    base = (text or "").strip()
    if not base:
        base = next((t for t in blocks_text(blocks).split("\n") if t.strip()), "").strip()
    return _clip(base or "segops", FALLBACK_MAX)

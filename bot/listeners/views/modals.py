"""The input forms (modals) segops opens, and reading their submitted values.

Modal views are Slack input forms rather than briefs, so they are built here; the
feedback form's choices and lengths come from :mod:`commands.feedback`, the proposal
form's kinds from :mod:`commands.proposals`.

Every input block uses ``action_id="value"`` so :func:`submitted` can read a
submission as ``{block_id: value}``; ``private_metadata`` carries JSON context.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from commands.feedback import IMPORTANCES, MAX_FIELD, MAX_TEXT, SENTIMENTS
from commands.proposals import KINDS

FEEDBACK_CALLBACK = "feedback_submit"
PROPOSAL_CALLBACK = "propose_submit"
SELECT_MAX_OPTIONS = 100
TEXT_MAX = 3000  # Slack's limit for a plain_text_input
PROPOSAL_KIND_LABELS = {
    "edit": "Change the rule or title",
    "rename": "Rename the segment",
    "archive": "Archive the segment",
    "persona": "Update the persona summary",
}
# The kinds and their order come from commands.proposals; a kind without a label fails here.
PROPOSAL_KINDS = tuple((kind, PROPOSAL_KIND_LABELS[kind]) for kind in KINDS)


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text[:150], "emoji": True}


def _option(value: str, label: str | None = None) -> dict[str, Any]:
    return {"text": _plain(label or value), "value": value}


def _select(options: Sequence[tuple[str, str]], initial: str | None = None) -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": "static_select",
        "action_id": "value",
        "options": [_option(v, label) for v, label in options],
    }
    if initial is not None:
        element["initial_option"] = _option(
            initial, next(label for v, label in options if v == initial)
        )
    return element


def _text(
    *, initial: str = "", multiline: bool = False, max_length: int = TEXT_MAX
) -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": "plain_text_input",
        "action_id": "value",
        "multiline": multiline,
        "max_length": max_length,
    }
    if initial:
        element["initial_value"] = initial[:max_length]
    return element


def _input(
    block_id: str, label: str, element: dict[str, Any], *, optional: bool = False, hint: str = ""
) -> dict[str, Any]:
    block: dict[str, Any] = {
        "type": "input",
        "block_id": block_id,
        "label": _plain(label),
        "element": element,
        "optional": optional,
    }
    if hint:
        block["hint"] = _plain(hint)
    return block


def _modal(
    callback_id: str, title: str, submit: str, blocks: list[dict[str, Any]], metadata: dict
) -> dict:
    return {
        "type": "modal",
        "callback_id": callback_id,
        "title": _plain(title[:24]),
        "submit": _plain(submit),
        "close": _plain("Cancel"),
        "private_metadata": json.dumps(metadata, separators=(",", ":")),
        "blocks": blocks,
    }


def feedback_modal(
    *, segments: Sequence[str], text: str = "", metadata: dict[str, Any]
) -> dict[str, Any]:
    """The "log field feedback" form, prefilled with ``text`` (a message's text)."""
    if 0 < len(segments) <= SELECT_MAX_OPTIONS:
        segment = _select([(name, name) for name in segments])
    else:
        segment = _text(max_length=64)
    blocks = [
        _input("segment", "Segment", segment),
        _input(
            "text",
            "What did you hear?",
            _text(initial=text, multiline=True, max_length=MAX_TEXT),
            hint="E-mail addresses, phone and card numbers are removed before saving.",
        ),
        _input("sentiment", "Sentiment", _select([(s, s) for s in SENTIMENTS]), optional=True),
        _input("importance", "Importance", _select([(i, i) for i in IMPORTANCES]), optional=True),
        _input("reference", "Deal or account", _text(max_length=MAX_FIELD), optional=True),
    ]
    return _modal(FEEDBACK_CALLBACK, "Field feedback", "Log", blocks, metadata)


def proposal_modal(
    *, segment: dict[str, Any], metadata: dict[str, Any], reason: str = ""
) -> dict[str, Any]:
    """The "propose a change" form for one segment's current definition.

    ``reason`` prefills the "Why?" field (a drift alert's message, for example).
    """
    persona = segment.get("persona") or {}
    blocks = [
        _input("kind", "Change", _select(PROPOSAL_KINDS, initial="edit")),
        _input("rule", "Rule", _text(initial=segment.get("rule", ""), multiline=True)),
        _input("title", "Title", _text(initial=segment.get("title", ""), max_length=150)),
        _input(
            "name",
            "New name (rename only)",
            _text(max_length=64),
            optional=True,
            hint="lower-case letters, digits and '-'",
        ),
        _input(
            "summary",
            "Persona summary",
            _text(initial=persona.get("summary", ""), multiline=True),
            optional=True,
        ),
        _input(
            "reason",
            "Why?",
            _text(initial=reason, multiline=True),
            hint="Owners see this with the impact.",
        ),
    ]
    return _modal(
        PROPOSAL_CALLBACK, f"Propose: {segment.get('name', '')}", "Propose", blocks, metadata
    )


def submitted(view: dict[str, Any]) -> dict[str, str | None]:
    """A submitted view's values as ``{block_id: value}`` (selects give the option value)."""
    values: dict[str, str | None] = {}
    for block_id, actions in (view.get("state") or {}).get("values", {}).items():
        field = actions.get("value") or next(iter(actions.values()), {})
        if field.get("type") == "static_select" or "selected_option" in field:
            option = field.get("selected_option") or {}
            values[block_id] = option.get("value")
        else:
            value = field.get("value")
            values[block_id] = value.strip() if isinstance(value, str) else None
    return values


def metadata(view: dict[str, Any]) -> dict[str, Any]:
    """The JSON context a modal was opened with (empty when absent or malformed)."""
    try:
        data = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def proposal_changes(kind: str, values: dict[str, str | None], current: dict[str, Any]) -> dict:
    """The partial definition a proposal form asks for, relative to ``current``."""
    changes: dict[str, Any] = {}
    if kind == "archive":
        return {"status": "archived"}
    if kind == "rename":
        if values.get("name"):
            changes["name"] = values["name"]
        if values.get("title") and values["title"] != current.get("title"):
            changes["title"] = values["title"]
        return changes
    if kind == "persona":
        return {"persona": {"summary": values.get("summary") or ""}}
    if values.get("rule") and values["rule"] != current.get("rule"):
        changes["rule"] = values["rule"]
    if values.get("title") and values["title"] != current.get("title"):
        changes["title"] = values["title"]
    return changes

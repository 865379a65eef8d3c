"""Slack's Block Kit limits, checked independently of briefs.blocks."""

from __future__ import annotations

import json
from typing import Any


def assert_block_ok(block: dict[str, Any]) -> None:
    kind = block["type"]
    if kind == "header":
        assert block["text"]["type"] == "plain_text"
        assert 0 < len(block["text"]["text"]) <= 150
    elif kind == "section":
        assert "text" in block or "fields" in block
        if "text" in block:
            assert 0 < len(block["text"]["text"]) <= 3000
        fields = block.get("fields", [])
        assert len(fields) <= 10
        assert all(0 < len(f["text"]) <= 2000 for f in fields)
    elif kind == "context":
        assert 0 < len(block["elements"]) <= 10
        assert all(0 < len(e["text"]) <= 3000 for e in block["elements"])
    elif kind == "actions":
        assert 0 < len(block["elements"]) <= 25
        for button in block["elements"]:
            assert button["type"] == "button"
            assert button["action_id"]
            assert 0 < len(button["text"]["text"]) <= 75
            assert len(button.get("value", "")) <= 2000
    else:
        assert kind == "divider", kind


def assert_message_ok(message: dict[str, Any]) -> None:
    assert 0 < len(message["text"]) <= 3000
    blocks = message["blocks"]
    assert len(blocks) <= 50
    assert len(json.dumps(blocks, ensure_ascii=False)) <= 11_000
    for block in blocks:
        assert_block_ok(block)


def words(text: str) -> str:
    """Text without whitespace, to compare content across split points."""
    return "".join(text.split())

"""The canonical text of a rule (``to_text``) and how literals and column names are written."""

from __future__ import annotations

import re
from typing import Any

from segments.rules.tree import All, Condition, InSegment, Not, Rule

KEYWORDS = frozenset(
    {"and", "or", "not", "in", "between", "is", "null", "true", "false", "in_segment"}
)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?")


def _show(value: Any) -> str:
    """A literal as it is written in rule text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


_QUOTES = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\t": "\\t", "\r": "\\r"}
_NEEDS_ESCAPE = re.compile(r"[\\'\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def _quote(text: str) -> str:
    def one(match: re.Match[str]) -> str:
        ch = match.group()
        return _QUOTES.get(ch) or f"\\u{ord(ch):04x}"

    return "'" + _NEEDS_ESCAPE.sub(one, text) + "'"


def _column_text(name: str) -> str:
    if _IDENTIFIER.fullmatch(name) and name.lower() not in KEYWORDS:
        return name
    return "`" + name.replace("`", "``") + "`"


def to_text(rule: Rule) -> str:
    """The canonical text of a rule: lower-case keywords, single quotes, minimal brackets."""
    return _text(rule, None)


def _text(rule: Rule, parent: str | None) -> str:
    if isinstance(rule, Condition):
        col = _column_text(rule.column)
        if rule.op in ("is null", "is not null"):
            return f"{col} {rule.op}"
        if rule.op in ("in", "not in"):
            assert isinstance(rule.value, tuple)
            return f"{col} {rule.op} ({', '.join(_show(v) for v in rule.value)})"
        if rule.op == "between":
            assert isinstance(rule.value, tuple)
            low, high = rule.value
            return f"{col} between {_show(low)} and {_show(high)}"
        return f"{col} {rule.op} {_show(rule.value)}"
    if isinstance(rule, InSegment):
        return f"in_segment({_quote(rule.name)})"
    if isinstance(rule, Not):
        return "not " + _text(rule.item, "not")
    if isinstance(rule, All):
        text = " and ".join(_text(item, "and") for item in rule.items)
        return f"({text})" if parent == "not" else text
    text = " or ".join(_text(item, "or") for item in rule.items)
    return f"({text})" if parent in ("and", "not") else text

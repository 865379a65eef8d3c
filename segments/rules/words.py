"""A rule in plain words (``describe``): ``plan is one of pro, team and seats is at least 10``."""

from __future__ import annotations

from typing import Any

from segments.rules.checks import parse_date
from segments.rules.tree import All, Condition, InSegment, Not, Rule

_WORDS = {
    "=": "is",
    "!=": "is not",
    "<": "is less than",
    "<=": "is at most",
    ">": "is more than",
    ">=": "is at least",
}
_DATE_WORDS = {"<": "is before", "<=": "is on or before", ">": "is after", ">=": "is on or after"}
_LIST_WORDS = {"in": "is one of", "not in": "is not one of", "between": "is between"}
_NEGATED = {
    "=": "is not",
    "!=": "is",
    "<": "is not less than",
    "<=": "is not at most",
    ">": "is not more than",
    ">=": "is not at least",
    "in": "is not one of",
    "not in": "is one of",
    "between": "is not between",
}


def _plain(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _phrase(cond: Condition, negated: bool = False) -> str:
    col = cond.column
    if cond.op in ("is null", "is not null"):
        missing = (cond.op == "is null") != negated
        return f"{col} is {'missing' if missing else 'present'}"
    if negated:
        verb = _NEGATED[cond.op]
    elif cond.op in _LIST_WORDS:
        verb = _LIST_WORDS[cond.op]
    elif parse_date(cond.value) is not None and cond.op in _DATE_WORDS:
        verb = _DATE_WORDS[cond.op]
    else:
        verb = _WORDS[cond.op]
    if cond.op == "between":
        assert isinstance(cond.value, tuple)
        return f"{col} {verb} {_plain(cond.value[0])} and {_plain(cond.value[1])}"
    if isinstance(cond.value, tuple):
        return f"{col} {verb} {', '.join(_plain(v) for v in cond.value)}"
    return f"{col} {verb} {_plain(cond.value)}"


def describe(rule: Rule) -> str:
    """The rule in plain words, e.g. ``plan is one of pro, team and seats is at least 10``."""
    return _describe(rule, None)


def _describe(rule: Rule, parent: str | None) -> str:
    if isinstance(rule, Condition):
        return _phrase(rule)
    if isinstance(rule, InSegment):
        return f"in segment {rule.name}"
    if isinstance(rule, Not):
        if isinstance(rule.item, Condition):
            return _phrase(rule.item, negated=True)
        if isinstance(rule.item, InSegment):
            return f"not in segment {rule.item.name}"
        return "not " + _describe(rule.item, "not")
    if isinstance(rule, All):
        text = " and ".join(_describe(item, "and") for item in rule.items)
        return f"({text})" if parent == "not" else text
    text = " or ".join(_describe(item, "or") for item in rule.items)
    return f"({text})" if parent in ("and", "not") else text

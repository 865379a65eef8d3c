"""The typed rule tree: condition, and/or/not and in_segment nodes, their JSON form
(``rule_to_dict`` / ``rule_from_dict``) and walks over the tree (columns, dependencies).

Every node knows its ``depth`` and the number of ``conditions`` under it, and refuses to
be built beyond the limits of :mod:`segments.rules.limits`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

from segments.rules.limits import (
    MAX_RULE_CONDITIONS,
    MAX_RULE_DEPTH,
    RuleLimitError,
    too_deep,
    too_many_conditions,
)
from segments.schema import RuleError

Scalar = str | int | float | bool
COMPARISONS = ("=", "!=", "<", "<=", ">", ">=")
OPS = (*COMPARISONS, "in", "not in", "between", "is null", "is not null")


class Span(NamedTuple):
    """Where a node starts in the rule text: 0-based offset, 1-based line and column."""

    offset: int
    line: int
    column: int


def _is_scalar(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, str | int | bool)


# ---------------------------------------------------------------------------- the tree


@dataclass(frozen=True)
class Condition:
    """``column op value``; value is a scalar, a tuple (``in``), ``(low, high)`` or None."""

    column: str
    op: str
    value: Scalar | tuple[Scalar, ...] | None = None
    span: Span | None = field(default=None, compare=False, repr=False)

    depth: ClassVar[int] = 1
    conditions: ClassVar[int] = 1

    def __post_init__(self) -> None:
        if not isinstance(self.column, str) or not self.column:
            raise RuleError(f"a condition needs a column name, got {self.column!r}")
        if self.op not in OPS:
            known = ", ".join(OPS)
            raise RuleError(f"unknown operator {self.op!r} (known: {known})")
        value = self.value
        if self.op in ("in", "not in", "between") and isinstance(value, list):
            value = tuple(value)
            object.__setattr__(self, "value", value)
        if self.op in ("is null", "is not null"):
            if value is not None:
                raise RuleError(f"'{self.op}' takes no value")
        elif self.op in ("in", "not in"):
            if not isinstance(value, tuple) or not value:
                raise RuleError(f"'{self.op}' needs a list of at least one value")
            for item in value:
                if not _is_scalar(item):
                    raise RuleError(f"'{self.op}' values must be numbers, strings or booleans")
        elif self.op == "between":
            if not isinstance(value, tuple) or len(value) != 2:
                raise RuleError("'between' needs a list of two values [low, high]")
            if not all(_is_scalar(v) for v in value):
                raise RuleError("'between' values must be numbers, strings or booleans")
        elif not _is_scalar(value):
            raise RuleError(f"'{self.op}' needs one number, string or boolean, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"op": self.op, "column": self.column}
        if isinstance(self.value, tuple):
            data["value"] = list(self.value)
        elif self.value is not None:
            data["value"] = self.value
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Condition:
        rule = rule_from_dict(data)
        if not isinstance(rule, cls):
            raise RuleError(f"rule: expected a condition, got op {data.get('op')!r}")
        return rule


def _flatten(kind: type, items: Iterable[Rule], word: str) -> tuple[Rule, ...]:
    flat: list[Rule] = []
    for item in items:
        if not isinstance(item, Condition | All | AnyOf | Not | InSegment):
            raise RuleError(f"'{word}' items must be rules, got {item!r}")
        flat.extend(item.items if isinstance(item, kind) else (item,))  # type: ignore[attr-defined]
    if len(flat) < 2:
        raise RuleError(f"'{word}' needs at least two items")
    return tuple(flat)


def _measure(node: Any, children: Iterable[Rule]) -> None:
    """Set ``depth`` and ``conditions`` of a branch node; RuleError past a limit."""
    depth = 0
    conditions = 0
    for child in children:
        depth = max(depth, child.depth)
        conditions += child.conditions
    if depth + 1 > MAX_RULE_DEPTH:
        raise too_deep()
    if conditions > MAX_RULE_CONDITIONS:
        raise too_many_conditions()
    object.__setattr__(node, "depth", depth + 1)
    object.__setattr__(node, "conditions", conditions)


@dataclass(frozen=True)
class All:
    """Every item holds. Nested ``All`` items are flattened; at least two items."""

    items: tuple[Rule, ...]
    depth: int = field(init=False, compare=False, repr=False)
    conditions: int = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "items", _flatten(All, self.items, "and"))
        _measure(self, self.items)

    def to_dict(self) -> dict[str, Any]:
        return {"op": "and", "items": [item.to_dict() for item in self.items]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> All:
        return _typed_from_dict(cls, data)


@dataclass(frozen=True)
class AnyOf:
    """At least one item holds. Nested ``AnyOf`` items are flattened; at least two items."""

    items: tuple[Rule, ...]
    depth: int = field(init=False, compare=False, repr=False)
    conditions: int = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "items", _flatten(AnyOf, self.items, "or"))
        _measure(self, self.items)

    def to_dict(self) -> dict[str, Any]:
        return {"op": "or", "items": [item.to_dict() for item in self.items]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AnyOf:
        return _typed_from_dict(cls, data)


@dataclass(frozen=True)
class Not:
    """The item does not hold (plain negation: true where the item is false)."""

    item: Rule
    depth: int = field(init=False, compare=False, repr=False)
    conditions: int = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.item, Condition | All | AnyOf | Not | InSegment):
            raise RuleError(f"'not' needs a rule, got {self.item!r}")
        _measure(self, (self.item,))

    def to_dict(self) -> dict[str, Any]:
        return {"op": "not", "item": self.item.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Not:
        return _typed_from_dict(cls, data)


@dataclass(frozen=True)
class InSegment:
    """Member of another segment (its current membership, evaluated first)."""

    name: str
    span: Span | None = field(default=None, compare=False, repr=False)

    depth: ClassVar[int] = 1
    conditions: ClassVar[int] = 1

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise RuleError(f"in_segment needs a segment name, got {self.name!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"op": "in_segment", "segment": self.name}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InSegment:
        return _typed_from_dict(cls, data)


Rule = Condition | All | AnyOf | Not | InSegment


def all_of(*items: Rule) -> Rule:
    """``item1 and item2 ...``; a single item is returned as it is."""
    return items[0] if len(items) == 1 else All(items)


def any_of(*items: Rule) -> Rule:
    """``item1 or item2 ...``; a single item is returned as it is."""
    return items[0] if len(items) == 1 else AnyOf(items)


def walk(rule: Rule) -> Iterator[Rule]:
    """Every node of the tree, parents before children."""
    stack = [rule]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, All | AnyOf):
            stack.extend(reversed(node.items))
        elif isinstance(node, Not):
            stack.append(node.item)


def columns(rule: Rule) -> set[str]:
    """The column names the rule uses, as written."""
    return {node.column for node in walk(rule) if isinstance(node, Condition)}


def dependencies(rule: Rule) -> set[str]:
    """The segments the rule refers to with ``in_segment``."""
    return {node.name for node in walk(rule) if isinstance(node, InSegment)}


def top_clauses(rule: Rule) -> list[Rule]:
    """The AND-ed top-level clauses (the rule itself when it is not an ``and``)."""
    return list(rule.items) if isinstance(rule, All) else [rule]


# ---------------------------------------------------------------------------- JSON form

_CONDITION_KEYS = {"op", "column", "value"}


def rule_to_dict(rule: Rule) -> dict[str, Any]:
    """The JSON form of a rule."""
    return rule.to_dict()


def rule_from_dict(data: Any) -> Rule:
    """Build a rule from its JSON form; RuleError naming the path on malformed input.

    The limits on depth and conditions are checked on the way down, before any deeper
    object is read.
    """
    return _from_dict(data, "rule", 1, [0])


def _typed_from_dict(cls: type, data: Mapping[str, Any]) -> Any:
    rule = rule_from_dict(data)
    if not isinstance(rule, cls):
        raise RuleError(f"rule: expected {cls.__name__}, got op {data.get('op')!r}")
    return rule


def _from_dict(data: Any, path: str, depth: int, seen: list[int]) -> Rule:
    """One node at ``depth``; ``seen[0]`` counts the conditions read so far."""
    if depth > MAX_RULE_DEPTH:
        raise too_deep()
    if not isinstance(data, Mapping):
        raise RuleError(f"{path}: expected an object with an 'op' key, got {data!r}")
    op = data.get("op")
    if not isinstance(op, str):
        raise RuleError(f"{path}: missing 'op' (one of and, or, not, in_segment, {', '.join(OPS)})")
    op = op.strip().lower()

    def keys(allowed: set[str], required: set[str]) -> None:
        extra = sorted(set(data) - allowed)
        if extra:
            raise RuleError(f"{path}: unexpected key {extra[0]!r} for op {op!r}")
        missing = sorted(required - set(data))
        if missing:
            raise RuleError(f"{path}: op {op!r} needs {missing[0]!r}")

    try:
        if op in ("and", "or"):
            keys({"op", "items"}, {"op", "items"})
            items = data["items"]
            if not isinstance(items, list | tuple):
                raise RuleError(f"{path}.items: expected a list of rules")
            if seen[0] + len(items) > MAX_RULE_CONDITIONS:
                raise too_many_conditions()
            built = [
                _from_dict(item, f"{path}.items[{i}]", depth + 1, seen)
                for i, item in enumerate(items)
            ]
            return All(tuple(built)) if op == "and" else AnyOf(tuple(built))
        if op == "not":
            keys({"op", "item"}, {"op", "item"})
            return Not(_from_dict(data["item"], f"{path}.item", depth + 1, seen))
        if op in ("in_segment", *OPS):
            seen[0] += 1
            if seen[0] > MAX_RULE_CONDITIONS:
                raise too_many_conditions()
        if op == "in_segment":
            keys({"op", "segment"}, {"op", "segment"})
            return InSegment(data["segment"])
        if op in OPS:
            if op in ("is null", "is not null"):
                keys({"op", "column"}, {"op", "column"})
            else:
                keys(_CONDITION_KEYS, _CONDITION_KEYS)
            value = data.get("value")
            if op in ("in", "not in", "between"):
                if not isinstance(value, list | tuple):
                    raise RuleError(f"'{op}' needs a list of values, got {value!r}")
                value = tuple(value)
            return Condition(data["column"], op, value)
    except RuleError as exc:
        if isinstance(exc, RuleLimitError) or exc.message.startswith(path):
            raise
        raise RuleError(f"{path}: {exc.message}") from None
    raise RuleError(f"{path}: unknown op {op!r}")

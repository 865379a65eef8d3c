"""The segment rule language: a typed tree, its text and JSON forms, and its checks.

Text form (keywords are case-insensitive; ``not`` binds tighter than ``and``,
which binds tighter than ``or``)::

    plan in ('pro', 'team') and seats >= 10
    (region = "EU" or region is null) and not in_segment('trial')
    signup_date between '2026-01-01' and '2026-03-31' and crm.plan != 'free'
    mrr > -2.5e3 or `odd column` not in (1, 2)

Columns are identifiers, ``source.column`` or back-quoted (```a b```; a back-quote
inside is doubled). Literals are numbers (``-3``, ``2.5``, ``1e3``), strings in
single or double quotes (escapes ``\\\\ \\' \\" \\n \\t \\r \\uXXXX``), ``true`` and
``false``. A date column is compared with a ``'YYYY-MM-DD'`` string.

JSON form, one object per node (``rule_to_dict`` / ``rule_from_dict``)::

    {"op": "and", "items": [
        {"op": "in", "column": "plan", "value": ["pro", "team"]},
        {"op": ">=", "column": "seats", "value": 10},
        {"op": "not", "item": {"op": "in_segment", "segment": "trial"}},
        {"op": "between", "column": "mrr", "value": [100, 500]},
        {"op": "is null", "column": "churned_at"}]}

Null semantics are two-valued: every comparison, ``in``, ``not in`` and
``between`` on a null is false, ``is null`` is true, and ``not`` is plain
negation (so ``not seats > 3`` holds for a null ``seats``). The pandas and the
SQL compilers (``segments.evaluate``) agree on this, row for row.
"""

from __future__ import annotations

import difflib
import math
import re
import threading
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from segments.schema import Kind, RuleError, Schema

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from sqlalchemy import ColumnElement, FromClause

    from segments.evaluate import FrameColumns

__all__ = [
    "OPS",
    "All",
    "AnyOf",
    "Condition",
    "InSegment",
    "Not",
    "Rule",
    "RuleError",
    "Span",
    "all_of",
    "any_of",
    "columns",
    "dependencies",
    "describe",
    "literal_problem",
    "order_segments",
    "parse",
    "parse_date",
    "rule_from_dict",
    "rule_to_dict",
    "to_mask",
    "to_sql",
    "to_text",
    "top_clauses",
    "validate",
    "walk",
]

Scalar = str | int | float | bool
COMPARISONS = ("=", "!=", "<", "<=", ">", ">=")
OPS = (*COMPARISONS, "in", "not in", "between", "is null", "is not null")
KEYWORDS = frozenset(
    {"and", "or", "not", "in", "between", "is", "null", "true", "false", "in_segment"}
)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class Span(NamedTuple):
    """Where a node starts in the rule text: 0-based offset, 1-based line and column."""

    offset: int
    line: int
    column: int


def _error(message: str, span: Span | None) -> RuleError:
    if span is None:
        return RuleError(message)
    return RuleError(message, span.offset, line=span.line, column=span.column)


def _is_scalar(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, str | int | bool)


def _show(value: Any) -> str:
    """A literal as it is written in rule text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


# ---------------------------------------------------------------------------- the tree


@dataclass(frozen=True)
class Condition:
    """``column op value``; value is a scalar, a tuple (``in``), ``(low, high)`` or None."""

    column: str
    op: str
    value: Scalar | tuple[Scalar, ...] | None = None
    span: Span | None = field(default=None, compare=False, repr=False)

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


@dataclass(frozen=True)
class All:
    """Every item holds. Nested ``All`` items are flattened; at least two items."""

    items: tuple[Rule, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "items", _flatten(All, self.items, "and"))

    def to_dict(self) -> dict[str, Any]:
        return {"op": "and", "items": [item.to_dict() for item in self.items]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> All:
        return _typed_from_dict(cls, data)


@dataclass(frozen=True)
class AnyOf:
    """At least one item holds. Nested ``AnyOf`` items are flattened; at least two items."""

    items: tuple[Rule, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "items", _flatten(AnyOf, self.items, "or"))

    def to_dict(self) -> dict[str, Any]:
        return {"op": "or", "items": [item.to_dict() for item in self.items]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AnyOf:
        return _typed_from_dict(cls, data)


@dataclass(frozen=True)
class Not:
    """The item does not hold (plain negation: true where the item is false)."""

    item: Rule

    def __post_init__(self) -> None:
        if not isinstance(self.item, Condition | All | AnyOf | Not | InSegment):
            raise RuleError(f"'not' needs a rule, got {self.item!r}")

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
    """Build a rule from its JSON form; RuleError naming the path on malformed input."""
    return _from_dict(data, "rule")


def _typed_from_dict(cls: type, data: Mapping[str, Any]) -> Any:
    rule = rule_from_dict(data)
    if not isinstance(rule, cls):
        raise RuleError(f"rule: expected {cls.__name__}, got op {data.get('op')!r}")
    return rule


def _from_dict(data: Any, path: str) -> Rule:
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
            built = [_from_dict(item, f"{path}.items[{i}]") for i, item in enumerate(items)]
            return All(tuple(built)) if op == "and" else AnyOf(tuple(built))
        if op == "not":
            keys({"op", "item"}, {"op", "item"})
            return Not(_from_dict(data["item"], f"{path}.item"))
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
        if exc.message.startswith(path):
            raise
        raise RuleError(f"{path}: {exc.message}") from None
    raise RuleError(f"{path}: unknown op {op!r}")


# ---------------------------------------------------------------------------- text form

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"'}
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


def _span(token: Token) -> Span:
    return Span(token.start_pos or 0, token.line or 1, token.column or 1)


def _unescape(token: Token) -> str:
    raw = token[1:-1]
    if "\\" not in raw:
        return str(raw)
    out: list[str] = []
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nxt = raw[i + 1]
        if nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
        elif nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", raw[i + 2 : i + 6]):
            out.append(chr(int(raw[i + 2 : i + 6], 16)))
            i += 6
        else:
            position = (token.start_pos or 0) + 1 + i
            raise RuleError(f"unknown escape '\\{nxt}' in string", position)
    return "".join(out)


class _Build(Transformer):
    """Turns the parse into the rule tree while the LALR parser reduces."""

    def start(self, children: list[Any]) -> Rule:
        return children[0]

    def or_expr(self, children: list[Rule]) -> Rule:
        return AnyOf(tuple(children))

    def and_expr(self, children: list[Rule]) -> Rule:
        return All(tuple(children))

    def negate(self, children: list[Any]) -> Rule:
        return Not(children[1])

    def group(self, children: list[Any]) -> Rule:
        return children[1]

    def in_segment(self, children: list[Any]) -> Rule:
        name = _unescape(children[2])
        if not name:
            raise RuleError("in_segment needs a segment name", children[2].start_pos)
        return InSegment(name, span=_span(children[0]))

    def column(self, children: list[Token]) -> Token:
        token = children[0]
        if token.type == "QUOTED_NAME":
            return token.update(value=token[1:-1].replace("``", "`"))
        return token

    def value(self, children: list[Token]) -> Scalar:
        token = children[0]
        if token.type == "STRING":
            return _unescape(token)
        if token.type == "TRUE":
            return True
        if token.type == "FALSE":
            return False
        if re.fullmatch(r"-?\d+", token):
            return int(token)
        number = float(token)
        if not math.isfinite(number):
            raise RuleError(f"number {token} is out of range", token.start_pos)
        return number

    def values(self, children: list[Any]) -> tuple[Scalar, ...]:
        return tuple(c for c in children if not (isinstance(c, Token) and c.type == "COMMA"))

    def compare(self, children: list[Any]) -> Rule:
        col, op, value = children
        return Condition(str(col), str(op), value, span=_span(col))

    def is_in(self, children: list[Any]) -> Rule:
        return Condition(str(children[0]), "in", children[3], span=_span(children[0]))

    def not_in(self, children: list[Any]) -> Rule:
        return Condition(str(children[0]), "not in", children[4], span=_span(children[0]))

    def between(self, children: list[Any]) -> Rule:
        col, _, low, high = children
        return Condition(str(col), "between", (low, high), span=_span(col))

    def is_null(self, children: list[Any]) -> Rule:
        return Condition(str(children[0]), "is null", span=_span(children[0]))

    def is_not_null(self, children: list[Any]) -> Rule:
        return Condition(str(children[0]), "is not null", span=_span(children[0]))


_parser_lock = threading.Lock()
_parser_instance: Lark | None = None


def _parser() -> Lark:
    global _parser_instance
    with _parser_lock:
        if _parser_instance is None:
            _parser_instance = Lark(
                (Path(__file__).parent / "rule_grammar.lark").read_text(encoding="utf-8"),
                parser="lalr",
                lexer="basic",
                transformer=_Build(),
                maybe_placeholders=False,
            )
        return _parser_instance


def parse(text: str) -> Rule:
    """Parse rule text into a tree; RuleError with the position of the first problem."""
    if not isinstance(text, str):
        raise RuleError(f"a rule must be text, got {type(text).__name__}")
    if not text.strip():
        raise RuleError("empty rule")
    try:
        return _parser().parse(text)
    except RuleError as exc:
        if exc.position is None:
            raise
        raise RuleError.at(exc.message, text, exc.position) from None
    except UnexpectedCharacters as exc:
        raise _character_error(text, exc.pos_in_stream) from None
    except UnexpectedToken as exc:
        raise _token_error(text, exc) from None
    except UnexpectedInput as exc:  # pragma: no cover - LALR reports the two above
        raise RuleError.at("cannot read the rule", text, exc.pos_in_stream or 0) from None


def _character_error(text: str, position: int) -> RuleError:
    char = text[position]
    if char in "'\"":
        return RuleError.at("unterminated string", text, position)
    if char == "`":
        return RuleError.at("unterminated quoted column name", text, position)
    return RuleError.at(f"unexpected character {char!r}", text, position)


_VALUE_TERMINALS = {"NUMBER", "STRING", "TRUE", "FALSE"}
_CONDITION_STARTS = {"NAME", "QUOTED_NAME", "NOT", "LPAR", "IN_SEGMENT"}


def _token_text(token: Token) -> str:
    value = str(token)
    if token.type in ("STRING", "QUOTED_NAME"):
        shown = value if len(value) <= 24 else value[:20] + "..."
        return shown
    return f"'{value}'"


def _tokens_before(text: str, position: int) -> list[Token]:
    tokens: list[Token] = []
    try:
        for token in _parser().lex(text):
            if token.end_pos is None or token.end_pos > position:
                break
            tokens.append(token)
    except UnexpectedInput:
        pass
    return tokens


def _in_value_list(tokens: list[Token]) -> bool:
    """Whether the innermost open bracket before the error is an ``in (...)`` list."""
    opened: list[bool] = []
    for i, token in enumerate(tokens):
        if token.type == "LPAR":
            opened.append(i > 0 and tokens[i - 1].type == "IN")
        elif token.type == "RPAR" and opened:
            opened.pop()
    return bool(opened and opened[-1])


def _token_error(text: str, exc: UnexpectedToken) -> RuleError:
    token = exc.token
    expected = set(exc.expected)
    at_end = token.type == "$END"
    position = len(text.rstrip()) if at_end else token.start_pos
    tokens = _tokens_before(text, position)
    previous = tokens[-1] if tokens else None
    after = f" after {_token_text(previous)}" if previous is not None else ""
    found = "end of rule" if at_end else _token_text(token)
    if len(tokens) >= 2 and tokens[-2].type == "IN_SEGMENT" and previous.type == "LPAR":
        message = "in_segment needs a quoted segment name, e.g. in_segment('trial')"
    elif expected & _VALUE_TERMINALS and "NAME" not in expected:
        message = f"expected a value{after}"
        if token.type == "NAME":
            message += f", found {token} (quote text: {_quote(str(token))})"
    elif "CMP" in expected:
        message = f"expected an operator (=, !=, <, <=, >, >=, in, between, is){after}"
    elif "NAME" in expected:
        message = f"expected a condition{after}" if previous else f"unexpected {found}"
    elif "NULL" in expected:
        message = f"expected 'null'{after}"
    elif expected == {"IN"}:
        message = f"expected 'in'{after}"
    elif expected == {"LPAR"}:
        message = f"expected '('{after}"
    elif expected == {"_AND"}:
        message = f"expected 'and'{after}"
    elif "COMMA" in expected and _in_value_list(tokens):
        message = f"expected ',' or ')'{after}"
    elif at_end and "RPAR" in expected:
        message = "missing ')'"
    elif token.type in _CONDITION_STARTS:
        message = f"unexpected {found}: join conditions with 'and' or 'or'"
    else:
        message = f"unexpected {found}"
    return RuleError.at(message, text, position)


# ---------------------------------------------------------------------------- checks


def parse_date(value: Any) -> date | None:
    """The date a ``'YYYY-MM-DD'`` literal means, or None when it is not one."""
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def literal_problem(column: str, kind: Kind, op: str, value: Any) -> str | None:
    """Why ``column op value`` makes no sense for a column of ``kind`` (None when it does)."""
    if op in ("is null", "is not null"):
        return None
    values = value if isinstance(value, tuple) else (value,)
    if kind == "bool" and op not in ("=", "!=", "in", "not in"):
        return f"'{op}' does not apply to true/false column {column!r}"
    for item in values:
        if kind == "number":
            if isinstance(item, bool) or not isinstance(item, int | float):
                return f"column {column!r} holds numbers: {_show(item)} is not a number"
            if isinstance(item, int) and not -(2**63) < item < 2**63:
                return f"number {item} is out of range for column {column!r}"
        elif kind == "string":
            if not isinstance(item, str):
                return (
                    f"column {column!r} holds text: {_show(item)} is not a string "
                    f"(quote it: {_quote(_show(item))})"
                )
        elif kind == "bool":
            if not isinstance(item, bool):
                return f"column {column!r} holds true/false: {_show(item)} is not true or false"
        elif kind == "date":
            if parse_date(item) is None:
                return f"column {column!r} holds dates: {_show(item)} is not a date 'YYYY-MM-DD'"
    return None


def validate(rule: Rule, schema: Schema, *, segments: Collection[str]) -> list[RuleError]:
    """Every problem of the rule against the schema and the known segment names."""
    problems: list[RuleError] = []
    for node in walk(rule):
        if isinstance(node, InSegment):
            if node.name not in segments:
                close = difflib.get_close_matches(node.name, list(segments), n=1, cutoff=0.6)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                problems.append(_error(f"unknown segment {node.name!r}{hint}", node.span))
        elif isinstance(node, Condition):
            try:
                kind = schema.kind(node.column)
            except RuleError as exc:
                problems.append(_error(exc.message, node.span))
                continue
            problem = literal_problem(node.column, kind, node.op, node.value)
            if problem:
                problems.append(_error(problem, node.span))
    problems.sort(key=lambda e: e.position if e.position is not None else -1)
    return problems


def order_segments(deps: Mapping[str, Iterable[str]]) -> list[str]:
    """Segment names, each after the segments it refers to; RuleError on a cycle.

    Ties keep the order of ``deps``. A reference to a name missing from ``deps``
    is an error.
    """
    graph = {name: sorted(set(refs)) for name, refs in deps.items()}
    done: set[str] = set()
    order: list[str] = []
    for root in graph:
        if root in done:
            continue
        path = [root]
        on_path = {root: 0}
        stack = [(root, iter(graph[root]))]
        while stack:
            node, pending = stack[-1]
            for ref in pending:
                if ref not in graph:
                    raise RuleError(f"segment {node!r} refers to unknown segment {ref!r}")
                if ref in done:
                    continue
                if ref in on_path:
                    cycle = [*path[on_path[ref] :], ref]
                    raise RuleError("reference cycle: " + " -> ".join(cycle))
                on_path[ref] = len(path)
                path.append(ref)
                stack.append((ref, iter(graph[ref])))
                break
            else:
                stack.pop()
                path.pop()
                del on_path[node]
                done.add(node)
                order.append(node)
    return order


# ---------------------------------------------------------------------------- plain words

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


# ---------------------------------------------------------------------------- compilers


def to_mask(
    rule: Rule,
    frame: pd.DataFrame,
    schema: Schema,
    segment_masks: Mapping[str, np.ndarray] | None = None,
    *,
    cache: FrameColumns | None = None,
) -> np.ndarray:
    """The rows of ``frame`` the rule selects, as a boolean array (see ``segments.evaluate``)."""
    from segments import evaluate

    return evaluate.to_mask(rule, frame, schema, segment_masks, cache=cache)


def to_sql(
    rule: Rule,
    table: FromClause,
    schema: Schema,
    segment_clauses: Mapping[str, ColumnElement[bool]] | None = None,
) -> ColumnElement[bool]:
    """The rule as a SQLAlchemy boolean clause on ``table`` (see ``segments.evaluate``)."""
    from segments import evaluate

    return evaluate.to_sql(rule, table, schema, segment_clauses)

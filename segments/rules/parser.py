"""Rule text to the tree: the lark grammar (``rule_grammar.lark``), the transformer that
builds nodes while the LALR parser reduces, and the positioned error messages.

Text longer than :data:`~segments.rules.limits.MAX_RULE_LENGTH` is refused before the
lexer sees it; the nodes refuse depth and condition counts past their limits as the
parser reduces, so a hostile rule stops at the first node too many. Trees are immutable,
so the tree of a text parsed before is reused: validating, fingerprinting and storing a
segment parse its rule once."""

from __future__ import annotations

import math
import re
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from segments.rules.limits import MAX_RULE_LENGTH, too_long
from segments.rules.text import _quote
from segments.rules.tree import All, AnyOf, Condition, InSegment, Not, Rule, Scalar, Span
from segments.schema import RuleError

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"'}


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


_MEMO_LENGTH = 4_000  # longer texts are parsed anew (bounds the memo's memory)


def parse(text: str) -> Rule:
    """Parse rule text into a tree; RuleError with the position of the first problem."""
    if not isinstance(text, str):
        raise RuleError(f"a rule must be text, got {type(text).__name__}")
    if len(text) > MAX_RULE_LENGTH:
        raise too_long(len(text))
    if len(text) <= _MEMO_LENGTH:
        return _parse_memo(text)
    return _parse(text)


@lru_cache(maxsize=2048)
def _parse_memo(text: str) -> Rule:
    return _parse(text)


def _parse(text: str) -> Rule:
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

"""Checks: a rule against a schema and the known segments, literals against column kinds,
date literals, and the order in which segments that refer to each other are evaluated."""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Iterable, Mapping
from datetime import date
from typing import Any

from segments.rules.text import _quote, _show
from segments.rules.tree import Condition, InSegment, Rule, Span, walk
from segments.schema import Kind, RuleError, Schema

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _error(message: str, span: Span | None) -> RuleError:
    if span is None:
        return RuleError(message)
    return RuleError(message, span.offset, line=span.line, column=span.column)


def parse_date(value: Any) -> date | None:
    """The date a ``'YYYY-MM-DD'`` literal means, or None when it is not one."""
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _as_date(value: Any) -> date:
    day = parse_date(value)
    assert day is not None  # checked by literal_problem
    return day


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

"""The SQL compiler: rules to boolean SQLAlchemy Core clauses that select the same rows as
the pandas masks (see :mod:`segments.rules`): null-guarded leaves, dates by calendar day,
text ordered by code point."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ColumnElement, FromClause
from sqlalchemy.sql.visitors import InternalTraversal

from segments.rules.checks import _as_date, literal_problem
from segments.rules.tree import All, AnyOf, Condition, InSegment, Not, Rule
from segments.schema import RuleError, Schema

__all__ = ["to_sql"]


class _CodePointOrder(ColumnElement[Any]):
    """Text ordered by code point: ``COLLATE "C"`` on PostgreSQL, the column as is elsewhere."""

    inherit_cache = True
    _traverse_internals = [("element", InternalTraversal.dp_clauseelement)]

    def __init__(self, element: ColumnElement[Any]) -> None:
        self.element = element
        self.type = element.type


@compiles(_CodePointOrder)
def _code_point_default(element: _CodePointOrder, compiler: Any, **kw: Any) -> str:
    return compiler.process(element.element, **kw)


@compiles(_CodePointOrder, "postgresql")
def _code_point_postgresql(element: _CodePointOrder, compiler: Any, **kw: Any) -> str:
    return f'{compiler.process(element.element, **kw)} COLLATE "C"'


class _DayBound(ColumnElement[Any]):
    """The start of a calendar day: ``'YYYY-MM-DD'`` text on SQLite, a DATE elsewhere."""

    inherit_cache = True
    _traverse_internals = [("day", InternalTraversal.dp_string)]
    type = sa.Date()

    def __init__(self, day: date) -> None:
        self.day = day.isoformat()


@compiles(_DayBound)
def _day_default(element: _DayBound, compiler: Any, **kw: Any) -> str:
    return compiler.process(sa.literal(date.fromisoformat(element.day), sa.Date()), **kw)


@compiles(_DayBound, "sqlite")
def _day_sqlite(element: _DayBound, compiler: Any, **kw: Any) -> str:
    return compiler.process(sa.literal(element.day, sa.String()), **kw)


def _literal(value: Any) -> ColumnElement[Any]:
    if isinstance(value, bool):
        return sa.literal(value, sa.Boolean())
    if isinstance(value, int):
        return sa.literal(value, sa.BigInteger())
    if isinstance(value, float):
        return sa.literal(value, sa.Float())
    return sa.literal(value, sa.String())


def _sql_compare(op: str, col: ColumnElement[Any], value: Any) -> ColumnElement[bool]:
    operators: dict[str, Callable[[Any, Any], Any]] = {
        "=": lambda a, b: a == b,
        "!=": lambda a, b: a != b,
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
    }
    if op in operators:
        return operators[op](col, _literal(value))
    if op == "between":
        return col.between(_literal(value[0]), _literal(value[1]))
    items = [_literal(v) for v in value]
    return col.in_(items) if op == "in" else col.not_in(items)


def _sql_days(op: str, col: ColumnElement[Any], value: Any) -> ColumnElement[bool]:
    def day_range(item: Any) -> tuple[ColumnElement[Any], ColumnElement[Any] | None]:
        day = _as_date(item)
        following = day + timedelta(days=1) if day < date.max else None
        return _DayBound(day), _DayBound(following) if following else None

    def within(item: Any) -> ColumnElement[bool]:
        start, end = day_range(item)
        return sa.and_(col >= start, col < end) if end is not None else col >= start

    def below_end(item: Any) -> ColumnElement[bool]:
        end = day_range(item)[1]
        return col < end if end is not None else sa.true()

    def from_end(item: Any) -> ColumnElement[bool]:
        end = day_range(item)[1]
        return col >= end if end is not None else sa.false()

    if op == "between":
        return sa.and_(col >= day_range(value[0])[0], below_end(value[1]))
    if op == "in":
        return sa.or_(*(within(item) for item in value))
    if op == "not in":
        return sa.and_(*(sa.not_(within(item)) for item in value))
    if op == "=":
        return within(value)
    if op == "!=":
        return sa.not_(within(value))
    if op == "<":
        return col < day_range(value)[0]
    if op == "<=":
        return below_end(value)
    if op == ">":
        return from_end(value)
    return col >= day_range(value)[0]


def _sql_condition(cond: Condition, table: FromClause, schema: Schema) -> ColumnElement[bool]:
    name = schema.resolve(cond.column)
    kind = schema.columns[name]
    if name not in table.c:
        raise RuleError(f"column {name!r} is not in table {getattr(table, 'name', table)!s}")
    col = table.c[name]
    if cond.op == "is null":
        return col.is_(None)
    if cond.op == "is not null":
        return col.is_not(None)
    problem = literal_problem(cond.column, kind, cond.op, cond.value)
    if problem:
        raise RuleError(problem)
    if kind == "date":
        test = _sql_days(cond.op, col, cond.value)
    elif kind == "string" and cond.op in ("<", "<=", ">", ">=", "between"):
        test = _sql_compare(cond.op, _CodePointOrder(col), cond.value)
    else:
        test = _sql_compare(cond.op, col, cond.value)
    return sa.and_(col.is_not(None), test)


def to_sql(
    rule: Rule,
    table: FromClause,
    schema: Schema,
    segment_clauses: Mapping[str, ColumnElement[bool]] | None = None,
) -> ColumnElement[bool]:
    """The rule as a boolean SQLAlchemy clause over ``table`` (columns named as in the frame).

    ``in_segment(x)`` inlines ``segment_clauses[x]``, the clause of segment ``x``.
    """
    clauses = segment_clauses or {}

    def build(node: Rule) -> ColumnElement[bool]:
        if isinstance(node, Condition):
            return _sql_condition(node, table, schema)
        if isinstance(node, All):
            return sa.and_(*(build(item) for item in node.items))
        if isinstance(node, AnyOf):
            return sa.or_(*(build(item) for item in node.items))
        if isinstance(node, Not):
            return sa.not_(build(node.item))
        if not isinstance(node, InSegment):
            raise RuleError(f"not a rule: {node!r}")
        if node.name not in clauses:
            raise RuleError(f"in_segment({node.name!r}): unknown segment {node.name!r}")
        return clauses[node.name]

    return build(rule)

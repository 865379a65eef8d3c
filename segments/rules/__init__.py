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

Both compilers, the pandas one (``segments.rules.mask``) and the SQL one
(``segments.rules.sql``), implement the same two-valued semantics, so a rule
selects the same rows in pandas, on SQLite and on PostgreSQL, row for row:

* every comparison, ``in``, ``not in`` and ``between`` on a null is false,
  ``is null`` is true, and ``not`` is plain negation (so ``not seats > 3``
  holds for a null ``seats``). In SQL every leaf is
  ``col IS NOT NULL AND col <op> value``, so no clause is ever NULL.
* a date column is compared by calendar day with a ``'YYYY-MM-DD'`` literal
  (the time of day is ignored): ``d = '2026-01-31'`` is
  ``'2026-01-31' <= d < '2026-02-01'``, ``d <= '2026-01-31'`` is
  ``d < '2026-02-01'``, and so on. Timezone-aware columns use their local day.
  In SQL the bounds are dates: on SQLite they are bound as ``'YYYY-MM-DD'``
  text, which orders correctly against ISO text stored as ``YYYY-MM-DD``,
  ``YYYY-MM-DD HH:MM:SS[.ffffff]`` or with a ``T``; elsewhere they are bound as
  DATE values (PostgreSQL compares them with ``timestamp`` and ``date`` columns).
* text is ordered by code point (Python, Arrow, SQLite's BINARY collation);
  on PostgreSQL ordering comparisons use ``COLLATE "C"`` for the same result.

Limits (``limits``): rule text is at most 20,000 characters, a tree nests at most 50
levels and holds at most 500 conditions; past them a :class:`RuleLimitError` (a
``RuleError``) names the limit, raised before parsing (length) or as the nodes are built
(depth, conditions), in the text and the JSON form alike.

Modules: ``tree`` (the nodes, their JSON form, walking the tree), ``limits`` (the
bounds above), ``text`` (the canonical text), ``parser`` (text to tree, with positioned
errors), ``checks`` (validation against a schema, segment order), ``words`` (plain
words), ``mask`` (the pandas compiler) and ``sql`` (the SQL compiler).
"""

from __future__ import annotations

from segments.rules.checks import literal_problem, order_segments, parse_date, validate
from segments.rules.limits import (
    MAX_RULE_CONDITIONS,
    MAX_RULE_DEPTH,
    MAX_RULE_LENGTH,
    RuleLimitError,
)
from segments.rules.mask import to_mask
from segments.rules.parser import parse
from segments.rules.sql import to_sql
from segments.rules.text import to_text
from segments.rules.tree import (
    OPS,
    All,
    AnyOf,
    Condition,
    InSegment,
    Not,
    Rule,
    Span,
    all_of,
    any_of,
    columns,
    dependencies,
    rule_from_dict,
    rule_to_dict,
    top_clauses,
    walk,
)
from segments.rules.words import describe
from segments.schema import RuleError

__all__ = [
    "MAX_RULE_CONDITIONS",
    "MAX_RULE_DEPTH",
    "MAX_RULE_LENGTH",
    "OPS",
    "All",
    "AnyOf",
    "Condition",
    "InSegment",
    "Not",
    "Rule",
    "RuleError",
    "RuleLimitError",
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

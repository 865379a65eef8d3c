"""The columns a rule may use, their kinds, and the error every rule problem raises.

A frame column has one of four kinds:

========  ======================================================================
number    ints and floats (NaN is null)
string    text, plain or categorical
bool      true/false (nullable)
date      datetime64; a rule compares it with ``'YYYY-MM-DD'`` string literals
========  ======================================================================

Columns are named as in the frame (``plan``) or qualified by their source
(``crm.plan``). A plain name held by several sources is ambiguous: the frame
holds ``crm.plan`` and ``billing.plan``, and ``resolve("plan")`` says so.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import pandas as pd
from pandas.api import types as ptypes

from segments.errors import SegopsError

Kind = Literal["number", "string", "bool", "date"]
KINDS: tuple[Kind, ...] = ("number", "string", "bool", "date")


class RuleError(SegopsError):
    """A rule that cannot be parsed, validated or evaluated.

    ``position`` is the 0-based character offset in the rule text when known;
    ``str()`` then ends with ``at line L, column C`` (1-based).
    """

    def __init__(
        self,
        message: str,
        position: int | None = None,
        *,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.message = message
        self.position = position
        if position is not None and line is None:
            line, column = 1, position + 1
        self.line = line
        self.column = column
        super().__init__(str(self))

    @classmethod
    def at(cls, message: str, text: str, position: int) -> RuleError:
        """An error at ``position`` in ``text``, with its line and column worked out."""
        line = text.count("\n", 0, position) + 1
        column = position - (text.rfind("\n", 0, position) + 1) + 1
        return cls(message, position, line=line, column=column)

    def __str__(self) -> str:
        if self.line is None:
            return self.message
        return f"{self.message} at line {self.line}, column {self.column}"

    def __reduce__(self):  # keep pickling (multiprocessing, pytest-xdist) working
        return (_rebuild, (self.message, self.position, self.line, self.column))


def _rebuild(message: str, position: int | None, line: int | None, column: int | None):
    return RuleError(message, position, line=line, column=column)


@dataclass(frozen=True)
class Schema:
    """Frame column name -> kind, plus every qualified name ``source.column``."""

    columns: Mapping[str, Kind]
    aliases: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, kind in self.columns.items():
            if kind not in KINDS:
                raise RuleError(f"column {name!r} has unknown kind {kind!r}")
        for alias, target in self.aliases.items():
            if target not in self.columns:
                raise RuleError(f"alias {alias!r} points at unknown column {target!r}")

    def resolve(self, name: str) -> str:
        """The frame column a rule's column name means; RuleError when unknown or ambiguous."""
        if name in self.columns:
            return name
        if name in self.aliases:
            return self.aliases[name]
        if "." not in name:
            owners = sorted(q for q in self.aliases if q.split(".", 1)[1] == name)
            if len(owners) > 1:
                raise RuleError(f"column {name!r} is ambiguous: write {' or '.join(owners)}")
            if len(owners) == 1:
                return self.aliases[owners[0]]
        known = [*self.columns, *(a for a in self.aliases if a not in self.columns)]
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise RuleError(f"unknown column {name!r}{hint}")

    def kind(self, name: str) -> Kind:
        """The kind of the column ``name`` (plain or qualified)."""
        return self.columns[self.resolve(name)]

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, aliases: Mapping[str, str] | None = None) -> Schema:
        """Infer each column's kind from its dtype (object columns from their values)."""
        columns = {str(name): infer_kind(frame[name]) for name in frame.columns}
        return cls(columns=columns, aliases=dict(aliases or {}))


def infer_kind(series: pd.Series) -> Kind:
    """The kind of one column, judged by its dtype and, for object columns, its values."""
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return infer_kind(pd.Series(dtype.categories))
    if ptypes.is_bool_dtype(dtype):
        return "bool"
    if ptypes.is_numeric_dtype(dtype):
        return "number"
    if ptypes.is_datetime64_any_dtype(dtype):
        return "date"
    if ptypes.is_object_dtype(dtype):
        inferred = pd.api.types.infer_dtype(series, skipna=True)
        if inferred == "boolean":
            return "bool"
        if inferred in ("integer", "floating", "mixed-integer-float", "decimal"):
            return "number"
        if inferred in ("date", "datetime", "datetime64"):
            return "date"
    return "string"

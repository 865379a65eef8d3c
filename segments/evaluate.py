"""Evaluating rules on data: the compilers and ``evaluate_all`` under their usual import path.

They live in the rule package: :mod:`segments.rules.mask` (row masks, ``FrameColumns``,
``evaluate_all``) and :mod:`segments.rules.sql` (SQLAlchemy clauses); their shared
semantics are described in :mod:`segments.rules`.
"""

from __future__ import annotations

from segments.rules.mask import FrameColumns, evaluate_all, to_mask
from segments.rules.sql import to_sql

__all__ = ["FrameColumns", "evaluate_all", "to_mask", "to_sql"]

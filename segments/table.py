"""A dataset's columns by name, wherever they are kept.

The refresh reads columns one at a time (to profile members, to explain leavers, to count
nulls), so it does not need the whole frame in memory at once. :class:`FrameTable` serves
the columns of a frame held in memory (the pandas engine's); the SQL engines write their
per-entity rows to a local file and serve them with
:class:`segments.engine.staged.StagedTable`, which reads one column when asked.

A table is what ``drift.ProfileColumns`` and ``membership.leave_reasons`` accept in place
of a frame: ``columns`` (the names), ``len()``, ``table[name]`` (one column as a Series),
``table.read(name)`` (the same column for one use: a table that keeps its recent columns
for the next ask lets this one go), ``rows(mask, names)`` (a small frame of the rows where
``mask`` holds) and ``null_counts()`` (per column, what ``frame.isna().sum()`` gives).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import numpy as np
import pandas as pd


class Table(Protocol):
    """Columns of one row per entity, in the order of ``index`` (the entity ids)."""

    index: pd.Index
    columns: pd.Index

    def __len__(self) -> int: ...

    def __getitem__(self, name: str) -> pd.Series: ...

    def read(self, name: str) -> pd.Series: ...

    def rows(self, mask: np.ndarray, names: Iterable[str]) -> pd.DataFrame: ...

    def null_counts(self) -> dict[str, int]: ...


class FrameTable:
    """The columns of a frame in memory."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self.index = frame.index
        self.columns = frame.columns

    def __len__(self) -> int:
        return len(self.frame)

    def __getitem__(self, name: str) -> pd.Series:
        return self.frame[name]

    def read(self, name: str) -> pd.Series:
        return self.frame[name]

    def rows(self, mask: np.ndarray, names: Iterable[str]) -> pd.DataFrame:
        """The rows where ``mask`` holds, with the columns ``names``."""
        return self.frame.loc[mask, list(dict.fromkeys(names))]

    def null_counts(self) -> dict[str, int]:
        counts = self.frame.isna().sum()
        return {str(name): int(counts[name]) for name in self.frame.columns}

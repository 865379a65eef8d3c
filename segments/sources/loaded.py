"""One source as read for a given as_of: its rows, counts and the ids it could not use."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from segments.workspace import SourceConfig


@dataclass
class LoadedSource:
    """One source as read for a given as_of.

    ``frame`` holds the rows that fed the dataset under the source's own column names, the
    id column normalised (a category; mapped ids for ``map_via`` sources) and events cut at
    as_of. ``rows`` counts the rows as of as_of, before ids were resolved or de-duplicated.
    """

    name: str
    config: SourceConfig
    frame: pd.DataFrame
    rows: int
    max_timestamp: pd.Timestamp | None
    duplicate_ids: int = 0
    missing_columns: list[str] = field(default_factory=list)
    unmapped: int = 0
    unknown: int = 0

"""One source as read for a given as_of: its rows, counts, the ids it could not use, and the
values it could not parse."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from segments.workspace import SourceConfig


@dataclass(frozen=True)
class ValueStats:
    """One column read as a declared kind: ``present`` values (not null, not blank) and the
    ``invalid`` ones among them that did not parse (or were infinite) and became null, with a
    few distinct ``examples`` of them as text."""

    kind: str
    present: int
    invalid: int = 0
    examples: tuple[str, ...] = ()


@dataclass
class LoadedSource:
    """One source as read for a given as_of.

    ``columns`` holds the rows that fed the dataset under the source's own column names, the
    id column normalised (a category; mapped ids for ``map_via`` sources) and events cut at
    as_of; ``frame`` is them as a DataFrame, built when first asked for (a refresh only
    digests the columns). ``rows`` counts the rows as of as_of, before ids were resolved or
    de-duplicated.

    ``id_stats`` is ``{"rows", "blank", "unresolved"}``: of ``rows``, the ids that are empty
    after trimming (for a mapping: key or id), and the others that do not lead to a known
    entity (unmapped through ``map_via``, not in the entity set, or, for a mapping, an id
    that no entity source has). ``values`` holds a :class:`ValueStats` per parsed column
    (declared number/bool/date columns and the timestamp, created and value columns).
    ``timestamps`` are the non-null ``timestamp`` values of an entity source's rows.
    """

    name: str
    config: SourceConfig
    columns: dict[str, Any]
    rows: int
    max_timestamp: pd.Timestamp | None
    duplicate_ids: int = 0
    missing_columns: list[str] = field(default_factory=list)
    unmapped: int = 0
    unknown: int = 0
    id_stats: dict[str, int] = field(default_factory=dict)
    values: dict[str, ValueStats] = field(default_factory=dict)
    timestamps: np.ndarray | None = field(default=None, repr=False)

    @cached_property
    def frame(self) -> pd.DataFrame:
        """The source's rows as a DataFrame (see ``columns``)."""
        return pd.DataFrame(self.columns)

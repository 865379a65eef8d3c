"""Mapping sources: folded keys to ids, and the ids of ``map_via`` sources resolved through them."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from segments.sources.ids import _as_text, _fold, _lookup, _valid
from segments.sources.loaded import LoadedSource
from segments.sources.read import _read, _require
from segments.workspace import SourceConfig, Workspace


@dataclass
class _Mapping:
    """A mapping source: folded keys -> folded ids, rebuilt per lookup case."""

    keys: pa.ChunkedArray
    ids: pa.ChunkedArray
    case: str
    tables: dict[tuple[str, ...], tuple[pa.Array, pa.Array]] = field(default_factory=dict)
    rows: dict[tuple[str, ...], np.ndarray] = field(default_factory=dict)
    positions: np.ndarray | None = None

    def cases(self, source_case: str) -> tuple[str, ...]:
        return (source_case, self.case)

    def table(self, cases: tuple[str, ...]) -> tuple[pa.Array, pa.Array]:
        """Unique folded keys and their ids (first row of a repeated key wins); the row of
        each is kept in ``rows[cases]``."""
        if cases not in self.tables:
            keys = _fold(self.keys, cases).combine_chunks()
            ok = _valid(keys)
            keys_s = pd.Series(keys.filter(pa.array(ok)).to_pandas())
            ids = self.ids.combine_chunks().filter(pa.array(ok))
            first = ~keys_s.duplicated().to_numpy()
            self.tables[cases] = (
                pa.array(keys_s[first], type=pa.string()),
                ids.filter(pa.array(first)),
            )
            self.rows[cases] = np.flatnonzero(ok)[first]
        return self.tables[cases]

    def locate(self, universe: pa.Array) -> np.ndarray:
        """Entity position of every row's id (-1: not an entity), looked up once."""
        if self.positions is None:
            self.positions = _lookup(self.ids, universe, ())
        return self.positions


def _load_mapping(name: str, cfg: SourceConfig, ws: Workspace) -> tuple[_Mapping, LoadedSource]:
    key = cfg.key or ""
    table, missing = _read(
        name, cfg, ws, [key, cfg.id], check=list(cfg.columns), text=[key, cfg.id]
    )
    _require(name, cfg, missing, "key", "id")
    keys = _fold(_as_text(table[key]), (cfg.id_case,))
    ids = _fold(_as_text(table[cfg.id]), (cfg.id_case,))
    ok = _valid(keys) & _valid(ids)
    frame = pd.DataFrame(
        {
            key: keys.filter(pa.array(ok)).to_pandas().astype("category"),
            cfg.id: ids.filter(pa.array(ok)).to_pandas().astype("category"),
        }
    )
    pairs = frame.drop_duplicates()
    conflicting = pairs[key][pairs[key].duplicated(keep=False)].nunique()
    trimmed = _fold(_as_text(table[key]), ())
    mapping = _Mapping(
        keys=trimmed.filter(pa.array(ok)), ids=ids.filter(pa.array(ok)), case=cfg.id_case
    )
    blank = int(np.count_nonzero(~ok))
    source = LoadedSource(
        name=name,
        config=cfg,
        columns=dict(frame.items()),
        rows=table.num_rows,
        max_timestamp=None,
        duplicate_ids=int(conflicting),
        missing_columns=[c for c in missing if c in cfg.columns],
        unmapped=blank,
        id_stats={"rows": table.num_rows, "blank": blank, "unresolved": 0},
    )
    return mapping, source


def _unresolved(mapping: _Mapping, universe: pa.Array) -> int:
    """Rows of a mapping (with a key and an id) whose id is not a known entity."""
    return int(np.count_nonzero(mapping.locate(universe) < 0))


def _id_text(raw: pa.ChunkedArray, cfg: SourceConfig, mappings: dict[str, _Mapping]) -> pa.Array:
    """Normalised (and mapped) ids as strings; null or empty where the row has no id."""
    text = _as_text(raw)
    if cfg.map_via is None:
        return _fold(text, (cfg.id_case,)).combine_chunks()
    mapping = mappings[cfg.map_via]
    cases = mapping.cases(cfg.id_case)
    keys, ids = mapping.table(cases)
    found = _lookup(text, keys, cases)
    return ids.take(pa.array(found, mask=found < 0))


@dataclass
class IdMap:
    """A ``map_via`` source's ids resolved a few at a time (the live path): the mapping's
    folded keys indexed once, each call folding the given ids as the batch load does
    (trimmed, then the source's and the mapping's ``id_case``)."""

    mapping: str
    cases: tuple[str, ...]
    index: pd.Index
    ids: np.ndarray

    def resolve(self, raw: list[str]) -> list[str | None]:
        """The entity id of each raw id; None where the mapping has no such key."""
        if not raw:
            return []
        folded = _fold(pa.array(raw, type=pa.string()), self.cases).to_pylist()
        positions = self.index.get_indexer(folded)
        return [str(self.ids[p]) if p >= 0 else None for p in positions]


def id_map(ws: Workspace, source: str) -> IdMap | None:
    """The :class:`IdMap` of events source ``source``; None when it has no ``map_via``."""
    cfg = ws.sources[source]
    if cfg.map_via is None:
        return None
    mapping, _loaded = _load_mapping(cfg.map_via, ws.sources[cfg.map_via], ws)
    cases = mapping.cases(cfg.id_case)
    keys, ids = mapping.table(cases)
    index = pd.Index(keys.to_pylist(), dtype=object)
    return IdMap(cfg.map_via, cases, index, np.asarray(ids.to_pylist(), dtype=object))

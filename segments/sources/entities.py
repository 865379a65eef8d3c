"""Entity sources: rows cut at their created time, then joined into the entity columns (the
first row of a repeated id wins)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from segments.schema import Schema
from segments.sources.ids import _blank
from segments.sources.kinds import _coerce, _empty, _scatter, _timestamps, _value_stats
from segments.sources.loaded import LoadedSource, ValueStats
from segments.sources.mapping import _id_text, _Mapping
from segments.sources.read import _read, _require
from segments.workspace import SourceConfig, Workspace


@dataclass
class _EntityRows:
    """An entity source after the created cut, before the join."""

    ids: pa.Array
    table: pa.Table
    rows: int
    max_timestamp: pd.Timestamp | None
    missing: list[str]
    stamps: np.ndarray | None = None


def _read_entity(
    name: str,
    cfg: SourceConfig,
    ws: Workspace,
    before: pd.Timestamp,
    mappings: dict[str, _Mapping],
) -> _EntityRows:
    strings = [c for c, k in cfg.columns.items() if k == "string"]
    wanted = [cfg.id, cfg.created, cfg.timestamp, *cfg.columns]
    table, missing = _read(name, cfg, ws, wanted, text=[cfg.id, *strings])
    _require(name, cfg, missing, "id")
    if cfg.created and cfg.created not in missing:
        created = _timestamps(table[cfg.created])
        keep = np.isnat(created) | (created < before.to_datetime64())
        if not keep.all():
            table = table.filter(pa.array(keep))
    max_ts = stamps = None
    if cfg.timestamp and cfg.timestamp not in missing:
        stamps = _timestamps(table[cfg.timestamp])
        stamps = stamps[~np.isnat(stamps)]
        max_ts = pd.Timestamp(stamps.max()) if len(stamps) else None
    ids = _id_text(table[cfg.id], cfg, mappings)
    return _EntityRows(
        ids=ids,
        table=table,
        rows=table.num_rows,
        max_timestamp=max_ts,
        missing=missing,
        stamps=stamps,
    )


def _join_entity(
    name: str,
    cfg: SourceConfig,
    rows: _EntityRows,
    positions: np.ndarray,
    id_dtype: pd.CategoricalDtype,
    schema: Schema,
    columns: dict[str, Any],
) -> LoadedSource:
    """Add the source's declared columns to ``columns`` (first row per id wins)."""
    n = len(id_dtype.categories)
    ok = positions >= 0
    dropped = np.flatnonzero(~ok)
    blank = _blank(rows.table[cfg.id], dropped)
    kept = np.flatnonzero(ok)
    pos = positions[kept]
    # one row per entity in universe order (a single clean source): nothing to de-duplicate
    # or place, every row is the first of its id
    ordered = len(pos) == n and bool((pos == np.arange(n)).all())
    first = np.ones(len(pos), bool) if ordered else ~pd.Series(pos).duplicated().to_numpy()
    duplicates = 0 if ordered else int(pd.Series(pos[~first]).nunique())
    frame_cols: dict[str, Any] = {
        cfg.id: pd.Categorical.from_codes(pos, dtype=id_dtype, validate=False)
    }
    table = rows.table.take(pa.array(kept)) if len(kept) < rows.table.num_rows else rows.table
    value_stats: dict[str, ValueStats] = {}
    for column, kind in cfg.columns.items():
        frame_name = schema.aliases.get(f"{name}.{column}", column)
        if column in rows.missing:
            values = _empty(kind, len(kept))
        else:
            values = _coerce(table[column], kind)
            if kind != "string":
                value_stats[column] = _value_stats(table[column], kind, values)
        if column != cfg.id:
            frame_cols[column] = values
        columns[frame_name] = values if ordered else _scatter(values[first], pos[first], n)
    for extra in (cfg.created, cfg.timestamp):
        if extra and extra not in frame_cols and extra not in rows.missing:
            frame_cols[extra] = _timestamps(table[extra])
            value_stats[extra] = _value_stats(table[extra], "date", frame_cols[extra])
    return LoadedSource(
        name=name,
        config=cfg,
        columns=frame_cols,
        rows=rows.rows,
        max_timestamp=rows.max_timestamp,
        duplicate_ids=duplicates,
        missing_columns=[c for c in rows.missing if c != cfg.id],
        unmapped=len(dropped),
        id_stats={"rows": rows.rows, "blank": blank, "unresolved": len(dropped) - blank},
        values=value_stats,
        timestamps=rows.stamps,
    )

"""Events sources: rows cut at as_of, the entity of each event, and flat arrays of position,
time, event name and value for the features."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from segments.sources.ids import _as_text, _blank, _fold, _lookup, _valid
from segments.sources.kinds import _numbers, _timestamps, _value_stats
from segments.sources.loaded import LoadedSource, ValueStats
from segments.sources.mapping import _Mapping
from segments.sources.read import _read, _require
from segments.workspace import SourceConfig, Workspace


@dataclass
class _EventRows:
    """An events source cut at as_of, ids not yet resolved."""

    raw_ids: pa.ChunkedArray
    ts: np.ndarray
    table: pa.Table
    rows: int
    max_timestamp: pd.Timestamp | None
    missing: list[str]
    values: dict[str, ValueStats]


@dataclass
class _EventArrays:
    """Resolved events as flat arrays: entity position, time (ns), event code, value."""

    pos: np.ndarray
    ts: np.ndarray
    codes: np.ndarray
    names: list[str]
    value: np.ndarray
    has_nulls: bool = True


def _read_events(name: str, cfg: SourceConfig, ws: Workspace, before: pd.Timestamp) -> _EventRows:
    table, missing = _read(
        name,
        cfg,
        ws,
        [cfg.id, cfg.timestamp, cfg.event, cfg.value],
        check=list(cfg.columns),
        text=[cfg.id],
        dictionary=[cfg.event] if cfg.event else [],
        before=before,
    )
    _require(name, cfg, missing, "id", "timestamp")
    ts = _timestamps(table[cfg.timestamp or ""])
    values = {cfg.timestamp or "": _value_stats(table[cfg.timestamp or ""], "date", ts)}
    keep = ~np.isnat(ts) & (ts < before.to_datetime64())
    if not keep.all():
        table = table.filter(pa.array(keep))
        ts = ts[keep]
    max_ts = pd.Timestamp(ts.max()) if len(ts) else None
    return _EventRows(
        raw_ids=table[cfg.id],
        ts=ts,
        table=table,
        rows=table.num_rows,
        max_timestamp=max_ts,
        missing=missing,
        values=values,
    )


def _event_positions(
    ev: _EventRows, cfg: SourceConfig, mappings: dict[str, _Mapping], universe: pa.Array
) -> tuple[np.ndarray, int, int]:
    """Entity position of each event (-1 = dropped), with unmapped and unknown counts."""
    text = _as_text(ev.raw_ids)
    if cfg.map_via is None:
        pos = _lookup(text, universe, (cfg.id_case,))
        missing = np.flatnonzero(pos < 0)
        empty = int(np.count_nonzero(~_valid(_fold(text.take(pa.array(missing)), ()))))
        return pos, empty, len(missing) - empty
    mapping = mappings[cfg.map_via]
    cases = mapping.cases(cfg.id_case)
    keys, _ids = mapping.table(cases)
    row = _lookup(text, keys, cases)
    target = np.append(mapping.locate(universe)[mapping.rows[cases]], -1)
    pos = target[row]  # row -1 picks the trailing -1
    unmapped = int(np.count_nonzero(row < 0))
    return pos, unmapped, int(np.count_nonzero(pos < 0)) - unmapped


def _event_codes(arr: pa.ChunkedArray | None, n: int) -> tuple[np.ndarray, list[str]]:
    """Event-name codes (-1 = none) and the distinct names they stand for (trimmed)."""
    if arr is None:
        return np.full(n, -1, np.int32), []
    if not pa.types.is_dictionary(arr.type):
        arr = pc.dictionary_encode(_as_text(arr))
    names: dict[str, int] = {}
    parts = []
    for chunk in arr.chunks:  # each chunk has its own small dictionary: map it to `names`
        local = [names.setdefault(str(v).strip(), len(names)) for v in chunk.dictionary.to_pylist()]
        remap = np.array([*local, -1], dtype=np.int32)
        indices = pc.fill_null(chunk.indices, -1).to_numpy(zero_copy_only=False)
        parts.append(remap[indices])
    codes = np.concatenate(parts) if parts else np.empty(0, np.int32)
    return codes, list(names)


def _finish_events(
    name: str,
    cfg: SourceConfig,
    ev: _EventRows,
    pos: np.ndarray,
    unmapped: int,
    unknown: int,
    id_dtype: pd.CategoricalDtype,
) -> tuple[_EventArrays, LoadedSource]:
    keep = pos >= 0
    all_kept = bool(keep.all())
    dropped = np.flatnonzero(~keep)
    blank = _blank(ev.raw_ids, dropped)
    table = ev.table if all_kept else ev.table.filter(pa.array(keep))
    n = table.num_rows
    event_col = table[cfg.event] if cfg.event and cfg.event not in ev.missing else None
    codes, names = _event_codes(event_col, n)
    values = dict(ev.values)
    if cfg.value and cfg.value not in ev.missing:
        value = _numbers(table[cfg.value])
        values[cfg.value] = _value_stats(table[cfg.value], "number", value)
    else:
        value = np.full(n, np.nan)
    arrays = _EventArrays(
        pos=pos if all_kept else pos[keep],
        ts=(ev.ts if all_kept else ev.ts[keep]).view(np.int64),
        codes=codes,
        names=names,
        value=value,
        has_nulls=bool(np.isnan(value).any()),
    )
    frame_cols: dict[str, Any] = {
        cfg.id: pd.Categorical.from_codes(arrays.pos, dtype=id_dtype, validate=False),
        cfg.timestamp or "ts": arrays.ts.view("datetime64[ns]"),
    }
    if cfg.event:
        event_names = pd.Index(names, dtype="str")
        frame_cols[cfg.event] = pd.Categorical.from_codes(codes, event_names, validate=False)
    if cfg.value:
        frame_cols[cfg.value] = value
    source = LoadedSource(
        name=name,
        config=cfg,
        columns=frame_cols,
        rows=ev.rows,
        max_timestamp=ev.max_timestamp,
        missing_columns=ev.missing,
        unmapped=unmapped,
        unknown=unknown,
        id_stats={"rows": ev.rows, "blank": blank, "unresolved": len(dropped) - blank},
        values=values,
    )
    return arrays, source

"""The joined dataset: ``load_dataset`` reads every source, resolves ids, joins the entity
columns, computes features and scores, and records each column's lineage and a fingerprint."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from segments.schema import Schema
from segments.sources.digest import columns_digest
from segments.sources.entities import _EntityRows, _join_entity, _read_entity
from segments.sources.events import (
    _event_positions,
    _EventArrays,
    _EventRows,
    _finish_events,
    _read_events,
)
from segments.sources.features import _feature, _Selection
from segments.sources.ids import _universe, _valid
from segments.sources.loaded import LoadedSource
from segments.sources.mapping import _id_text, _load_mapping, _Mapping, _unresolved
from segments.sources.scores import _scores
from segments.table import FrameTable, Table
from segments.workspace import Workspace, declared_schema

Progress = Callable[[str], None]


@dataclass
class Dataset:
    """The joined entity frame, its schema, the sources behind it and each column's lineage.

    The frame has one row per entity on every engine: its index, the entity ids as text,
    holds no id twice (pandas builds it as a dictionary of the ids, the SQL engines
    group by id), so a refresh numbers new entities without hashing them again."""

    frame: pd.DataFrame
    schema: Schema
    sources: dict[str, LoadedSource]
    lineage: dict[str, set[str]]
    as_of: date
    config_digest: str = ""
    content: str | None = None
    """A digest of the data computed where it lives (SQL engines); None: hash the frames."""
    stored: Table | None = None
    """Where the columns are when ``frame`` holds only the index: the SQL engines' rows,
    written to a local file and read one column at a time (:attr:`table`)."""

    @cached_property
    def table(self) -> Table:
        """The dataset's columns by name: the frame's, or the stored rows'."""
        return self.stored if self.stored is not None else FrameTable(self.frame)

    @property
    def id_stats(self) -> dict[str, dict[str, int]]:
        """Each source's ``{"rows", "blank", "unresolved"}`` id counts."""
        return {name: dict(src.id_stats) for name, src in self.sources.items()}

    @cached_property
    def fingerprint(self) -> str:
        """sha256 of as_of, the source/feature/score settings and each source's rows and
        content hash; equal fingerprints mean a re-run would see the same data."""
        digest = hashlib.sha256()
        digest.update(f"{self.as_of.isoformat()}|{self.config_digest}".encode())
        if self.content is not None:
            digest.update(self.content.encode())
            return digest.hexdigest()
        for name in sorted(self.sources):
            src = self.sources[name]
            length = len(next(iter(src.columns.values()), ()))
            content = columns_digest(src.columns, length)
            digest.update(f"|{name}:{src.rows}:{length}:{content}".encode())
        return digest.hexdigest()


def load_dataset(
    ws: Workspace,
    *,
    as_of: date,
    progress: Progress | None = None,
    known_ids: Callable[[], pd.Index] | None = None,
) -> Dataset:
    """Load, normalise, join and aggregate every source of ``ws`` as of the end of ``as_of``.

    ``known_ids`` gives ids known to be distinct, in order (the store's entity dictionary;
    a callable, so it can still be being read while the files are): when the only entity
    source's ids are exactly its first ones, they are the universe as they are, without
    hashing a million ids to find out (~0.3 s). The dataset is the same either way."""
    say: Progress = progress or (lambda _message: None)
    if isinstance(as_of, datetime):
        as_of = as_of.date()
    before = pd.Timestamp(as_of) + pd.Timedelta(days=1)
    schema = declared_schema(ws)

    loaded: dict[str, LoadedSource] = {}
    mappings: dict[str, _Mapping] = {}
    for name, cfg in ws.sources.items():
        if cfg.kind == "mapping":
            mappings[name], loaded[name] = _load_mapping(name, cfg, ws)
            say(f"{name}: {loaded[name].rows:,} mapping rows")

    entities: dict[str, _EntityRows] = {}
    for name, cfg in ws.sources.items():
        if cfg.kind == "entity":
            entities[name] = _read_entity(name, cfg, ws, before, mappings)

    events: dict[str, _EventRows] = {}
    for name, cfg in ws.sources.items():
        if cfg.kind == "events":
            events[name] = _read_events(name, cfg, ws, before)

    if entities:
        known = _known_universe(list(entities.values()), known_ids)
        universe, positions = known or _universe([e.ids for e in entities.values()])
        entity_pos = dict(zip(entities, positions, strict=True))
        event_pos = {
            name: _event_positions(ev, ws.sources[name], mappings, universe)
            for name, ev in events.items()
        }
        for name, mapping in mappings.items():
            loaded[name].id_stats["unresolved"] = _unresolved(mapping, universe)
    else:
        texts = [_id_text(ev.raw_ids, ws.sources[n], mappings) for n, ev in events.items()]
        universe, positions = _universe(texts)
        entity_pos = {}
        event_pos = {
            name: (pos, int(np.count_nonzero(pos < 0)), 0)
            for name, pos in zip(events, positions, strict=True)
        }
    index = pd.Index(universe.to_pandas(), name="id", dtype="str")
    id_dtype = _distinct_categories(index)
    n = len(index)
    say(f"entities: {n:,}")

    columns: dict[str, Any] = {}
    lineage: dict[str, set[str]] = {}
    for name, rows in entities.items():
        cfg = ws.sources[name]
        src_lineage = {name} | ({cfg.map_via} if cfg.map_via else set())
        loaded[name] = _join_entity(name, cfg, rows, entity_pos[name], id_dtype, schema, columns)
        for column in cfg.columns:
            lineage[schema.aliases.get(f"{name}.{column}", column)] = set(src_lineage)
        src = loaded[name]
        say(
            f"{name}: {src.rows:,} rows, {src.duplicate_ids:,} duplicate ids, "
            f"{src.unmapped:,} unmapped"
        )

    arrays: dict[str, _EventArrays] = {}
    for name in list(events):
        ev = events.pop(name)  # let the raw table go once its arrays exist
        pos, unmapped, unknown = event_pos.pop(name)
        arrays[name], loaded[name] = _finish_events(
            name, ws.sources[name], ev, pos, unmapped, unknown, id_dtype
        )
        src = loaded[name]
        say(f"{name}: {src.rows:,} events, {src.unmapped:,} unmapped, {src.unknown:,} unknown ids")

    cache: dict[tuple[Any, ...], _Selection] = {}
    for fname, feat in ws.features.items():
        columns[fname] = _feature(feat, arrays[feat.source], n, before, cache)
        cfg = ws.sources[feat.source]
        lineage[fname] = {feat.source} | ({cfg.map_via} if cfg.map_via else set())
    if ws.features:
        say(f"features: {len(ws.features)} computed")

    _scores(ws, schema, columns, lineage, n)
    if ws.scores:
        say(f"scores: {len(ws.scores)} computed")

    frame = pd.DataFrame({c: columns[c] for c in schema.columns}, index=index)
    return Dataset(
        frame=frame,
        schema=schema,
        sources={name: loaded[name] for name in ws.sources},
        lineage=lineage,
        as_of=as_of,
        config_digest=_config_digest(ws),
    )


def _known_universe(
    entities: list[_EntityRows], known_ids: Callable[[], pd.Index] | None
) -> tuple[pa.Array, list[np.ndarray]] | None:
    """The universe and positions of one entity source whose ids are the first of
    ``known_ids`` in order (so distinct and in first-appearance order), else None."""
    if known_ids is None or len(entities) != 1:
        return None
    ids = entities[0].ids
    ids = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    if not pa.types.is_string(ids.type) or not _valid(ids).all():
        return None
    known = known_ids()
    if len(ids) > len(known) or not len(ids):
        return None
    prefix = pa.array(known.array[: len(ids)])
    if not pa.chunked_array([ids]).equals(pa.chunked_array([prefix]).cast(ids.type)):
        return None
    return ids, [np.arange(len(ids), dtype=np.int64)]


def _distinct_categories(index: pd.Index) -> pd.CategoricalDtype:
    """The categorical dtype of ids already known to be distinct (the universe is a
    dictionary): pandas' own check would hash a million ids again (~0.5 s)."""
    fastpath = getattr(pd.CategoricalDtype, "_from_fastpath", None)
    return fastpath(index, False) if fastpath else pd.CategoricalDtype(index)


def _config_digest(ws: Workspace) -> str:
    data = ws.model_dump(mode="json", include={"sources", "features", "scores"})
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()

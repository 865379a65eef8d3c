"""Load every declared source into one frame: one row per entity, with features and scores.

``load_dataset(ws, as_of=date(2026, 1, 31))`` reads each source of the workspace (CSV,
Parquet, or SQL through a SQLAlchemy URL), normalises ids, aggregates events into
features, computes scores and returns a :class:`Dataset`::

    sources:
      crm:     {kind: entity, path: crm.csv, id: account_id, created: created_at,
                timestamp: updated_at, columns: {plan: string, seats: number}}
      product: {kind: events, path: events.parquet, id: email, map_via: people,
                timestamp: ts, event: event, value: value}
      people:  {kind: mapping, path: people.csv, key: email, id: account_id}
    features:
      logins_30d: {source: product, event: login, agg: count, window_days: 30}
    scores:
      engagement: {weights: {logins_30d: 1, seats: 0.5}}

gives ``dataset.frame`` indexed by account id with columns ``plan`` (category),
``seats`` (float64), ``logins_30d`` (float64) and ``engagement`` (float64, 0-100).

Semantics:

* **as_of is a whole day.** Events up to and including that day count (``ts`` before
  midnight after as_of); entity rows whose ``created`` falls after as_of are left out
  (a null ``created`` is kept). Naive timestamps are read as UTC; aware ones are converted
  to UTC. SQL events sources get the cut pushed down as ``WHERE ts < :before`` with one day
  of slack (text timestamps with offsets compare loosely); the exact cut is applied after.
* **Ids** are trimmed and folded by the source's ``id_case``; empty ids are dropped. With
  ``map_via`` the id is looked up in the mapping's ``key`` column (both sides trimmed and
  folded by the source's and then the mapping's ``id_case``) and replaced by the mapping's
  ``id`` (folded by the mapping's ``id_case``); a mapping key listed twice keeps its first row.
  Rows whose id is empty or unmapped are dropped and counted (``unmapped``); events whose id
  is not an entity are dropped and counted (``unknown``).
* **Entities** are the union of the entity sources' ids, in order of first appearance
  (with no entity source: the ids seen in events). Within one entity source a repeated id
  keeps its first row (``duplicate_ids`` counts the ids that repeat). Entity sources are
  outer-joined on id; a column declared by several entity sources is ``source.column``.
* **Kinds**: number -> float64, string -> category, bool -> boolean, date ->
  datetime64[ns] (naive UTC). Values that do not parse become null, which the quality
  gate's null-rate check sees. Only declared columns reach the frame; a declared column
  absent from the data is added as all-null and listed in ``missing_columns``.
* **Features** aggregate one events source per entity over ``window_days`` days ending at
  as_of (as_of and the N-1 days before it; no window = all history), optionally only the
  named events. ``count`` counts matching events; ``sum``/``avg``/``min``/``max``/``first``/
  ``last`` use matching events that have a value, ``first``/``last`` taking the value of the
  earliest/latest of them (same timestamp: the largest value); ``days_since`` is whole days
  from the day of the latest matching event to as_of. Entities without matching events get
  ``fill``, which defaults to 0 for count and sum and to null otherwise.
* **Scores** (0-100, one decimal) are the weighted mean of the inputs normalised to 0-1:
  ``rank`` uses the percentile rank ((rank - 1) / (n - 1), ties averaged), ``minmax`` uses
  (x - min) / (max - min); a constant input normalises to 0.5. A negative weight inverts its
  input (1 - x). A null input earns no points whatever the weight's sign: it counts as the
  lowest possible contribution, so "unknown" never looks good.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.dataset as pads
import sqlalchemy as sa

from segments.errors import SegopsError
from segments.schema import Schema
from segments.workspace import FeatureConfig, SourceConfig, Workspace, declared_schema

DAY_NS = 86_400 * 10**9
_MIN_NS = np.iinfo(np.int64).min
_MAX_NS = np.iinfo(np.int64).max
_ROW_AGGS = ("count", "days_since")  # aggregations over events; the others need a value
_NAT = np.datetime64("NaT", "ns")
_PARALLEL_MIN = 1_000_000
_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})

Progress = Callable[[str], None]


class SourceError(SegopsError):
    """A source cannot be read; the message names the source and the problem."""


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


@dataclass
class Dataset:
    """The joined entity frame, its schema, the sources behind it and each column's lineage."""

    frame: pd.DataFrame
    schema: Schema
    sources: dict[str, LoadedSource]
    lineage: dict[str, set[str]]
    as_of: date
    config_digest: str = ""

    @cached_property
    def fingerprint(self) -> str:
        """sha256 of as_of, the source/feature/score settings and each source's rows and
        content hash; equal fingerprints mean a re-run would see the same data."""
        digest = hashlib.sha256()
        digest.update(f"{self.as_of.isoformat()}|{self.config_digest}".encode())
        for name in sorted(self.sources):
            src = self.sources[name]
            content = int(pd.util.hash_pandas_object(src.frame, index=False).sum())
            digest.update(f"|{name}:{src.rows}:{len(src.frame)}:{content}".encode())
        return digest.hexdigest()


# --------------------------------------------------------------------------- entry point


def load_dataset(ws: Workspace, *, as_of: date, progress: Progress | None = None) -> Dataset:
    """Load, normalise, join and aggregate every source of ``ws`` as of the end of ``as_of``."""
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
        universe, positions = _universe([e.ids for e in entities.values()])
        entity_pos = dict(zip(entities, positions, strict=True))
        event_pos = {
            name: _event_positions(ev, ws.sources[name], mappings, universe)
            for name, ev in events.items()
        }
    else:
        texts = [_id_text(ev.raw_ids, ws.sources[n], mappings) for n, ev in events.items()]
        universe, positions = _universe(texts)
        entity_pos = {}
        event_pos = {
            name: (pos, int(np.count_nonzero(pos < 0)), 0)
            for name, pos in zip(events, positions, strict=True)
        }
    index = pd.Index(universe.to_pandas(), name="id", dtype="str")
    id_dtype = pd.CategoricalDtype(index)
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


def _config_digest(ws: Workspace) -> str:
    data = ws.model_dump(mode="json", include={"sources", "features", "scores"})
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


# --------------------------------------------------------------------------- reading


def _read(
    name: str,
    cfg: SourceConfig,
    ws: Workspace,
    wanted: Sequence[str | None],
    *,
    check: Sequence[str] = (),
    text: Sequence[str] = (),
    dictionary: Sequence[str] = (),
    before: pd.Timestamp | None = None,
) -> tuple[pa.Table, list[str]]:
    """Read the wanted columns that exist; return the table and the names (wanted or
    ``check``ed) that the data lacks."""
    wanted = list(dict.fromkeys(c for c in wanted if c))
    try:
        if cfg.format == "csv":
            table, names = _read_csv(ws.resolve_path(cfg.path or ""), wanted, text, dictionary)
        elif cfg.format == "parquet":
            table, names = _read_parquet(ws.resolve_path(cfg.path or ""), wanted, dictionary)
        else:
            table, names = _read_sql(cfg, wanted, before)
    except FileNotFoundError:
        raise SourceError(f"source {name!r}: file not found: {cfg.path}") from None
    except sa.exc.NoSuchTableError:
        raise SourceError(f"source {name!r}: table {cfg.table!r} not found") from None
    except (OSError, pa.ArrowException, sa.exc.SQLAlchemyError, UnicodeDecodeError) as exc:
        where = cfg.path or cfg.table or "query"
        raise SourceError(f"source {name!r}: cannot read {where}: {_describe(exc)}") from None
    missing = [c for c in dict.fromkeys([*wanted, *check]) if c not in names]
    return table, missing


def _describe(exc: BaseException) -> str:
    """One line about a read failure: the database's own message when there is one."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, sa.exc.DBAPIError) and seen.orig is not None:
            exc = seen.orig
            break
        seen = seen.__cause__ or seen.__context__
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _read_csv(
    path: Path, wanted: list[str], text: Sequence[str], dictionary: Sequence[str]
) -> tuple[pa.Table, set[str]]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        header = next(csv.reader(fh), [])
    present = [c for c in wanted if c in header]
    if not present:  # an empty include list would read every column
        return pa.table({}), set(header)
    types: dict[str, pa.DataType] = {c: pa.string() for c in text if c in present}
    types.update({c: pa.dictionary(pa.int32(), pa.string()) for c in dictionary if c in present})
    table = pacsv.read_csv(
        path,
        convert_options=pacsv.ConvertOptions(
            include_columns=present, column_types=types, strings_can_be_null=True
        ),
    )
    return table, set(header)


def _read_parquet(
    path: Path, wanted: list[str], dictionary: Sequence[str]
) -> tuple[pa.Table, set[str]]:
    if not path.exists():
        raise FileNotFoundError(path)
    options = pads.ParquetFileFormat(
        read_options=pads.ParquetReadOptions(dictionary_columns=list(dictionary))
    )
    data = pads.dataset(path, format=options)
    names = set(data.schema.names)
    present = [c for c in wanted if c in names]
    return data.to_table(columns=present), names


def _read_sql(
    cfg: SourceConfig, wanted: list[str], before: pd.Timestamp | None
) -> tuple[pa.Table, set[str]]:
    """Select only the wanted columns; cut events at ``before`` (+1 day slack) in SQL."""
    engine = sa.create_engine(cfg.url or "")
    time_col = cfg.timestamp if cfg.kind == "events" else None
    try:
        with engine.connect() as conn:
            if cfg.table:
                schema_name, _, table_name = cfg.table.rpartition(".")
                table = sa.Table(
                    table_name, sa.MetaData(), schema=schema_name or None, autoload_with=conn
                )
                source = table
                names = [c.name for c in table.columns]
            else:
                query = (cfg.query or "").strip().rstrip(";")
                probe = conn.execute(
                    sa.text(f"SELECT * FROM ({query}) AS segops_source WHERE 1 = 0")
                )
                names = list(probe.keys())
                source = (
                    sa.text(query).columns(*[sa.column(c) for c in names]).subquery("segops_source")
                )
            present = [c for c in wanted if c in names]
            stmt = sa.select(*[source.c[c] for c in present])
            if before is not None and time_col in present:
                clause = _before_clause(source.c[time_col], before + pd.Timedelta(days=1))
                if clause is not None:
                    stmt = stmt.where(clause)
            frame = pd.read_sql(stmt, conn)
    finally:
        engine.dispose()
    return _arrow_table(frame, present), set(names)


def _before_clause(column: Any, before: pd.Timestamp) -> Any:
    """``column < before`` bound in a type the column compares with, or None to skip."""
    kind = column.type
    if isinstance(kind, sa.DateTime):
        return column < before.to_pydatetime()
    if isinstance(kind, sa.Date):
        return column < before.date()
    if isinstance(kind, sa.String | sa.types.NullType):
        # untyped, so the database reads the date in the column's own type (or as text)
        day = before.strftime("%Y-%m-%d")
        return column < sa.bindparam("segops_before", day, type_=sa.types.NullType())
    return None


def _arrow_table(frame: pd.DataFrame, names: list[str]) -> pa.Table:
    arrays = []
    for name in names:
        series = frame[name]
        try:
            arrays.append(pa.chunked_array([pa.array(series, from_pandas=True)]))
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            text = series.map(lambda v: None if pd.isna(v) else str(v), na_action="ignore")
            arrays.append(pa.chunked_array([pa.array(text, type=pa.string(), from_pandas=True)]))
    return pa.table(arrays, names=names) if names else pa.table({})


def _require(name: str, cfg: SourceConfig, missing: list[str], *roles: str) -> None:
    for role in roles:
        column = getattr(cfg, role)
        if column and column in missing:
            where = cfg.path or cfg.table or "the query"
            raise SourceError(f"source {name!r}: {role} column {column!r} not found in {where}")


# --------------------------------------------------------------------------- ids


def _as_text(arr: pa.ChunkedArray) -> pa.ChunkedArray:
    """Any id column as strings; integral floats (ids read with nulls) lose their '.0'."""
    kind = arr.type
    if pa.types.is_dictionary(kind):
        arr = arr.cast(kind.value_type)
        kind = arr.type
    if pa.types.is_string(kind):
        return arr
    if pa.types.is_floating(kind):
        values = pc.drop_null(arr)
        if len(values) == 0 or pc.all(pc.equal(values, pc.floor(values))).as_py():
            arr = arr.cast(pa.int64())
    return arr.cast(pa.string())


def _fold(arr: Any, cases: Sequence[str]) -> Any:
    arr = pc.utf8_trim_whitespace(arr)
    for case in cases:
        if case == "lower":
            arr = pc.utf8_lower(arr)
        elif case == "upper":
            arr = pc.utf8_upper(arr)
    return arr


def _valid(arr: Any) -> np.ndarray:
    """True where a folded id is present and not empty."""
    return pc.fill_null(pc.greater(pc.utf8_length(arr), 0), False).to_numpy(zero_copy_only=False)


def _lookup(values: pa.ChunkedArray, keys: pa.Array, cases: Sequence[str]) -> np.ndarray:
    """Position of each folded value among ``keys`` (unique, folded), -1 when absent.

    Large inputs are split across threads (Arrow releases the GIL)."""

    def run(part: pa.ChunkedArray) -> np.ndarray:
        found = pc.index_in(_fold(part, cases), value_set=keys)
        return pc.fill_null(found, -1).to_numpy().astype(np.int64)

    n = len(values)
    workers = min(os.cpu_count() or 1, 4) if n >= _PARALLEL_MIN else 1
    if workers == 1:
        return run(values) if n else np.empty(0, np.int64)
    step = -(-n // workers)
    parts = [values.slice(start, step) for start in range(0, n, step)]
    with ThreadPoolExecutor(workers) as pool:
        return np.concatenate(list(pool.map(run, parts)))


@dataclass
class _Mapping:
    """A mapping source: folded keys -> folded ids, rebuilt per lookup case."""

    keys: pa.ChunkedArray
    ids: pa.ChunkedArray
    case: str
    tables: dict[tuple[str, ...], tuple[pa.Array, pa.Array]] = field(default_factory=dict)

    def cases(self, source_case: str) -> tuple[str, ...]:
        return (source_case, self.case)

    def table(self, cases: tuple[str, ...]) -> tuple[pa.Array, pa.Array]:
        """Unique folded keys and their ids (first row of a repeated key wins)."""
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
        return self.tables[cases]


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
    source = LoadedSource(
        name=name,
        config=cfg,
        frame=frame,
        rows=table.num_rows,
        max_timestamp=None,
        duplicate_ids=int(conflicting),
        missing_columns=[c for c in missing if c in cfg.columns],
        unmapped=int(np.count_nonzero(~ok)),
    )
    return mapping, source


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


def _universe(texts: list[pa.Array]) -> tuple[pa.Array, list[np.ndarray]]:
    """The distinct non-empty ids in order of first appearance, and each input's positions."""
    masked = []
    for text in texts:
        text = text.combine_chunks() if isinstance(text, pa.ChunkedArray) else text
        masked.append(pc.if_else(pa.array(_valid(text)), text, pa.scalar(None, pa.string())))
    combined = pa.concat_arrays(masked) if masked else pa.array([], pa.string())
    encoded = pc.dictionary_encode(combined)
    codes = pc.fill_null(encoded.indices, -1).to_numpy().astype(np.int64)
    bounds = np.cumsum([0, *(len(t) for t in masked)])
    return encoded.dictionary, [codes[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


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
    keys, ids = mapping.table(cases)
    row = _lookup(text, keys, cases)
    target = np.append(_lookup(pa.chunked_array([ids]), universe, ()), -1)
    pos = target[row]  # row -1 picks the trailing -1
    unmapped = int(np.count_nonzero(row < 0))
    return pos, unmapped, int(np.count_nonzero(pos < 0)) - unmapped


# --------------------------------------------------------------------------- kinds


def _timestamps(arr: pa.ChunkedArray) -> np.ndarray:
    """datetime64[ns], naive UTC; NaT where null, unparseable or out of the ns range.

    Aware timestamps are converted to UTC, naive ones taken as UTC, numbers read as Unix
    seconds and text parsed as ISO 8601 (other formats as a fallback)."""
    kind = arr.type
    if pa.types.is_dictionary(kind):
        arr = arr.cast(kind.value_type)
        kind = arr.type
    if pa.types.is_timestamp(kind):
        return _as_ns(arr.cast(pa.timestamp(kind.unit)).to_numpy())
    if pa.types.is_date(kind):
        return _as_ns(arr.cast(pa.timestamp("s")).to_numpy())
    if pa.types.is_null(kind):
        return np.full(len(arr), _NAT)
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        seconds = arr.cast(pa.float64()).to_numpy()
        seconds[np.abs(seconds) > 9.2e9] = np.nan  # beyond the datetime64[ns] range
        return pd.to_datetime(seconds, unit="s").to_numpy("datetime64[ns]")
    values = arr.cast(pa.string()).to_pandas()
    parsed = pd.to_datetime(values, utc=True, format="ISO8601", errors="coerce")
    if parsed.isna().sum() > values.isna().sum():
        parsed = parsed.fillna(pd.to_datetime(values, utc=True, format="mixed", errors="coerce"))
    return _as_ns(parsed.dt.tz_convert(None).to_numpy())


def _as_ns(values: np.ndarray) -> np.ndarray:
    """Any datetime64 array as datetime64[ns]; values out of that range become NaT."""
    unit, _ = np.datetime_data(values.dtype)
    if unit == "ns":
        return values
    low = np.datetime64("1677-09-22", unit)
    high = np.datetime64("2262-04-11", unit)
    outside = (values < low) | (values > high)
    out = values.astype("datetime64[ns]")
    out[outside] = _NAT
    return out


def _numbers(arr: pa.ChunkedArray) -> np.ndarray:
    kind = arr.type
    if pa.types.is_dictionary(kind):
        arr = arr.cast(kind.value_type)
        kind = arr.type
    numeric = (
        pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_decimal(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_null(kind)
    )
    if numeric:
        return arr.cast(pa.float64()).to_numpy()
    values = pd.to_numeric(arr.cast(pa.string()).to_pandas(), errors="coerce")
    return values.to_numpy(dtype=np.float64, na_value=np.nan)


def _booleans(arr: pa.ChunkedArray) -> pd.arrays.BooleanArray:
    """Booleans from bools, numbers (non-zero) or words (true/yes/y/t/1, false/no/n/f/0)."""
    kind = arr.type
    if pa.types.is_dictionary(kind):
        arr = arr.cast(kind.value_type)
        kind = arr.type
    if pa.types.is_boolean(kind) or pa.types.is_null(kind):
        values = arr.cast(pa.bool_())
        data = pc.fill_null(values, False).to_numpy(zero_copy_only=False)
        mask = pc.is_null(values).to_numpy(zero_copy_only=False)
    elif pa.types.is_integer(kind) or pa.types.is_floating(kind):
        numbers = arr.cast(pa.float64()).to_numpy()
        mask = np.isnan(numbers)
        data = ~mask & (numbers != 0)
    else:
        words = pc.dictionary_encode(_fold(arr.cast(pa.string()), ("lower",)).combine_chunks())
        meaning = [
            w in _TRUE if w in _TRUE | _FALSE else None for w in words.dictionary.to_pylist()
        ]
        codes = pc.fill_null(words.indices, len(meaning)).to_numpy()
        lookup = np.array([*meaning, None], dtype=object)[codes]
        mask = np.equal(lookup, None)
        data = np.where(mask, False, lookup).astype(bool)
    return pd.arrays.BooleanArray(np.asarray(data, bool), np.asarray(mask, bool))


def _categories(arr: pa.ChunkedArray) -> pd.Categorical:
    text = _as_text(arr).combine_chunks()
    encoded = pc.dictionary_encode(text)
    codes = pc.fill_null(encoded.indices, -1).to_numpy()
    categories = pd.Index(encoded.dictionary.to_pandas(), dtype="str")
    return pd.Categorical.from_codes(codes, categories=categories, validate=False)


def _coerce(arr: pa.ChunkedArray, kind: str) -> Any:
    if kind == "number":
        return _numbers(arr)
    if kind == "string":
        return _categories(arr)
    if kind == "bool":
        return _booleans(arr)
    return _timestamps(arr)


def _empty(kind: str, n: int) -> Any:
    """An all-null column of a kind."""
    if kind == "number":
        return np.full(n, np.nan)
    if kind == "string":
        empty = pd.Index([], dtype="str")
        return pd.Categorical.from_codes(np.full(n, -1, np.int8), categories=empty)
    if kind == "bool":
        return pd.arrays.BooleanArray(np.zeros(n, bool), np.ones(n, bool))
    return np.full(n, _NAT)


def _scatter(values: Any, positions: np.ndarray, n: int) -> Any:
    """Place ``values`` at ``positions`` (unique) of an all-null column of length ``n``."""
    if isinstance(values, pd.Categorical):
        codes = np.full(n, -1, dtype=values.codes.dtype)
        codes[positions] = values.codes
        return pd.Categorical.from_codes(codes, dtype=values.dtype, validate=False)
    if isinstance(values, pd.arrays.BooleanArray):
        data = np.zeros(n, bool)
        mask = np.ones(n, bool)
        data[positions] = values.to_numpy(dtype=bool, na_value=False)
        mask[positions] = values.isna()
        return pd.arrays.BooleanArray(data, mask)
    out = np.full(n, _NAT if values.dtype.kind == "M" else np.nan, dtype=values.dtype)
    out[positions] = values
    return out


# --------------------------------------------------------------------------- entity sources


@dataclass
class _EntityRows:
    """An entity source after the created cut, before the join."""

    ids: pa.Array
    table: pa.Table
    rows: int
    max_timestamp: pd.Timestamp | None
    missing: list[str]


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
    max_ts = None
    if cfg.timestamp and cfg.timestamp not in missing:
        stamps = _timestamps(table[cfg.timestamp])
        stamps = stamps[~np.isnat(stamps)]
        max_ts = pd.Timestamp(stamps.max()) if len(stamps) else None
    ids = _id_text(table[cfg.id], cfg, mappings)
    return _EntityRows(
        ids=ids, table=table, rows=table.num_rows, max_timestamp=max_ts, missing=missing
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
    kept = np.flatnonzero(ok)
    pos = positions[kept]
    first = ~pd.Series(pos).duplicated().to_numpy()
    duplicates = int(pd.Series(pos[~first]).nunique())
    frame_cols: dict[str, Any] = {
        cfg.id: pd.Categorical.from_codes(pos, dtype=id_dtype, validate=False)
    }
    table = rows.table.take(pa.array(kept)) if len(kept) < rows.table.num_rows else rows.table
    for column, kind in cfg.columns.items():
        frame_name = schema.aliases.get(f"{name}.{column}", column)
        if column in rows.missing:
            values = _empty(kind, len(kept))
        else:
            values = _coerce(table[column], kind)
        if column != cfg.id:
            frame_cols[column] = values
        columns[frame_name] = _scatter(values[first], pos[first], n)
    for extra in (cfg.created, cfg.timestamp):
        if extra and extra not in frame_cols and extra not in rows.missing:
            frame_cols[extra] = _timestamps(table[extra])
    return LoadedSource(
        name=name,
        config=cfg,
        frame=pd.DataFrame(frame_cols),
        rows=rows.rows,
        max_timestamp=rows.max_timestamp,
        duplicate_ids=duplicates,
        missing_columns=[c for c in rows.missing if c != cfg.id],
        unmapped=int(np.count_nonzero(~ok)),
    )


# --------------------------------------------------------------------------- events sources


@dataclass
class _EventRows:
    """An events source cut at as_of, ids not yet resolved."""

    raw_ids: pa.ChunkedArray
    ts: np.ndarray
    table: pa.Table
    rows: int
    max_timestamp: pd.Timestamp | None
    missing: list[str]


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
    )


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
    table = ev.table if all_kept else ev.table.filter(pa.array(keep))
    n = table.num_rows
    event_col = table[cfg.event] if cfg.event and cfg.event not in ev.missing else None
    codes, names = _event_codes(event_col, n)
    if cfg.value and cfg.value not in ev.missing:
        value = _numbers(table[cfg.value])
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
        frame=pd.DataFrame(frame_cols),
        rows=ev.rows,
        max_timestamp=ev.max_timestamp,
        missing_columns=ev.missing,
        unmapped=unmapped,
        unknown=unknown,
    )
    return arrays, source


# --------------------------------------------------------------------------- features


class _Selection:
    """The events one kind of feature looks at; each array is cut once, when first asked."""

    def __init__(self, ev: _EventArrays, mask: np.ndarray | None) -> None:
        self.ev = ev
        self.mask = mask
        self.arrays: dict[str, np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.arrays:
            full = getattr(self.ev, name)
            self.arrays[name] = full if self.mask is None else full[self.mask]
        return self.arrays[name]


def _select(
    feat: FeatureConfig,
    ev: _EventArrays,
    before_ns: int,
    cache: dict[tuple[Any, ...], _Selection],
) -> _Selection:
    """Matching events (name, window, and a value when the aggregation needs one)."""
    wanted = frozenset(e.strip() for e in feat.events) if feat.events is not None else None
    valued = feat.agg not in _ROW_AGGS
    key = (feat.source, wanted, feat.window_days, valued)
    if key not in cache:
        mask = None
        if wanted is not None:
            lookup = np.zeros(len(ev.names) + 1, bool)  # code -1 (no event name) reads the end
            lookup[[i for i, name in enumerate(ev.names) if name in wanted]] = True
            mask = lookup[ev.codes]
        if feat.window_days is not None:
            recent = ev.ts >= before_ns - feat.window_days * DAY_NS
            mask = recent if mask is None else mask & recent
        if valued and ev.has_nulls:
            present = ~np.isnan(ev.value)
            mask = present if mask is None else mask & present
        cache[key] = _Selection(ev, mask)
    return cache[key]


def _feature(
    feat: FeatureConfig,
    ev: _EventArrays,
    n: int,
    before: pd.Timestamp,
    cache: dict[tuple[Any, ...], _Selection],
) -> np.ndarray:
    """One feature column (float64, length n) from resolved events."""
    before_ns = before.value
    events = _select(feat, ev, before_ns, cache)
    pos = events["pos"]
    out = np.full(n, np.nan)
    if feat.agg == "count":
        counts = np.bincount(pos, minlength=n).astype(np.float64)
        out = np.where(counts > 0, counts, np.nan)
    elif feat.agg == "days_since":
        latest = np.full(n, _MIN_NS)
        np.maximum.at(latest, pos, events["ts"])
        seen = latest > _MIN_NS
        as_of_day = before_ns // DAY_NS - 1
        out[seen] = as_of_day - np.floor_divide(latest[seen], DAY_NS)
    else:
        value = events["value"]
        counts = np.bincount(pos, minlength=n)
        seen = counts > 0
        if feat.agg in ("sum", "avg"):
            sums = np.bincount(pos, weights=value, minlength=n)
            out[seen] = sums[seen] if feat.agg == "sum" else sums[seen] / counts[seen]
        elif feat.agg in ("min", "max"):
            ufunc = np.minimum if feat.agg == "min" else np.maximum
            acc = np.full(n, np.inf if feat.agg == "min" else -np.inf)
            ufunc.at(acc, pos, value)
            out[seen] = acc[seen]
        else:  # first / last: value at the earliest / latest time, ties -> largest value
            first = feat.agg == "first"
            ts = events["ts"]
            edge = np.full(n, _MAX_NS if first else _MIN_NS)
            (np.minimum if first else np.maximum).at(edge, pos, ts)
            at_edge = ts == edge[pos]
            best = np.full(n, -np.inf)
            np.maximum.at(best, pos[at_edge], value[at_edge])
            out[seen] = best[seen]
    fill = feat.fill if feat.fill is not None else (0.0 if feat.agg in ("count", "sum") else None)
    if fill is not None:
        out[np.isnan(out)] = fill
    return out


# --------------------------------------------------------------------------- scores


def _as_float(values: Any) -> np.ndarray:
    if isinstance(values, pd.Categorical):
        raise TypeError("string")
    if isinstance(values, pd.arrays.BooleanArray):
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    values = np.asarray(values)
    if values.dtype.kind == "M":
        out = values.view(np.int64).astype(np.float64)
        out[np.isnat(values)] = np.nan
        return out
    return values.astype(np.float64)


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """0-based ranks, ties sharing their average rank."""
    order = np.argsort(values)
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(values)]
    ranks = np.empty(len(values))
    ranks[order] = np.repeat((starts + ends - 1) / 2.0, ends - starts)
    return ranks


def _normalise(x: np.ndarray, method: str) -> np.ndarray:
    """Scale to 0-1 (nulls stay null): percentile rank or min-max; constant -> 0.5."""
    present = ~np.isnan(x)
    count = int(present.sum())
    out = np.full(len(x), np.nan)
    if count == 0:
        return out
    if method == "rank":
        if count == 1:
            out[present] = 0.5
            return out
        out[present] = _average_ranks(x[present]) / (count - 1)
        return out
    lo, hi = np.nanmin(x), np.nanmax(x)
    out[present] = 0.5 if hi == lo else (x[present] - lo) / (hi - lo)
    return out


def _scores(
    ws: Workspace,
    schema: Schema,
    columns: dict[str, Any],
    lineage: dict[str, set[str]],
    n: int,
) -> None:
    """Compute every score into ``columns`` (scores may weigh other scores)."""
    pending = dict(ws.scores)
    inputs = {
        name: {schema.resolve(col): w for col, w in score.weights.items()}
        for name, score in ws.scores.items()
    }
    while pending:
        ready = [s for s in pending if not (set(inputs[s]) & set(pending))]
        if not ready:
            raise SegopsError(f"scores {', '.join(sorted(pending))} weigh each other in a cycle")
        for name in ready:
            score = pending.pop(name)
            total = np.zeros(n)
            weight_sum = 0.0
            sources: set[str] = set()
            for column, weight in inputs[name].items():
                try:
                    x = _as_float(columns[column])
                except TypeError:
                    raise SegopsError(
                        f"score {name!r}: column {column!r} is not a number, bool or date"
                    ) from None
                part = _normalise(x, score.method)
                if weight < 0:
                    part = 1.0 - part
                total += abs(weight) * np.nan_to_num(part, nan=0.0)
                weight_sum += abs(weight)
                sources |= lineage.get(column, set())
            result = 100.0 * total / weight_sum if weight_sum else np.zeros(n)
            columns[name] = np.round(result, 1)
            lineage[name] = sources

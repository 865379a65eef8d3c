"""The per-entity rows an engine computed, kept in a local file instead of memory.

A refresh on the SQL engines streams the one-row-per-entity result in batches
(:func:`segments.engine.run.load_in_engine` with ``stage_to``). :class:`StagedWriter` takes
each batch: the ids and the packed member flags stay in memory (what the bitmaps need), and
the columns are brought to the frame's kinds (the same conversion the in-memory frame gets)
and appended to an uncompressed Arrow IPC file.
Nulls are counted and every column digested on the way, so neither needs a second pass.

:class:`StagedTable` then serves the file one column at a time (:mod:`segments.table`):
profiling members, explaining leavers and counting nulls never hold more than a few columns.
Two million entities with twenty columns: the frame was ~320 MB of float64 plus the Arrow
batches it was built from; here it is the ids and one column.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from segments.schema import Schema
from segments.sources.kinds import _coerce

_ARROW_KINDS = {
    "number": pa.float64(),
    "date": pa.timestamp("ns"),
    "bool": pa.bool_(),
    "string": pa.large_string(),
}


class PackedMasks(Mapping[str, np.ndarray]):
    """Each segment's member mask, unpacked on request from the engine's packed flags
    (bit ``k`` of column ``j`` is segment ``pack * j + k``): 60 segments cost 8 bytes a row
    instead of 60."""

    def __init__(self, names: list[str], packed: list[np.ndarray], pack: int) -> None:
        self._bit = {name: divmod(i, pack) for i, name in enumerate(names)}
        self._packed = packed

    def __getitem__(self, name: str) -> np.ndarray:
        column, bit = self._bit[name]
        packed = self._packed[column]
        if sys.byteorder == "little":  # one strided byte per row instead of 8-byte shifts
            octet = packed.view(np.uint8)[bit // 8 :: 8]
            return (octet & np.uint8(1 << (bit % 8))).astype(bool)
        return ((packed >> bit) & 1).astype(bool)

    def __iter__(self) -> Iterator[str]:
        return iter(self._bit)

    def __len__(self) -> int:
        return len(self._bit)


class _Digest:
    """sha256 of a column streamed in chunks; the same however the rows are chunked (the
    validity, the text lengths and the values are three streams, hashed apart)."""

    def __init__(self, name: str, kind: pa.DataType) -> None:
        self._head = f"|{name}:{kind}|"
        self._valid, self._lengths, self._values = (hashlib.sha256() for _ in range(3))

    def update(self, values: pa.Array) -> None:
        self._valid.update(pc.is_valid(values).to_numpy(zero_copy_only=False).tobytes())
        if pa.types.is_large_string(values.type) or pa.types.is_string(values.type):
            lengths = pc.fill_null(pc.binary_length(values), 0).to_numpy(zero_copy_only=False)
            self._lengths.update(lengths.astype(np.int64).tobytes())
            offsets_type = np.int64 if pa.types.is_large_string(values.type) else np.int32
            _validity, offsets_buffer, data = values.buffers()
            offsets = np.frombuffer(offsets_buffer, offsets_type)[values.offset :]
            start, end = (int(offsets[0]), int(offsets[len(values)])) if len(values) else (0, 0)
            self._values.update(memoryview(data or b"")[start:end])
        else:
            if pa.types.is_boolean(values.type):
                zero = pa.scalar(False)
            else:
                zero = pa.scalar(0, values.type)
            filled = values.fill_null(zero) if values.null_count else values
            plain = np.ascontiguousarray(filled.to_numpy(zero_copy_only=False))
            self._values.update(plain.view(np.uint8).data)

    def hexdigest(self) -> str:
        parts = (self._valid, self._lengths, self._values)
        return hashlib.sha256(
            (self._head + "|".join(h.hexdigest() for h in parts)).encode()
        ).hexdigest()


def _arrow_column(values: Any, kind: str) -> pa.Array:
    """A coerced frame column (numpy or pandas array) as Arrow of its kind's one type."""
    if kind == "string":
        return pa.array(pd.Series(values, copy=False), from_pandas=True).cast(pa.large_string())
    if kind == "bool":
        return pa.array(values, type=pa.bool_(), from_pandas=True)
    return pa.array(values, type=_ARROW_KINDS[kind], from_pandas=True)


class StagedWriter:
    """Takes the result's batches: ids and flags in memory, columns to ``path``."""

    def __init__(self, path: Path, *, id_column: str, kinds: Mapping[str, str]) -> None:
        self.path = path
        self._id = id_column
        self._kinds = dict(kinds)
        self._schema = pa.schema([(n, _ARROW_KINDS[k]) for n, k in self._kinds.items()])
        self._sink = pa.OSFile(str(path), "wb")
        self._writer = pa.ipc.new_file(self._sink, self._schema)
        self._ids: list[pa.Array] = []
        self._flags: dict[str, list[np.ndarray]] = {}
        self._nulls = dict.fromkeys(self._kinds, 0)
        self._digests = {
            name: _Digest(name, kind)
            for name, kind in [(id_column, pa.large_string()), *self._schema_items()]
        }
        self.rows = 0

    def _schema_items(self) -> list[tuple[str, pa.DataType]]:
        return [(field.name, field.type) for field in self._schema]

    def add(self, batch: pa.RecordBatch, flag_columns: Iterable[str]) -> None:
        """One batch of the result: ``segops_id``, the columns, the flags."""
        # copied into buffers of its own: a column the engine handed over keeps its whole
        # batch alive (ten million rows of twenty columns: ~2 GB held for the ids alone)
        ids = pa.concat_arrays([batch.column(self._id).cast(pa.large_string())])
        self._ids.append(ids)
        self._digests[self._id].update(ids)
        for name in flag_columns:
            values = batch.column(name).to_numpy(zero_copy_only=False)
            self._flags.setdefault(name, []).append(np.asarray(values).astype(np.int64))
        arrays = []
        for name, kind in self._kinds.items():
            raw = batch.column(name)
            if pa.types.is_decimal(raw.type):
                raw = raw.cast(pa.float64())
            coerced = _coerce(pa.chunked_array([raw]), kind)
            column = _arrow_column(coerced, kind)
            self._nulls[name] += int(pd.isna(coerced).sum())
            self._digests[name].update(column)
            arrays.append(column)
        self._writer.write_batch(pa.record_batch(arrays, schema=self._schema))
        self.rows += batch.num_rows

    def finish(self, schema: Schema, names: list[str], pack: int) -> StagedTable:
        """Close the file; the table serving it, with the segments' masks and a digest."""
        self._writer.close()
        self._sink.close()
        ids = pa.chunked_array(self._ids, pa.large_string()) if self._ids else None
        keys = (
            pd.Index(ids.to_pandas(), name="id", dtype="str")
            if ids is not None
            else pd.Index([], name="id", dtype="str")
        )
        self._ids = []
        packed = [
            np.concatenate(self._flags[f"m{j}"])
            if self._flags.get(f"m{j}")
            else np.zeros(0, np.int64)
            for j in range(-(-len(names) // pack))
        ]
        digest = hashlib.sha256(f"rows:{self.rows}".encode())
        for name in self._digests:
            digest.update(f"{name}={self._digests[name].hexdigest()}".encode())
        return StagedTable(
            self.path,
            keys,
            schema,
            self._kinds,
            dict(self._nulls),
            masks=PackedMasks(names, packed, pack),
            digest=digest.hexdigest(),
        )


RECENT_COLUMNS = 3
"""Columns a :class:`StagedTable` keeps after reading them: explaining a segment's leavers
reads its rule's columns, then the same columns again for the distances to the thresholds,
and the next segment often names some of them too (a column read is ~50 ms at 10M rows)."""


class StagedTable:
    """The staged columns by name, each read from the file when asked
    (:class:`segments.table.Table`)."""

    def __init__(
        self,
        path: Path,
        index: pd.Index,
        schema: Schema,
        kinds: Mapping[str, str],
        nulls: Mapping[str, int],
        *,
        masks: PackedMasks,
        digest: str,
    ) -> None:
        self.path = path
        self.index = index
        self.schema = schema
        self.kinds = dict(kinds)
        self.columns = pd.Index(list(self.kinds))
        self.masks = masks
        self.digest = digest
        self._nulls = dict(nulls)
        self._recent: dict[str, pd.Series] = {}

    def __len__(self) -> int:
        return len(self.index)

    def _read(self, name: str) -> pa.ChunkedArray:
        with pa.memory_map(str(self.path)) as source:
            reader = pa.ipc.open_file(source)
            chunks = [reader.get_batch(i).column(name) for i in range(reader.num_record_batches)]
            # copied out of the mapping, which closes here
            return pa.chunked_array(chunks, _ARROW_KINDS[self.kinds[name]]).combine_chunks()

    def __getitem__(self, name: str) -> pd.Series:
        cached = self.read(name)
        self._recent[name] = cached  # the most recent last
        while len(self._recent) > RECENT_COLUMNS:
            self._recent.pop(next(iter(self._recent)))
        return cached

    def read(self, name: str) -> pd.Series:
        """Column ``name``, not kept for a later ask (profiling converts it once)."""
        if name not in self.kinds:
            raise KeyError(name)
        cached = self._recent.pop(name, None)
        if cached is not None:
            return cached
        values = _coerce(pa.chunked_array([self._read(name)]), self.kinds[name])
        return pd.Series(values, name=name, copy=False)

    def rows(self, mask: np.ndarray, names: Iterable[str]) -> pd.DataFrame:
        """The rows where ``mask`` holds, with the columns ``names``."""
        positions = np.flatnonzero(mask)
        columns = {}
        for name in dict.fromkeys(names):
            column = self[name]
            columns[name] = column.take(positions).reset_index(drop=True)
        return pd.DataFrame(columns, index=pd.RangeIndex(len(positions)))

    def null_counts(self) -> dict[str, int]:
        return dict(self._nulls)

    def remove(self) -> None:
        """Delete the file (the refresh does, when it has finished with the rows)."""
        self.path.unlink(missing_ok=True)

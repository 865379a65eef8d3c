"""Ids: any id column as text, trimmed and case-folded, looked up among known ids, and the
universe of distinct ids in order of first appearance."""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_PARALLEL_MIN = 1_000_000


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


def _blank(raw: pa.ChunkedArray | pa.Array, rows: np.ndarray) -> int:
    """How many of ``rows`` (positions in ``raw``, an id column as read) are empty after
    trimming; only those rows are looked at, so a clean source costs nothing."""
    if not len(rows):
        return 0
    taken = raw.take(pa.array(rows))
    if isinstance(taken, pa.Array):
        taken = pa.chunked_array([taken])
    return int(np.count_nonzero(~_valid(_fold(_as_text(taken), ()))))


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

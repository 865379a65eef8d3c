"""Declared kinds to frame columns: timestamps, numbers, booleans and categories from Arrow
arrays, all-null columns, placing rows at entity positions, and counting the values that did not
parse."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from segments.sources.ids import _as_text, _fold, _valid
from segments.sources.loaded import ValueStats

_NAT = np.datetime64("NaT", "ns")
_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})
_SAMPLE = 64  # invalid rows looked at for examples
_EXAMPLES = 3


def _timestamps(arr: pa.ChunkedArray) -> np.ndarray:
    """datetime64[ns], naive UTC; NaT where null, unparseable or out of the ns range.

    Aware timestamps are converted to UTC, naive ones taken as UTC, numbers read as Unix
    seconds and text parsed as ISO 8601 only: other text is unparseable, never guessed
    (a CSV source's ``date_format`` brings its dates to ISO 8601 first)."""
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
    """float64; NaN where null, unparseable or infinite."""
    values = _raw_numbers(arr)
    infinite = np.isinf(values)
    return np.where(infinite, np.nan, values) if infinite.any() else values


def _raw_numbers(arr: pa.ChunkedArray) -> np.ndarray:
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


def _present(arr: pa.ChunkedArray) -> np.ndarray:
    """True where a raw value is there to parse: not null, not NaN, text not blank."""
    kind = arr.type
    if pa.types.is_dictionary(kind):
        arr = arr.cast(kind.value_type)
        kind = arr.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return _valid(_fold(arr, ()))
    present = pc.is_valid(arr).to_numpy(zero_copy_only=False)
    if pa.types.is_floating(kind):
        present &= ~pc.fill_null(pc.is_nan(arr), True).to_numpy(zero_copy_only=False)
    return present


def _nulls(values: Any) -> np.ndarray:
    if isinstance(values, pd.arrays.BooleanArray):
        return np.asarray(values.isna())
    if values.dtype.kind == "M":
        return np.isnat(values)
    return np.isnan(values)


def _value_stats(arr: pa.ChunkedArray, kind: str, values: Any) -> ValueStats:
    """Present values of ``arr`` and those that ``values`` (``arr`` read as ``kind``) lost."""
    lost = _nulls(values)
    if not lost.any():  # nulls stay nulls, so nothing was null and nothing was lost
        return ValueStats(kind, len(values))
    present = _present(arr)
    invalid = present & lost
    count = int(np.count_nonzero(invalid))
    examples: tuple[str, ...] = ()
    if count:
        sample = arr.take(pa.array(np.flatnonzero(invalid)[:_SAMPLE])).to_pylist()
        examples = tuple(dict.fromkeys(str(v).strip() for v in sample))[:_EXAMPLES]
    return ValueStats(kind, int(np.count_nonzero(present)), count, examples)


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

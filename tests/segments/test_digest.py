"""Frame digests: equal data, equal digest; any changed value, kind or name, another."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from segments.sources.digest import columns_digest, frame_digest


def _frame() -> pd.DataFrame:
    ids = pd.Index(["a", "b", "c", "d"], dtype="str")
    return pd.DataFrame(
        {
            "id": pd.Categorical.from_codes([0, 1, 2, 3], dtype=pd.CategoricalDtype(ids)),
            "plan": pd.Categorical(["pro", None, "pro", "team"]),
            "mrr": np.array([1.5, np.nan, 3.0, 4.0]),
            "seen": np.array(["2026-01-01", "NaT", "2026-02-01", "2026-03-01"], "datetime64[ns]"),
            "active": pd.array([True, None, False, True], dtype="boolean"),
            "note": pd.array(["x", None, "yz", ""], dtype="str"),
            "raw": np.array(["p", None, 3, "q"], dtype=object),
        },
        index=ids,
    )


def test_equal_frames_have_equal_digests() -> None:
    assert frame_digest(_frame()) == frame_digest(_frame())
    assert frame_digest(_frame(), index=True) == frame_digest(_frame(), index=True)


@pytest.mark.parametrize(
    ("column", "row", "value"),
    [
        ("plan", 1, "pro"),
        ("mrr", 1, 0.0),
        ("mrr", 0, 1.25),
        ("seen", 1, pd.Timestamp("1970-01-01")),
        ("active", 1, False),
        ("active", 2, True),
        ("note", 1, ""),
        ("note", 2, "zy"),
        ("raw", 2, "3"),
    ],
)
def test_any_changed_value_changes_the_digest(column: str, row: int, value: object) -> None:
    frame = _frame()
    changed = frame.copy()
    changed.iloc[row, changed.columns.get_loc(column)] = value
    assert frame_digest(changed) != frame_digest(frame)


def test_names_kinds_rows_and_index_count() -> None:
    frame = _frame()
    base = frame_digest(frame)
    assert frame_digest(frame.rename(columns={"mrr": "arr"})) != base
    assert frame_digest(frame.astype({"mrr": "float32"})) != base
    assert frame_digest(frame.iloc[:3]) != base
    moved = frame.set_axis(pd.Index(list("wxyz"), dtype="str"))
    assert frame_digest(moved) == base  # the index is left out unless asked for
    assert frame_digest(moved, index=True) != frame_digest(frame, index=True)


def test_text_split_differently_over_arrow_buffers_digests_the_same() -> None:
    whole = pa.array(["pre", "a", "bc", None, "d"])
    sliced = pd.DataFrame({"t": pd.array(pa.array(whole[1:]).to_pandas(), dtype="str")})
    offset = pd.DataFrame({"t": pd.array(pa.chunked_array([whole[1:]]), dtype="str")})
    assert offset["t"].array._pa_array.chunk(0).offset == 1
    assert frame_digest(sliced) == frame_digest(offset)


def test_columns_digest_like_the_frame_built_from_them() -> None:
    frame = _frame()
    columns = {name: frame[name].array for name in frame}
    assert columns_digest(columns, len(frame)) == frame_digest(frame)

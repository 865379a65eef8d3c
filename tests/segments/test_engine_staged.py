"""The SQL engines' rows kept in a file: every column read back is the in-memory frame's,
nulls are counted as the frame counts them, masks unpack to the members, and the digest
does not depend on how the rows were batched."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from segments.engine import load
from segments.engine.staged import PackedMasks, StagedWriter
from segments.schema import Schema
from tests.segments.test_engine import (
    AS_OF,
    csv_workspace,
    expected_members,
    parsed,
    pg_tables,
    pg_workspace,
    sources_equal,
)


def _same_as_frame(ws, tmp_path, engine: str | None) -> None:
    reference, _ = load(ws, as_of=AS_OF, engine=engine, rules=parsed(ws))
    got, members = load(ws, as_of=AS_OF, engine=engine, rules=parsed(ws), stage_to=tmp_path)
    assert list(got.frame.columns) == []  # the frame holds only the ids
    sources_equal(reference, got)  # the gate's counts, duplicate ids included
    assert got.sources["crm"].duplicate_ids == 1
    assert list(got.frame.index) == list(reference.frame.index)
    # one row per entity despite the repeated id: the refresh numbers new ids unhashed
    assert got.frame.index.is_unique and reference.frame.index.is_unique
    table = got.table
    assert list(table.columns) == list(reference.frame.columns)
    for column in reference.frame.columns:
        want, have = reference.frame[column], table[column]
        if isinstance(want.dtype, pd.CategoricalDtype):
            want, have = want.astype(object), have.astype(object)
        pd.testing.assert_series_equal(
            have.reset_index(drop=True),
            want.reset_index(drop=True),
            check_dtype=False,
            check_names=False,
            obj=column,
        )
    assert table.null_counts() == {c: int(n) for c, n in reference.frame.isna().sum().items()}
    assert table.null_counts()["seats"] > 0  # the check meets a null
    assert {k: sorted(v) for k, v in members.ids.items()} == expected_members(ws, reference)
    assert (
        got.fingerprint
        == load(ws, as_of=AS_OF, engine=engine, rules=parsed(ws), stage_to=tmp_path)[0].fingerprint
    )
    leavers = np.zeros(len(table), dtype=bool)
    leavers[[0, 2]] = True
    small = table.rows(leavers, ["plan", "seats"])
    np.testing.assert_array_equal(small["seats"], reference.frame["seats"].iloc[[0, 2]])
    assert list(small["plan"].astype(object)) == list(
        reference.frame["plan"].iloc[[0, 2]].astype(object)
    )


def test_duckdb_rows_in_a_file_read_back_as_the_frame(tmp_path):
    _same_as_frame(csv_workspace(tmp_path), tmp_path, "duckdb")


@pytest.mark.postgres
def test_postgresql_rows_in_a_file_read_back_as_the_frame(tmp_path, pg_url):
    pg_tables(pg_url, "shop")
    _same_as_frame(pg_workspace(tmp_path, pg_url), tmp_path, None)


def test_a_column_read_for_one_use_is_not_kept(tmp_path):
    ws = csv_workspace(tmp_path)
    got, _ = load(ws, as_of=AS_OF, engine="duckdb", rules=parsed(ws), stage_to=tmp_path)
    table = got.table
    kept = table["plan"]  # kept for the next ask: the same object comes back
    assert table["plan"] is kept
    once = table.read("plan")  # handed over and let go
    pd.testing.assert_series_equal(once, kept)
    assert table["plan"] is not kept
    alone = weakref.ref(table.read("seats"))
    gc.collect()
    assert alone() is None  # nothing but the caller held it


def test_the_ids_kept_hold_no_memory_of_the_batch_they_came_in(tmp_path):
    # an engine's batch shares its buffers: ids kept as handed over would keep them all
    before = pa.total_allocated_bytes()
    wide = pa.array(["x" * 10_000] * 2_000).slice(0, 3)  # ~20 MB behind three ids
    batch = pa.record_batch(
        {"segops_id": pa.array(["a1", "a2", "a3"]), "plan": wide, "m0": [1, 0, 1]}
    )
    batch = batch.set_column(0, "segops_id", wide)  # the ids share the wide buffer
    writer = StagedWriter(tmp_path / "rows.arrow", id_column="segops_id", kinds={})
    writer.add(batch, ["m0"])
    del batch, wide
    gc.collect()
    assert pa.total_allocated_bytes() - before < 1_000_000
    table = writer.finish(Schema(columns={}), ["a"], 60)
    assert table.index.tolist() == ["x" * 10_000] * 3


def _write(path, batches, kinds) -> str:
    writer = StagedWriter(path, id_column="segops_id", kinds=kinds)
    for batch in batches:
        writer.add(batch, ["m0"])
    return writer.finish(Schema(columns=kinds), ["a"], 60).digest


def test_the_digest_is_the_same_however_the_rows_are_batched(tmp_path):
    kinds = {"plan": "string", "seats": "number", "on": "bool", "day": "date"}
    whole = pa.record_batch(
        {
            "segops_id": ["a1", "a2", "a3", "a4", "a5"],
            "plan": ["pro", None, "team", "pro", "free"],
            "seats": [1.0, None, 3.5, 4.0, 0.0],
            "on": [True, None, False, True, True],
            "day": pa.array([0, 86_400, None, 3 * 86_400, 4], pa.timestamp("s")),
            "m0": [1, 0, 1, 1, 0],
        }
    )
    one = _write(tmp_path / "one.arrow", [whole], kinds)
    split = _write(tmp_path / "two.arrow", [whole.slice(0, 2), whole.slice(2)], kinds)
    assert one == split
    changed = whole.set_column(2, "seats", pa.array([1.0, None, 3.5, 4.0, 9.0]))
    assert _write(tmp_path / "three.arrow", [changed], kinds) != one
    moved = whole.set_column(1, "plan", pa.array(["pr", None, "oteam", "pro", "free"]))
    assert _write(tmp_path / "four.arrow", [moved], kinds) != one  # same bytes, cut elsewhere


def test_packed_masks_unpack_every_bit():
    rng = np.random.default_rng(7)
    truth = rng.random((64, 1000)) < 0.3
    names = [f"s{i}" for i in range(64)]
    packed = [np.zeros(1000, np.int64), np.zeros(1000, np.int64)]
    for i in range(64):
        column, bit = divmod(i, 60)
        packed[column] |= truth[i].astype(np.int64) << bit
    masks = PackedMasks(names, packed, 60)
    assert list(masks) == names and len(masks) == 64
    for i, name in enumerate(names):
        assert masks[name].dtype == bool
        assert np.array_equal(masks[name], truth[i]), name

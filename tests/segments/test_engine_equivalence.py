"""Same answers everywhere: on random data, features, scores and rules, pandas, DuckDB and
PostgreSQL give the same features, members and drift profiles, nulls and ties included."""

from __future__ import annotations

import itertools
import tempfile
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from segments import drift, rules
from segments.engine import load
from segments.evaluate import evaluate_all
from segments.workspace import Workspace

AS_OF = date(2026, 1, 31)
IDS = ["e0", "e1", "e2", "e3"]
PLANS = ["a", "B", "b", "pro", "ä", None]
SEATS = [None, -2.0, 0.0, 0.5, 1.0, 3.0]
DAYS = [datetime(2026, 1, d, h) for d in (1, 25, 31) for h in (0, 12)]
DAYS.append(datetime(2026, 2, 1, 0))  # after as_of: never counts
VALUES = [None, -1.0, 0.0, 1.0, 2.5, 7.0]
AGGS = ["count", "sum", "avg", "min", "max", "first", "last", "days_since"]
_schemas = itertools.count()

entity_rows = st.lists(
    st.fixed_dictionaries(
        {
            "account_id": st.sampled_from([*IDS, " e1", ""]),
            "plan": st.sampled_from(PLANS),
            "seats": st.sampled_from(SEATS),
            "active": st.sampled_from([True, False, None]),
            "signed_at": st.sampled_from([None, *DAYS[:6]]),
        }
    ),
    min_size=1,
    max_size=8,
)
event_rows = st.lists(
    st.fixed_dictionaries(
        {
            "account_id": st.sampled_from([*IDS, "ghost", "E2 "]),
            "ts": st.sampled_from(DAYS),
            "event": st.sampled_from(["login", "buy", None]),
            "value": st.sampled_from(VALUES),
        }
    ),
    max_size=30,
)
features = st.dictionaries(
    st.sampled_from(["f1", "f2", "f3", "f4"]),
    st.fixed_dictionaries(
        {
            "source": st.just("product"),
            "agg": st.sampled_from(AGGS),
            "event": st.sampled_from([None, "login", ["buy", "login"], "nothing"]),
            "window_days": st.sampled_from([None, 1, 7, 30]),
            "fill": st.sampled_from([None, None, 0.0, -1.0]),
        }
    ),
    min_size=1,
    max_size=4,
)


@st.composite
def workspaces(draw: st.DrawFn) -> dict[str, Any]:
    feats = draw(features)
    numbers = [*feats, "seats"]
    scores = {}
    if draw(st.booleans()):
        weights = draw(
            st.dictionaries(
                st.sampled_from([*numbers, "active"]),
                st.sampled_from([1.0, -1.0, 0.5, 2.0]),
                min_size=1,
                max_size=3,
            )
        )
        scores["score"] = {"weights": weights, "method": draw(st.sampled_from(["rank", "minmax"]))}
        numbers.append("score")

    def condition() -> str:
        kind = draw(st.sampled_from(["number", "number", "plan", "active", "date", "null"]))
        if kind == "number":
            column = draw(st.sampled_from(numbers))
            op = draw(st.sampled_from(["=", "!=", "<", "<=", ">", ">="]))
            return f"{column} {op} {draw(st.sampled_from([-1, 0, 0.5, 1, 2, 3, 50]))}"
        if kind == "plan":
            op = draw(st.sampled_from(["=", "<", ">=", "in"]))
            if op == "in":
                return "plan in ('a', 'b', 'ä')"
            return f"plan {op} '{draw(st.sampled_from(['a', 'B', 'b', 'p']))}'"
        if kind == "active":
            return f"active = {draw(st.sampled_from(['true', 'false']))}"
        if kind == "date":
            op = draw(st.sampled_from(["=", "<", ">="]))
            return f"signed_at {op} '{draw(st.sampled_from(['2026-01-01', '2026-01-24']))}'"
        return f"{draw(st.sampled_from(numbers))} is null"

    segments = []
    for i in range(draw(st.integers(1, 3))):
        rule = condition()
        joiner = draw(st.sampled_from([None, "and", "or", "and not"]))
        if joiner:
            rule = f"{rule} {joiner} {condition()}"
        if i and draw(st.booleans()):
            rule = f"{rule} or in_segment('s{i - 1}')"
        segments.append({"name": f"s{i}", "title": f"S{i}", "owner": "U1", "rule": rule})
    return {"features": feats, "scores": scores, "segments": segments}


def _workspace(base: Path, definition: dict[str, Any], sources: dict[str, Any]) -> Workspace:
    return Workspace.model_validate({"base_dir": base, "sources": sources, **definition})


def _sources(where: dict[str, Any]) -> dict[str, Any]:
    crm = {
        "kind": "entity",
        "id": "account_id",
        "id_case": "lower",
        "columns": {"plan": "string", "seats": "number", "active": "bool", "signed_at": "date"},
    }
    events = {
        "kind": "events",
        "id": "account_id",
        "id_case": "lower",
        "timestamp": "ts",
        "event": "event",
        "value": "value",
    }
    return {"crm": {**crm, **where["crm"]}, "product": {**events, **where["product"]}}


def _frames(crm: list[dict], events: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    crm_frame = pd.DataFrame(crm, columns=["account_id", "plan", "seats", "active", "signed_at"])
    crm_frame["active"] = crm_frame["active"].astype("boolean")
    crm_frame["signed_at"] = pd.to_datetime(crm_frame["signed_at"])
    events_frame = pd.DataFrame(events, columns=["account_id", "ts", "event", "value"])
    events_frame["ts"] = pd.to_datetime(events_frame["ts"])
    events_frame["value"] = events_frame["value"].astype("float64")
    return crm_frame, events_frame


def _parquet(base: Path, crm: pd.DataFrame, events: pd.DataFrame) -> dict[str, Any]:
    pq.write_table(pa.Table.from_pandas(crm, preserve_index=False), base / "crm.parquet")
    pq.write_table(pa.Table.from_pandas(events, preserve_index=False), base / "events.parquet")
    return {"crm": {"path": "crm.parquet"}, "product": {"path": "events.parquet"}}


def _plain(value: Any) -> Any:
    return value.to_pydatetime() if isinstance(value, pd.Timestamp) else value


def _postgres(url: str, crm: pd.DataFrame, events: pd.DataFrame) -> dict[str, Any]:
    schema = f"eq{next(_schemas)}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
        conn.exec_driver_sql(
            f"CREATE TABLE {schema}.crm (account_id text, plan text, seats double precision, "
            "active boolean, signed_at timestamp)"
        )
        conn.exec_driver_sql(
            f"CREATE TABLE {schema}.events (account_id text, ts timestamp, event text, "
            "value double precision)"
        )
        for table, frame in (("crm", crm), ("events", events)):
            marks = ", ".join(["%s"] * len(frame.columns))
            for row in frame.astype(object).itertuples(index=False):
                values = tuple(None if pd.isna(v) else _plain(v) for v in row)
                conn.exec_driver_sql(f"INSERT INTO {schema}.{table} VALUES ({marks})", values)
    engine.dispose()
    return {
        "crm": {"url": url, "table": f"{schema}.crm"},
        "product": {"url": url, "table": f"{schema}.events"},
    }


def _answers(ws: Workspace, engine: str) -> tuple[pd.DataFrame, dict, dict]:
    parsed = {s.name: rules.parse(s.rule) for s in ws.segments}
    dataset, members = load(ws, as_of=AS_OF, engine=engine, rules=parsed)
    frame = dataset.frame.sort_index()
    masks = evaluate_all(parsed, frame, dataset.schema)
    ids = {n: sorted(frame.index[m]) for n, m in masks.items()}
    if members is not None:
        assert {n: sorted(v) for n, v in members.ids.items()} == ids  # engine == its frame
    columns = sorted(dataset.schema.columns)
    cache = drift.ProfileColumns(frame, dataset.schema, as_of=AS_OF)
    profiles = {
        n: drift.profile(frame, columns, dataset.schema, as_of=AS_OF, mask=m, cache=cache)
        for n, m in masks.items()
    }
    return frame, ids, profiles


def _same(reference: tuple, other: tuple) -> None:
    left, right = reference[0], other[0]
    assert list(left.index) == list(right.index)
    for column in left.columns:
        x, y = left[column], right[column]
        if isinstance(x.dtype, pd.CategoricalDtype):
            x, y = x.astype(object), y.astype(object)
        pd.testing.assert_series_equal(x, y, check_dtype=False, check_exact=True, obj=column)
    assert reference[1] == other[1]
    assert reference[2] == other[2]


EXAMPLES = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# two events at one time (the larger value wins), and a score over one present value
TIES = {
    "features": {
        "f1": {"source": "product", "agg": "last"},
        "f2": {"source": "product", "agg": "first", "event": "login"},
    },
    "scores": {"score": {"weights": {"f1": 1.0, "seats": -1.0}}},
    "segments": [{"name": "s0", "title": "S0", "owner": "U1", "rule": "f1 >= 7 or score > 40"}],
}
TIE_CRM = [
    {"account_id": "e1", "plan": "a", "seats": 1.0, "active": True, "signed_at": None},
    {"account_id": "e2", "plan": None, "seats": None, "active": None, "signed_at": None},
]
TIE_EVENTS = [
    {"account_id": "e1", "ts": DAYS[0], "event": "login", "value": 7.0},
    {"account_id": "e1", "ts": DAYS[0], "event": "login", "value": 1.0},
    {"account_id": "e2", "ts": DAYS[1], "event": "buy", "value": 2.5},
]

# a score of exactly 56.25 rounds to 56.2, half to even, as numpy rounds
HALF = {
    "features": {"f1": {"source": "product", "agg": "count"}},
    "scores": {"score": {"weights": {"seats": 1.0, "active": 3.0}}},
    "segments": [{"name": "s0", "title": "S0", "owner": "U1", "rule": "score = 56.2"}],
}
HALF_CRM = [
    {"account_id": f"h{i}", "plan": None, "seats": float(i), "active": False, "signed_at": None}
    for i in range(5)
]


@EXAMPLES
@example(definition=TIES, crm=TIE_CRM, events=TIE_EVENTS)
@example(definition=HALF, crm=HALF_CRM, events=[])
@given(definition=workspaces(), crm=entity_rows, events=event_rows)
def test_duckdb_gives_the_pandas_answers(definition, crm, events):
    crm_frame, events_frame = _frames(crm, events)
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        ws = _workspace(base, definition, _sources(_parquet(base, crm_frame, events_frame)))
        _same(_answers(ws, "pandas"), _answers(ws, "duckdb"))


@pytest.mark.postgres
@EXAMPLES
@example(definition=TIES, crm=TIE_CRM, events=TIE_EVENTS)
@example(definition=HALF, crm=HALF_CRM, events=[])
@given(definition=workspaces(), crm=entity_rows, events=event_rows)
def test_postgresql_gives_the_pandas_answers(pg_url, definition, crm, events):
    crm_frame, events_frame = _frames(crm, events)
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        ws = _workspace(base, definition, _sources(_postgres(pg_url, crm_frame, events_frame)))
        _same(_answers(ws, "pandas"), _answers(ws, "sql"))


def test_the_generated_days_straddle_as_of():
    assert min(DAYS) < datetime.combine(AS_OF, datetime.min.time()) + timedelta(days=1) <= max(DAYS)

"""A refresh computed by the DuckDB and SQL engines publishes what the pandas engine does,
and an engine error leaves the previous snapshot current."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import select

from commands.stats import members
from segments.engine import EngineError, EngineOptions
from store.db import make_engine, session_scope
from store.models import Segment, SegmentResult, Snapshot
from tests import factories
from tests.conftest import migrated_url
from tests.factories import AS_OF


def published(engine) -> dict[str, list[str]]:
    with session_scope(engine) as session:
        names = [s.name for s in session.exec(select(Segment)).all()]
    return {name: sorted(members(engine, name)) for name in names}


def test_duckdb_refresh_publishes_the_pandas_members_and_gate(tmp_path):
    pandas_db = make_engine(migrated_url(tmp_path / "p"))
    duck_db = make_engine(migrated_url(tmp_path / "d"))
    fx = factories.applied(pandas_db, tmp_path / "a")
    fx.apply(duck_db)
    expected = fx.refresh(pandas_db, AS_OF)
    options = EngineOptions(memory_limit="256MB", temp_dir=tmp_path / "spill", threads=1)
    said: list[str] = []
    got = fx.refresh(
        duck_db, AS_OF, engine_name="duckdb", engine_options=options, progress=said.append
    )
    queries = [m for m in said if m.startswith("query: ")]
    assert queries[0] == "query: quality counts of crm"
    # the members come back with the features, from the one query
    assert (
        "query: the features logins_30d, days_since_login and the members of "
        "enterprise, trial, engaged-trial, smb"
    ) in queries
    assert said.index("load") < said.index(queries[0]) < said.index("quality")
    assert [o.to_dict() for o in got.segments] == [o.to_dict() for o in expected.segments]
    assert published(duck_db) == published(pandas_db)
    with session_scope(pandas_db) as a, session_scope(duck_db) as b:
        assert a.exec(select(Snapshot.profile)).one() == b.exec(select(Snapshot.profile)).one()
    pandas_db.dispose()
    duck_db.dispose()


def _pg_sources(url: str, fx: factories.Factory) -> None:
    """The factory's CSV data as PostgreSQL tables, and the workspace pointed at them."""
    engine = sa.create_engine(url)
    fx.crm.to_sql("crm", engine, index=False)
    fx.events.to_sql("events", engine, index=False)
    engine.dispose()
    data = fx.workspace_data()
    for name, table in (("crm", "crm"), ("product", "events")):
        data["sources"][name].pop("path")
        data["sources"][name].update({"url": url, "table": table})
    import yaml

    fx.path.write_text(yaml.safe_dump(data, sort_keys=False))
    fx._ws = None


@pytest.mark.postgres
def test_a_failing_engine_query_keeps_the_previous_snapshot_current(tmp_path, pg_url):
    store = make_engine(migrated_url(tmp_path))
    fx = factories.applied(store, tmp_path)
    _pg_sources(pg_url, fx)
    first = fx.refresh(store, AS_OF - timedelta(days=1))
    assert first.snapshot_id is not None
    before = published(store)
    with session_scope(store) as session:
        current = {s.name: s.current_result_id for s in session.exec(select(Segment)).all()}
    source = sa.create_engine(pg_url)
    with source.begin() as conn:  # the event timestamps turn into text the engine cannot read
        conn.exec_driver_sql("ALTER TABLE events ALTER COLUMN ts TYPE text")
        conn.exec_driver_sql("UPDATE events SET ts = 'soon' WHERE account_id = 'A0001'")
    source.dispose()
    with pytest.raises(EngineError) as caught:
        fx.refresh(store, AS_OF)
    message = str(caught.value)
    assert message.startswith("engine 'sql': query for the features logins_30d")
    assert "soon" in message
    assert published(store) == before
    with session_scope(store) as session:
        now = {s.name: s.current_result_id for s in session.exec(select(Segment)).all()}
        assert now == current
        assert len(session.exec(select(SegmentResult)).all()) == len(current)
    store.dispose()


def _stored(engine) -> list[tuple]:
    """Every stored result's numbers, profile, KPIs and leave reasons, in refresh order."""
    with session_scope(engine) as session:
        rows = session.exec(
            select(Segment.name, Snapshot.as_of, SegmentResult)
            .join(SegmentResult, SegmentResult.segment_id == Segment.id)
            .join(Snapshot, Snapshot.id == SegmentResult.snapshot_id)
            .order_by(Snapshot.as_of, Segment.name)
        ).all()
        return [
            (name, day, r.status, r.size, r.joined, r.left, _rounded(r.stats), r.leave_reasons)
            for name, day, r in rows
        ]


def _rounded(value):
    """Floats to 12 significant digits: a parallel engine hands the rows back in another
    order, and a mean summed in another order may differ in its last bits."""
    if isinstance(value, float):
        return float(f"{value:.12g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def _two_days(store, fx, **kwargs) -> list[dict]:
    reports = [fx.refresh(store, day, **kwargs) for day in (AS_OF - timedelta(days=14), AS_OF)]
    return [
        _rounded(o.to_dict(details=True) | {"why": o.leave_reasons})
        for r in reports
        for o in r.segments
    ]


@pytest.mark.postgres
def test_sql_and_duckdb_refreshes_store_the_pandas_profiles_and_leave_reasons(tmp_path, pg_url):
    """Two refreshes a fortnight apart (members join and leave): the SQL engine on
    PostgreSQL tables and DuckDB on the files store what pandas stores, number for number
    (floats to their last bits of summation order)."""
    pandas_db = make_engine(migrated_url(tmp_path / "p"))
    fx = factories.applied(pandas_db, tmp_path / "a")
    expected = _two_days(pandas_db, fx)
    assert any(o["why"] for o in expected), "the fortnight should make some members leave"
    duck_db = make_engine(migrated_url(tmp_path / "d"))
    fx.apply(duck_db)
    options = EngineOptions(memory_limit="256MB", temp_dir=tmp_path / "spill", threads=2)
    assert _two_days(duck_db, fx, engine_name="duckdb", engine_options=options) == expected
    assert _stored(duck_db) == _stored(pandas_db)
    assert list((tmp_path / "spill").iterdir()) == []  # the staged rows are removed

    sql_db = make_engine(migrated_url(tmp_path / "s"))
    fx.apply(sql_db)
    _pg_sources(pg_url, fx)
    assert _two_days(sql_db, fx) == expected
    assert _stored(sql_db) == _stored(pandas_db)
    for store in (pandas_db, duck_db, sql_db):
        store.dispose()


def _dictionary(store) -> list[str]:
    with store.connect() as conn:
        return [key for (key,) in conn.execute(sa.text("SELECT key FROM entity ORDER BY id"))]


def test_an_engine_numbers_new_entities_in_text_order_and_pandas_in_file_order(tmp_path):
    """Rows from an engine come in no order of their own: their new entities are numbered
    in text order (the store's table and key index then grow at their ends); a file's rows
    keep the file's order, which the next refresh of the file finds again."""
    shuffled = {}
    for name in ("pandas", "duckdb"):
        store = make_engine(migrated_url(tmp_path / name))
        fx = factories.build(tmp_path / name)
        fx.crm = fx.crm.sample(frac=1.0, random_state=3)  # the CRM export in no order
        fx.write_data()
        fx.apply(store)
        fx.refresh(store, AS_OF, engine_name=name, engine_options=EngineOptions(threads=1))
        shuffled[name] = _dictionary(store)
        store.dispose()
    assert shuffled["duckdb"] == sorted(shuffled["duckdb"])
    assert sorted(shuffled["pandas"]) == shuffled["duckdb"]
    in_file = [k for k in fx.crm["account_id"] if k in set(shuffled["pandas"])]
    assert shuffled["pandas"][: len(in_file)] == in_file != sorted(in_file)

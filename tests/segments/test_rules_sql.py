"""Rules compiled to SQL select exactly the rows the pandas masks select.

How the frame reaches the database: ``DataFrame.to_sql`` with an explicit type per
column kind (number -> FLOAT or BIGINT, string -> TEXT, bool -> BOOLEAN,
date -> DATETIME) into a table whose column names are the frame's. On SQLite
dates are then ISO text ``YYYY-MM-DD HH:MM:SS.ffffff`` and booleans 0/1; on
PostgreSQL they are ``timestamp without time zone`` and ``boolean``. Nulls
(NaN, NaT, NA, None) become SQL NULL.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql, sqlite

from segments.evaluate import evaluate_all
from segments.rules import All, AnyOf, Condition, InSegment, Not, Rule, parse, to_sql
from segments.schema import RuleError, Schema

SCHEMA = Schema(
    columns={
        "n_float": "number",
        "n_int": "number",
        "n_plain": "number",
        "s_str": "string",
        "s_cat": "string",
        "flag": "bool",
        "day": "date",
    },
    aliases={"crm.s_str": "s_str"},
)
SQL_TYPES: dict[str, sa.types.TypeEngine] = {
    "rid": sa.Integer(),
    "n_float": sa.Float(),
    "n_int": sa.BigInteger(),
    "n_plain": sa.BigInteger(),
    "s_str": sa.Text(),
    "s_cat": sa.Text(),
    "flag": sa.Boolean(),
    "day": sa.DateTime(),
}

NUMBERS = [-2, -1, 0, 1, 2, 3, -0.5, 0.5, 2.5, 1e-3]
TEXTS = ["", "a", "A", "b", "ab", "a b", "é", "z", "it's", "Ω", "😀"]
DAYS = [f"2026-01-{d:02d}" for d in range(28, 32)] + ["2026-02-01", "2026-02-02"]
START = datetime(2026, 1, 29)


STAMPS = [START + timedelta(minutes=m) for m in range(0, 4 * 24 * 60, 181)] + [
    START + timedelta(days=d) for d in range(5)
]


@st.composite
def frames(draw: st.DrawFn) -> pd.DataFrame:
    """Up to 24 rows of pooled values and nulls, from a drawn seed (cheap to generate)."""
    n = draw(st.one_of(st.just(24), st.integers(0, 24)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32)))
    null_rate = draw(st.sampled_from([0.0, 0.2, 0.5]))

    def column(pool: list, nulls: bool = True) -> list:
        picks = rng.integers(0, len(pool), n)
        missing = rng.random(n) < (null_rate if nulls else 0.0)
        return [None if gone else pool[i] for i, gone in zip(picks, missing, strict=True)]

    return pd.DataFrame(
        {
            "rid": np.arange(n, dtype=np.int64),
            "n_float": pd.array(column(NUMBERS), dtype="float64"),
            "n_int": pd.array(column(list(range(-3, 4))), dtype="Int64"),
            "n_plain": pd.array(column(list(range(-3, 4)), nulls=False), dtype="int64"),
            "s_str": pd.array(column(TEXTS), dtype="str"),
            "s_cat": pd.Categorical(column(TEXTS)),
            "flag": pd.array(column([False, True]), dtype="boolean"),
            "day": pd.Series(column(STAMPS), dtype="datetime64[us]"),
        }
    )


_LITERALS = {
    "number": st.sampled_from(NUMBERS),
    "string": st.sampled_from(TEXTS),
    "bool": st.booleans(),
    "date": st.sampled_from(DAYS),
}
_ORDERED = ["=", "!=", "<", "<=", ">", ">=", "in", "not in", "between", "is null", "is not null"]
_OPS = {
    "number": _ORDERED,
    "string": _ORDERED,
    "bool": ["=", "!=", "in", "not in", "is null", "is not null"],
    "date": _ORDERED,
}
COLUMN_NAMES = [*SCHEMA.columns, "crm.s_str"]
EVERY_COLUMN_AND_OP = [(c, op) for c in COLUMN_NAMES for op in _OPS[SCHEMA.kind(c)]]


def condition_for(column: str, op: str) -> st.SearchStrategy[Condition]:
    """Conditions on ``column`` with ``op`` and literals of the column's kind."""
    literal = _LITERALS[SCHEMA.kind(column)]
    if op in ("is null", "is not null"):
        return st.just(Condition(column, op))
    if op in ("in", "not in"):
        values = st.lists(literal, min_size=1, max_size=6).map(tuple)
    elif op == "between":
        values = st.tuples(literal, literal)
    else:
        values = literal
    return values.map(lambda v: Condition(column, op, v))


def every_condition(rng: np.random.Generator) -> list[Condition]:
    """One condition per column and operator, literals picked by ``rng`` (cheaper than drawing)."""
    pools = {"number": NUMBERS, "string": TEXTS, "bool": [False, True], "date": DAYS}
    out = []
    for column, op in EVERY_COLUMN_AND_OP:
        pool = pools[SCHEMA.kind(column)]
        picks = [pool[i] for i in rng.integers(0, len(pool), 6)]
        if op in ("is null", "is not null"):
            out.append(Condition(column, op))
        elif op in ("in", "not in"):
            out.append(Condition(column, op, tuple(picks[: rng.integers(1, 7)])))
        elif op == "between":
            out.append(Condition(column, op, (picks[0], picks[1])))
        else:
            out.append(Condition(column, op, picks[0]))
    return out


CONDITIONS = st.sampled_from(EVERY_COLUMN_AND_OP).flatmap(lambda pair: condition_for(*pair))


def rules(leaves: st.SearchStrategy) -> st.SearchStrategy[Rule]:
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.builds(Not, inner),
            st.lists(inner, min_size=2, max_size=3).map(lambda xs: All(tuple(xs))),
            st.lists(inner, min_size=2, max_size=3).map(lambda xs: AnyOf(tuple(xs))),
        ),
        max_leaves=8,
    )


BASE_RULES = rules(CONDITIONS)
TOP_RULES = rules(st.one_of(CONDITIONS, st.just(InSegment("base"))))


class Database:
    """One table holding the frame, reloaded for each example."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.name = f"segops_rules_{uuid.uuid4().hex[:10]}"
        self.table = sa.Table(
            self.name, sa.MetaData(), *(sa.Column(c, t) for c, t in SQL_TYPES.items())
        )
        self.table.create(engine)

    def load(self, frame: pd.DataFrame) -> None:
        with self.engine.begin() as connection:
            connection.execute(self.table.delete())
            frame.to_sql(self.name, connection, if_exists="append", index=False, dtype=SQL_TYPES)

    def members(self, clauses: list[sa.ColumnElement[bool]]) -> list[list[int]]:
        """For each clause, the ``rid`` of the rows it selects (one query for all clauses)."""
        flags = [sa.case((clause, 1), else_=0) for clause in clauses]
        query = sa.select(self.table.c.rid, *flags).order_by(self.table.c.rid)
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        return [[row[0] for row in rows if row[i + 1]] for i in range(len(clauses))]

    def drop(self) -> None:
        self.table.drop(self.engine, checkfirst=True)
        self.engine.dispose()


@pytest.fixture(scope="module")
def sqlite_db() -> Iterator[Database]:
    db = Database(sa.create_engine("sqlite://", poolclass=sa.pool.StaticPool))
    yield db
    db.drop()


@pytest.fixture
def postgres_db(pg_url: str) -> Iterator[Database]:
    db = Database(sa.create_engine(pg_url))
    yield db
    db.drop()


def assert_same_members(db: Database, max_examples: int) -> None:
    """Random frames; every column/operator pair once plus two random trees, one of
    them referring to the other with ``in_segment``: SQL and pandas agree on each."""

    @settings(
        max_examples=max_examples, deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )
    @given(frame=frames(), seed=st.integers(0, 2**32), base=BASE_RULES, top=TOP_RULES)
    def check(frame: pd.DataFrame, seed: int, base: Rule, top: Rule) -> None:
        db.load(frame)
        leaves = every_condition(np.random.default_rng(seed))
        rules = {f"leaf{i}": leaf for i, leaf in enumerate(leaves)} | {"top": top, "base": base}
        masks = evaluate_all(rules, frame, SCHEMA)
        base_sql = to_sql(base, db.table, SCHEMA)
        clauses = {
            name: to_sql(rule, db.table, SCHEMA, {"base": base_sql}) for name, rule in rules.items()
        }
        found = dict(zip(clauses, db.members(list(clauses.values())), strict=True))
        for name, rule in rules.items():
            assert found[name] == np.flatnonzero(masks[name]).tolist(), rule

    check()


def test_sqlite_selects_the_same_members_as_pandas(sqlite_db: Database) -> None:
    assert_same_members(sqlite_db, max_examples=30)


@pytest.mark.postgres
def test_postgresql_selects_the_same_members_as_pandas(postgres_db: Database) -> None:
    assert_same_members(postgres_db, max_examples=20)


# ---------------------------------------------------------------------------- fixed cases


def compile_sqlite(text: str) -> str:
    table = sa.table("t", *(sa.column(c) for c in SCHEMA.columns))
    clause = to_sql(parse(text), table, SCHEMA)
    return str(clause.compile(dialect=sqlite.dialect()))


def test_every_leaf_is_guarded_against_null() -> None:
    assert compile_sqlite("n_int != 1") == "t.n_int IS NOT NULL AND t.n_int != ?"


def test_not_negates_the_guarded_leaf() -> None:
    assert compile_sqlite("not s_str = 'a'") == "NOT (t.s_str IS NOT NULL AND t.s_str = ?)"


def test_text_ordering_uses_code_points_on_postgresql() -> None:
    table = sa.table("t", sa.column("s_str"))
    clause = to_sql(parse("s_str < 'b'"), table, SCHEMA)
    sql = str(clause.compile(dialect=postgresql.dialect()))
    assert 't.s_str COLLATE "C" <' in sql


def test_in_segment_inlines_the_referenced_clause() -> None:
    table = sa.table("t", sa.column("flag"))
    base = to_sql(parse("flag = true"), table, SCHEMA)
    clause = to_sql(parse("not in_segment('base')"), table, SCHEMA, {"base": base})
    sql = str(clause.compile(dialect=sqlite.dialect()))
    assert sql == "NOT (t.flag IS NOT NULL AND t.flag = ?)"


def test_unknown_segment_clause() -> None:
    table = sa.table("t", sa.column("flag"))
    with pytest.raises(RuleError, match="unknown segment 'base'"):
        to_sql(parse("in_segment('base')"), table, SCHEMA)


def test_column_missing_from_the_table() -> None:
    with pytest.raises(RuleError, match="column 'n_int' is not in table t"):
        to_sql(parse("n_int = 1"), sa.table("t", sa.column("other")), SCHEMA)


@pytest.mark.parametrize(
    "stored",
    [
        ["2026-01-31", "2026-02-01", None],
        ["2026-01-31 00:00:00", "2026-02-01 00:00:00", None],
        ["2026-01-31 23:59:59.999999", "2026-02-01 00:00:00.000000", None],
        ["2026-01-31T12:00:00", "2026-02-01T00:00:00", None],
    ],
)
def test_sqlite_dates_compare_by_day_in_any_iso_text_layout(stored: list[str | None]) -> None:
    engine = sa.create_engine("sqlite://", poolclass=sa.pool.StaticPool)
    table = sa.Table("t", sa.MetaData(), sa.Column("rid", sa.Integer), sa.Column("day", sa.Text))
    table.create(engine)
    with engine.begin() as connection:
        connection.execute(table.insert(), [{"rid": i, "day": v} for i, v in enumerate(stored)])
    expected = {
        "day = '2026-01-31'": [0],
        "day <= '2026-01-31'": [0],
        "day < '2026-02-01'": [0],
        "day > '2026-01-31'": [1],
        "day >= '2026-02-01'": [1],
        "day != '2026-02-01'": [0],
        "day between '2026-01-30' and '2026-02-01'": [0, 1],
        "not day in ('2026-02-01')": [0, 2],
    }
    with engine.connect() as connection:
        for text, rows in expected.items():
            clause = to_sql(parse(text), table, SCHEMA)
            query = sa.select(table.c.rid).where(clause).order_by(table.c.rid)
            assert list(connection.scalars(query)) == rows, text
    engine.dispose()

"""SQL table destinations: membership history in any database SQLAlchemy speaks to.

The table (``table``, default ``segment_membership``) holds one row per stay::

    segment     varchar(64)   the segment's name
    entity_id   varchar       the entity key
    valid_from  date          the as_of of the refresh that added it
    valid_to    date, null    the as_of of the refresh that removed it (null: a member now)

so "who was in X on date D" is one query::

    SELECT entity_id FROM segment_membership
    WHERE segment = 'X' AND valid_from <= D AND (valid_to IS NULL OR valid_to > D)

and the view ``<table>_current`` lists today's members. Both are created when missing.
A batch is applied in one transaction of the destination database: its ids are bulk
loaded into a temporary table (``COPY`` on PostgreSQL with psycopg 3, ``executemany``
elsewhere), then removals close the open rows and additions open a row for each id
without one. Applying a batch twice changes nothing, which is what makes a batch resent
after a crash harmless.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError

from commands.syncs import Work
from segments.destinations import DestinationConfig
from store.db import make_engine
from sync.errors import ConfigError, Dead, Retry

STAGE = "segops_sync_stage"
_TYPED = (sa.bindparam("day", type_=sa.Date()), sa.bindparam("segment", type_=sa.String()))


class SqlTableSender:
    def __init__(self, name: str, config: DestinationConfig, url: str) -> None:
        self.name, self.config = name, config
        try:
            self.engine = make_engine(url)
        except (ArgumentError, SQLAlchemyError, ValueError) as error:
            raise ConfigError(
                f"destination '{name}': not a database URL ({type(error).__name__})"
            ) from None
        self.table_name = config.table
        meta = sa.MetaData()
        self.table = sa.Table(
            config.table,
            meta,
            sa.Column("segment", sa.String(64), nullable=False),
            sa.Column("entity_id", sa.String(), nullable=False),
            sa.Column("valid_from", sa.Date(), nullable=False),
            sa.Column("valid_to", sa.Date(), nullable=True),
            sa.Index(f"ix_{config.table}_open", "segment", "entity_id", "valid_to"),
        )
        self.meta = meta
        self._ready = False

    def _ensure(self, connection: Connection) -> None:
        if self._ready:
            return
        self.meta.create_all(connection, checkfirst=True)
        view = f"{self.table_name}_current"
        select = (
            f"SELECT segment, entity_id, valid_from FROM {self.table_name} WHERE valid_to IS NULL"
        )
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"CREATE OR REPLACE VIEW {view} AS {select}")
        elif (
            not sa.inspect(connection).has_table(view)
            and view not in sa.inspect(connection).get_view_names()
        ):
            connection.exec_driver_sql(f"CREATE VIEW {view} AS {select}")
        self._ready = True

    def send(self, work: Work) -> list[str]:
        day = work.as_of or datetime.now(UTC).date()
        self._apply(work.segment, day, add=work.add, remove=work.remove)
        return []

    def reset(self, work: Work) -> None:
        day = work.as_of or datetime.now(UTC).date()
        with self._begin() as connection:
            connection.execute(
                sa.update(self.table)
                .where(self.table.c.segment == work.segment, self.table.c.valid_to.is_(None))
                .values(valid_to=day)
            )

    def close(self) -> None:
        self.engine.dispose()

    def _begin(self):
        return _Guarded(self)

    def _apply(self, segment: str, day: date, *, add: list[str], remove: list[str]) -> None:
        with self._begin() as connection:
            _stage(connection, [("r", k) for k in remove] + [("a", k) for k in add])
            t = self.table_name
            # PostgreSQL cannot type a parameter used twice; SQLite has no DATE to cast to
            typed = connection.dialect.name == "postgresql"
            day_p = "CAST(:day AS DATE)" if typed else ":day"
            seg_p = "CAST(:segment AS VARCHAR(64))" if typed else ":segment"
            connection.execute(
                sa.text(
                    f"UPDATE {t} SET valid_to = {day_p} WHERE segment = {seg_p} "
                    f"AND valid_to IS NULL AND entity_id IN "
                    f"(SELECT entity_id FROM {STAGE} WHERE op = 'r')"
                ).bindparams(*_TYPED),
                {"day": day, "segment": segment},
            )
            connection.execute(
                sa.text(
                    f"INSERT INTO {t} (segment, entity_id, valid_from, valid_to) "
                    f"SELECT {seg_p}, s.entity_id, {day_p}, NULL "
                    f"FROM {STAGE} s WHERE s.op = 'a' AND NOT EXISTS (SELECT 1 FROM {t} m "
                    f"WHERE m.segment = {seg_p} "
                    f"AND m.entity_id = s.entity_id AND m.valid_to IS NULL)"
                ).bindparams(*_TYPED),
                {"day": day, "segment": segment},
            )


class _Guarded:
    """A transaction on the destination database whose failures become Retry or Dead."""

    def __init__(self, sender: SqlTableSender) -> None:
        self.sender = sender
        self.context = None

    def __enter__(self) -> Connection:
        try:
            self.context = self.sender.engine.begin()
            connection = self.context.__enter__()
            self.sender._ensure(connection)
        except OperationalError as error:
            raise Retry(_why(self.sender.name, error)) from None
        except SQLAlchemyError as error:
            raise Dead(_why(self.sender.name, error)) from None
        return connection

    def __exit__(self, *exc: object) -> None:
        assert self.context is not None
        try:
            self.context.__exit__(*exc)
        except OperationalError as error:
            raise Retry(_why(self.sender.name, error)) from None
        if exc[0] is not None and isinstance(exc[1], OperationalError):
            raise Retry(_why(self.sender.name, exc[1])) from None
        if exc[0] is not None and isinstance(exc[1], SQLAlchemyError):
            raise Dead(_why(self.sender.name, exc[1])) from None


def _why(name: str, error: SQLAlchemyError) -> str:
    orig = getattr(error, "orig", None) or error
    first = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    return f"table destination '{name}': {first[:300]}"


def _stage(connection: Connection, rows: list[tuple[str, str]]) -> None:
    """Load ``(op, entity_id)`` rows into a fresh temporary table of this transaction."""
    dialect = connection.dialect
    if dialect.name == "postgresql":
        connection.exec_driver_sql(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {STAGE} (op char(1), entity_id text) "
            "ON COMMIT DELETE ROWS"
        )
    else:
        connection.exec_driver_sql(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {STAGE} (op char(1), entity_id text)"
        )
    connection.exec_driver_sql(f"DELETE FROM {STAGE}")
    if not rows:
        return
    raw = connection.connection.driver_connection
    if dialect.name == "postgresql" and dialect.driver == "psycopg":
        with (
            raw.cursor() as cursor,
            cursor.copy(f"COPY {STAGE} (op, entity_id) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
        return
    stage = sa.table(STAGE, sa.column("op"), sa.column("entity_id"))
    connection.execute(sa.insert(stage), [{"op": op, "entity_id": key} for op, key in rows])

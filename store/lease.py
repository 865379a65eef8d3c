"""Named leases in the ``lease`` table: one holder at a time, until an expiry.

The worker elects its scheduler leader with one lease (``scheduler``)::

    expires = acquire(engine, name="scheduler", holder=worker_id, ttl=30)
    if expires is None:
        ...                              # someone else leads: stay on standby
    release(engine, name="scheduler", holder=worker_id)   # on a clean shutdown

``acquire`` takes a free or expired lease, or extends one ``holder`` already has;
it is both the standby's poll and the leader's renewal. Each call is one short
transaction that reads and writes the row under a write lock, so two callers never
both succeed:

- SQLite: ``BEGIN IMMEDIATE`` takes the database's write lock before the row is read
  (waiting up to the connection's busy timeout);
- PostgreSQL (and other servers): ``SELECT ... FOR UPDATE`` on the row; a missing row
  is inserted in a savepoint, and a racing insert falls back to the locked read.

Time: expiries are compared with the database server's clock on PostgreSQL (so the
workers' clocks need not agree) and with this machine's clock on SQLite (whose
callers all share one machine). ``now=`` overrides both, for tests.

A holder must treat its lease as lost ``ttl`` seconds after it *started* the call
that granted it (see ``worker.leader``), which is never later than the expiry any
other caller sees. Session-level advisory locks were not used: they vanish with the
connection (a server restart, a pooler in transaction mode) while the old holder
still believes it leads, and they say nothing about when they were last confirmed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from store.models import Lease

_lease = Lease.__table__


@dataclass(frozen=True)
class LeaseInfo:
    """A lease row as stored (it may have expired)."""

    name: str
    holder: str
    expires_at: datetime

    def held_by(self, holder: str, *, now: datetime) -> bool:
        return self.holder == holder and self.expires_at > now


def acquire(
    engine: Engine, *, name: str, holder: str, ttl: float, now: datetime | None = None
) -> datetime | None:
    """Take lease ``name`` for ``holder`` (or extend it) for ``ttl`` seconds.

    Returns the new expiry when ``holder`` holds the lease after the call, or None
    when another holder's lease has not expired yet.
    """
    if ttl <= 0:
        raise ValueError("ttl must be positive")
    with _write_transaction(engine) as connection:
        current = _now(connection, now)
        row = _locked_row(connection, name)
        expires = current + timedelta(seconds=ttl)
        if row is None:
            if _insert(connection, name=name, holder=holder, expires_at=expires):
                return expires
            row = _locked_row(connection, name)
            assert row is not None
        if row.holder != holder and row.expires_at > current:
            return None
        connection.execute(
            update(_lease).where(_lease.c.name == name).values(holder=holder, expires_at=expires)
        )
        return expires


def release(engine: Engine, *, name: str, holder: str, now: datetime | None = None) -> bool:
    """End ``holder``'s lease at once so a standby can take it; False if not held."""
    with _write_transaction(engine) as connection:
        current = _now(connection, now)
        result = connection.execute(
            update(_lease)
            .where(
                _lease.c.name == name,
                _lease.c.holder == holder,
                _lease.c.expires_at > current,
            )
            .values(expires_at=current)
        )
        return result.rowcount == 1


def current(engine: Engine, *, name: str) -> LeaseInfo | None:
    """The stored row of lease ``name``, expired or not; None when never taken."""
    with engine.connect() as connection:
        row = connection.execute(select(_lease).where(_lease.c.name == name)).first()
    return None if row is None else LeaseInfo(row.name, row.holder, row.expires_at)


@contextmanager
def _write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that holds the write lock it needs from its first statement."""
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            # pysqlite would begin lazily (DEFERRED) at the first write; take the
            # write lock now so that the read below cannot be overtaken.
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            connection.rollback()
            raise
        connection.commit()


def _now(connection: Connection, now: datetime | None) -> datetime:
    if now is not None:
        return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
    if connection.dialect.name == "sqlite":
        return datetime.now(UTC)
    value = connection.execute(select(func.now())).scalar_one()
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _locked_row(connection: Connection, name: str):
    query = select(_lease).where(_lease.c.name == name)
    if connection.dialect.name != "sqlite":
        query = query.with_for_update()
    return connection.execute(query).first()


def _insert(connection: Connection, *, name: str, holder: str, expires_at: datetime) -> bool:
    """Insert the row; False when a concurrent caller inserted it first."""
    statement = insert(_lease).values(name=name, holder=holder, expires_at=expires_at)
    if connection.dialect.name == "sqlite":  # BEGIN IMMEDIATE already excludes others
        connection.execute(statement)
        return True
    savepoint = connection.begin_nested()
    try:
        connection.execute(statement)
    except IntegrityError:
        savepoint.rollback()
        return False
    savepoint.commit()
    return True

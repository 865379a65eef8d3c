"""What a workspace may reach: file sources inside allowed folders, SQL sources that only read.

**Files.** The path of a CSV or Parquet source must resolve (``..`` and symlinks followed)
inside the workspace file's folder or inside one of the *data roots*. The data roots are an
allow-list of absolute folders set by whoever runs segops, never by the workspace file: a
file that could widen its own sandbox would not be contained. The caller passes
``data_roots=`` to :func:`segments.workspace.load_workspace` (the entry points take them
from ``SEGOPS_DATA_ROOTS`` through ``commands.settings.Settings``: absolute paths
separated by ``os.pathsep``, ``:`` on POSIX); without any, only the workspace's own
folder is allowed. Paths are checked when the workspace is validated and again
just before a file is read; a Parquet directory is checked entry by entry when it is read.

**SQL.** A source's ``query`` must be exactly one ``SELECT`` (``WITH ... SELECT`` and
``UNION``/``INTERSECT``/``EXCEPT`` included), as SQLGlot parses it in the dialect of the
source's URL: no second statement, and nowhere in it a data-modifying CTE, ``SELECT ...
INTO``, a row lock (``FOR UPDATE``) or any DDL, DML or session command. The query is checked
when the workspace is validated and again when it is read. Every read of a SQL source,
table or query, runs in a read-only transaction where the database has one: PostgreSQL
``SET TRANSACTION READ ONLY`` (and ``default_transaction_read_only`` for the session),
SQLite ``PRAGMA query_only = ON`` (restored afterwards). So a function with side effects
called from a ``SELECT`` fails as well. Other databases get the statement check only: give
segops a read-only database user there.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from functools import cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from segments.errors import SegopsError

DATA_ROOTS_ENV = "SEGOPS_DATA_ROOTS"  # named in messages; read by commands.settings
MAX_QUERY_LENGTH = 100_000

# SQLAlchemy backend name -> SQLGlot dialect (others are read with SQLGlot's generic SQL).
_DIALECTS = {
    "postgresql": "postgres",
    "postgres": "postgres",
    "sqlite": "sqlite",
    "mysql": "mysql",
    "mariadb": "mysql",
    "mssql": "tsql",
    "oracle": "oracle",
    "duckdb": "duckdb",
    "snowflake": "snowflake",
    "bigquery": "bigquery",
    "redshift": "redshift",
    "trino": "trino",
    "clickhouse": "clickhouse",
    "databricks": "databricks",
}
# Nodes that write, lock, change the session or run an unparsed command.
_WRITE_NAMES = (
    "Insert",
    "Update",
    "Delete",
    "Merge",
    "Create",
    "Drop",
    "Alter",
    "AlterTable",
    "TruncateTable",
    "Copy",
    "Into",
    "Lock",
    "Command",
    "Set",
    "Use",
    "Pragma",
    "Attach",
    "Detach",
    "Transaction",
    "Commit",
    "Rollback",
    "Grant",
    "Revoke",
    "LoadData",
    "Analyze",
    "Cache",
    "Uncache",
    "Refresh",
    "Export",
)
_SELECT_NAMES = ("Select", "SetOperation", "Union", "Subquery")


@cache
def _node_kinds() -> tuple[tuple[type, ...], tuple[type, ...]]:
    """SQLGlot's writing and selecting node classes (SQLGlot loads only when a query is
    checked: most workspaces have none, and it costs every command ~70 ms to import)."""
    from sqlglot import exp

    def kinds(names: tuple[str, ...]) -> tuple[type, ...]:
        return tuple(getattr(exp, name) for name in names if hasattr(exp, name))

    return kinds(_WRITE_NAMES), kinds(_SELECT_NAMES)


_WORDS = {"into": "SELECT ... INTO", "lock": "a row lock (FOR UPDATE/FOR SHARE)"}


class AccessError(SegopsError):
    """A source reaches beyond what a workspace may read; the message says what and where."""


# ---------------------------------------------------------------------------- files


def data_roots(roots: Iterable[str | Path] | None = None) -> tuple[Path, ...]:
    """The allowed folders besides the workspace's own, resolved (none when ``roots`` is
    None). A relative entry is an AccessError."""
    resolved: list[Path] = []
    for root in roots or ():
        path = Path(root).expanduser()
        if not path.is_absolute():
            raise AccessError(f"data_roots: {str(root)!r} is not an absolute path")
        resolved.append(path.resolve())
    return tuple(resolved)


def _resolve(path: Path, shown: str) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise AccessError(f"path {shown!r} cannot be resolved: {exc}") from None


def contained(path: Path, *, shown: str, base_dir: Path, roots: Sequence[Path]) -> Path:
    """``path`` resolved, when it lies inside ``base_dir`` or one of ``roots``; else
    AccessError naming ``shown`` (the path as written) and where it leads."""
    base = _resolve(base_dir, str(base_dir))
    resolved = _resolve(path, shown)
    if any(resolved.is_relative_to(folder) for folder in (base, *roots)):
        return resolved
    allowed = f"the workspace folder {base}"
    if roots:
        allowed += " and the data roots " + ", ".join(str(r) for r in roots)
        hint = ""
    else:
        hint = f" (set {DATA_ROOTS_ENV} to allow other folders)"
    raise AccessError(f"path {shown!r} resolves to {resolved}, outside {allowed}{hint}")


def contained_tree(path: Path, *, shown: str, base_dir: Path, roots: Sequence[Path]) -> Path:
    """Like :func:`contained`, and for a directory every entry below it too."""
    resolved = contained(path, shown=shown, base_dir=base_dir, roots=roots)
    if resolved.is_dir():
        for folder, dirs, files in os.walk(resolved):
            for entry in (*dirs, *files):
                inner = Path(folder) / entry
                where = f"{shown}/{inner.relative_to(resolved)}"
                contained(inner, shown=where, base_dir=base_dir, roots=roots)
    return resolved


# ---------------------------------------------------------------------------- SQL


def dialect_of(url: str | None) -> str | None:
    """The SQLGlot dialect for a SQLAlchemy URL (None: generic SQL)."""
    try:
        backend = sa.engine.make_url(url or "").get_backend_name()
    except (sa.exc.ArgumentError, ValueError):
        return None
    return _DIALECTS.get(backend)


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def check_query(query: str, url: str | None) -> None:
    """AccessError unless ``query`` is exactly one read-only SELECT statement."""
    if len(query) > MAX_QUERY_LENGTH:
        raise AccessError(
            f"query is {len(query):,} characters long; the limit is {MAX_QUERY_LENGTH:,}"
        )
    import sqlglot
    from sqlglot.errors import SqlglotError

    quiet = logging.getLogger("sqlglot")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # no "falling back to a command" warnings on stderr
    try:
        parsed = sqlglot.parse(query, read=dialect_of(url))
    except SqlglotError as exc:
        raise AccessError(f"query is not valid SQL: {_first_line(exc)}") from None
    except RecursionError:
        raise AccessError("query nests too deeply to be checked") from None
    finally:
        quiet.setLevel(level)
    statements = [stmt for stmt in parsed if stmt is not None]
    if len(statements) != 1:
        raise AccessError(
            f"query must be a single SELECT statement, found {len(statements)} statements"
        )
    stmt = statements[0]
    writes, selects = _node_kinds()
    if not isinstance(stmt, selects):
        raise AccessError(f"query must be a SELECT statement, found {_word(stmt)}")
    for node in stmt.walk():
        if isinstance(node, writes):
            raise AccessError(f"query must only read: found {_word(node)}")


def _word(node: Any) -> str:
    """How a message names a SQLGlot node: a command's own word, else its kind."""
    from sqlglot import exp

    if isinstance(node, exp.Command):
        return str(node.this).upper()
    return _WORDS.get(node.key, node.key.upper())


@contextmanager
def read_only(conn: sa.Connection) -> Iterator[None]:
    """Run the block in a read-only transaction where the database supports one."""
    dialect = conn.dialect.name
    if dialect == "postgresql":
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        conn.exec_driver_sql("SET default_transaction_read_only = on")
        yield
    elif dialect == "sqlite":
        before = conn.exec_driver_sql("PRAGMA query_only").scalar()
        conn.exec_driver_sql("PRAGMA query_only = ON")
        try:
            yield
        finally:
            with suppress(sa.exc.SQLAlchemyError):  # the read's own error matters more
                conn.exec_driver_sql(f"PRAGMA query_only = {1 if before else 0}")
    else:
        yield

"""Reading one source: the wanted columns by format (CSV, Parquet, SQL), the columns the data
lacks, and read failures as :class:`SourceError`. File paths and queries are checked again
here, just before the read (:mod:`segments.access`)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from segments.access import AccessError
from segments.errors import SegopsError
from segments.sources.files import NotText, _read_csv, _read_parquet
from segments.sources.sql import _read_sql
from segments.workspace import SourceConfig, Workspace


class SourceError(SegopsError):
    """A source cannot be read; the message names the source and the problem."""


def _read(
    name: str,
    cfg: SourceConfig,
    ws: Workspace,
    wanted: Sequence[str | None],
    *,
    check: Sequence[str] = (),
    text: Sequence[str] = (),
    dictionary: Sequence[str] = (),
    before: pd.Timestamp | None = None,
) -> tuple[pa.Table, list[str]]:
    """Read the wanted columns that exist; return the table and the names (wanted or
    ``check``ed) that the data lacks."""
    wanted = list(dict.fromkeys(c for c in wanted if c))
    try:
        if cfg.format == "csv":
            path = ws.data_path(cfg.path or "")
            table, names = _read_csv(path, wanted, text, dictionary, cfg)
        elif cfg.format == "parquet":
            table, names = _read_parquet(ws.data_path(cfg.path or ""), wanted, dictionary)
        else:
            table, names = _read_sql(cfg, wanted, before)
    except AccessError as exc:
        raise SourceError(f"source {name!r}: {exc}") from None
    except FileNotFoundError:
        raise SourceError(f"source {name!r}: file not found: {cfg.path}") from None
    except NotText as exc:
        raise SourceError(f"source {name!r}: {exc}") from None
    except sa.exc.NoSuchTableError:
        raise SourceError(f"source {name!r}: table {cfg.table!r} not found") from None
    except (OSError, pa.ArrowException, sa.exc.SQLAlchemyError, UnicodeDecodeError) as exc:
        where = cfg.path or cfg.table or "query"
        raise SourceError(f"source {name!r}: cannot read {where}: {_describe(exc)}") from None
    missing = [c for c in dict.fromkeys([*wanted, *check]) if c not in names]
    if cfg.format == "csv":
        _check_delimiter(name, cfg, names, missing)
    return table, missing


_DELIMITERS = (",", ";", "\t", "|")


def _check_delimiter(name: str, cfg: SourceConfig, names: set[str], missing: list[str]) -> None:
    """A SourceError hinting at the delimiter when the id (or key) column is missing and the
    header is one column holding another likely delimiter."""
    column = next((c for c in (cfg.id, cfg.key) if c and c in missing), None)
    if column is None or len(names) != 1:
        return
    (header,) = names
    hint = next((d for d in _DELIMITERS if d != cfg.delimiter and d in header), None)
    if hint is not None:
        raise SourceError(
            f"source {name!r}: column {column!r} not in {cfg.path}; its header has one column "
            f"{header!r} — is the delimiter {hint!r}?"
        )


def _describe(exc: BaseException) -> str:
    """One line about a read failure: the database's own message when there is one."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, sa.exc.DBAPIError) and seen.orig is not None:
            exc = seen.orig
            break
        seen = seen.__cause__ or seen.__context__
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _require(name: str, cfg: SourceConfig, missing: list[str], *roles: str) -> None:
    for role in roles:
        column = getattr(cfg, role)
        if column and column in missing:
            where = cfg.path or cfg.table or "the query"
            raise SourceError(f"source {name!r}: {role} column {column!r} not found in {where}")

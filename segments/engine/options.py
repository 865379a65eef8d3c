"""Which engine runs a refresh, and the knobs it reads (memory limit, spill folder)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from segments.errors import SegopsError
from segments.workspace import Workspace

ENGINES = ("pandas", "duckdb", "sql")
RUN_IN_TESTS = ("postgresql",)
"""Databases the ``sql`` engine is chosen for by default (its statements run in the tests)."""
DUCKDB_ABOVE_BYTES = 512 * 1024**2
"""File sources larger than this (in total) default to the DuckDB engine."""


class EngineError(SegopsError):
    """The engine cannot run part of the workspace, or a query it ran failed; the message
    names the engine and the source, feature or segment."""


@dataclass(frozen=True)
class EngineOptions:
    """DuckDB's memory limit (``"2GB"``), spill folder and threads (None: all cores)."""

    memory_limit: str = "2GB"
    temp_dir: Path | None = None
    threads: int | None = None


def choose_engine(ws: Workspace, asked: str | None = None) -> str:
    """The engine for ``ws``: ``asked`` (or the workspace's ``engine``) when given; else
    ``sql`` when every source is on one database, ``duckdb`` when the files are large
    (and use no CSV option only pandas reads), ``pandas`` otherwise."""
    chosen = asked or ws.engine
    if chosen:
        if chosen not in ENGINES:
            raise EngineError(f"unknown engine {chosen!r}: use one of {', '.join(ENGINES)}")
        return chosen
    if not ws.sources:
        return "pandas"
    formats = {cfg.format for cfg in ws.sources.values()}
    if formats == {"sql"}:
        urls = {cfg.url for cfg in ws.sources.values()}
        return "sql" if len(urls) == 1 and backend(next(iter(urls))) in RUN_IN_TESTS else "pandas"
    if "sql" in formats:
        return "pandas"
    if any(c.thousands or c.date_format or c.decimal != "." for c in ws.sources.values()):
        return "pandas"  # CSV options only the pandas engine reads
    total = 0
    for cfg in ws.sources.values():
        path = ws.resolve_path(cfg.path or "")
        if path.is_file():
            total += path.stat().st_size
        elif path.is_dir():
            total += sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return "duckdb" if total > DUCKDB_ABOVE_BYTES else "pandas"


def backend(url: str | None) -> str | None:
    """The database a SQLAlchemy URL names (``postgresql``, ``sqlite`` ...), None if unreadable."""
    try:
        return sa.engine.make_url(url or "").get_backend_name()
    except (sa.exc.ArgumentError, ValueError):
        return None

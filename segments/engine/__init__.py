"""Execution engines: where a refresh computes its features, scores and members.

A workspace says ``engine: pandas | duckdb | sql`` (or leaves it out and
:func:`choose_engine` picks from the sources)::

    engine: duckdb
    sources:
      events: {kind: events, path: "events/*.parquet", id: account_id, timestamp: ts,
               event: event, value: value}

* ``pandas`` (:mod:`segments.sources`) reads every source into memory: the reference.
* ``duckdb`` queries CSV and Parquet files in place (one file, a glob, or a folder of
  hive partitions) in an in-memory DuckDB with a memory limit and a spill folder
  (:class:`EngineOptions`).
* ``sql`` runs inside the one database that holds every SQL source (tables or read-only
  queries), in a read-only transaction.

Both SQL engines run the statements of one compiler (:mod:`segments.engine.compile`,
SQLAlchemy Core, extending the rule compiler :mod:`segments.rules.sql`): one row per entity
comes back (features and scores computed by the engine), the quality gate's counts come
from aggregate queries (:mod:`segments.engine.gate`), and :func:`load` can also return every
segment's members as ids from one query. An engine that cannot run part of a workspace
raises :class:`EngineError` naming the engine, the source, feature or score, and why.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from pathlib import Path

import pandas as pd

from segments.engine.options import ENGINES, EngineError, EngineOptions, choose_engine
from segments.engine.run import Members, Progress, load_in_engine
from segments.rules.tree import Rule
from segments.sources import Dataset, load_dataset
from segments.workspace import Workspace

__all__ = [
    "ENGINES",
    "EngineError",
    "EngineOptions",
    "Members",
    "choose_engine",
    "load",
]


def load(
    ws: Workspace,
    *,
    as_of: date,
    engine: str | None = None,
    options: EngineOptions | None = None,
    progress: Progress | None = None,
    rules: Mapping[str, Rule] | None = None,
    known_ids: Callable[[], pd.Index] | None = None,
    stage_to: Path | None = None,
) -> tuple[Dataset, Members | None]:
    """The dataset of ``ws`` as of ``as_of`` computed by ``engine`` (None: the workspace's
    or the chosen one); members come back only from the SQL engines and only with ``rules``.
    ``known_ids`` (distinct ids in order, see :func:`segments.sources.load_dataset`) spares
    the pandas engine hashing ids it has seen before. ``stage_to`` (a folder) keeps the SQL
    engines' rows in a file there instead of memory (see :func:`load_in_engine`)."""
    chosen = choose_engine(ws, engine)
    if chosen == "pandas":
        return load_dataset(ws, as_of=as_of, progress=progress, known_ids=known_ids), None
    return load_in_engine(
        ws,
        as_of=as_of,
        engine=chosen,
        options=options,
        progress=progress,
        rules=rules,
        stage_to=stage_to,
    )

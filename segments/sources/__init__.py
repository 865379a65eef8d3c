"""Load every declared source into one frame: one row per entity, with features and scores.

``load_dataset(ws, as_of=date(2026, 1, 31))`` reads each source of the workspace (CSV,
Parquet, or SQL through a SQLAlchemy URL), normalises ids, aggregates events into
features, computes scores and returns a :class:`Dataset`::

    sources:
      crm:     {kind: entity, path: crm.csv, id: account_id, created: created_at,
                timestamp: updated_at, columns: {plan: string, seats: number}}
      product: {kind: events, path: events.parquet, id: email, map_via: people,
                timestamp: ts, event: event, value: value}
      people:  {kind: mapping, path: people.csv, key: email, id: account_id}
    features:
      logins_30d: {source: product, event: login, agg: count, window_days: 30}
    scores:
      engagement: {weights: {logins_30d: 1, seats: 0.5}}

gives ``dataset.frame`` indexed by account id with columns ``plan`` (category),
``seats`` (float64), ``logins_30d`` (float64) and ``engagement`` (float64, 0-100).

Semantics:

* **as_of is a whole day.** Events up to and including that day count (``ts`` before
  midnight after as_of); entity rows whose ``created`` falls after as_of are left out
  (a null ``created`` is kept). Naive timestamps are read as UTC; aware ones are converted
  to UTC. SQL events sources get the cut pushed down as ``WHERE ts < :before`` with one day
  of slack (text timestamps with offsets compare loosely); the exact cut is applied after.
* **Ids** are trimmed and folded by the source's ``id_case``; empty ids are dropped. With
  ``map_via`` the id is looked up in the mapping's ``key`` column (both sides trimmed and
  folded by the source's and then the mapping's ``id_case``) and replaced by the mapping's
  ``id`` (folded by the mapping's ``id_case``); a mapping key listed twice keeps its first row.
  Rows whose id is empty or unmapped are dropped and counted (``unmapped``); events whose id
  is not an entity are dropped and counted (``unknown``). ``id_stats`` splits each source's
  rows into ``blank`` ids and ``unresolved`` ones (unmapped, unknown, or a mapping's ids that
  no entity source has), for the quality gate.
* **Entities** are the union of the entity sources' ids, in order of first appearance
  (with no entity source: the ids seen in events). Within one entity source a repeated id
  keeps its first row (``duplicate_ids`` counts the ids that repeat). Entity sources are
  outer-joined on id; a column declared by several entity sources is ``source.column``.
* **Kinds**: number -> float64, string -> category, bool -> boolean, date ->
  datetime64[ns] (naive UTC). Values that do not parse, and infinite numbers, become null;
  each source's ``values`` counts them per column (present, invalid, a few examples) for
  the quality gate. Only declared columns reach the frame; a declared column
  absent from the data is added as all-null and listed in ``missing_columns``.
* **Features** aggregate one events source per entity over ``window_days`` days ending at
  as_of (as_of and the N-1 days before it; no window = all history), optionally only the
  named events. ``count`` counts matching events; ``sum``/``avg``/``min``/``max``/``first``/
  ``last`` use matching events that have a value, ``first``/``last`` taking the value of the
  earliest/latest of them (same timestamp: the largest value); ``days_since`` is whole days
  from the day of the latest matching event to as_of. Entities without matching events get
  ``fill``, which defaults to 0 for count and sum and to null otherwise.
* **Scores** (0-100, one decimal) are the weighted mean of the inputs normalised to 0-1:
  ``rank`` uses the percentile rank ((rank - 1) / (n - 1), ties averaged), ``minmax`` uses
  (x - min) / (max - min); a constant input normalises to 0.5. A negative weight inverts its
  input (1 - x). A null input earns no points whatever the weight's sign: it counts as the
  lowest possible contribution, so "unknown" never looks good.

Modules: ``read`` (one source's columns, by format: ``files`` for CSV and
Parquet, ``sql`` for SQLAlchemy URLs), ``ids`` (id normalisation and lookup),
``mapping`` (mapping sources), ``kinds`` (declared kinds to frame columns),
``entities`` and ``events`` (the two source kinds), ``features`` (windowed
aggregations), ``scores`` (weighted 0-100 scores), ``loaded`` (one source as
read), ``digest`` (content digests of columns) and ``dataset`` (``load_dataset``,
the joined frame, its lineage and fingerprint).
"""

from __future__ import annotations

from segments.sources.dataset import Dataset, Progress, load_dataset
from segments.sources.features import DAY_NS
from segments.sources.loaded import LoadedSource
from segments.sources.read import SourceError

__all__ = ["DAY_NS", "Dataset", "LoadedSource", "Progress", "SourceError", "load_dataset"]

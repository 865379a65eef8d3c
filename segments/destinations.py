"""Destinations: where a segment's membership is kept in step, and what to send them.

Declared in the workspace file under ``destinations`` (a mapping name -> settings).
Each destination names the segments it receives (``segments``), or the tiers whose
segments it receives (``tiers``), or both::

    destinations:
      warehouse:
        kind: sql_table                # history (segment, entity_id, valid_from, valid_to)
        url_secret: warehouse          # the database URL, from SEGOPS_DESTINATION_SECRETS
        table: segment_membership      # and the view segment_membership_current
        tiers: [core, strategic]
      exports:
        kind: files                    # snapshot.csv, added.csv, removed.csv per run
        path: exports/segments         # a folder, or an fsspec URL (s3://bucket/prefix)
        format: csv                    # or parquet
        segments: [churn-risk]
      crm-hook:
        kind: webhook                  # Standard Webhooks signed POSTs of added/removed ids
        url: https://hooks.example.com/segops
        secret: crm-hook               # a whsec_ secret, from SEGOPS_DESTINATION_SECRETS
        batch_size: 500
        max_bytes: 262144
        segments: [churn-risk, power-users]
      hubspot-churn:
        kind: hubspot                  # a static HubSpot list kept in step
        list_id: "123"
        secret: hubspot                # a private-app access token
        segments: [churn-risk]

Every destination also takes ``rate_per_second`` (requests, default 5), ``max_attempts``
(failures of one batch before it is dead, default 8) and ``timeout`` (seconds, default 10).

Diffs are taken against what the destination acknowledged, not against the previous
refresh: :func:`plan` gives ``new - acked`` to add and ``acked - new`` to remove, and
:func:`batches` cuts them into the pieces a destination accepts. Pure: no database,
no network.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pyroaring import BitMap

KINDS = ("sql_table", "files", "webhook", "hubspot")
HUBSPOT_MAX_BATCH = 100_000
"""Record ids HubSpot accepts in one add-and-remove call (adds and removes together)."""
DEFAULT_BATCH = {"sql_table": 50_000, "files": 10_000_000, "webhook": 500, "hubspot": 1_000}
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_NAME = re.compile(r"[a-z][a-z0-9-]{0,62}")

Tier = Literal["core", "strategic", "tactical"]


class DestinationConfig(BaseModel):
    """One destination as written in the workspace file."""

    model_config = ConfigDict(extra="forbid")

    kind: str
    segments: list[str] = Field(default_factory=list)
    tiers: list[Tier] = Field(default_factory=list)
    batch_size: int | None = Field(default=None, ge=1)
    rate_per_second: float = Field(default=5.0, gt=0, le=10_000)
    max_attempts: int = Field(default=8, ge=1, le=100)
    timeout: float = Field(default=10.0, gt=0, le=300)
    # sql_table
    url: str | None = None
    url_secret: str | None = None
    table: str = "segment_membership"
    # files
    path: str | None = None
    format: Literal["csv", "parquet"] = "csv"
    # webhook and hubspot
    secret: str | None = None
    max_bytes: int = Field(default=256 * 1024, ge=1024)
    # hubspot
    list_id: str | None = None
    api_url: str = "https://api.hubapi.com"

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        if value not in KINDS:
            raise ValueError(f"unknown destination kind {value!r} (choose from {', '.join(KINDS)})")
        return value

    @model_validator(mode="after")
    def _per_kind(self) -> DestinationConfig:
        if not self.segments and not self.tiers:
            raise ValueError("name the segments or the tiers it receives (segments: [...])")
        need: dict[str, list[str]] = {
            "sql_table": [],
            "files": ["path"],
            "webhook": ["url", "secret"],
            "hubspot": ["list_id", "secret"],
        }
        for field in need[self.kind]:
            if not getattr(self, field):
                raise ValueError(f"a {self.kind} destination needs '{field}'")
        if self.kind == "sql_table":
            if not (self.url or self.url_secret):
                raise ValueError("a sql_table destination needs 'url' or 'url_secret'")
            if not _IDENT.fullmatch(self.table):
                raise ValueError(f"table {self.table!r} must be a plain SQL identifier")
        if self.kind == "webhook" and not str(self.url).startswith(("https://", "http://")):
            raise ValueError(f"url {self.url!r} must be an http(s) URL")
        if self.kind == "hubspot" and self.size > HUBSPOT_MAX_BATCH:
            raise ValueError(f"batch_size may be at most {HUBSPOT_MAX_BATCH:,} for hubspot")
        return self

    @property
    def size(self) -> int:
        """Ids per batch (adds and removes together)."""
        return self.batch_size or DEFAULT_BATCH[self.kind]

    def receives(self, segment: str, tier: str) -> bool:
        """Whether this destination receives the segment ``segment`` of tier ``tier``."""
        return segment in self.segments or tier in self.tiers


def check_destinations(destinations: dict[str, DestinationConfig], segments: Iterable[str]) -> None:
    """Names are slugs and every named segment exists; ValueError with the first problem."""
    known = set(segments)
    for name, config in destinations.items():
        if not _NAME.fullmatch(name):
            raise ValueError(
                f"destination name {name!r} must be a slug: lower-case letters, digits and '-'"
            )
        for segment in config.segments:
            if segment not in known:
                raise ValueError(f"destination {name!r}: unknown segment {segment!r}")


def plan(new: BitMap, acked: BitMap) -> tuple[BitMap, BitMap]:
    """``(add, remove)``: members the destination lacks, and those it has but should not."""
    return new - acked, acked - new


def exclude(ids: BitMap, withheld: BitMap | None) -> BitMap:
    """``ids`` without the ``withheld`` ones (members that must never be sent)."""
    return ids if withheld is None or not len(withheld) else ids - withheld


@dataclass(frozen=True)
class Piece:
    """One batch to send: dense ids to add and to remove."""

    add: BitMap
    remove: BitMap

    def __len__(self) -> int:
        return len(self.add) + len(self.remove)


def batches(
    add: BitMap,
    remove: BitMap,
    *,
    size: int,
    max_bytes: int | None = None,
    key_bytes: Mapping[int, int] | Sequence[int] | None = None,
) -> Iterator[Piece]:
    """Cut ``add`` and ``remove`` into pieces of at most ``size`` ids, removes first.

    With ``max_bytes`` and ``key_bytes`` (the encoded length of each id's key, indexed by
    dense id), a piece also stays under ``max_bytes`` of keys (each key costs its length
    plus 4 for quotes and a comma); a piece always holds at least one id.
    """
    if size < 1:
        raise ValueError("batch size must be at least 1")
    todo = [("remove", i) for i in remove] + [("add", i) for i in add]
    current: dict[str, list[int]] = {"add": [], "remove": []}
    count = weight = 0
    for op, dense in todo:
        cost = (key_bytes[dense] + 4) if key_bytes is not None else 0
        full = count >= size or (
            max_bytes is not None and key_bytes is not None and count and weight + cost > max_bytes
        )
        if full:
            yield Piece(BitMap(current["add"]), BitMap(current["remove"]))
            current = {"add": [], "remove": []}
            count = weight = 0
        current[op].append(dense)
        count += 1
        weight += cost
    if count:
        yield Piece(BitMap(current["add"]), BitMap(current["remove"]))


def share_changed(add: int, remove: int, acked: int) -> float:
    """The change as a share of what the destination holds (1.0 when it holds nothing)."""
    return 1.0 if acked == 0 else (add + remove) / acked


def describe(config: DestinationConfig, name: str) -> str:
    """A short human label: "HubSpot list '123'", "webhook crm-hook", ..."""
    if config.kind == "hubspot":
        return f"HubSpot list '{config.list_id}'"
    if config.kind == "sql_table":
        return f"table {config.table} ({name})"
    if config.kind == "files":
        return f"files {name}"
    return f"webhook {name}"

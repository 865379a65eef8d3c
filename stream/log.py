"""The durable event log: one Redis stream, one consumer group.

Each entry holds ``e`` (the event's JSON text) and ``at`` (when it was accepted, UNIX
seconds). Consumers of the group ``segops-live`` read new entries with ``XREADGROUP``;
an entry stays pending until ``XACK``, which the consumer sends only after the batch's
transaction committed. A restarted consumer first re-reads its own pending entries, and
``XAUTOCLAIM`` hands the entries of a consumer that died (idle longer than
``claim_idle_ms``) to a live one, so nothing delivered is lost; the event-id key in the
store makes a second delivery a no-op.

Trimming keeps the stream bounded without dropping anything unacknowledged: entries
before the oldest pending one (or, with none pending, up to the last delivered one) go.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

GROUP = "segops-live"
Entry = tuple[str, dict[str, str]]


@dataclass
class EventLog:
    client: redis.Redis
    stream: str
    group: str = GROUP

    @classmethod
    def from_url(cls, url: str, stream: str) -> EventLog:
        return cls(redis.Redis.from_url(url, decode_responses=True), stream)

    def ensure_group(self) -> None:
        """Create the consumer group (from the start of the stream) unless it exists."""
        try:
            self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def publish(self, payloads: Sequence[str], *, accepted_at: float) -> list[str]:
        """Append the events in one round trip; their entry ids."""
        pipe = self.client.pipeline(transaction=True)
        for payload in payloads:
            pipe.xadd(self.stream, {"e": payload, "at": repr(accepted_at)})
        return [str(i) for i in pipe.execute()]

    def read(self, consumer: str, *, count: int, block_ms: int, pending: bool = False):
        """New entries for ``consumer`` (``pending``: its own unacknowledged ones)."""
        found = self.client.xreadgroup(
            self.group,
            consumer,
            {self.stream: "0" if pending else ">"},
            count=count,
            block=None if pending else block_ms,
        )
        return _entries(found)

    def claim(self, consumer: str, *, min_idle_ms: int, count: int) -> list[Entry]:
        """Take over entries other consumers left pending for ``min_idle_ms``."""
        reply = self.client.xautoclaim(
            self.stream, self.group, consumer, min_idle_ms, start_id="0-0", count=count
        )
        return [(str(i), dict(f or {})) for i, f in reply[1] if f is not None]

    def ack(self, ids: Sequence[str]) -> None:
        if ids:
            self.client.xack(self.stream, self.group, *ids)

    def trim(self) -> None:
        """Drop the entries every consumer is done with."""
        summary = self.client.xpending(self.stream, self.group)
        if summary and summary.get("pending"):
            oldest = summary["min"]
        else:
            groups = {g["name"]: g for g in self.client.xinfo_groups(self.stream)}
            info = groups.get(self.group)
            if info is None:
                return
            oldest = _next_id(info["last-delivered-id"])
        self.client.xtrim(self.stream, minid=oldest, approximate=False)

    def status(self) -> dict[str, Any]:
        """Entries in the stream, pending, and not yet delivered (lag) for the group."""
        out: dict[str, Any] = {"stream": self.stream, "length": self.client.xlen(self.stream)}
        for group in self.client.xinfo_groups(self.stream):
            if group["name"] == self.group:
                out.update(pending=group["pending"], lag=group.get("lag"))
        return out

    def delete(self) -> None:
        self.client.delete(self.stream)


def _entries(found: Any) -> list[Entry]:
    out: list[Entry] = []
    for _stream, entries in found or []:
        out.extend((str(i), dict(f or {})) for i, f in entries)
    return out


def _next_id(entry_id: str) -> str:
    ms, _, seq = entry_id.partition("-")
    return f"{ms}-{int(seq or 0) + 1}"

"""The event a producer sends, checked at the edge.

One event is a JSON object::

    {"id": "evt-8f1c", "entity": "A0042", "event": "login",
     "ts": "2026-12-02T10:31:07Z", "value": 3.5, "source": "product"}

* ``id`` (1-128 characters) makes the event idempotent: the same id is applied once,
  however often it is sent or delivered.
* ``entity`` is the entity key as the batch refresh knows it, or for a source with
  ``map_via`` that source's own id (the e-mail), which the consumer maps
  (:class:`segments.sources.mapping.IdMap`); ``event`` the event name the features
  filter on.
* ``ts`` is an ISO 8601 time; without an offset it is UTC.
* ``value`` is a number or null (optional); ``source`` names the events source and may
  be left out when the workspace has one events source.

Anything else (another key, a wrong type, a missing field) is refused with a message
naming the field. A batch holds at most :data:`MAX_BATCH` events.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr
from pydantic import ValidationError as _ValidationError

from segments.errors import SegopsError

MAX_BATCH = 1000


class EventProblem(SegopsError):
    """An event that cannot be applied; the message names the field."""


class EventIn(BaseModel):
    """One checked event: ``ts`` is aware UTC, ``source`` is resolved."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: StrictStr = Field(min_length=1, max_length=128)
    entity: StrictStr = Field(min_length=1, max_length=256)
    event: StrictStr = Field(min_length=1, max_length=128)
    ts: datetime
    value: StrictInt | StrictFloat | None = None
    source: StrictStr | None = Field(default=None, max_length=63)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "entity": self.entity,
            "event": self.event,
            "ts": self.ts.isoformat(),
            "value": self.value,
            "source": self.source,
        }


def _first_error(exc: _ValidationError) -> str:
    err = exc.errors()[0]
    where = str(err["loc"][0]) if err["loc"] else "event"
    if where == "value" and err["type"] != "extra_forbidden":
        return "value: must be a number or null"
    if err["type"] == "missing":
        return f"{where}: missing"
    if err["type"] == "extra_forbidden":
        return f"{where}: unknown field"
    return f"{where}: {err['msg'].lower()}"


def check_event(raw: Any, *, sources: Collection[str]) -> EventIn:
    """The event ``raw`` checked against the schema and the workspace's events sources;
    EventProblem naming the field otherwise."""
    if not isinstance(raw, dict):
        raise EventProblem("an event must be a JSON object")
    if "ts" in raw and not isinstance(raw["ts"], str):
        raise EventProblem("ts: must be an ISO 8601 time string")
    try:
        event = EventIn.model_validate(raw)
    except _ValidationError as exc:
        raise EventProblem(_first_error(exc)) from None
    if isinstance(event.value, float) and not math.isfinite(event.value):
        raise EventProblem("value: must be a finite number")
    entity = event.entity.strip()
    name = event.event.strip()
    if not entity:
        raise EventProblem("entity: blank")
    if not name:
        raise EventProblem("event: blank")
    source = event.source
    if source is None:
        if len(sources) != 1:
            listed = ", ".join(sorted(sources)) or "none"
            raise EventProblem(f"source: missing (events sources: {listed})")
        source = next(iter(sources))
    elif source not in sources:
        listed = ", ".join(sorted(sources)) or "none"
        raise EventProblem(f"source: {source!r} is not an events source (known: {listed})")
    ts = event.ts.replace(tzinfo=UTC) if event.ts.tzinfo is None else event.ts.astimezone(UTC)
    value = float(event.value) if event.value is not None else None
    return event.model_copy(
        update={"entity": entity, "event": name, "ts": ts, "value": value, "source": source}
    )

"""Live segments: the pure part of near-real-time membership.

A segment that opts in with ``cadence: live`` and whose rule only reads what one event
can update (entity properties, and ``count``/``sum``/``avg``/``days_since`` features over
day windows) is *live*: each event updates per-entity state and re-evaluates only the
live segments that event can change, with the same rule tree and the same pandas compiler
(:mod:`segments.rules.mask`) as the batch refresh. Everything else stays *batch*, and
:func:`classify_all` says why.

Modules:

``classify``  live or batch for every segment of a workspace, with the reasons.
``events``    the event a producer sends (schema, limits) and its checks.
``state``     per-entity state: per-day buckets of count, valued count and sum per
              (source, event name), folded past a horizon; feature values at an as_of day.
``model``     :class:`LiveModel`: the live segments, their features, the index from
              (source, event name) to the segments an event can change, evaluation of a
              set of entities and the clause that explains each join and leave.

Time is whole UTC days, as in the batch refresh: a feature ``window_days: 7`` at as_of
day D counts the events of days D-6 .. D, and ``days_since`` is D minus the day of the
latest matching event. Live membership is the batch membership for as_of = today, over
the events received so far.
"""

from __future__ import annotations

from segments.live.classify import LIVE_AGGREGATIONS, Classification, classify_all
from segments.live.events import MAX_BATCH, EventIn, EventProblem, check_event
from segments.live.model import LiveModel, Transition, properties_workspace
from segments.live.state import EntityState, day_of

__all__ = [
    "LIVE_AGGREGATIONS",
    "MAX_BATCH",
    "Classification",
    "EntityState",
    "EventIn",
    "EventProblem",
    "LiveModel",
    "Transition",
    "check_event",
    "classify_all",
    "day_of",
    "properties_workspace",
]

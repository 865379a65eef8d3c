"""Workspaces with destinations, settings with their secrets, and sync passes on a clock."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

import yaml
from sqlalchemy import Engine, select

from commands.settings import Settings
from segments.membership import decode
from store.db import session_scope
from store.entities import keys_for_ids
from store.models import Segment, SegmentResult
from sync import SyncStats, run_syncs
from tests.factories import Factory
from tests.sync.fakes import HUBSPOT_TOKEN, WEBHOOK_SECRET


def with_destinations(fx: Factory, destinations: dict[str, Any]) -> None:
    """Rewrite the workspace file with ``destinations`` declared."""
    data = fx.workspace_data()
    data["destinations"] = destinations
    fx.path.write_text(yaml.safe_dump(data, sort_keys=False))
    fx._ws = None


def settings(**secrets: str) -> Settings:
    values = {"hook": WEBHOOK_SECRET, "hubspot": HUBSPOT_TOKEN, **secrets}
    return Settings(
        SEGOPS_DESTINATION_SECRETS=values,
        SEGOPS_SYNC_CHANGE_LIMIT=100.0,
        SEGOPS_SYNC_HOLD_ON_ALERTS=False,
    )


def members(engine: Engine, segment: str) -> set[str]:
    """The entity keys of the segment's current members."""
    with session_scope(engine) as session:
        seg = session.execute(select(Segment).where(Segment.name == segment)).scalar_one()
        result = session.get(SegmentResult, seg.current_result_id)
        return set(keys_for_ids(session, ids=list(decode(result.bitmap))))


class Clock:
    """A sync clock that moves on by ``step`` each pass, so backoffs come due at once."""

    def __init__(self, start: datetime, step: timedelta = timedelta(minutes=20)) -> None:
        self.now, self.step = start, step

    def tick(self) -> datetime:
        self.now += self.step
        return self.now


def sync_until_quiet(
    engine: Engine, fx: Factory, cfg: Settings, clock: Clock, *, passes: int = 40, **kwargs: Any
) -> list[SyncStats]:
    """Run passes until one plans and sends nothing (at most ``passes``)."""
    rng = random.Random(3)
    done = []
    for _ in range(passes):
        stats = run_syncs(engine, fx.ws(), cfg, now=clock.tick(), rng=rng, **kwargs)
        done.append(stats)
        if not (stats.planned or stats.sent or stats.retried or stats.dead):
            return done
    return done

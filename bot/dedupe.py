"""Durable de-duplication of Events API deliveries on ``event_id``: the bolt middleware.

The queries are in :mod:`store.events`; the functions here run each step in its
own transaction.

Slack delivers an event at least once: when an answer is late or fails it retries
(``X-Slack-Retry-Num: 1..3``). Every web process shares the ``slack_event`` table,
whose primary key is the ``event_id``, so the database decides who does the work.

Claim / processed semantics:

- **claim**: the first delivery inserts ``(event_id, received_at)``; the unique key
  lets exactly one delivery win. Its listener runs.
- **processed**: the listener calls :func:`mark_processed` when its work is done,
  which sets ``processed_at``.
- A later delivery whose insert fails (``IntegrityError``) reads the row:

  - ``processed_at`` set: a duplicate. Acked with 200 and ignored.
  - ``processed_at`` empty and the delivery is a Slack retry: the first delivery
    failed before finishing (crash, error, timeout). The retry takes the claim over
    with a compare-and-set on ``received_at`` (of several racing retries, one wins)
    and the work runs once more.
  - ``processed_at`` empty and not a retry: another delivery holds the claim. Ignored,
    unless that claim is older than ``STALE_CLAIM`` (Socket Mode re-deliveries carry
    no retry header, so an unfinished event is taken over by age there).

A busy database: the claim waits at most :data:`CLAIM_WAIT` seconds for it (its own
connection, with a short SQLite busy timeout or PostgreSQL lock timeout), then the
delivery is answered ``503`` with nothing written, so Slack retries it, instead of
waiting past Slack's 3 s budget.

Limits: a retry that arrives while the first delivery is still working (possible
only when that process stalled past Slack's 3 s timeout, since listeners ack at
once) runs the work a second time, so the work itself must be safe to repeat where
it matters (proposal decisions are applied once in the database). Rows are pruned
by :func:`prune` after Slack's retry window.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from slack_bolt.middleware import Middleware
from slack_bolt.request import BoltRequest
from slack_bolt.response import BoltResponse
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from store import events
from store.db import impatient_engine, is_busy, session_scope
from store.models import utcnow

logger = logging.getLogger(__name__)

CLAIM_KEY = "event_claim"
STALE_CLAIM = timedelta(seconds=60)
CLAIM_WAIT = 0.5  # seconds a claim waits for a busy database before answering 503


class Claim(enum.StrEnum):
    """The outcome of claiming one delivery."""

    NEW = "new"  # first delivery: process it
    RETRY = "retry"  # a retry of a delivery that never finished: process it
    DUPLICATE = "duplicate"  # already processed, or claimed by another delivery: ignore


def claim(engine: Engine, event_id: str, *, retry: bool, now: datetime | None = None) -> Claim:
    """Claim ``event_id`` for processing; see the module docstring for the rules."""
    now = now or utcnow()
    try:
        with session_scope(engine) as session:
            events.add_claim(session, event_id=event_id, received_at=now)
        return Claim.NEW
    except IntegrityError:
        pass
    with session_scope(engine) as session:
        row = events.find(session, event_id=event_id)
        if row is None or row.processed_at is not None:
            return Claim.DUPLICATE
        if not retry and now - row.received_at <= STALE_CLAIM:
            return Claim.DUPLICATE
        taken = events.take_over(session, event_id=event_id, claimed_at=row.received_at, now=now)
        return Claim.RETRY if taken else Claim.DUPLICATE


def mark_processed(engine: Engine, event_id: str, *, now: datetime | None = None) -> None:
    """Record that the work for ``event_id`` is done; later deliveries are ignored."""
    with session_scope(engine) as session:
        events.mark_processed(session, event_id=event_id, now=now or utcnow())


def is_processed(engine: Engine, event_id: str) -> bool:
    """Whether the work for ``event_id`` has been recorded as done."""
    with session_scope(engine) as session:
        return events.is_processed(session, event_id=event_id)


def prune(
    engine: Engine, *, older_than: timedelta = timedelta(days=2), now: datetime | None = None
) -> int:
    """Delete rows received before ``now - older_than`` (well past Slack's retries)."""
    with session_scope(engine) as session:
        return events.prune(session, before=(now or utcnow()) - older_than)


class EventDedupe(Middleware):
    """Global bolt middleware: claim each ``event_callback`` before its listeners run.

    Duplicates are answered with 200 and go no further; claimed deliveries carry
    ``context["event_claim"]`` (``"new"`` or ``"retry"``). A claim that finds the
    database busy for ``wait`` seconds is answered 503, so Slack delivers it again.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Callable[[], datetime] = utcnow,
        wait: float = CLAIM_WAIT,
    ) -> None:
        self.engine = impatient_engine(engine, wait)
        self.clock = clock

    def process(
        self,
        *,
        req: BoltRequest,
        resp: BoltResponse,
        next: Callable[[], BoltResponse],
    ) -> BoltResponse | None:
        body = req.body
        event_id = body.get("event_id") if body.get("type") == "event_callback" else None
        if not event_id:
            return next()
        retry_num = (req.headers.get("x-slack-retry-num") or [""])[0]
        try:
            outcome = claim(self.engine, event_id, retry=bool(retry_num), now=self.clock())
        except (OperationalError, DBAPIError) as error:
            if not is_busy(error):
                raise
            logger.warning("slack_event_busy event_id=%s retry=%s", event_id, retry_num or 0)
            return BoltResponse(status=503, body="the database is busy: deliver this again")
        if outcome is Claim.DUPLICATE:
            logger.info("slack_event_duplicate event_id=%s retry=%s", event_id, retry_num or 0)
            return BoltResponse(status=200, body="")
        req.context[CLAIM_KEY] = outcome.value
        return next()

"""Durable de-duplication of Events API deliveries: claim, processed, retry takeover."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from bot.dedupe import Claim, claim, is_processed, mark_processed, prune
from store.db import session_scope
from store.models import SlackEvent

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_first_delivery_claims_the_event(engine: Engine):
    assert claim(engine, "Ev1", retry=False, now=T0) is Claim.NEW
    assert not is_processed(engine, "Ev1")


def test_second_delivery_while_claimed_is_a_duplicate(engine: Engine):
    claim(engine, "Ev1", retry=False, now=T0)
    assert claim(engine, "Ev1", retry=False, now=T0) is Claim.DUPLICATE


def test_retry_of_a_processed_event_is_a_duplicate(engine: Engine):
    claim(engine, "Ev1", retry=False, now=T0)
    mark_processed(engine, "Ev1", now=T0)
    assert claim(engine, "Ev1", retry=True, now=T0 + timedelta(seconds=3)) is Claim.DUPLICATE


def test_retry_of_an_unfinished_event_takes_the_claim_over(engine: Engine):
    claim(engine, "Ev1", retry=False, now=T0)
    later = T0 + timedelta(seconds=3)
    assert claim(engine, "Ev1", retry=True, now=later) is Claim.RETRY
    with session_scope(engine) as session:
        assert session.get(SlackEvent, "Ev1").received_at == later


def test_a_second_retry_after_a_failed_retry_runs_again(engine: Engine):
    claim(engine, "Ev1", retry=False, now=T0)
    claim(engine, "Ev1", retry=True, now=T0 + timedelta(seconds=3))
    assert claim(engine, "Ev1", retry=True, now=T0 + timedelta(minutes=1)) is Claim.RETRY


def test_unfinished_claim_is_taken_over_by_age_without_a_retry_header(engine: Engine):
    claim(engine, "Ev1", retry=False, now=T0)
    assert claim(engine, "Ev1", retry=False, now=T0 + timedelta(seconds=59)) is Claim.DUPLICATE
    assert claim(engine, "Ev1", retry=False, now=T0 + timedelta(seconds=61)) is Claim.RETRY


def test_mark_processed_is_recorded(engine: Engine):
    claim(engine, "Ev1", retry=False, now=T0)
    mark_processed(engine, "Ev1", now=T0)
    assert is_processed(engine, "Ev1")


def test_prune_forgets_old_events_only(engine: Engine):
    claim(engine, "old", retry=False, now=T0 - timedelta(days=3))
    claim(engine, "new", retry=False, now=T0)
    assert prune(engine, older_than=timedelta(days=2), now=T0) == 1
    assert claim(engine, "new", retry=False, now=T0) is Claim.DUPLICATE
    assert claim(engine, "old", retry=False, now=T0) is Claim.NEW

"""Named leases: one holder at a time, renewal, expiry, release, and racing callers."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from store.lease import acquire, current, release

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
TTL = 30


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_a_free_lease_is_taken_until_now_plus_ttl(engine):
    assert acquire(engine, name="scheduler", holder="a", ttl=TTL, now=T0) == at(TTL)
    info = current(engine, name="scheduler")
    assert (info.holder, info.expires_at) == ("a", at(TTL))


def test_another_holder_is_refused_while_the_lease_is_valid(engine):
    acquire(engine, name="scheduler", holder="a", ttl=TTL, now=T0)
    assert acquire(engine, name="scheduler", holder="b", ttl=TTL, now=at(TTL - 1)) is None
    assert current(engine, name="scheduler").holder == "a"


def test_the_holder_renews_its_lease(engine):
    acquire(engine, name="scheduler", holder="a", ttl=TTL, now=T0)
    assert acquire(engine, name="scheduler", holder="a", ttl=TTL, now=at(10)) == at(10 + TTL)
    assert acquire(engine, name="scheduler", holder="b", ttl=TTL, now=at(TTL + 1)) is None


def test_an_expired_lease_passes_to_the_next_caller(engine):
    acquire(engine, name="scheduler", holder="a", ttl=TTL, now=T0)
    assert acquire(engine, name="scheduler", holder="b", ttl=TTL, now=at(TTL)) == at(2 * TTL)
    assert acquire(engine, name="scheduler", holder="a", ttl=TTL, now=at(TTL + 1)) is None


def test_release_frees_the_lease_at_once(engine):
    acquire(engine, name="scheduler", holder="a", ttl=TTL, now=T0)
    assert release(engine, name="scheduler", holder="a", now=at(1)) is True
    assert acquire(engine, name="scheduler", holder="b", ttl=TTL, now=at(2)) == at(2 + TTL)


def test_release_by_another_holder_changes_nothing(engine):
    acquire(engine, name="scheduler", holder="a", ttl=TTL, now=T0)
    assert release(engine, name="scheduler", holder="b", now=at(1)) is False
    assert current(engine, name="scheduler").expires_at == at(TTL)


def test_leases_with_different_names_are_independent(engine):
    acquire(engine, name="scheduler", holder="a", ttl=TTL, now=T0)
    assert acquire(engine, name="other", holder="b", ttl=TTL, now=T0) == at(TTL)


def test_without_now_the_lease_runs_on_the_database_clock(engine):
    before = datetime.now(UTC)
    expires = acquire(engine, name="scheduler", holder="a", ttl=TTL)
    assert before + timedelta(seconds=TTL - 5) < expires < before + timedelta(seconds=TTL + 5)


def test_ttl_must_be_positive(engine):
    with pytest.raises(ValueError, match="ttl"):
        acquire(engine, name="scheduler", holder="a", ttl=0)


@pytest.mark.parametrize("taken_before", [False, True], ids=["new-row", "expired-row"])
def test_racing_callers_never_both_win(engine, taken_before):
    if taken_before:
        acquire(engine, name="scheduler", holder="old", ttl=TTL, now=T0 - timedelta(hours=1))
    callers = 8
    barrier = threading.Barrier(callers)
    wins: list[str] = []
    errors: list[BaseException] = []

    def contend(holder: str) -> None:
        barrier.wait()
        try:
            if acquire(engine, name="scheduler", holder=holder, ttl=TTL, now=T0) is not None:
                wins.append(holder)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=contend, args=(f"w{i}",)) for i in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert len(wins) == 1
    assert current(engine, name="scheduler").holder == wins[0]

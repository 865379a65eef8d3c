"""Cadences: named and cron cadences as UTC triggers, and counting their fire times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from segments.cadence import CadenceError, cadence_trigger, runs_between

# 2026-03-04 is a Wednesday
WED = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def next_fire(cadence: str, after: datetime) -> datetime:
    return cadence_trigger(cadence).get_next_fire_time(None, after)


@pytest.mark.parametrize(
    ("cadence", "expected"),
    [
        ("daily", utc(2026, 3, 5, 6, 0)),
        ("weekly", utc(2026, 3, 9, 6, 0)),  # Monday
        ("monthly", utc(2026, 4, 1, 6, 0)),
        ("quarterly", utc(2026, 4, 1, 6, 0)),
    ],
)
def test_named_cadences_fire_at_six_utc_on_their_day(cadence, expected):
    assert next_fire(cadence, WED) == expected


def test_quarterly_skips_to_the_next_quarter():
    assert next_fire("quarterly", utc(2026, 4, 1, 6, 0, 1)) == utc(2026, 7, 1, 6, 0)
    assert next_fire("quarterly", utc(2026, 11, 2)) == utc(2027, 1, 1, 6, 0)


def test_a_fire_time_is_inclusive_of_now():
    assert next_fire("daily", utc(2026, 3, 4, 6, 0)) == utc(2026, 3, 4, 6, 0)


@pytest.mark.parametrize(
    ("cadence", "expected"),
    [
        ("30 7 * * 0", utc(2026, 3, 8, 7, 30)),  # 0 is Sunday, as in cron
        ("30 7 * * 7", utc(2026, 3, 8, 7, 30)),  # so is 7
        ("0 9 * * 1-5", utc(2026, 3, 5, 9, 0)),  # Thursday
        ("0 9 * * fri", utc(2026, 3, 6, 9, 0)),
        ("*/15 * * * *", utc(2026, 3, 4, 10, 0)),
        ("0 6 15 * *", utc(2026, 3, 15, 6, 0)),
    ],
)
def test_cron_cadences_use_standard_cron_weekdays(cadence, expected):
    assert next_fire(cadence, WED) == expected


def test_cron_day_and_weekday_match_either_one():
    trigger = cadence_trigger("0 6 1 * 1")  # the 1st, and every Monday
    fires, moment = [], WED
    for _ in range(3):
        moment = trigger.get_next_fire_time(None, moment + timedelta(microseconds=1))
        fires.append(moment)
    assert fires == [utc(2026, 3, 9, 6), utc(2026, 3, 16, 6), utc(2026, 3, 23, 6)]
    assert trigger.get_next_fire_time(None, utc(2026, 3, 28)) == utc(2026, 3, 30, 6)
    assert trigger.get_next_fire_time(None, utc(2026, 3, 31)) == utc(2026, 4, 1, 6)


@pytest.mark.parametrize("cadence", ["hourly", "0 6 * *", "0 25 * * *", "0 6 * * 8", ""])
def test_unschedulable_cadences_raise(cadence):
    with pytest.raises(CadenceError, match="cadence"):
        cadence_trigger(cadence)


def test_runs_between_counts_fire_times_after_start_up_to_end():
    trigger = cadence_trigger("daily")
    start = utc(2026, 3, 4, 6, 5)
    assert runs_between(trigger, start, utc(2026, 3, 5, 5, 59), limit=5) == 0
    assert runs_between(trigger, start, utc(2026, 3, 6, 6, 0), limit=5) == 2
    assert runs_between(trigger, start, utc(2026, 4, 6), limit=3) == 3

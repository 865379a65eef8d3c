"""Cadences: when a segment refreshes, as a UTC trigger.

Times are in UTC (:func:`cadence_trigger`):

==============  ===========================================================
``daily``       every day at 06:00
``weekly``      Mondays at 06:00
``monthly``     the 1st of every month at 06:00
``quarterly``   the 1st of January, April, July and October at 06:00
``live``        follows events (see :mod:`segments.live`); its batch refresh, which
                reconciles it, runs daily at 06:00
cron string     five fields ``minute hour day month weekday`` with standard cron
                meaning: weekday 0 and 7 are Sunday, and when both day and weekday
                are restricted either one matching is enough
==============  ===========================================================

A cadence is part of a segment's definition, like its rule; the worker schedules the
triggers and the catalog health report uses them to tell a stale segment.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger

from segments.errors import SegopsError

CADENCE_HOUR = 6
NAMED_CADENCES: dict[str, dict[str, Any]] = {
    "daily": {"hour": CADENCE_HOUR, "minute": 0},
    "weekly": {"day_of_week": "mon", "hour": CADENCE_HOUR, "minute": 0},
    "monthly": {"day": 1, "hour": CADENCE_HOUR, "minute": 0},
    "quarterly": {"month": "1,4,7,10", "day": 1, "hour": CADENCE_HOUR, "minute": 0},
    "live": {"hour": CADENCE_HOUR, "minute": 0},
}

_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


class CadenceError(SegopsError):
    """A cadence that cannot be scheduled."""


# --- cadences --------------------------------------------------------------------------


def cadence_trigger(cadence: str) -> BaseTrigger:
    """The UTC trigger of a named cadence or a 5-field cron string (see module docstring)."""
    text = (cadence or "").strip()
    if text in NAMED_CADENCES:
        return CronTrigger(timezone=UTC, **NAMED_CADENCES[text])
    fields = text.split()
    if len(fields) != 5:
        raise CadenceError(
            f"cadence {cadence!r} must be daily, weekly, monthly, quarterly "
            "or a 5-field cron string"
        )
    minute, hour, day, month, weekday = fields
    try:
        days_of_week = _cron_weekdays(weekday)
        if day not in ("*", "?") and days_of_week != "*":
            # cron runs when EITHER the day of month OR the weekday matches
            return OrTrigger(
                [
                    CronTrigger(minute=minute, hour=hour, day=day, month=month, timezone=UTC),
                    CronTrigger(
                        minute=minute,
                        hour=hour,
                        month=month,
                        day_of_week=days_of_week,
                        timezone=UTC,
                    ),
                ]
            )
        return CronTrigger(
            minute=minute,
            hour=hour,
            day="*" if day == "?" else day,
            month=month,
            day_of_week=days_of_week,
            timezone=UTC,
        )
    except ValueError as exc:
        raise CadenceError(f"cadence {cadence!r}: {exc}") from None


def _cron_weekdays(field_text: str) -> str:
    """A cron weekday field (0 or 7 = Sunday) as APScheduler weekday names.

    APScheduler 3 numbers weekdays from Monday = 0, so numbers are never passed on.
    """
    if field_text in ("*", "?"):
        return "*"
    days: set[int] = set()
    for item in field_text.lower().split(","):
        span, _, step_text = item.partition("/")
        step = int(step_text) if step_text.isdigit() and int(step_text) > 0 else None
        if step_text and step is None:
            raise ValueError(f"bad step in weekday field {field_text!r}")
        if span == "*":
            low, high = 0, 6
        elif "-" in span:
            first, _, last = span.partition("-")
            low, high = _weekday(first), _weekday(last)
            if high == 0 and low > 0:  # "fri-7": through Sunday
                high = 7
        else:
            low = _weekday(span)
            high = 7 if step else low
        if low > high:
            raise ValueError(f"bad range in weekday field {field_text!r}")
        days.update(d % 7 for d in range(low, high + 1, step or 1))
    return ",".join(_WEEKDAYS[d] for d in sorted(days))


def _weekday(token: str) -> int:
    if token.isdigit() and int(token) <= 7:
        return int(token) % 7 if int(token) != 7 else 0
    if token[:3] in _WEEKDAYS and len(token) == 3:
        return _WEEKDAYS.index(token)
    raise ValueError(f"bad weekday {token!r}")


def runs_between(trigger: BaseTrigger, start: datetime, end: datetime, *, limit: int) -> int:
    """How many fire times fall in ``(start, end]``, counting at most ``limit``."""
    count = 0
    moment = start
    while count < limit:
        fire = trigger.get_next_fire_time(None, moment + timedelta(microseconds=1))
        if fire is None or fire > end:
            break
        count += 1
        moment = fire
    return count

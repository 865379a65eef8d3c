"""Times in the jobs' stored details: UTC datetimes as ISO 8601 text and back."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def utc(value: datetime | None) -> datetime:
    """``value`` in UTC (a naive one is taken as UTC); now when None."""
    if value is None:
        return datetime.now(UTC)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def iso(value: datetime) -> str:
    """ISO 8601 text in UTC."""
    return value.astimezone(UTC).isoformat()


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 text back to a UTC datetime; None for an empty value."""
    if not value:
        return None
    return utc(datetime.fromisoformat(str(value)))

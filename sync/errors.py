"""How a destination's answer turns into what happens to a batch.

:class:`Retry` (try again: after ``retry_after`` when the destination said so, else after
an exponential backoff with jitter), :class:`Dead` (this batch will never be accepted),
:class:`Gone` (the endpoint is gone: disable the destination and tell the owner),
:class:`ConfigError` (the destination cannot be set up: a missing secret, a bad URL).
Messages never carry secrets.
"""

from __future__ import annotations

from datetime import timedelta

from segments.errors import SegopsError

DEFAULT_RETRY_AFTER = timedelta(seconds=10)
MAX_RETRY_AFTER = timedelta(hours=1)


class ConfigError(SegopsError):
    """The destination's settings cannot work (checked before anything is sent)."""


class Retry(Exception):
    def __init__(self, reason: str, *, retry_after: timedelta | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class Dead(Exception):
    """The destination refused the batch for good."""


class Gone(Exception):
    """The destination says the endpoint no longer exists (or refuses our credentials)."""


def retry_after(value: str | None) -> timedelta:
    """A ``Retry-After`` header in seconds (HTTP dates are rare here: the default then)."""
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        seconds = None
    if seconds is None or seconds < 0:
        return DEFAULT_RETRY_AFTER
    return min(timedelta(seconds=max(seconds, 1.0)), MAX_RETRY_AFTER)


def classify_status(status: int, *, retry_after_header: str | None, what: str) -> Exception | None:
    """The exception for an HTTP status, or None for success (2xx)."""
    if 200 <= status < 300:
        return None
    if status == 410:
        return Gone(f"{what} answered 410 Gone")
    if status == 429:
        return Retry(f"{what} answered 429", retry_after=retry_after(retry_after_header))
    if status in (408, 425) or status >= 500:
        return Retry(f"{what} answered {status}")
    return Dead(f"{what} answered {status}")

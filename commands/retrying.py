"""Delays between attempts, shared by every delivery loop (Slack messages, sync batches)."""

from __future__ import annotations

import random
from datetime import timedelta

BACKOFF_BASE_SECONDS = 5.0
BACKOFF_CAP = timedelta(minutes=30)


def backoff(
    attempts: int,
    rng: random.Random,
    *,
    cap: timedelta = BACKOFF_CAP,
    base: float = BACKOFF_BASE_SECONDS,
) -> timedelta:
    """Exponential backoff with equal jitter: half the step fixed, half random."""
    step = min(cap.total_seconds(), base * 2 ** max(attempts - 1, 0))
    return timedelta(seconds=step / 2 + rng.uniform(0, step / 2))

"""One request-rate limiter per destination, shared by every thread of the process."""

from __future__ import annotations

import threading
import time

_lock = threading.Lock()
_limiters: dict[str, TokenBucket] = {}


class TokenBucket:
    """``rate`` requests a second on average, bursts of up to ``burst``; thread-safe."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self.tokens = self.burst
        self.stamp = time.monotonic()
        self.resume_at = 0.0
        self.lock = threading.Lock()

    def pause(self, seconds: float) -> None:
        """Send nothing for ``seconds`` (the destination asked to wait: ``Retry-After``)."""
        with self.lock:
            self.resume_at = max(self.resume_at, time.monotonic() + seconds)

    def acquire(self, timeout: float = 60.0) -> bool:
        """Wait for a token (at most ``timeout`` seconds); whether one was taken."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                now = time.monotonic()
                if now >= self.resume_at:
                    self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
                    self.stamp = now
                    if self.tokens >= 1:
                        self.tokens -= 1
                        return True
                    wait = (1 - self.tokens) / self.rate
                else:
                    wait = self.resume_at - now
                    self.stamp = self.resume_at
            if time.monotonic() + wait > deadline:
                return False
            time.sleep(wait)


def limiter_for(name: str, rate: float) -> TokenBucket:
    """The limiter of destination ``name`` (replaced when its rate changed)."""
    with _lock:
        bucket = _limiters.get(name)
        if bucket is None or bucket.rate != rate:
            bucket = _limiters[name] = TokenBucket(rate)
        return bucket

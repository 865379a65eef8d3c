"""The per-destination rate limiter."""

from __future__ import annotations

import threading
import time

from sync.limiter import TokenBucket, limiter_for


def test_threads_sharing_a_limiter_stay_under_its_rate():
    bucket = TokenBucket(rate=20, burst=1)
    stamps: list[float] = []
    lock = threading.Lock()

    def take() -> None:
        for _ in range(5):
            assert bucket.acquire(timeout=5)
            with lock:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=take) for _ in range(4)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 20 tokens at 20/s with a burst of one take at least 19 intervals of 50 ms
    assert len(stamps) == 20 and max(stamps) - started >= 0.9


def test_a_pause_holds_back_every_caller():
    bucket = TokenBucket(rate=1000)
    bucket.pause(0.3)
    started = time.monotonic()
    assert bucket.acquire(timeout=2)
    assert time.monotonic() - started >= 0.29
    paused = TokenBucket(rate=1000)
    paused.pause(5)
    assert paused.acquire(timeout=0.05) is False


def test_one_limiter_per_destination_name():
    assert limiter_for("a-dest", 5) is limiter_for("a-dest", 5)
    assert limiter_for("a-dest", 5) is not limiter_for("b-dest", 5)

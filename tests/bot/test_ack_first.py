"""Follow-up work waits for the acks in flight, but never longer than its patience."""

from __future__ import annotations

import threading
import time

from bot.app import Acks


def test_wait_idle_returns_when_the_last_ack_is_answered():
    acks = Acks(patience=5.0)
    acks.begin()
    acks.begin()
    started = threading.Event()
    done = threading.Event()

    def follow_up() -> None:
        started.set()
        acks.wait_idle()
        done.set()

    threading.Thread(target=follow_up, daemon=True).start()
    assert started.wait(2)
    acks.end()
    assert not done.wait(0.1), "started while an ack was still in flight"
    acks.end()
    assert done.wait(2)


def test_wait_idle_gives_up_after_its_patience():
    acks = Acks(patience=0.05)
    acks.begin()
    began = time.monotonic()
    acks.wait_idle()
    assert 0.04 <= time.monotonic() - began < 1.0


def test_an_app_answers_lazy_work_after_its_acks(slack_app):
    from bot.app import AckFirstLazyRunner, acks_of

    assert isinstance(slack_app.listener_runner.lazy_listener_runner, AckFirstLazyRunner)
    assert acks_of(slack_app) is slack_app.listener_runner.lazy_listener_runner.acks

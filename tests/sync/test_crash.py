"""A sync process killed (SIGKILL) mid-sync, and restarted, ends in the same exact state."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from commands.syncs import status
from tests.factories import AS_OF, build
from tests.sync.fakes import WEBHOOK_SECRET, WebhookReceiver, running
from tests.sync.helpers import members, with_destinations


def _sync(engine, fx, passes: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "SEGOPS_WORKSPACE": str(fx.path),
        "SEGOPS_DESTINATION_SECRETS": json.dumps({"hook": WEBHOOK_SECRET}),
        "SEGOPS_SYNC_CLAIM_LEASE": "1",
        "SEGOPS_SYNC_HOLD_ON_ALERTS": "false",
    }
    code = "from cli.app import main; main()"
    return subprocess.Popen(
        [sys.executable, "-c", code, "sync", "run", "--passes", str(passes)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.mark.slow
def test_a_killed_sync_is_resumed_with_nothing_lost_or_doubled(engine, tmp_path):
    fx = build(tmp_path)
    with running(WebhookReceiver()) as receiver:
        receiver.slow = 0.2  # applied, then the answer takes a while: a kill lands in between
        with_destinations(
            fx,
            {
                "hook": {
                    "kind": "webhook",
                    "url": receiver.url,
                    "secret": "hook",
                    "segments": ["enterprise"],
                    "batch_size": 1,
                    "rate_per_second": 100,
                }
            },
        )
        fx.apply(engine)
        fx.refresh(engine, AS_OF)
        expected = members(engine, "enterprise")
        assert len(expected) > 10

        first = _sync(engine, fx, passes=1)
        deadline = time.monotonic() + 60
        while len(receiver.applied) < 6 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)  # inside the answer's delay: applied, not yet confirmed
        first.kill()
        first.wait(timeout=10)
        assert first.returncode == -9
        applied_before = len(receiver.applied)
        assert 0 < applied_before < len(expected) + 1

        time.sleep(1.2)  # the dead process's claim lease runs out
        second = _sync(engine, fx, passes=3)
        _, err = second.communicate(timeout=120)
        assert second.returncode == 0, err.decode()

        assert receiver.members["enterprise"] == expected
        assert not receiver.problems
        assert max(receiver.deliveries.values()) == 2  # the batch in flight was sent again
        assert all(s["in_step"] for s in status(engine, fx.ws())[0]["segments"])

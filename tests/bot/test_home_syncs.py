"""App Home lists the destinations that need someone, through the real app and real syncs
against fake destinations on localhost."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest
from slack_bolt import App
from sqlalchemy import Engine

from briefs.blocks import blocks_text
from commands.settings import Settings
from sync import run_syncs
from tests.bot.test_home import home_of
from tests.factories import AS_OF, OWNER, PROPOSER, SEGMENTS, build
from tests.sync.fakes import (
    HUBSPOT_TOKEN,
    WEBHOOK_SECRET,
    FakeHubSpot,
    Faults,
    WebhookReceiver,
    running,
)
from tests.sync.helpers import Clock, settings, sync_until_quiet, with_destinations

OTHER = "U444"
START = datetime(2026, 4, 1, tzinfo=UTC)


def _segments() -> list[dict]:
    """The factory's catalog, with ``smb`` owned by someone else."""
    segments = copy.deepcopy(SEGMENTS)
    next(s for s in segments if s["name"] == "smb")["owner"] = OTHER
    return segments


def _failing_syncs(engine: Engine, tmp_path, hubspot: FakeHubSpot, hook: WebhookReceiver):
    """A dead-lettered HubSpot sync, a webhook that said 410, a held file export of
    ``enterprise``, and a file export of ``smb`` that is fine."""
    fx = build(tmp_path, segments=_segments())
    common = {"rate_per_second": 500, "timeout": 0.3, "max_attempts": 2}
    with_destinations(
        fx,
        {
            "hubspot-enterprise": {
                "kind": "hubspot",
                "list_id": "123",
                "secret": "hubspot",
                "api_url": hubspot.url,
                "segments": ["enterprise"],
                "batch_size": 10,
                **common,
            },
            "crm-hook": {
                "kind": "webhook",
                "url": hook.url,
                "secret": "hook",
                "segments": ["enterprise"],
                **common,
            },
            "exports": {"kind": "files", "path": "exports", "segments": ["enterprise", "smb"]},
        },
    )
    fx.apply(engine)
    fx.refresh(engine, AS_OF - timedelta(days=30))
    clock = Clock(START)
    sync_until_quiet(engine, fx, settings(), clock)
    fx.refresh(engine, AS_OF)
    strict = Settings(
        SEGOPS_DESTINATION_SECRETS={"hook": WEBHOOK_SECRET, "hubspot": HUBSPOT_TOKEN},
        SEGOPS_SYNC_CHANGE_LIMIT=0.0001,
        SEGOPS_SYNC_HOLD_ON_ALERTS=False,
    )
    sync_until_quiet(engine, fx, strict, clock, only="exports")
    return fx


def _records(tmp_path) -> set[str]:
    return set(build(tmp_path / "probe").crm["account_id"])


def test_the_owner_sees_each_failing_destination_with_the_command_to_run(
    slack_app: App, slack_server, fake_slack, engine: Engine, tmp_path
):
    with (
        running(FakeHubSpot(records=_records(tmp_path), max_batch=5)) as hubspot,
        running(WebhookReceiver()) as hook,
    ):
        hook.gone = True
        _failing_syncs(engine, tmp_path, hubspot, hook)
    blocks = home_of(slack_server, fake_slack, slack_app, OWNER)["blocks"]
    text = blocks_text(blocks)
    assert "*Destinations needing attention* · 3 syncs" in text
    hub = next(b["text"]["text"] for b in blocks if "*hubspot-enterprise*" in str(b))
    assert "`enterprise` · dead-lettered since 2026-04-01" in hub
    assert "HubSpot list '123': HubSpot answered 400" in hub
    assert "Run `segops sync retry hubspot-enterprise`" in hub
    webhook = next(b["text"]["text"] for b in blocks if "*crm-hook*" in str(b))
    assert "`enterprise` · disabled since 2026-04-01" in webhook and "410" in webhook
    assert "Run `segops sync retry crm-hook`" in webhook
    held = next(b["text"]["text"] for b in blocks if "*exports*" in str(b))
    assert "`enterprise` · waiting for approval since" in held
    assert "of what the destination holds (limit 0%)" in held
    assert "Run `segops sync approve exports enterprise`" in held
    assert "`smb`" not in held  # the other owner's segment, in step, is not listed


def test_nothing_is_shown_when_every_sync_is_fine(
    slack_app: App, slack_server, fake_slack, engine: Engine, tmp_path
):
    fx = build(tmp_path)
    with_destinations(
        fx, {"exports": {"kind": "files", "path": "exports", "segments": ["enterprise"]}}
    )
    fx.apply(engine)
    fx.refresh(engine, AS_OF)
    sync_until_quiet(engine, fx, settings(), Clock(START))
    text = blocks_text(home_of(slack_server, fake_slack, slack_app, OWNER)["blocks"])
    assert "Your segments" in text and "needing attention" not in text


@pytest.mark.parametrize(
    ("user", "shown"), [(OWNER, False), (OTHER, True), (PROPOSER, True)], ids=str
)
def test_an_owner_sees_their_segments_and_someone_who_owns_nothing_sees_all(
    slack_app: App, slack_server, fake_slack, engine: Engine, tmp_path, user: str, shown: bool
):
    with running(WebhookReceiver()) as hook:
        hook.gone = True
        fx = build(tmp_path, segments=_segments())
        with_destinations(
            fx,
            {
                "crm-hook": {
                    "kind": "webhook",
                    "url": hook.url,
                    "secret": "hook",
                    "segments": ["smb"],
                    "timeout": 0.3,
                }
            },
        )
        fx.apply(engine)
        fx.refresh(engine, AS_OF)
        sync_until_quiet(engine, fx, settings(), Clock(START))
    text = blocks_text(home_of(slack_server, fake_slack, slack_app, user)["blocks"])
    assert ("*crm-hook* ← `smb` · disabled since 2026-04-01" in text) is shown


def test_a_sync_that_keeps_being_retried_is_shown_with_its_last_error(
    slack_app: App, slack_server, fake_slack, engine: Engine, tmp_path
):
    with running(WebhookReceiver(faults=Faults(rate=1.0, hang=0.5))) as hook:
        fx = build(tmp_path)
        with_destinations(
            fx,
            {
                "crm-hook": {
                    "kind": "webhook",
                    "url": hook.url,
                    "secret": "hook",
                    "segments": ["enterprise"],
                    "timeout": 0.3,
                }
            },
        )
        fx.apply(engine)
        fx.refresh(engine, AS_OF)
        run_syncs(engine, fx.ws(), settings(), now=START)
    blocks = home_of(slack_server, fake_slack, slack_app, OWNER)["blocks"]
    hook_line = next(b["text"]["text"] for b in blocks if "*crm-hook*" in str(b))
    assert "`enterprise` · retrying since 2026-04-01 00:00 UTC" in hook_line
    assert "webhook 'crm-hook'" in hook_line and "Run `segops sync retry crm-hook`" in hook_line

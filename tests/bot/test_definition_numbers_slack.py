"""In Slack, numbers name the definition that computed them: after an approved change that
no refresh has computed yet, ``/segment show``, ``/segment list``, ``/persona`` and App
Home say the numbers are the old version's and what the approved proposal's preview
measured; after the next refresh the notice is gone."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from slack_bolt import App

from bot.app import shutdown
from briefs.blocks import blocks_text
from commands.proposals import decide, get_proposal, propose
from tests import factories
from tests.factories import AS_OF, OWNER, PROPOSER
from tests.slack import FakeSlack, post_command, post_event

WIDER = "plan in ('trial', 'starter')"


@pytest.fixture
def changed(engine, tmp_path) -> tuple[factories.Factory, int]:
    """``trial`` refreshed at v1, then a wider rule approved (v2) and not refreshed yet;
    returns the factory and the approved proposal's preview size."""
    fx = factories.refreshed(engine, tmp_path, as_of=AS_OF - timedelta(days=1))
    view = propose(
        engine,
        fx.ws(),
        segment="trial",
        proposer=PROPOSER,
        kind="edit",
        changes={"rule": WIDER},
        reason="starters behave like trials",
    )
    decide(engine, proposal_id=view.id, user=OWNER, approve=True, via="cli")
    return fx, get_proposal(engine, view.id).impact["size_after"]


def reply(server, fake: FakeSlack, command: str, text: str) -> str:
    fake.reset()
    post_command(server.events_url, command, text, response_url=fake.response_url())
    answers = fake.wait_for("response_url")
    return " ".join(
        a.body.get("text", "") + blocks_text(a.body.get("blocks") or []) for a in answers
    )


def home_text(server, fake: FakeSlack, app: App, user: str) -> str:
    fake.reset()
    post_event(server.events_url, {"type": "app_home_opened", "user": user, "tab": "home"})
    shutdown(app, wait=True)
    (published,) = fake.calls_to("views.publish")
    view: Any = published.body["view"]
    return blocks_text((json.loads(view) if isinstance(view, str) else view)["blocks"])


def notice(preview: int) -> str:
    return f"definition changed since last refresh (v1 -&gt; v2), preview: {preview:,} members"


def test_every_slack_surface_says_whose_numbers_they_are(
    changed, engine, slack_app, slack_server, fake_slack: FakeSlack
):
    _fx, preview = changed
    show = reply(slack_server, fake_slack, "/segment", "show trial")
    assert "· v2 ·" in show and "computed by v1" in show and notice(preview) in show
    listing = reply(slack_server, fake_slack, "/segment", "list")
    trial_line = next(line for line in listing.split("•") if "`trial`" in line)
    assert notice(preview) in trial_line
    assert "definition changed" not in listing.replace(trial_line, "")
    brief = reply(slack_server, fake_slack, "/persona", "trial")
    assert "Definition v2" in brief and "numbers computed by v1" in brief
    assert notice(preview) in brief
    home = home_text(slack_server, fake_slack, slack_app, OWNER)
    trial_home = home[home.index("`trial`") :].split("`engaged-trial`")[0]
    assert "computed by v1" in trial_home and notice(preview) in trial_home


def test_after_the_next_refresh_the_numbers_are_the_new_definitions(
    changed, engine, slack_app, slack_server, fake_slack: FakeSlack
):
    fx, _preview = changed
    report = fx.refresh(engine, AS_OF)
    trial = next(s for s in report.segments if s.segment == "trial")
    assert trial.status == "published"
    assert not [a for a in trial.alerts if a.severity == "critical"]
    show = reply(slack_server, fake_slack, "/segment", "show trial")
    assert "computed by v2" in show and "definition changed" not in show
    brief = reply(slack_server, fake_slack, "/persona", "trial")
    assert "Definition v2" in brief and "definition changed" not in brief
    home = home_text(slack_server, fake_slack, slack_app, OWNER)
    assert "computed by v2" in home and "definition changed" not in home

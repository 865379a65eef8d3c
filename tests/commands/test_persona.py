"""Persona briefs: the documented context, the privacy floor, and rendering."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from commands.errors import UnknownSegment
from commands.feedback import add_feedback
from commands.persona import brief_context, render_brief, staleness
from commands.settings import Settings
from segments import rules
from segments.errors import SegopsError
from tests import factories

SEGMENT_KEYS = {
    "name",
    "title",
    "tier",
    "owner",
    "approvers",
    "channel",
    "purpose",
    "rationale",
    "behavior_signals",
    "data_sources",
    "known_limitations",
    "kpis",
    "rule_text",
    "criteria",
    "persona",
}
PERSONA_KEYS = {
    "summary",
    "goals",
    "pains",
    "objections",
    "value_propositions",
    "talking_points",
    "discovery_questions",
}


def settings(floor: int = 1) -> Settings:
    return Settings(SEGOPS_PRIVACY_FLOOR=floor)


@pytest.fixture
def fx(engine, tmp_path):
    return factories.applied(engine, tmp_path)


@pytest.fixture
def refreshed(engine, tmp_path):
    return factories.refreshed(engine, tmp_path)


def test_context_has_the_documented_shape(engine, fx):
    ctx = brief_context(engine, "enterprise", settings=settings())
    assert set(ctx) == {
        "segment",
        "version",
        "as_of",
        "stats",
        "feedback",
        "stale",
        "titles",
        "learnings",
    }
    assert set(ctx["segment"]) == SEGMENT_KEYS
    assert set(ctx["segment"]["persona"]) == PERSONA_KEYS
    assert set(ctx["feedback"]) == {"count", "themes", "recent", "quotes"}


def test_criteria_are_the_rule_in_plain_words(engine, fx):
    segment = brief_context(engine, "enterprise", settings=settings())["segment"]
    rule = rules.parse("plan = 'enterprise' or seats >= 50")
    assert segment["rule_text"] == rules.to_text(rule)
    assert segment["criteria"] == rules.describe(rule)


def test_never_refreshed_segment_has_no_stats(engine, fx):
    ctx = brief_context(engine, "trial", settings=settings())
    assert (ctx["version"], ctx["as_of"], ctx["stats"]) == (1, None, None)


def test_stats_show_the_published_size(engine, refreshed):
    crm = refreshed.crm_at(factories.AS_OF)
    expected = int(((crm["plan"] == "enterprise") | (crm["seats"] >= 50)).sum())
    ctx = brief_context(engine, "enterprise", settings=settings(floor=expected))
    stats = ctx["stats"]
    assert ctx["as_of"] == factories.AS_OF.isoformat()
    assert (stats["size"], stats["hidden"]) == (expected, False)
    assert stats["trend"] == [[factories.AS_OF.isoformat(), expected]]
    members = crm[(crm["plan"] == "enterprise") | (crm["seats"] >= 50)]
    assert stats["kpis"]["seats"] == pytest.approx(members["seats"].mean())


def test_stats_under_the_privacy_floor_are_hidden(engine, refreshed):
    crm = refreshed.crm_at(factories.AS_OF)
    size = int(((crm["plan"] == "enterprise") | (crm["seats"] >= 50)).sum())
    stats = brief_context(engine, "enterprise", settings=settings(floor=size + 1))["stats"]
    assert stats["hidden"] is True
    assert stats["size"] is None
    assert stats["kpis"] == {}
    assert stats["trend"] == [[factories.AS_OF.isoformat(), None]]
    assert stats["privacy_floor"] == size + 1


def test_feedback_shows_the_five_newest_redacted_items_and_themes(engine, fx):
    for i in range(7):
        add_feedback(
            engine,
            segment="trial",
            author="U444",
            text=f"note {i}: pricing confusing, reach me at rep{i}@acme.io",
            sentiment="negative",
            origin="slack",
        )
    feedback = brief_context(engine, "trial", settings=settings())["feedback"]
    assert feedback["count"] == 7
    assert [item["text"][:6] for item in feedback["recent"]] == [
        f"note {i}" for i in (6, 5, 4, 3, 2)
    ]
    assert all("[email]" in item["text"] for item in feedback["recent"])
    assert ["pricing confusing", 7] in feedback["themes"]


@pytest.mark.parametrize("kind", ["persona", "brief", "talking-points", "discovery"])
def test_every_kind_renders_text_blocks_and_messages(engine, fx, kind):
    result = render_brief(engine, "enterprise", kind=kind, settings=settings())
    assert result["segment"] == "enterprise"
    assert result["kind"] == ("brief" if kind == "persona" else kind)
    assert "Enterprise accounts" in result["text"]
    assert result["blocks"] and result["messages"]
    assert sum(len(m["blocks"]) for m in result["messages"]) >= len(result["blocks"])


def test_unknown_kind_lists_the_kinds(engine, fx):
    with pytest.raises(SegopsError, match="brief, talking-points, discovery"):
        render_brief(engine, "enterprise", kind="summary", settings=settings())


def test_unknown_segment_suggests_the_closest_name(engine, fx):
    with pytest.raises(UnknownSegment, match=r"unknown segment 'enterprize' \(did you mean"):
        render_brief(engine, "enterprize", kind="persona", settings=settings())


def test_themes_are_phrases_with_a_representative_quote(engine, fx):
    notes = [
        "The new invoicing flow rejects cards. They want a call.",
        "Again the invoicing flow failed for a new admin.",
        "Dashboards broke after the new CRM sync.",
    ]
    for text in notes:
        add_feedback(engine, segment="trial", author="U444", text=text, origin="slack")
    feedback = brief_context(engine, "trial", settings=settings())["feedback"]
    phrases = [phrase for phrase, _ in feedback["themes"]]
    assert phrases[0] == "invoicing flow" and "new" not in phrases
    # the shortest sentence that says it, cut at its full stop
    assert feedback["quotes"]["invoicing flow"] == "The new invoicing flow rejects cards."


@pytest.mark.parametrize(
    ("cadence", "age", "stale"),
    [("weekly", 8, False), ("weekly", 9, True), ("daily", 2, False), ("monthly", 40, True)],
)
def test_numbers_older_than_the_cadence_allows_are_flagged(cadence, age, stale):
    today = date(2026, 12, 2)
    found = staleness(today - timedelta(days=age), cadence, today)
    assert (found is not None) == stale
    if stale:
        assert found == {"days": age, "cadence": cadence, "allowed": found["allowed"]}


def test_a_cron_cadence_allows_the_gap_between_two_runs():
    today = date(2026, 12, 2)
    assert staleness(today - timedelta(days=2), "0 6 * * *", today) is None
    assert staleness(today - timedelta(days=3), "0 6 * * *", today)["allowed"] == 2
    assert staleness(None, "weekly", today) is None

"""Field feedback: redaction, validation, listing, themes and the owners' digest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import func, select

from commands.errors import UnknownSegment
from commands.feedback import (
    MAX_TEXT,
    add_feedback,
    count_themes,
    digest,
    list_feedback,
    redact,
    themes,
)
from segments.errors import SegopsError
from store.db import session_scope
from store.models import Feedback
from tests import factories


@pytest.fixture
def fx(engine, tmp_path):
    return factories.applied(engine, tmp_path)


def feedback_rows(engine) -> int:
    with session_scope(engine) as session:
        return session.exec(select(func.count()).select_from(Feedback)).one()


def add(engine, text: str, segment: str = "trial", **kwargs):
    kwargs.setdefault("author", "U444")
    kwargs.setdefault("origin", "slack")
    return add_feedback(engine, segment=segment, text=text, **kwargs)


# --- redaction -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to jo.smith+crm@acme-corp.co.uk today", "write to [email] today"),
        ("call +44 20 7946 0958 after 3", "call [phone] after 3"),
        ("call +1 (555) 123-4567", "call [phone]"),
        ("mobile +33612345678.", "mobile [phone]."),
        ("office (555) 123-4567", "office [phone]"),
        ("desk 555-123-4567 or 555.123.4567", "desk [phone] or [phone]"),
        ("uk 020 7946 0958", "uk [phone]"),
        ("fr 06 12 34 56 78", "fr [phone]"),
        ("card 4111 1111 1111 1111 on file", "card [card] on file"),
        ("card 4111-1111-1111-1111", "card [card]"),
        ("amex 3782 822463 10005", "amex [card]"),
        ("4111111111111111 then 20 seats", "[card] then 20 seats"),
        ("pay to DE89 3704 0044 0532 0130 00 monthly", "pay to [iban] monthly"),
        ("iban GB82WEST12345698765432.", "iban [iban]."),
        ("ssn 123-45-6789 on the form", "ssn [ssn] on the form"),
        ("call 0044 20 7946 0958 now", "call [phone] now"),
        ("call 00442079460958", "call [phone]"),
        ("fr 0033 6 12 34 56 78", "fr [phone]"),
    ],
)
def test_redact_replaces_contact_details(text, expected):
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "20 seats, maybe 250 by Q3",
        "renewal 2026-01-31, signed in 2024",
        "budget 12 500 000 for 2025-2026",
        "order 1234567890123 (not a card: fails the Luhn check)",
        "teams of 100-1000 people, version 3.14.15",
        "on 01.02.2024 they churned",
        "ref DE00 1234 5678 9012 34 (not an IBAN: fails the check)",
        "ISO 9001 since 2024-05-06, 900-12-3456 is no SSN",
    ],
)
def test_redact_keeps_plain_numbers_years_and_dates(text):
    assert redact(text) == text


def test_feedback_is_stored_redacted(engine, fx):
    view = add(engine, "Champion is jo@acme.io, +44 20 7946 0958, wants SSO")
    assert view.text == "Champion is [email], [phone], wants SSO"
    assert list_feedback(engine)[0].text == view.text


# --- validation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"text": "   "}, "feedback text is empty"),
        ({"text": "x" * (MAX_TEXT + 1)}, "too long"),
        ({"text": "ok", "sentiment": "angry"}, "sentiment 'angry' must be one of"),
        ({"text": "ok", "importance": "urgent"}, "importance 'urgent' must be one of"),
        ({"text": "ok", "origin": "email"}, "origin 'email' must be one of"),
        ({"text": "ok", "author": " "}, "needs an author"),
    ],
)
def test_invalid_feedback_is_refused_and_nothing_written(engine, fx, kwargs, message):
    with pytest.raises(SegopsError, match=message):
        add(engine, **kwargs)
    assert feedback_rows(engine) == 0


def test_unknown_segment_suggests_the_closest_name_and_writes_nothing(engine, fx):
    with pytest.raises(UnknownSegment, match=r"unknown segment 'trail' \(did you mean 'trial'\?\)"):
        add(engine, "wants SSO", segment="trail")
    assert feedback_rows(engine) == 0


def test_text_of_exactly_the_limit_is_accepted(engine, fx):
    assert len(add(engine, "y" * MAX_TEXT).text) == MAX_TEXT


def test_sentiment_and_importance_are_normalised(engine, fx):
    view = add(engine, "ok", sentiment=" Positive ", importance="HIGH")
    assert (view.sentiment, view.importance) == ("positive", "high")


def test_view_carries_every_field(engine, fx):
    view = add(
        engine,
        "wants SSO",
        reference="deal-42",
        permalink="https://acme.slack.com/archives/C1/p1",
        importance="low",
    )
    data = view.to_dict()
    assert set(data) == {
        "id",
        "segment",
        "author",
        "text",
        "sentiment",
        "importance",
        "reference",
        "permalink",
        "origin",
        "created_at",
    }
    assert data["segment"] == "trial"
    assert data["reference"] == "deal-42"
    assert datetime.fromisoformat(data["created_at"]).tzinfo is not None


# --- listing and themes ----------------------------------------------------------------


def test_list_filters_by_segment_newest_first(engine, fx):
    add(engine, "first", segment="trial")
    add(engine, "other", segment="smb")
    add(engine, "second", segment="trial")
    assert [v.text for v in list_feedback(engine, segment="trial")] == ["second", "first"]
    assert len(list_feedback(engine, limit=2)) == 2


def test_count_themes_prefers_a_phrase_over_words_that_only_occur_in_it():
    texts = ["slow onboarding again", "complaints about slow onboarding", "pricing", "pricing!"]
    assert count_themes(texts) == [("slow onboarding", 2), ("pricing", 2)]


def test_count_themes_keeps_a_word_also_said_on_its_own():
    texts = ["slow onboarding", "slow onboarding", "onboarding was painful"]
    assert count_themes(texts) == [("onboarding", 3), ("slow onboarding", 2)]


def test_count_themes_counts_each_text_once_and_skips_one_offs():
    texts = ["pricing pricing pricing pricing", "sso please", "pricing again"]
    assert count_themes(texts) == [("pricing", 2)]


def test_themes_ignore_stopwords_and_redaction_placeholders(engine, fx):
    for text in ("the customer wants sso, mail [email]", "they want SSO and [phone]"):
        add(engine, text)
    with session_scope(engine) as session:
        assert themes(session, "trial") == [("sso", 2)]


def test_themes_only_look_at_the_window(engine, fx):
    add(engine, "pricing hurts")
    add(engine, "pricing again")
    with session_scope(engine) as session:
        old = datetime.now(UTC) - timedelta(days=40)
        for row in session.exec(select(Feedback)).all():
            row.created_at = old
            session.add(row)
    with session_scope(engine) as session:
        assert themes(session, "trial", days=30) == []
        assert themes(session, "trial", days=60) == [("pricing", 2)]


# --- digest ----------------------------------------------------------------------------


def test_digest_groups_by_owner_and_marks_items_sent(engine, fx):
    add(engine, "pricing is high", sentiment="negative", importance="high")
    add(engine, "pricing fine", sentiment="positive", segment="smb")
    since = datetime.now(UTC) - timedelta(days=1)
    digests = digest(engine, since=since)
    assert [d.owner for d in digests] == [factories.OWNER]
    ctx = digests[0].context
    assert ctx["total"] == 2
    by_name = {s["segment"]["name"]: s for s in ctx["segments"]}
    assert by_name["trial"]["sentiment"] == {"positive": 0, "neutral": 0, "negative": 1}
    assert by_name["trial"]["highlights"][0]["importance"] == "high"
    assert digest(engine, since=since) == []


def test_digest_renders_with_the_feedback_digest_template(engine, fx):
    from briefs.render import render_text

    add(engine, "pricing is high", sentiment="negative")
    ctx = digest(engine, since=datetime.now(UTC) - timedelta(days=1))[0].context
    assert "pricing is high" in render_text("feedback-digest", ctx)

"""Refresh summaries posted to Slack hide the numbers of segments under the privacy
floor (size, movement, leave reasons, KPI means, chart points), as briefs do."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlmodel import select

from commands.stats import members
from store.db import session_scope
from store.models import OutboxMessage
from tests import factories
from tests.factories import AS_OF

NEXT_DAY = AS_OF + timedelta(days=1)


def summary_of(engine, title: str) -> tuple[str, list]:
    """The text of the newest refresh summary about ``title``, and its files."""
    with session_scope(engine) as session:
        rows = session.exec(
            select(OutboxMessage)
            .where(OutboxMessage.kind.in_(["refresh_summary", "refresh_detail"]))  # type: ignore[attr-defined]
            .order_by(OutboxMessage.id.desc())  # type: ignore[union-attr]
        ).all()
        for row in rows:
            text = row.text + json.dumps(row.blocks)  # blocks with JSON escapes
            if title in text:
                return text, list(row.files)
    raise AssertionError(f"no summary about {title}")


def test_a_summary_of_a_segment_under_the_floor_hides_its_numbers(engine, tmp_path):
    fx = factories.refreshed(engine, tmp_path)
    fx.refresh(engine, NEXT_DAY, privacy_floor=10_000)
    text, files = summary_of(engine, "Trials")
    assert "hidden (under the privacy floor)" in text
    assert f"{len(members(engine, 'trial')):,} (" not in text
    assert json.dumps("— joined · — left")[1:-1] in text
    assert files == []  # no chart point of a segment under the floor


def test_the_same_summary_above_the_floor_shows_them(engine, tmp_path):
    fx = factories.refreshed(engine, tmp_path)
    fx.refresh(engine, NEXT_DAY, privacy_floor=1)
    text, _ = summary_of(engine, "Trials")
    assert "hidden (under the privacy floor)" not in text
    assert f"{len(members(engine, 'trial')):,}" in text

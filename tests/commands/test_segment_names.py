"""A segment name written with '_' where the catalog has '-' (or the other way round)
finds the segment when it is the only one spelled so."""

from __future__ import annotations

import pytest

from commands.catalog import show_segment
from commands.errors import UnknownSegment
from tests import factories


@pytest.fixture
def fx(engine, tmp_path):
    return factories.applied(engine, tmp_path)


def test_an_underscore_finds_the_hyphenated_segment(engine, fx):
    assert show_segment(engine, "engaged_trial", privacy_floor=0)["name"] == "engaged-trial"


def test_a_name_with_underscores_is_stored_and_found_as_written(engine, fx):
    fx.segment("smb")["name"] = "small_mid"
    fx.write_workspace()
    fx.apply(engine, reason="underscores")
    assert show_segment(engine, "small_mid", privacy_floor=0)["name"] == "small_mid"
    assert show_segment(engine, "small-mid", privacy_floor=0)["name"] == "small_mid"
    with pytest.raises(UnknownSegment, match="small-pro"):
        show_segment(engine, "small-pro", privacy_floor=0)

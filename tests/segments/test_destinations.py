"""Destination settings, the diff against acknowledgements, and batching."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from pyroaring import BitMap

from segments.destinations import DestinationConfig, batches, exclude, plan, share_changed


def test_the_diff_sends_what_is_missing_and_removes_what_is_extra():
    add, remove = plan(BitMap([1, 2, 3, 4]), BitMap([3, 4, 5]))
    assert (list(add), list(remove)) == ([1, 2], [5])
    add, remove = plan(BitMap([1, 2]), BitMap())
    assert (list(add), list(remove)) == ([1, 2], [])


def test_batches_respect_the_count_and_the_byte_limit_and_lose_nothing():
    add, remove = BitMap(range(0, 10)), BitMap(range(100, 105))
    pieces = list(batches(add, remove, size=4))
    assert [len(p) for p in pieces] == [4, 4, 4, 3]
    assert BitMap.union(*[p.add for p in pieces]) == add
    assert BitMap.union(*[p.remove for p in pieces]) == remove
    lengths = dict.fromkeys([*add, *remove], 10)  # each key costs 10 + 4 bytes
    sized = list(batches(add, remove, size=100, max_bytes=50, key_bytes=lengths))
    assert all(len(p) <= 3 for p in sized) and sum(len(p) for p in sized) == 15
    huge = list(batches(BitMap([1]), BitMap(), size=5, max_bytes=1, key_bytes={1: 99}))
    assert [len(p) for p in huge] == [1]  # one oversized id still goes, alone


def test_withheld_members_are_never_sent():
    assert list(exclude(BitMap([1, 2, 3]), BitMap([2]))) == [1, 3]
    assert list(exclude(BitMap([1, 2]), None)) == [1, 2]


def test_the_change_share_of_an_empty_destination_is_whole():
    assert share_changed(5, 0, 0) == 1.0
    assert share_changed(3, 3, 20) == pytest.approx(0.3)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"kind": "ftp", "segments": ["a"]}, "unknown destination kind 'ftp'"),
        ({"kind": "files", "path": "x"}, "name the segments or the tiers"),
        ({"kind": "sql_table", "segments": ["a"]}, "needs 'url' or 'url_secret'"),
        (
            {"kind": "sql_table", "url": "sqlite://", "table": "a;b", "segments": ["a"]},
            "identifier",
        ),
        (
            {
                "kind": "hubspot",
                "list_id": "1",
                "secret": "s",
                "segments": ["a"],
                "batch_size": 200_000,
            },
            "at most 100,000",
        ),
    ],
)
def test_bad_settings_are_refused_with_the_reason(settings, message):
    with pytest.raises(ValidationError, match=message):
        DestinationConfig.model_validate(settings)


def test_a_destination_receives_named_segments_or_whole_tiers():
    config = DestinationConfig.model_validate(
        {"kind": "files", "path": "x", "segments": ["trial"], "tiers": ["core"]}
    )
    assert config.receives("trial", "tactical") and config.receives("other", "core")
    assert not config.receives("other", "strategic")

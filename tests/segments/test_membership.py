from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyroaring import BitMap

from segments import rules
from segments.errors import SegopsError
from segments.membership import (
    FORMAT_ROARING,
    FORMAT_ROARING_ZLIB,
    assign_ids,
    decode,
    encode,
    leave_reasons,
    movers,
    to_bitmap,
    to_ids,
)
from segments.schema import Schema

# --------------------------------------------------------------------------- dense ids


def test_assign_ids_gives_known_keys_their_position() -> None:
    ids, new = assign_ids(pd.Index(["c", "a", "b"]), known=pd.Index(["a", "b", "c"]))

    assert ids.dtype == np.uint32
    assert ids.tolist() == [2, 0, 1]
    assert new.tolist() == []


def test_assign_ids_appends_new_keys_in_first_seen_order() -> None:
    ids, new = assign_ids(pd.Index(["x", "a", "w", "x"]), known=pd.Index(["a", "b"]))

    assert new.tolist() == ["x", "w"]
    assert ids.tolist() == [2, 0, 3, 2]


def test_assign_ids_is_stable_when_keys_come_back_in_another_order() -> None:
    first_keys = pd.Index([f"acct-{i}" for i in range(1000)])
    first_ids, new = assign_ids(first_keys, known=pd.Index([], dtype=str))
    known = pd.Index(new)
    shuffled = first_keys[np.random.default_rng(3).permutation(1000)]

    again, more = assign_ids(shuffled, known=known)

    assert more.tolist() == []
    assert dict(zip(shuffled, again, strict=True)) == dict(zip(first_keys, first_ids, strict=True))


def test_assign_ids_rejects_a_dictionary_with_a_repeated_key() -> None:
    with pytest.raises(SegopsError, match="twice"):
        assign_ids(pd.Index(["a"]), known=pd.Index(["a", "a"]))


def _reference_ids(keys: list[str], known: list[str]) -> tuple[list[int], list[str]]:
    ids = {key: i for i, key in enumerate(known)}
    new: list[str] = []
    for key in keys:
        if key not in ids:
            ids[key] = len(ids)
            new.append(key)
    return [ids[key] for key in keys], new


@given(
    known=st.lists(st.sampled_from("abcdefgh"), unique=True, max_size=6),
    extra=st.lists(st.sampled_from("abcdefghxyz"), max_size=8),
    shuffle=st.booleans(),
    as_text=st.booleans(),
)
def test_assign_ids_with_a_known_unique_dictionary_gives_the_same_ids(
    known, extra, shuffle, as_text
) -> None:
    # the refresh's usual case: the dictionary's keys first, in order, then others
    keys = list(known) + extra
    if shuffle:
        keys = keys[::-1]
    dtype = "str" if as_text else object
    ids, new = assign_ids(
        pd.Index(keys, dtype=dtype), known=pd.Index(known, dtype=dtype), known_unique=True
    )
    assert (ids.tolist(), new.tolist()) == _reference_ids(keys, known)
    assert ids.dtype == np.uint32


@given(
    known=st.lists(st.sampled_from("abcdefgh"), unique=True, max_size=6),
    keys=st.lists(st.sampled_from("abcdefghxyz"), unique=True, max_size=11),
    as_text=st.booleans(),
)
def test_assign_ids_of_distinct_keys_gives_the_same_ids_without_hashing_them(
    known, keys, as_text
) -> None:
    dtype = "str" if as_text else object
    ids, new = assign_ids(
        pd.Index(keys, dtype=dtype),
        known=pd.Index(known, dtype=dtype),
        known_unique=True,
        keys_unique=True,
    )
    assert (ids.tolist(), new.tolist()) == _reference_ids(keys, known)
    assert new.dtype == "str" and ids.dtype == np.uint32


@given(
    known=st.lists(st.sampled_from("abcdefgh"), unique=True, max_size=6),
    keys=st.lists(st.sampled_from("abcdefghxyz"), unique=True, max_size=11),
)
def test_assign_ids_can_number_new_keys_in_text_order(known, keys) -> None:
    ids, new = assign_ids(
        pd.Index(keys, dtype="str"),
        known=pd.Index(known, dtype="str"),
        known_unique=True,
        keys_unique=True,
        new_in_key_order=True,
    )
    fresh = [k for k in keys if k not in known]
    assert new.tolist() == sorted(fresh)
    dictionary = known + new.tolist()  # the store appends the new keys in id order
    assert [dictionary[i] for i in ids.tolist()] == keys


def test_assign_ids_on_the_same_rows_as_the_dictionary_gives_their_positions() -> None:
    known = pd.Index([f"acct-{i}" for i in range(5000)], dtype="str")
    ids, new = assign_ids(known.copy(), known=known, known_unique=True)
    assert ids.tolist() == list(range(5000)) and new.tolist() == []
    more = known.append(pd.Index(["acct-new", "acct-7", "acct-new"], dtype="str"))
    ids, new = assign_ids(more, known=known, known_unique=True)
    assert ids[-3:].tolist() == [5000, 7, 5000] and new.tolist() == ["acct-new"]


# --------------------------------------------------------------------------- bitmaps


def test_to_bitmap_takes_unsorted_ids_with_repeats() -> None:
    bm = to_bitmap(np.array([9, 3, 3, 70000, 0], dtype=np.uint32))

    assert list(bm) == [0, 3, 9, 70000]
    assert to_ids(bm).tolist() == [0, 3, 9, 70000]


@pytest.mark.parametrize(
    "members",
    [
        [],
        [0],
        [5, 100, 4_294_967_295],
        list(range(10_000, 90_000)),
        np.flatnonzero(np.random.default_rng(1).random(300_000) < 0.3).tolist(),
    ],
    ids=["empty", "one", "extremes", "run", "random"],
)
def test_encode_then_decode_gives_the_same_bitmap(members: list[int]) -> None:
    bm = BitMap(members)

    assert decode(encode(bm)) == bm


def test_encode_leads_with_a_format_byte() -> None:
    big = to_bitmap(np.arange(0, 200_000, 3, dtype=np.uint32))

    assert encode(big)[0] == FORMAT_ROARING_ZLIB
    assert encode(BitMap([7]))[0] in (FORMAT_ROARING, FORMAT_ROARING_ZLIB)


def test_decode_rejects_an_unknown_format_byte() -> None:
    data = bytes([0x7F]) + encode(BitMap([1, 2]))[1:]

    with pytest.raises(SegopsError, match="unknown format byte 0x7f"):
        decode(data)


def test_decode_rejects_damaged_bytes() -> None:
    data = encode(to_bitmap(np.arange(0, 100_000, 7, dtype=np.uint32)))

    with pytest.raises(SegopsError, match="damaged"):
        decode(data[:-10])


def test_random_membership_costs_at_most_one_byte_per_member() -> None:
    mask = np.random.default_rng(12).random(1_000_000) < 0.12
    bm = to_bitmap(np.flatnonzero(mask).astype(np.uint32))

    assert len(encode(bm)) / len(bm) <= 1.0


# --------------------------------------------------------------------------- movers


def test_movers_are_the_two_differences() -> None:
    joined, left = movers(BitMap([1, 2, 3, 4]), BitMap([3, 4, 5]))

    assert (list(joined), list(left)) == ([5], [1, 2])


def test_movers_without_a_previous_snapshot_count_everyone_as_joined() -> None:
    joined, left = movers(None, BitMap([3, 4]))

    assert (list(joined), list(left)) == ([3, 4], [])


# --------------------------------------------------------------------------- leave reasons


@pytest.fixture
def accounts() -> tuple[pd.DataFrame, Schema]:
    frame = pd.DataFrame(
        {
            "plan": ["pro", "free", "free", "pro", "team", "free"],
            "seats": [3, 2, 20, 15, 1, 30],
        },
        index=pd.Index(["a", "b", "c", "d", "e", "f"], name="id"),
    )
    return frame, Schema.from_frame(frame)


def test_leave_reasons_counts_every_failing_clause(accounts) -> None:
    frame, schema = accounts
    rule = rules.parse("plan in ('pro', 'team') and seats >= 10")
    # a fails seats, b fails both, c fails plan, e fails seats; d matches; f is no leaver
    leavers = np.array([True, True, True, True, True, False])

    reasons = leave_reasons(rule, frame, schema, {}, leavers)

    seats_text = rules.to_text(rules.parse("seats >= 10"))
    plan_text = rules.to_text(rules.parse("plan in ('pro', 'team')"))
    assert reasons == {seats_text: 3, plan_text: 2}
    assert list(reasons) == [seats_text, plan_text]


def test_leave_reasons_follow_an_or_into_the_branch_nearest_to_matching(accounts) -> None:
    frame, schema = accounts
    rule = rules.parse("plan = 'pro' or seats >= 10")
    # b (free, 2 seats) and e (team, 1 seat) fail both branches; a wrong plan counts a
    # full step, while a third or a half of the accounts lie between them and 10 seats
    leavers = np.array([False, True, False, False, True, False])

    reasons = leave_reasons(rule, frame, schema, {}, leavers)

    assert reasons == {rules.to_text(rules.parse("seats >= 10")): 2}


def test_leave_reasons_count_each_or_branch_separately() -> None:
    frame = pd.DataFrame(
        {"failed": [1, 0, 0, 1], "idle_days": [29, 5, 3, 28]},
        index=pd.Index(["a", "b", "c", "d"], name="id"),
    )
    schema = Schema.from_frame(frame)
    rule = rules.parse("failed >= 2 or idle_days >= 30")
    # a and d were idle for almost 30 days: they logged in again; b and c paid again
    reasons = leave_reasons(rule, frame, schema, {}, None)

    assert reasons == {
        rules.to_text(rules.parse("idle_days >= 30")): 2,
        rules.to_text(rules.parse("failed >= 2")): 2,
    }


def test_leave_reasons_go_down_nested_groups_and_referenced_segments(accounts) -> None:
    frame, schema = accounts
    paying = rules.parse("plan in ('pro', 'team') and seats >= 2")
    rule = rules.parse("in_segment('paying') and not (plan = 'team' and seats < 2)")
    paying_mask = np.array([True, False, False, True, False, False])
    leavers = np.array([False, True, False, False, True, False])

    reasons = leave_reasons(
        rule, frame, schema, {"paying": paying_mask}, leavers, rules={"paying": paying}
    )

    # b is on the free plan; e has one seat (and is the team account with under 2 seats)
    assert reasons == {
        rules.to_text(rules.parse("plan in ('pro', 'team')")): 1,
        rules.to_text(rules.parse("seats >= 2")): 1,
        rules.to_text(rules.parse("not (plan = 'team' and seats < 2)")): 1,
    }


def test_leave_reasons_see_referenced_segments_through_the_masks(accounts) -> None:
    frame, schema = accounts
    rule = rules.parse("in_segment('paying') and seats >= 10")
    paying = np.array([True, False, False, True, True, False])
    leavers = np.array([True, True, False, False, False, True])

    reasons = leave_reasons(rule, frame, schema, {"paying": paying}, leavers)

    paying_text = rules.to_text(rules.InSegment("paying"))
    seats_text = rules.to_text(rules.parse("seats >= 10"))
    assert reasons == {paying_text: 2, seats_text: 2}


def test_leave_reasons_of_nobody_is_empty(accounts) -> None:
    frame, schema = accounts
    rule = rules.parse("seats >= 10")

    assert leave_reasons(rule, frame, schema, {}, np.zeros(6, dtype=bool)) == {}


@given(
    everyone=st.lists(
        st.one_of(st.integers(-5, 5).map(float), st.floats(-1e3, 1e3), st.just(float("nan"))),
        min_size=1,
        max_size=60,
    ),
    picks=st.lists(st.integers(0, 59), min_size=1, max_size=10),
    low=st.integers(-6, 6),
    width=st.integers(0, 3),
)
def test_the_distance_to_a_threshold_is_the_share_of_rows_in_between(
    everyone, picks, low, width
) -> None:
    """The counting behind an OR's nearest branch gives what sorting every row gives."""
    from segments.membership import _Explain
    from segments.rules.tree import Condition

    frame = pd.DataFrame({"x": everyone})
    rows = frame.iloc[[p % len(everyone) for p in picks]].reset_index(drop=True)
    walk = _Explain(rows, Schema.from_frame(frame), {}, {}, frame)
    cond = Condition("x", "between", (float(low), float(low + width)))
    got = walk._distance(cond)
    ranked = np.sort(frame["x"].dropna().to_numpy())
    if not ranked.size:
        assert got is None
        return
    values = rows["x"].to_numpy()

    def share(a, b):
        left = np.searchsorted(ranked, np.minimum(a, b), side="left")
        return (np.searchsorted(ranked, np.maximum(a, b), side="left") - left) / ranked.size

    below = np.where(values < low, share(values, low), 0.0)
    above = np.where(values > low + width, share(low + width, values), 0.0)
    want = np.where(np.isnan(values), np.nan, np.maximum(below + above, 1 / ranked.size))
    np.testing.assert_array_equal(got, want)

"""Rules as pandas masks: two-valued null semantics, dates by day, every column layout."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from segments.evaluate import FrameColumns, evaluate_all
from segments.rules import parse, to_mask
from segments.schema import RuleError, Schema


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "plan": ["pro", "team", None, "free", "pro"],
            "seats": [10.0, 3.0, np.nan, 25.0, 10.0],
            "logins": pd.array([5, None, 0, 7, 1], dtype="Int64"),
            "active": pd.array([True, False, None, True, False], dtype="boolean"),
            "signup": pd.to_datetime(
                [
                    "2026-01-31 23:59",
                    "2026-01-31 00:00",
                    None,
                    "2026-02-01 00:00",
                    "2025-12-31 08:00",
                ]
            ),
            "tier": pd.Categorical(["a", "b", "a", None, "c"]),
        }
    )


@pytest.fixture
def schema(frame: pd.DataFrame) -> Schema:
    return Schema.from_frame(frame, aliases={"crm.plan": "plan"})


def rows(text: str, frame: pd.DataFrame, schema: Schema, **masks: np.ndarray) -> list[int]:
    mask = to_mask(parse(text), frame, schema, masks)
    assert mask.dtype == bool and mask.shape == (len(frame),)
    return np.flatnonzero(mask).tolist()


def test_schema_from_frame_infers_kinds(schema: Schema) -> None:
    assert dict(schema.columns) == {
        "plan": "string",
        "seats": "number",
        "logins": "number",
        "active": "bool",
        "signup": "date",
        "tier": "string",
    }


def test_schema_from_frame_reads_object_columns_by_value() -> None:
    frame = pd.DataFrame(
        {"b": pd.Series([True, None], dtype=object), "n": pd.Series([1, None], dtype=object)}
    )
    assert dict(Schema.from_frame(frame).columns) == {"b": "bool", "n": "number"}


def test_equality_on_text(frame: pd.DataFrame, schema: Schema) -> None:
    assert rows("plan = 'pro'", frame, schema) == [0, 4]


def test_not_equal_is_false_on_null(frame: pd.DataFrame, schema: Schema) -> None:
    assert rows("plan != 'pro'", frame, schema) == [1, 3]


def test_not_is_plain_negation_and_includes_nulls(frame: pd.DataFrame, schema: Schema) -> None:
    assert rows("not plan = 'pro'", frame, schema) == [1, 2, 3]


def test_in_and_not_in_skip_nulls(frame: pd.DataFrame, schema: Schema) -> None:
    assert rows("plan in ('pro', 'team')", frame, schema) == [0, 1, 4]
    assert rows("plan not in ('pro', 'team')", frame, schema) == [3]


def test_text_ordering_by_code_point(frame: pd.DataFrame, schema: Schema) -> None:
    assert rows("plan < 'pro'", frame, schema) == [3]
    assert rows("plan between 'f' and 'q'", frame, schema) == [0, 3, 4]


def test_number_comparisons_skip_nan(frame: pd.DataFrame, schema: Schema) -> None:
    assert rows("seats >= 10", frame, schema) == [0, 3, 4]
    assert rows("seats != 10", frame, schema) == [1, 3]
    assert rows("not seats >= 10", frame, schema) == [1, 2]


def test_nullable_integers_skip_nulls(frame: pd.DataFrame, schema: Schema) -> None:
    assert rows("logins < 6", frame, schema) == [0, 2, 4]
    assert rows("logins != 0", frame, schema) == [0, 3, 4]
    assert rows("logins not in (0, 1)", frame, schema) == [0, 3]


def test_nullable_booleans(frame: pd.DataFrame, schema: Schema) -> None:
    assert rows("active = false", frame, schema) == [1, 4]
    assert rows("active != true", frame, schema) == [1, 4]
    assert rows("active in (true, false)", frame, schema) == [0, 1, 3, 4]


def test_is_null_and_is_not_null(frame: pd.DataFrame, schema: Schema) -> None:
    assert rows("plan is null or seats is null or signup is null", frame, schema) == [2]
    assert rows("logins is not null and active is not null", frame, schema) == [0, 3, 4]
    assert rows("tier is null", frame, schema) == [3]


def test_date_equality_is_by_calendar_day(frame: pd.DataFrame, schema: Schema) -> None:
    assert rows("signup = '2026-01-31'", frame, schema) == [0, 1]


def test_date_ordering_is_by_calendar_day(frame: pd.DataFrame, schema: Schema) -> None:
    assert rows("signup <= '2026-01-31'", frame, schema) == [0, 1, 4]
    assert rows("signup > '2026-01-31'", frame, schema) == [3]
    assert rows("signup < '2026-01-31'", frame, schema) == [4]
    assert rows("signup >= '2026-02-01'", frame, schema) == [3]


def test_date_between_in_and_negatives_skip_nat(frame: pd.DataFrame, schema: Schema) -> None:
    assert rows("signup between '2026-01-01' and '2026-01-31'", frame, schema) == [0, 1]
    assert rows("signup in ('2025-12-31', '2026-02-01')", frame, schema) == [3, 4]
    assert rows("signup not in ('2025-12-31')", frame, schema) == [0, 1, 3]
    assert rows("signup != '2026-01-31'", frame, schema) == [3, 4]


def test_timezone_aware_dates_use_their_local_day() -> None:
    stamps = pd.to_datetime(["2026-01-31 23:30"]).tz_localize("America/New_York")
    frame = pd.DataFrame({"at": stamps})
    assert to_mask(parse("at = '2026-01-31'"), frame, Schema.from_frame(frame)).tolist() == [True]


def test_categorical_columns_compare_by_value(frame: pd.DataFrame, schema: Schema) -> None:
    assert rows("tier in ('a', 'c')", frame, schema) == [0, 2, 4]
    assert rows("tier != 'a'", frame, schema) == [1, 4]
    assert rows("tier > 'a'", frame, schema) == [1, 4]


def test_many_values_use_the_lookup_table(frame: pd.DataFrame, schema: Schema) -> None:
    values = ", ".join(f"'v{i}'" for i in range(10))
    assert rows(f"plan in ('pro', 'free', {values})", frame, schema) == [0, 3, 4]
    assert rows(f"seats in (3, 25, {', '.join(str(i) for i in range(50, 60))})", frame, schema) == [
        1,
        3,
    ]


def test_qualified_name_resolves_through_aliases(frame: pd.DataFrame, schema: Schema) -> None:
    assert rows("crm.plan = 'team'", frame, schema) == [1]


def test_and_or_not_combine(frame: pd.DataFrame, schema: Schema) -> None:
    assert rows("plan = 'pro' and seats > 5 or not active = true", frame, schema) == [
        0,
        1,
        2,
        4,
    ]


def test_in_segment_uses_the_given_mask_without_changing_it(
    frame: pd.DataFrame, schema: Schema
) -> None:
    trial = np.array([True, True, False, False, False])
    assert rows("not in_segment('trial')", frame, schema, trial=trial) == [2, 3, 4]
    assert trial.tolist() == [True, True, False, False, False]


def test_unknown_segment_mask(frame: pd.DataFrame, schema: Schema) -> None:
    with pytest.raises(RuleError, match="unknown segment 'trial'"):
        rows("in_segment('trial')", frame, schema)


def test_literal_of_the_wrong_kind_is_a_rule_error(frame: pd.DataFrame, schema: Schema) -> None:
    with pytest.raises(RuleError, match="column 'seats' holds numbers"):
        rows("seats = 'ten'", frame, schema)


def test_column_missing_from_the_frame(frame: pd.DataFrame) -> None:
    schema = Schema({"mrr": "number"})
    with pytest.raises(RuleError, match="column 'mrr' is not in the data"):
        to_mask(parse("mrr > 1"), frame, schema)


def test_text_columns_in_every_layout_agree() -> None:
    values = ["b", None, "a", "c", "a"]
    frame = pd.DataFrame(
        {
            "str": pd.Series(values, dtype="str"),
            "obj": pd.Series(values, dtype=object),
            "cat": pd.Series(values, dtype="category"),
            "arrow": pd.Series(values, dtype="string[pyarrow]"),
        }
    )
    schema = Schema.from_frame(frame)
    for column in frame.columns:
        assert rows(f"{column} >= 'b' or {column} is null", frame, schema) == [0, 1, 3]


def test_frame_columns_extracts_each_column_once(frame: pd.DataFrame, schema: Schema) -> None:
    cache = FrameColumns(frame, schema)
    first = cache.get("seats")[1]
    to_mask(parse("seats > 1"), frame, schema, cache=cache)
    assert cache.get("seats")[1] is first


# ---------------------------------------------------------------------------- evaluate_all


def test_evaluate_all_resolves_references_in_dependency_order(
    frame: pd.DataFrame, schema: Schema
) -> None:
    rules = {
        "big-pro": parse("in_segment('pro') and seats >= 10"),
        "pro": parse("plan = 'pro'"),
        "other": parse("not in_segment('big-pro')"),
    }
    masks = evaluate_all(rules, frame, schema)
    assert list(masks) == ["pro", "big-pro", "other"]
    assert np.flatnonzero(masks["big-pro"]).tolist() == [0, 4]
    assert np.flatnonzero(masks["other"]).tolist() == [1, 2, 3]


def test_evaluate_all_accepts_known_outside_masks(frame: pd.DataFrame, schema: Schema) -> None:
    known = {"vip": np.array([False, False, False, True, True])}
    masks = evaluate_all({"x": parse("in_segment('vip')")}, frame, schema, masks=known)
    assert np.flatnonzero(masks["x"]).tolist() == [3, 4]


def test_evaluate_all_rejects_cycles(frame: pd.DataFrame, schema: Schema) -> None:
    rules = {"a": parse("in_segment('b')"), "b": parse("in_segment('a')")}
    with pytest.raises(RuleError, match="reference cycle: a -> b -> a"):
        evaluate_all(rules, frame, schema)


def test_evaluate_all_names_the_failing_segment(frame: pd.DataFrame, schema: Schema) -> None:
    with pytest.raises(RuleError, match="^segment 'x': unknown column 'sets'"):
        evaluate_all({"x": parse("sets > 1")}, frame, schema)

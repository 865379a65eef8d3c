"""Rule limits: text length, nesting depth and condition count, in the text and JSON forms."""

from __future__ import annotations

import time
from typing import Any

import pytest

from segments.rules import (
    MAX_RULE_CONDITIONS,
    MAX_RULE_DEPTH,
    All,
    Condition,
    Not,
    Rule,
    RuleError,
    RuleLimitError,
    describe,
    parse,
    rule_from_dict,
    rule_to_dict,
    to_text,
)


def test_long_rule_text_is_refused_before_parsing() -> None:
    text = "a = 1 and " * 1_000_000 + "b = 1"
    started = time.perf_counter()
    with pytest.raises(RuleError, match=r"characters long; the limit is 20,000 characters"):
        parse(text)
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize(
    "text",
    [
        "not " * 1_000 + "a = 1",
        "(a = 1 or (b = 2 and " * 120 + "c = 3" + "))" * 120,
        "not (" * 300 + "a = 1" + ")" * 300,
    ],
)
def test_deeply_nested_rule_is_a_rule_error_not_a_recursion_error(text: str) -> None:
    with pytest.raises(RuleLimitError, match=r"nests more than 50 levels deep \(the limit\)"):
        parse(text)


def test_rule_at_the_depth_limit_parses_and_walks() -> None:
    rule = parse("not " * (MAX_RULE_DEPTH - 1) + "a = 1")
    assert rule.depth == MAX_RULE_DEPTH
    assert parse(to_text(rule)) == rule
    assert rule_from_dict(rule_to_dict(rule)) == rule
    assert describe(rule)


def test_groups_that_add_no_level_do_not_count() -> None:
    assert parse("(" * 1_000 + "a = 1" + ")" * 1_000).depth == 1
    assert parse("((a = 1 and b = 2) and c = 3) and d = 4").depth == 2


def test_too_many_conditions_are_refused() -> None:
    assert parse(" or ".join(["a = 1"] * MAX_RULE_CONDITIONS)).conditions == MAX_RULE_CONDITIONS
    with pytest.raises(RuleLimitError, match=r"more than 500 conditions \(the limit\)"):
        parse(" or ".join(["a = 1"] * (MAX_RULE_CONDITIONS + 1)))
    with pytest.raises(RuleLimitError, match="more than 500 conditions"):
        parse(" and ".join(f"in_segment('s{i}')" for i in range(MAX_RULE_CONDITIONS + 1)))


def test_json_form_checks_depth_on_the_way_down() -> None:
    data: dict[str, Any] = {"op": "is null", "column": "a"}
    for _ in range(5_000):
        data = {"op": "not", "item": data}
    with pytest.raises(RuleLimitError, match=r"^rule nests more than 50 levels deep"):
        rule_from_dict(data)


def test_json_form_checks_conditions_before_building_them() -> None:
    leaf = {"op": "is null", "column": "a"}
    with pytest.raises(RuleLimitError, match="more than 500 conditions"):
        rule_from_dict({"op": "or", "items": [leaf] * 1_000_000})
    nested = {"op": "and", "items": [{"op": "or", "items": [leaf] * 300}] * 2}
    with pytest.raises(RuleLimitError, match="more than 500 conditions"):
        rule_from_dict(nested)


def test_trees_built_by_hand_respect_the_limits() -> None:
    rule: Rule = Condition("a", "is null")
    for _ in range(MAX_RULE_DEPTH - 1):
        rule = Not(rule)
    with pytest.raises(RuleLimitError):
        Not(rule)
    with pytest.raises(RuleLimitError):
        All((rule, Condition("b", "is null")))


def test_the_same_text_is_parsed_once() -> None:
    text = "plan = 'memo' and seats > 7"
    assert parse(text) is parse(text)

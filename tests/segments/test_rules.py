"""The rule language: parsing, errors, text and JSON forms, checks and plain words."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segments.errors import SegopsError
from segments.rules import (
    All,
    AnyOf,
    Condition,
    InSegment,
    Not,
    all_of,
    columns,
    dependencies,
    describe,
    order_segments,
    parse,
    rule_from_dict,
    rule_to_dict,
    to_text,
    top_clauses,
    validate,
)
from segments.schema import RuleError, Schema

SCHEMA = Schema(
    columns={
        "plan": "string",
        "seats": "number",
        "active": "bool",
        "signup": "date",
        "crm.region": "string",
        "billing.region": "string",
    },
    aliases={
        "crm.plan": "plan",
        "crm.region": "crm.region",
        "billing.region": "billing.region",
    },
)


def error_of(text: str) -> RuleError:
    with pytest.raises(RuleError) as info:
        parse(text)
    return info.value


# ---------------------------------------------------------------------------- parsing


def test_parses_comparison_with_integer() -> None:
    assert parse("seats >= 10") == Condition("seats", ">=", 10)


@pytest.mark.parametrize("op", ["=", "!=", "<", "<=", ">", ">="])
def test_parses_every_comparison_operator(op: str) -> None:
    assert parse(f"seats {op} 3") == Condition("seats", op, 3)


def test_parses_negative_and_decimal_numbers() -> None:
    assert parse("mrr between -2.5 and 1e3") == Condition("mrr", "between", (-2.5, 1000.0))


def test_integer_literal_stays_int_and_decimal_stays_float() -> None:
    assert type(parse("x = 3").value) is int
    assert type(parse("x = 3.0").value) is float


def test_parses_single_and_double_quoted_strings_with_escapes() -> None:
    rule = parse("""plan in ('it\\'s', "say \\"hi\\"", 'a\\nb', '\\u00e9')""")
    assert rule == Condition("plan", "in", ("it's", 'say "hi"', "a\nb", "é"))


def test_parses_booleans_case_insensitively() -> None:
    assert parse("active = TRUE") == Condition("active", "=", True)
    assert parse("active != False") == Condition("active", "!=", False)


def test_parses_not_in_and_null_tests() -> None:
    rule = parse("plan not in ('free') and region is null and seats is not null")
    assert rule == All(
        (
            Condition("plan", "not in", ("free",)),
            Condition("region", "is null"),
            Condition("seats", "is not null"),
        )
    )


def test_keywords_are_case_insensitive() -> None:
    assert parse("A = 1 AND NOT B IS NULL Or c In (2)") == parse(
        "A = 1 and not B is null or c in (2)"
    )


def test_identifier_starting_with_keyword_is_a_column() -> None:
    assert parse("android = 1 and orders > 2") == All(
        (Condition("android", "=", 1), Condition("orders", ">", 2))
    )


def test_qualified_and_back_quoted_columns() -> None:
    rule = parse("crm.plan = 'pro' or `odd ``name``` = 1")
    assert rule == AnyOf((Condition("crm.plan", "=", "pro"), Condition("odd `name`", "=", 1)))


def test_in_segment_reference() -> None:
    assert parse('not in_segment("trial")') == Not(InSegment("trial"))


def test_not_binds_tighter_than_and_which_binds_tighter_than_or() -> None:
    rule = parse("not a = 1 and b = 2 or c = 3")
    assert rule == AnyOf(
        (All((Not(Condition("a", "=", 1)), Condition("b", "=", 2))), Condition("c", "=", 3))
    )


def test_parentheses_override_precedence() -> None:
    rule = parse("a = 1 and (b = 2 or c = 3)")
    assert rule == All(
        (Condition("a", "=", 1), AnyOf((Condition("b", "=", 2), Condition("c", "=", 3))))
    )


def test_nested_groups_of_the_same_kind_are_flattened() -> None:
    rule = parse("(a = 1 and (b = 2 and c = 3)) and d = 4")
    assert rule == All(tuple(Condition(c, "=", i) for i, c in enumerate("abcd", 1)))


def test_between_and_does_not_split_the_conjunction() -> None:
    rule = parse("x between 1 and 5 and y = 2")
    assert rule == All((Condition("x", "between", (1, 5)), Condition("y", "=", 2)))


def test_parse_records_the_position_of_each_condition() -> None:
    rule = parse("a = 1 and\n  bb = 2")
    assert isinstance(rule, All)
    assert rule.items[1].span == (12, 2, 3)


# ---------------------------------------------------------------------------- parse errors


def test_rule_error_is_a_segops_error() -> None:
    assert issubclass(RuleError, SegopsError)


def test_missing_value_names_the_operator_and_position() -> None:
    err = error_of("plan = 'pro' and seats >=")
    assert str(err) == "expected a value after '>=' at line 1, column 26"
    assert err.position == 25


def test_keyword_where_a_value_belongs() -> None:
    assert str(error_of("seats >= and x = 1")) == (
        "expected a value after '>=' at line 1, column 10"
    )


def test_bare_word_value_suggests_quoting() -> None:
    assert "found pro (quote text: 'pro')" in str(error_of("plan = pro"))


def test_unterminated_string() -> None:
    assert str(error_of("plan = 'pro")) == "unterminated string at line 1, column 8"


def test_unexpected_leading_keyword() -> None:
    assert str(error_of("and plan = 'x'")) == "unexpected 'and' at line 1, column 1"


def test_missing_condition_after_and() -> None:
    assert str(error_of("a = 1 and and b = 2")) == (
        "expected a condition after 'and' at line 1, column 11"
    )


def test_two_conditions_without_connective() -> None:
    assert str(error_of("a = 1 b = 2")) == (
        "unexpected 'b': join conditions with 'and' or 'or' at line 1, column 7"
    )


def test_missing_operator() -> None:
    assert str(error_of("plan 'pro'")).startswith("expected an operator")


def test_missing_closing_bracket() -> None:
    assert str(error_of("(a = 1 or b = 2")) == "missing ')' at line 1, column 16"


def test_unbalanced_closing_bracket() -> None:
    assert str(error_of("a = 1)")) == "unexpected ')' at line 1, column 6"


def test_bad_value_list() -> None:
    assert str(error_of("a in (1 2)")) == "expected ',' or ')' after '1' at line 1, column 9"


def test_is_without_null() -> None:
    assert str(error_of("a is 1")) == "expected 'null' after 'is' at line 1, column 6"


def test_unknown_character() -> None:
    assert str(error_of("a = 1 & b = 2")) == "unexpected character '&' at line 1, column 7"


def test_unknown_escape() -> None:
    assert str(error_of(r"a = 'x\q'")) == r"unknown escape '\q' in string at line 1, column 7"


def test_in_segment_needs_a_quoted_name() -> None:
    assert "in_segment needs a quoted segment name" in str(error_of("in_segment(trial)"))


def test_error_on_second_line_reports_line_and_column() -> None:
    err = error_of("a = 1 and\n  b >")
    assert (err.line, err.column) == (2, 6)


def test_empty_rule() -> None:
    assert str(error_of("  ")) == "empty rule"


# ---------------------------------------------------------------------------- text form


def test_to_text_is_canonical() -> None:
    rule = parse("""NOT (A = "x" OR b In (1, 2.5)) and `c d` Is Not Null""")
    assert to_text(rule) == "not (A = 'x' or b in (1, 2.5)) and `c d` is not null"


def test_to_text_brackets_or_inside_and_only() -> None:
    assert to_text(parse("a = 1 or b = 2 and (c = 3 or d = 4)")) == (
        "a = 1 or b = 2 and (c = 3 or d = 4)"
    )


def test_to_text_quotes_keyword_column_names() -> None:
    assert to_text(Condition("and", "=", 1)) == "`and` = 1"


def test_to_text_escapes_control_characters() -> None:
    assert to_text(Condition("a", "=", "x'\\\n\x01")) == r"a = 'x\'\\\n\u0001'"


# ---------------------------------------------------------------------------- random trees

_IDENT = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True)
_COLUMN = st.one_of(
    _IDENT, st.builds(lambda a, b: f"{a}.{b}", _IDENT, _IDENT), st.text(min_size=1, max_size=6)
)
_SCALAR = st.one_of(
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.booleans(),
)
_CONDITION = st.one_of(
    st.builds(Condition, _COLUMN, st.sampled_from(["=", "!=", "<", "<=", ">", ">="]), _SCALAR),
    st.builds(
        Condition,
        _COLUMN,
        st.sampled_from(["in", "not in"]),
        st.lists(_SCALAR, min_size=1, max_size=4).map(tuple),
    ),
    st.builds(Condition, _COLUMN, st.just("between"), st.tuples(_SCALAR, _SCALAR)),
    st.builds(Condition, _COLUMN, st.sampled_from(["is null", "is not null"])),
    st.builds(InSegment, st.text(min_size=1, max_size=8)),
)
RULES = st.recursive(
    _CONDITION,
    lambda inner: st.one_of(
        st.builds(Not, inner),
        st.lists(inner, min_size=2, max_size=4).map(lambda xs: All(tuple(xs))),
        st.lists(inner, min_size=2, max_size=4).map(lambda xs: AnyOf(tuple(xs))),
    ),
    max_leaves=12,
)


@settings(max_examples=100, deadline=None)
@given(RULES)
def test_parse_of_to_text_gives_the_same_rule(rule) -> None:
    back = parse(to_text(rule))
    assert back == rule
    assert repr(back) == repr(rule)  # also the literal types: 1 vs 1.0 vs true


@settings(max_examples=60, deadline=None)
@given(RULES)
def test_json_form_round_trips(rule) -> None:
    data = json.loads(json.dumps(rule_to_dict(rule)))
    assert repr(rule_from_dict(data)) == repr(rule)


# ---------------------------------------------------------------------------- JSON form


def test_json_form_matches_the_contract() -> None:
    rule = parse(
        "plan in ('pro', 'team') and seats >= 10 and not in_segment('trial') "
        "and x between 1 and 5 and y is null"
    )
    assert rule_to_dict(rule) == {
        "op": "and",
        "items": [
            {"op": "in", "column": "plan", "value": ["pro", "team"]},
            {"op": ">=", "column": "seats", "value": 10},
            {"op": "not", "item": {"op": "in_segment", "segment": "trial"}},
            {"op": "between", "column": "x", "value": [1, 5]},
            {"op": "is null", "column": "y"},
        ],
    }


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([1], "rule: expected an object with an 'op' key"),
        ({"column": "x"}, "rule: missing 'op'"),
        ({"op": "like", "column": "x", "value": 1}, "rule: unknown op 'like'"),
        ({"op": "and", "items": {"op": "is null"}}, "rule.items: expected a list of rules"),
        (
            {"op": "and", "items": [{"op": "is null", "column": "x"}]},
            "rule: 'and' needs at least two items",
        ),
        (
            {"op": "or", "items": [{"op": "is null", "column": "x"}, {"op": ">", "column": "y"}]},
            "rule.items[1]: op '>' needs 'value'",
        ),
        ({"op": "between", "column": "x", "value": [1]}, "rule: 'between' needs a list of two"),
        ({"op": "in", "column": "x", "value": []}, "rule: 'in' needs a list of at least one"),
        ({"op": "in", "column": "x", "value": "a"}, "rule: 'in' needs a list of values"),
        ({"op": "=", "column": "x", "value": None}, "rule: '=' needs one number"),
        ({"op": "=", "column": "x", "value": float("nan")}, "rule: '=' needs one number"),
        ({"op": "=", "column": "", "value": 1}, "rule: a condition needs a column name"),
        ({"op": "is null", "column": "x", "value": 1}, "rule: unexpected key 'value'"),
        ({"op": "not", "item": 3}, "rule.item: expected an object"),
        ({"op": "in_segment", "segment": ""}, "rule: in_segment needs a segment name"),
    ],
)
def test_from_dict_rejects_malformed_input(data: object, message: str) -> None:
    with pytest.raises(RuleError) as info:
        rule_from_dict(data)
    assert str(info.value).startswith(message)


def test_node_from_dict_checks_the_node_type() -> None:
    with pytest.raises(RuleError, match="expected a condition"):
        Condition.from_dict({"op": "in_segment", "segment": "x"})


# ---------------------------------------------------------------------------- helpers


def test_columns_and_dependencies() -> None:
    rule = parse("a = 1 and (crm.b = 2 or in_segment('s')) and not in_segment('t')")
    assert columns(rule) == {"a", "crm.b"}
    assert dependencies(rule) == {"s", "t"}


def test_top_clauses_of_a_conjunction_and_of_anything_else() -> None:
    rule = parse("a = 1 and (b = 2 or c = 3)")
    assert top_clauses(rule) == list(rule.items)
    assert top_clauses(parse("a = 1 or b = 2")) == [parse("a = 1 or b = 2")]


def test_all_of_returns_a_single_item_as_is() -> None:
    assert all_of(Condition("a", "=", 1)) == Condition("a", "=", 1)


# ---------------------------------------------------------------------------- schema and checks


def test_resolve_plain_qualified_and_frame_names() -> None:
    assert SCHEMA.resolve("plan") == "plan"
    assert SCHEMA.resolve("crm.plan") == "plan"
    assert SCHEMA.resolve("billing.region") == "billing.region"


def test_resolve_unknown_column_suggests_the_closest() -> None:
    with pytest.raises(RuleError, match=r"unknown column 'plna' \(did you mean 'plan'\?\)"):
        SCHEMA.resolve("plna")


def test_resolve_ambiguous_plain_name() -> None:
    with pytest.raises(
        RuleError, match="column 'region' is ambiguous: write billing.region or crm.region"
    ):
        SCHEMA.resolve("region")


def test_validate_accepts_a_good_rule() -> None:
    rule = parse(
        "plan in ('pro') and seats between 1 and 2.5 and active = true "
        "and signup >= '2026-01-31' and crm.region is null and in_segment('trial')"
    )
    assert validate(rule, SCHEMA, segments={"trial"}) == []


def problems(text: str) -> list[str]:
    return [str(e) for e in validate(parse(text), SCHEMA, segments={"trial", "power-users"})]


def test_validate_unknown_column_with_suggestion_and_position() -> None:
    assert problems("seats > 1 and plna = 'x'") == [
        "unknown column 'plna' (did you mean 'plan'?) at line 1, column 15"
    ]


def test_validate_ambiguous_column() -> None:
    assert problems("region = 'EU'") == [
        "column 'region' is ambiguous: write billing.region or crm.region at line 1, column 1"
    ]


def test_validate_string_literal_against_number_column() -> None:
    assert problems("seats >= '10'") == [
        "column 'seats' holds numbers: '10' is not a number at line 1, column 1"
    ]


def test_validate_number_literal_against_text_column() -> None:
    assert problems("plan in ('pro', 3)") == [
        "column 'plan' holds text: 3 is not a string (quote it: '3') at line 1, column 1"
    ]


def test_validate_bool_literal_against_number_column() -> None:
    assert problems("seats = true") == [
        "column 'seats' holds numbers: true is not a number at line 1, column 1"
    ]


def test_validate_non_date_string_against_date_column() -> None:
    assert problems("signup < '2026-02-30'") == [
        "column 'signup' holds dates: '2026-02-30' is not a date 'YYYY-MM-DD' at line 1, column 1"
    ]


def test_validate_ordering_on_bool_column() -> None:
    assert problems("active < true") == [
        "'<' does not apply to true/false column 'active' at line 1, column 1"
    ]


def test_validate_unknown_segment_with_suggestion() -> None:
    assert problems("in_segment('trail')") == [
        "unknown segment 'trail' (did you mean 'trial'?) at line 1, column 1"
    ]


def test_validate_reports_every_problem_in_text_order() -> None:
    assert len(problems("plna = 'x' or seats = 'y' or in_segment('nope')")) == 3


# ---------------------------------------------------------------------------- ordering


def test_order_segments_puts_references_first() -> None:
    order = order_segments({"c": {"b"}, "b": {"a"}, "a": set(), "d": set()})
    assert order == ["a", "b", "c", "d"]


def test_order_segments_names_the_cycle() -> None:
    with pytest.raises(RuleError, match=r"^reference cycle: a -> b -> c -> a$"):
        order_segments({"a": {"b"}, "b": {"c"}, "c": {"a"}})


def test_order_segments_self_reference_is_a_cycle() -> None:
    with pytest.raises(RuleError, match=r"reference cycle: x -> x"):
        order_segments({"x": {"x"}})


def test_order_segments_unknown_reference() -> None:
    with pytest.raises(RuleError, match="segment 'a' refers to unknown segment 'zz'"):
        order_segments({"a": {"zz"}})


def test_order_segments_handles_long_chains() -> None:
    chain = {f"s{i}": {f"s{i + 1}"} for i in range(3000)} | {"s3000": set()}
    assert order_segments(chain)[0] == "s3000"


# ---------------------------------------------------------------------------- plain words


def test_describe_the_spec_example() -> None:
    text = describe(parse("plan in ('pro', 'team') and seats >= 10"))
    assert text == "plan is one of pro, team and seats is at least 10"


def test_describe_dates_nulls_and_negations() -> None:
    rule = parse(
        "signup < '2026-01-01' and churned is null and not plan = 'free' "
        "and not in_segment('trial') and (a > 1 or b between 2 and 3)"
    )
    assert describe(rule) == (
        "signup is before 2026-01-01 and churned is missing and plan is not free "
        "and not in segment trial and (a is more than 1 or b is between 2 and 3)"
    )

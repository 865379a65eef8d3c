"""Numbers, clauses and findings in plain words, from the workspace's labels."""

from __future__ import annotations

import pytest

from briefs import wording
from segments import rules
from tests.briefs import samples

LABELS = samples.LABELS


@pytest.mark.parametrize(
    ("value", "spec", "expected"),
    [
        (413.0, {"format": "currency"}, "$413"),
        (12.5, {"format": "currency", "unit": "€"}, "€12.5"),
        (-1234.0, {"format": "currency"}, "−$1,234"),
        (12.5, {"format": "percent"}, "12.5 %"),
        (69.04, {"format": "days"}, "69 days"),
        (1.0, {"format": "days"}, "1 day"),
        (12.79, {"format": "count", "unit": "seats"}, "12.8 seats"),
        (0.5626, {"unit": "per account"}, "0.56 per account"),
        (12_340, {}, "12,340"),
        (None, {}, "—"),
    ],
)
def test_amounts_carry_their_unit(value, spec, expected) -> None:
    assert wording.amount(value, spec) == expected


def test_a_movement_says_from_to_and_by_how_much() -> None:
    spec = LABELS["failed_payments_60d"]
    assert wording.movement(0.5626, 0.2542, spec) == "0.25 → 0.56 per account, up 121 %"
    assert wording.verdict(0.5626, 0.2542, spec) == "worse"
    assert wording.verdict(413, 321, LABELS["mrr"]) == "better"
    assert wording.verdict(13, 10, {"label": "Seats"}) is None  # no good direction: no verdict
    assert wording.movement(41.0, 45.5, {"format": "percent"}) == "45.5 % → 41 %, down 4.5 pts"
    assert wording.members(647, 472) == "472 → 647 members, up 37 %"


def test_a_column_without_a_label_reads_as_words() -> None:
    assert wording.label("failed_payments_60d", {}) == "Failed payments 60d"
    assert wording.label("crm.plan", {"plan": {"label": "Plan"}}) == "Plan"


def test_clauses_use_labels_units_and_segment_titles() -> None:
    labels = LABELS | {"plan": {"label": "Plan"}}
    rule = rules.parse(
        "plan in ('pro', 'enterprise') and not in_segment('new-paying') "
        "and (failed_payments_60d >= 2 or days_since_login > 30) and mrr between 100 and 500"
    )
    assert wording.clause(rule, labels, {"new-paying": "New paying customers"}) == (
        "Plan is pro or enterprise and not in New paying customers and (failed payments in "
        "60 days at least 2 or days since last login above 30 days) and MRR between $100 "
        "and $500"
    )
    assert wording.clause_text("no longer in the data", labels) == "no longer in the data"


def test_each_finding_names_the_limit_it_crossed_and_keeps_statistics_apart() -> None:
    size, kpi, mix = samples.drift_alert()["alerts"]
    found = wording.finding(size, LABELS)
    assert found["what"] == "Members: 472 → 647 members, up 37 %"
    assert "20 %" in found["why"] and "50 %" in found["why"]
    found = wording.finding(kpi, LABELS)
    assert found["what"].startswith("Failed payments in 60 days: 0.25 → 0.56 per account")
    assert "effect size" not in found["what"] + found["why"]
    assert found["details"] == "effect size 0.39 (limit 0.2), z 5.9"
    found = wording.finding(mix, LABELS)
    assert found["what"] == "Region: EMEA went from 41 % to 62 % of members (+21 pts)"
    assert "PSI" not in found["what"] and found["details"].startswith("PSI 0.31")
    critical = {**kpi, "severity": "critical", "details": {**kpi["details"], "effect_size": 0.7}}
    assert "large change" in wording.finding(critical, LABELS)["why"]


def test_the_headline_leads_with_the_size_change_else_the_first_finding() -> None:
    size, kpi, _ = samples.drift_alert()["alerts"]
    assert wording.headline("Churn risk", [kpi, size], LABELS) == "Churn risk +37 % to 647 members"
    assert wording.headline("Churn risk", [kpi], LABELS) == (
        "Churn risk: Failed payments in 60 days: 0.25 → 0.56 per account, up 121 % (worse)"
    )
    bare = {"kind": "kpi", "severity": "warning", "message": "seats rose"}
    assert wording.headline("Churn risk", [bare]) == "Churn risk: seats rose"

"""Golden messages: each kind rendered from a realistic context (the demo's churn-risk
segment in September) matches its reviewed text in ``golden/`` and fits Slack's limits.

After a deliberate wording change, regenerate with ``UPDATE_GOLDEN=1 pytest
tests/briefs/test_golden.py`` and review the diff like any other change.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest

from briefs.render import Renderer
from tests.briefs import samples
from tests.briefs.limits import assert_message_ok

GOLDEN = Path(__file__).parent / "golden"
CHURN = {"name": "churn-risk", "title": "Churn risk", "owner": "U0AAACSM1"}
KPIS = [
    {"name": "mrr", "value": 413.0, "previous": 321.4, "delta_pct": 28.5},
    {"name": "seats", "value": 12.79, "previous": 10.49, "delta_pct": 21.9},
    {"name": "failed_payments_60d", "value": 0.5626, "previous": 0.2542, "delta_pct": 121.3},
]
RULE = (
    "plan in ('starter', 'pro', 'enterprise') and paid_invoices_total >= 1 and not "
    "in_segment('new-paying') and (failed_payments_60d >= 2 or days_since_login >= 30)"
)


def summary(**overrides: Any) -> dict[str, Any]:
    ctx = {
        "segment": CHURN,
        "as_of": "2026-09-30",
        "status": "published",
        "size": 647,
        "previous_size": 472,
        "joined": 390,
        "left": 215,
        "leave_reasons": [["failed_payments_60d >= 2", 120], ["days_since_login >= 30", 95]],
        "quality": {"verdict": "passed", "failures": []},
        "kpis": copy.deepcopy(KPIS),
        "alerts": [],
        "first": False,
        "drift_posted": True,
        "labels": copy.deepcopy(samples.LABELS),
    }
    ctx.update(overrides)
    return ctx


def brief() -> dict[str, Any]:
    segment = samples.segment() | {
        "name": "churn-risk",
        "title": "Churn risk",
        "tier": "core",
        "owner": "U0AAACSM1",
        "kpis": ["mrr", "seats", "failed_payments_60d"],
        "rule_text": RULE,
    }
    labels = copy.deepcopy(samples.LABELS) | {
        "plan": {"label": "Plan"},
        "paid_invoices_total": {"label": "Paid invoices", "format": "count"},
    }
    rows = [{k: r[k] for k in ("name", "value", "previous")} for r in KPIS]
    return samples.persona(
        segment=segment,
        as_of="2026-09-30",
        stats={
            "size": 647,
            "previous_size": 472,
            "change_pct": 37.1,
            "trend": [["2026-08-31", 472], ["2026-09-30", 647]],
            "kpis": {r["name"]: r["value"] for r in rows},
            "kpi_rows": rows,
            "moved": [rows[2], rows[0], rows[1]],
            "previous_as_of": "2026-08-31",
            "labels": labels,
            "hidden": False,
            "privacy_floor": 10,
        },
        feedback={
            "count": 3,
            "themes": [["invoicing flow", 2], ["dashboards", 2]],
            "quotes": {
                "invoicing flow": "The new invoicing flow keeps rejecting their cards.",
                "dashboards": "Dashboards broke after the CRM integration changed.",
            },
            "recent": [
                {
                    "author": "U0AAAREP1",
                    "text": "Dashboards broke after the CRM integration changed.",
                    "sentiment": "neutral",
                    "created_at": "2026-10-02T09:30:00+00:00",
                }
            ],
        },
        stale={"days": 19, "cadence": "weekly", "allowed": 8},
        titles={"new-paying": "New paying customers"},
    )


CASES: dict[str, tuple[str, Any]] = {
    "drift-alert": ("drift-alert", samples.drift_alert),
    "refresh-summary": ("refresh-summary", summary),
    "refresh-summary-first": (
        "refresh-summary",
        lambda: summary(
            size=472,
            previous_size=None,
            joined=472,
            left=0,
            leave_reasons=[],
            first=True,
            drift_posted=False,
            kpis=[{**k, "previous": None, "delta_pct": None} for k in KPIS],
        ),
    ),
    "refresh-group": (
        "refresh-group",
        lambda: {
            "channel": "#cs-alerts",
            "as_of": "2026-09-30",
            "summaries": [
                summary(),
                summary(
                    segment={
                        "name": "new-paying",
                        "title": "New paying customers",
                        "owner": "U0AAACSM1",
                    },
                    size=126,
                    previous_size=90,
                    joined=81,
                    left=45,
                    drift_posted=False,
                    alerts=[
                        {
                            "kind": "control_limit",
                            "severity": "info",
                            "message": "Size 126 is above its control limit 118",
                        }
                    ],
                ),
            ],
        },
    ),
    "blocked-group": ("blocked-group", samples.blocked_group),
    "brief": ("brief", brief),
    "talking-points": ("talking-points", brief),
    "discovery": ("discovery", brief),
}


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer()


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_message_kind_matches_its_golden_text_and_fits_slack(renderer, case) -> None:
    kind, build = CASES[case]
    ctx = build()
    text = renderer.render_text(kind, ctx)
    messages = renderer.render_messages(kind, ctx)
    rendered = f"{text}\n--- notification ---\n{messages[0]['text']}\n"
    golden = GOLDEN / f"{case}.txt"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.write_text(rendered, encoding="utf-8")
    assert rendered == golden.read_text(encoding="utf-8")
    assert len(messages) == 1  # each fits one Slack message
    for message in messages:
        assert_message_ok(message)


def test_the_drift_alert_notification_carries_the_headline_number(renderer) -> None:
    (message,) = renderer.render_messages("drift-alert", samples.drift_alert())
    assert message["text"] == "🟠 Churn risk +37 % to 647 members"
    actions = [b for b in message["blocks"] if b["type"] == "actions"]
    assert len(actions) == 1 and len(actions[0]["elements"]) == 3


def test_statistics_stay_in_the_details_line(renderer) -> None:
    blocks = renderer.render_blocks("drift-alert", samples.drift_alert())
    for block in blocks:
        texts = [block.get("text", {}).get("text", "")] + [
            e.get("text", "") for e in block.get("fields", []) + block.get("elements", [])
        ]
        jargon = any(word in t for t in texts for word in ("PSI", "effect size", "z "))
        assert not jargon or (block["type"] == "context" and texts[1].startswith("Details:"))

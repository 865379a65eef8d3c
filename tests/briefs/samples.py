"""Realistic contexts for every brief kind, as the commands layer builds them."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

TREND = [
    ["2026-03-31", 11_204],
    ["2026-04-30", 11_650],
    ["2026-05-31", 11_902],
    ["2026-06-30", 12_015],
    ["2026-07-31", 11_846],
    ["2026-08-31", 12_340],
]


def segment() -> dict[str, Any]:
    return {
        "name": "power-users",
        "title": "Power users",
        "tier": "strategic",
        "owner": "U0123ABCD",
        "approvers": ["U0456EFGH", "U0789IJKL"],
        "channel": "C0GROWTH1",
        "purpose": "Find the accounts that live in the product every day and grow them.",
        "rationale": (
            "Daily users on paid plans renew at 96% and expand twice as often; "
            "they are the first accounts we ask for references & case studies."
        ),
        "behavior_signals": [
            "20+ logins in the last 30 days",
            "Invites teammates within the first week",
            "Uses the API or an integration",
        ],
        "data_sources": ["crm", "product"],
        "known_limitations": ["Logins from SSO are counted once a day"],
        "kpis": ["seats", "mrr"],
        "rule_text": "plan in ('pro', 'enterprise') and logins_30d >= 20",
        "criteria": "plan is one of pro, enterprise and logins_30d is at least 20",
        "persona": {
            "summary": "Heavy daily users on paid plans who run their team's work in the app.",
            "goals": ["Ship work faster with fewer tools", "Get the whole team onboard"],
            "pains": ["Seat-based pricing punishes growth", "Admin work eats their day"],
            "objections": ["We already pay for a competitor", "Security review takes months"],
            "value_propositions": ["Unlimited viewers on every plan", "SOC 2 report on day one"],
            "talking_points": [
                "Lead with the team dashboard they already use daily",
                "Show the admin console: seat moves in two clicks",
            ],
            "discovery_questions": [
                "Who else on your team would use this every day?",
                "What does your weekly reporting look like today?",
            ],
        },
    }


def persona(**overrides: Any) -> dict[str, Any]:
    ctx = {
        "segment": segment(),
        "version": 3,
        "as_of": "2026-08-31",
        "stats": {
            "size": 12_340,
            "previous_size": 11_846,
            "change_pct": 4.2,
            "trend": copy.deepcopy(TREND),
            "kpis": {"seats": 14.62, "mrr": 1830.5},
            "hidden": False,
            "privacy_floor": 10,
        },
        "last_look": {
            "first": False,
            "on": "2026-08-02",
            "joined": 702,
            "left": 208,
            "hidden": False,
            "from_version": 2,
            "to_version": 3,
        },
        "feedback": {
            "count": 14,
            "themes": [["pricing", 5], ["sso", 3], ["onboarding", 2]],
            "recent": [
                {
                    "author": "U0999ZZZZ",
                    "text": "Asked for <annual> billing & a seat cap before renewal.",
                    "sentiment": "negative",
                    "created_at": "2026-08-30T14:03:00+00:00",
                },
                {
                    "author": "U0888YYYY",
                    "text": "Loves the new dashboard; wants it on mobile.",
                    "sentiment": "positive",
                    "created_at": "2026-08-28T09:15:00+00:00",
                },
            ],
        },
    }
    ctx.update(overrides)
    return ctx


def refresh_summary(**overrides: Any) -> dict[str, Any]:
    ctx = {
        "segment": {"name": "power-users", "title": "Power users", "owner": "U0123ABCD"},
        "as_of": "2026-08-31",
        "status": "published",
        "size": 12_340,
        "previous_size": 11_846,
        "joined": 702,
        "left": 208,
        "leave_reasons": [["logins_30d >= 20", 171], ["plan in ('pro', 'enterprise')", 37]],
        "quality": {"verdict": "passed", "failures": []},
        "kpis": [
            {"name": "seats", "value": 14.62, "previous": 14.1, "delta_pct": 3.7},
            {"name": "mrr", "value": 1830.5, "previous": 1902.0, "delta_pct": -3.8},
        ],
        "alerts": [
            {"kind": "size_change", "severity": "warning", "message": "size rose 4.2% (+494)"}
        ],
    }
    ctx.update(overrides)
    return ctx


def refresh_group() -> dict[str, Any]:
    blocked = refresh_summary(
        segment={"name": "at-risk", "title": "At-risk accounts", "owner": "U0456EFGH"},
        status="blocked",
        size=830,
        previous_size=830,
        joined=0,
        left=0,
        leave_reasons=[],
        quality={
            "verdict": "blocked",
            "failures": ["crm is 5 days old (max 3) as of 2026-08-31"],
        },
        kpis=[],
        alerts=[],
    )
    return {
        "channel": "C0GROWTH1",
        "as_of": "2026-08-31",
        "summaries": [refresh_summary(), blocked],
    }


LABELS = {
    "seats": {"label": "Seats", "format": "count", "unit": "seats"},
    "mrr": {"label": "MRR", "format": "currency", "good_direction": "up"},
    "logins_30d": {"label": "Logins in 30 days", "format": "count", "good_direction": "up"},
    "failed_payments_60d": {
        "label": "Failed payments in 60 days",
        "unit": "per account",
        "good_direction": "down",
    },
    "days_since_login": {"label": "Days since last login", "format": "days"},
    "region": {"label": "Region"},
}


def drift_alert(**overrides: Any) -> dict[str, Any]:
    ctx = {
        "segment": {"name": "churn-risk", "title": "Churn risk", "owner": "U0123ABCD"},
        "as_of": "2026-09-30",
        "severity": "warning",
        "alerts": [
            {
                "id": 41,
                "kind": "size_change",
                "severity": "warning",
                "message": "Size rose 37% (472 -> 647, +175)",
                "status": "open",
                "details": {
                    "size": 647,
                    "previous_size": 472,
                    "change": 175,
                    "relative_change": 0.3708,
                },
            },
            {
                "id": 42,
                "kind": "kpi",
                "severity": "warning",
                "message": (
                    "failed_payments_60d average rose 121% (0.254 -> 0.563, effect size 0.39)"
                ),
                "status": "open",
                "details": {
                    "column": "failed_payments_60d",
                    "previous_mean": 0.2542,
                    "mean": 0.5626,
                    "delta": 0.3084,
                    "relative_change": 1.213,
                    "effect_size": 0.39,
                    "z": 5.87,
                    "previous_count": 472,
                    "count": 647,
                },
            },
            {
                "id": 43,
                "kind": "composition",
                "severity": "warning",
                "message": "Composition of region shifted (PSI 0.31): EMEA 41% -> 62% (+21 pts)",
                "status": "open",
                "details": {
                    "column": "region",
                    "psi": 0.31,
                    "noise_limit": 0.021,
                    "bins": [
                        {"label": "EMEA", "previous": 0.41, "current": 0.62},
                        {"label": "NAMER", "previous": 0.44, "current": 0.28},
                        {"label": "(other)", "previous": 0.15, "current": 0.10},
                    ],
                },
            },
        ],
        "evidence": {
            "size": 647,
            "previous_size": 472,
            "trend": [["2026-08-31", 472], ["2026-09-30", 647]],
            "kpis": [
                {"name": "mrr", "value": 413.0, "previous": 321.4, "delta_pct": 28.5},
                {"name": "seats", "value": 12.79, "previous": 10.49, "delta_pct": 21.9},
                {
                    "name": "failed_payments_60d",
                    "value": 0.5626,
                    "previous": 0.2542,
                    "delta_pct": 121.3,
                },
                {"name": "days_since_login", "value": 69.04, "previous": 81.9, "delta_pct": -15.7},
            ],
            "shifts": [{"column": "region", "psi": 0.31, "summary": "EMEA 41% -> 62%"}],
            "leave_reasons": [
                ["failed_payments_60d >= 2", 120],
                ["days_since_login >= 30", 95],
            ],
        },
        "labels": copy.deepcopy(LABELS),
        "titles": {"new-paying": "New paying customers"},
    }
    ctx.update(overrides)
    return ctx


def blocked_alert() -> dict[str, Any]:
    return {
        "segment": {"name": "power-users", "title": "Power users", "owner": "U0123ABCD"},
        "as_of": "2026-08-31",
        "failures": [
            {
                "kind": "freshness",
                "source": "product",
                "column": None,
                "message": "product is 5 days old (max 2)",
            },
            {
                "kind": "null_rate",
                "source": "crm",
                "column": "plan",
                "message": "crm.plan is 18% null (median 1%, max rise 10 points)",
            },
        ],
        "current": {"as_of": "2026-08-24", "size": 12_015},
    }


def blocked_group() -> dict[str, Any]:
    def seg(name: str, title: str, size: int | None, via: str | None = None) -> dict[str, Any]:
        current = None if size is None else {"as_of": "2026-09-30", "size": size}
        return {"name": name, "title": title, "owner": "U0AAACSM1", "current": current, "via": via}

    return {
        "channel": "#cs-alerts",
        "as_of": "2026-10-31",
        "causes": [
            {
                "kind": "freshness",
                "source": "billing",
                "column": None,
                "message": "billing: newest row is 12 days old (limit 3)",
                "segments": [
                    seg("churn-risk", "Churn risk", 647),
                    seg("new-paying", "New paying customers", 126),
                    seg("win-back", "Win-back", None),
                    seg("churn-risk-enterprise", "Enterprise churn risk", 58, via="Churn risk"),
                ],
            },
            {
                "kind": "null_rate",
                "source": "crm",
                "column": "plan",
                "message": "crm.plan is 18% null (median 1%, max rise 10 points)",
                "segments": [
                    seg("churn-risk", "Churn risk", 647),
                    seg("churn-risk-enterprise", "Enterprise churn risk", 58, via="Churn risk"),
                ],
            },
        ],
    }


def feedback_digest() -> dict[str, Any]:
    return {
        "since": "2026-08-25",
        "until": "2026-08-31",
        "total": 17,
        "segments": [
            {
                "segment": {"name": "power-users", "title": "Power users", "owner": "U0123ABCD"},
                "count": 12,
                "sentiment": {"positive": 5, "neutral": 4, "negative": 3},
                "themes": [["pricing", 5], ["sso", 3]],
                "highlights": [
                    {
                        "author": "U0999ZZZZ",
                        "text": "Wants annual billing before renewal.",
                        "sentiment": "negative",
                        "importance": "high",
                        "created_at": "2026-08-30T14:03:00+00:00",
                        "permalink": "https://acme.slack.com/archives/C0GROWTH1/p1756562580",
                    }
                ],
            },
            {
                "segment": {"name": "trial", "title": "Trials", "owner": "U0456EFGH"},
                "count": 5,
                "sentiment": {"positive": 2, "neutral": 3, "negative": 0},
                "themes": [],
                "highlights": [],
            },
        ],
    }


def proposal(status: str = "pending", **overrides: Any) -> dict[str, Any]:
    decided = status in ("approved", "rejected")
    ctx = {
        "proposal": {
            "id": 17,
            "kind": "edit",
            "status": status,
            "proposer": "U0999ZZZZ",
            "reason": "Reps say 20 logins misses weekly-heavy teams; 15 matches the field.",
            "created_at": "2026-09-01T10:00:00+00:00",
            "decided_by": "U0123ABCD" if decided else None,
            "decided_at": "2026-09-01T14:03:00+00:00" if decided else None,
            "decision_via": "button" if decided else None,
            "changes": [
                {
                    "field": "rule",
                    "before": "plan in ('pro', 'enterprise') and logins_30d >= 20",
                    "after": "plan in ('pro', 'enterprise') and logins_30d >= 15",
                },
                {"field": "kpis", "before": ["seats"], "after": ["seats", "mrr"]},
            ],
            "impact": {"size_now": 12_340, "size_after": 14_102, "joined": 1_802, "left": 40},
        },
        "segment": {
            "name": "power-users",
            "title": "Power users",
            "tier": "strategic",
            "owner": "U0123ABCD",
            "approvers": ["U0456EFGH"],
        },
        "reactions": {"approve": "white_check_mark", "reject": "x"},
    }
    ctx.update(overrides)
    return ctx


def catalog() -> dict[str, Any]:
    return {
        "segments": [
            {
                "name": "power-users",
                "title": "Power users",
                "tier": "strategic",
                "status": "active",
                "owner": "U0123ABCD",
                "channel": "C0GROWTH1",
                "version": 3,
                "size": 12_340,
                "as_of": "2026-08-31",
                "open_alerts": 2,
            },
            {
                "name": "paying",
                "title": "Paying customers",
                "tier": "core",
                "status": "active",
                "owner": "U0456EFGH",
                "channel": "#revenue",
                "version": 7,
                "size": 40_118,
                "as_of": "2026-08-31",
                "open_alerts": 0,
            },
            {
                "name": "vip-pilot",
                "title": "VIP pilot",
                "tier": "tactical",
                "status": "active",
                "owner": "U0789IJKL",
                "channel": None,
                "version": 1,
                "size": None,
                "as_of": "2026-08-31",
                "open_alerts": 0,
            },
            {
                "name": "new-signups",
                "title": "New sign-ups",
                "tier": "tactical",
                "status": "active",
                "owner": "U0789IJKL",
                "channel": None,
                "version": 1,
                "size": None,
                "as_of": None,
                "open_alerts": 0,
            },
        ]
    }


def home() -> dict[str, Any]:
    return {
        "segments": [
            {
                "name": "power-users",
                "title": "Power users",
                "tier": "strategic",
                "status": "active",
                "version": 3,
                "size": 12_340,
                "as_of": "2026-08-31",
                "trend": [list(p) for p in TREND],
                "open_alerts": 2,
                "feedback": 5,
            }
        ],
        "more_segments": 0,
        "pending": [
            {
                "id": 42,
                "kind": "edit",
                "segment": "power-users",
                "proposer": "U0789IJKL",
                "reason": "Weekly actives are the better signal",
                "created_at": "2026-09-01T14:03:00+00:00",
                "changes": {"rule": "weekly_active_days >= 4"},
            }
        ],
        "more_pending": 0,
        "failing_syncs": [
            {
                "destination": "hubspot-power",
                "kind": "hubspot",
                "segment": "power-users",
                "owner": "U0123ABCD",
                "problem": "dead-lettered",
                "since": "2026-09-01T06:00:00+00:00",
                "error": "gave up after 8 attempts: HubSpot list '123': HubSpot answered 503",
                "command": "segops sync retry hubspot-power",
            }
        ],
        "more_failing_syncs": 0,
        "catalog": [],
        "feedback_days": 30,
        "privacy_floor": 10,
    }


def catalog_health() -> dict[str, Any]:
    attention = [
        {
            "name": "trial-surge",
            "problem": "never refreshed",
            "last_refresh": None,
            "cadence": "daily",
        },
        {
            "name": "churn-risk",
            "problem": "stale",
            "last_refresh": "2026-08-03T06:00:00+00:00",
            "cadence": "weekly",
        },
    ]
    return {**catalog(), "heading": "Weekly catalog health", "attention": attention}


def refresh_failed() -> dict[str, Any]:
    return {
        "segment": {"name": "churn-risk", "title": "Churn risk"},
        "failures": 3,
        "first_failed_at": "2026-09-01T06:00:00+00:00",
        "retry_at": "2026-09-01T07:10:00+00:00",
        "last_error": "crm: no such file data/crm.csv",
        "published": True,
    }


def refresh_recovered() -> dict[str, Any]:
    return {"segment": {"name": "churn-risk", "title": "Churn risk"}, "failures": 4}


def proposal_reminder() -> dict[str, Any]:
    return {**proposal(), "days": 3, "deciders": ["U0123ABCD", "U0456EFGH"]}


def sync_status() -> dict[str, Any]:
    return {
        "event": "held",
        "destination": {"name": "hubspot-churn", "label": "HubSpot list '123'", "kind": "hubspot"},
        "segment": {"name": "churn-risk", "title": "Churn risk"},
        "reason": "the change is 45% of what the destination holds (limit 30%)",
        "added": 120,
        "removed": 43,
        "share": 0.45,
        "command": "segops sync approve hubspot-churn churn-risk",
        "run_id": 7,
    }


def clinic_agenda() -> dict[str, Any]:
    return {
        "since": datetime(2026, 3, 2, 9, 30, tzinfo=UTC),
        "drift": [
            {
                "segment": "churn-risk",
                "alerts": [
                    {"id": 4, "kind": "size", "severity": "warning", "message": "Size rose 20%"}
                ],
            }
        ],
        "blocked": [{"segment": "trial", "result_id": 9}],
        "proposals": [
            {
                "id": 3,
                "segment": "power-users",
                "kind": "edit",
                "proposer": "U0AAAGRW2",
                "reason": "the beta programme needs teams of ten",
                "impact": {"size_now": 130, "size_after": 88, "joined": 0, "left": 42},
                "impact_note": None,
            }
        ],
        "experiments": [
            {
                "id": 1,
                "segment": "churn-risk",
                "kpi": "logins_30d",
                "started_on": "2026-01-31",
                "ends_on": "2026-03-02",
                "day": 30,
                "window_days": 30,
                "due": True,
            }
        ],
        "learnings": [
            {
                "id": 2,
                "segment": "churn-risk",
                "title": "rule: days_since_login >= 30 -> days_since_login >= 21",
                "effect": "churn -4.1 pts ± 1.8, validated",
                "verdict": "validated",
            }
        ],
        "feedback": [
            {
                "segment": "churn-risk",
                "count": 3,
                "themes": ["invoicing"],
                "quotes": ["The new invoicing flow keeps rejecting their cards"],
            }
        ],
        "stale": [
            {
                "segment": "dormant",
                "problem": "stale",
                "last_refresh": datetime(2026, 2, 1, 6, tzinfo=UTC),
            }
        ],
        "coverage": {
            "universe": 3000,
            "universe_label": "customers in the data",
            "as_of": "2026-03-01",
            "uncovered": 1762,
            "uncovered_share": 0.587,
            "pairs": [{"a": "dormant", "b": "churn-risk", "jaccard": 0.86}],
            "inside": [{"inner": "at-risk-enterprise", "outer": "churn-risk", "size": 54}],
        },
    }


def live_divergence() -> dict[str, Any]:
    return {
        "segment": {"name": "trial-activated", "title": "Activated trials", "owner": "U0AAAPRD1"},
        "as_of": "2026-12-02",
        "live": 1_204,
        "batch": 1_190,
        "differing": 18,
        "share": 1.51,
        "ids": ["A0042", "A0107", "<script>"],
    }


def live_notice() -> dict[str, Any]:
    return {
        "segment": {"name": "trial-activated", "title": "Activated trials", "owner": "U0AAAPRD1"},
        "since": "09:45 UTC",
        "every": 15,
        "joined": 14,
        "left": 3,
        "join_causes": [
            {"clause": "projects_created_7d >= 3", "count": 11},
            {"clause": "invited_teammates_7d >= 1", "count": 3},
        ],
        "leave_causes": [{"clause": "plan = 'trial'", "count": 3}],
        "joined_ids": ["A0042", "A0107", "<script>"],
        "left_ids": ["A0311", "A0312", "A0313"],
        "size": 1_204,
        "floor": 10,
    }


def all_kinds() -> dict[str, dict[str, Any]]:
    """One realistic context per kind."""
    return {
        "brief": persona(),
        "talking-points": persona(),
        "discovery": persona(),
        "refresh-summary": refresh_summary(),
        "refresh-group": refresh_group(),
        "drift-alert": drift_alert(),
        "blocked-alert": blocked_alert(),
        "blocked-group": blocked_group(),
        "feedback-digest": feedback_digest(),
        "proposal": proposal(),
        "catalog": catalog(),
        "catalog-health": catalog_health(),
        "refresh-failed": refresh_failed(),
        "refresh-recovered": refresh_recovered(),
        "proposal-reminder": proposal_reminder(),
        "home": home(),
        "sync-status": sync_status(),
        "sync-summary": {
            "destination": {"name": "hubspot-churn", "label": "HubSpot list '123'", "kind": "x"},
            "segment": {"name": "churn-risk", "title": "Churn risk"},
            "as_of": "2026-09-01",
            "added": 120,
            "removed": 43,
            "missing": 2,
        },
        "clinic-agenda": clinic_agenda(),
        "live-divergence": live_divergence(),
        "live-notice": live_notice(),
    }

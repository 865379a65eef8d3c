"""The quality gate: each check passing and failing, per-segment thresholds, blocking."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from textwrap import dedent
from typing import Any

import numpy as np
import pytest

from segments.quality import Check, QualityReport, run_gate
from segments.sources import load_dataset
from segments.workspace import QualityThresholds, SegmentDef, Workspace

AS_OF = date(2026, 1, 31)


def write(tmp_path: Path, name: str, text: str) -> None:
    (tmp_path / name).write_text(dedent(text), encoding="utf-8")


def crm_csv(tmp_path: Path, *, updated: str = "2026-01-30", rows: int = 10, plan_nulls: int = 0):
    lines = ["account_id,plan,seats,updated_at"]
    for i in range(rows):
        plan = "" if i < plan_nulls else "pro"
        lines.append(f"a{i},{plan},{i},{updated}")
    write(tmp_path, "crm.csv", "\n".join(lines) + "\n")


def workspace(tmp_path: Path, **crm: Any) -> Workspace:
    write(tmp_path, "events.csv", "account_id,ts,event,value\na0,2026-01-31T09:00:00,login,1\n")
    return Workspace.model_validate(
        {
            "base_dir": tmp_path,
            "sources": {
                "crm": {
                    "kind": "entity",
                    "path": "crm.csv",
                    "id": "account_id",
                    "timestamp": "updated_at",
                    "columns": {"plan": "string", "seats": "number"},
                    **crm,
                },
                "product": {
                    "kind": "events",
                    "path": "events.csv",
                    "id": "account_id",
                    "timestamp": "ts",
                    "event": "event",
                    "value": "value",
                },
            },
            "features": {"logins": {"source": "product", "event": "login", "agg": "count"}},
            "scores": {"engagement": {"weights": {"logins": 1.0}}},
        }
    )


def gate(ws: Workspace, history: list[dict[str, Any]] | None = None) -> QualityReport:
    return run_gate(load_dataset(ws, as_of=AS_OF), ws, history=history or [])


def only(report: QualityReport, kind: str, source: str | None = None, column: str | None = None):
    found = [
        c
        for c in report.checks
        if c.kind == kind
        and (source is None or c.source == source)
        and (column is None or c.column == column)
    ]
    assert len(found) == 1, found
    return found[0]


def segment(**quality: Any) -> SegmentDef:
    return SegmentDef(
        name="trial",
        title="Trial",
        owner="U111",
        rule="plan = 'pro'",
        quality=QualityThresholds(**quality) if quality else None,
    )


def profile(rows: int = 10, **columns: float) -> dict[str, Any]:
    return {
        "as_of": "2026-01-30",
        "sources": {"crm": {"rows": rows, "max_timestamp": "2026-01-29T00:00:00"}},
        "columns": columns,
    }


# --------------------------------------------------------------------------- freshness


def test_fresh_source_passes(tmp_path: Path) -> None:
    crm_csv(tmp_path, updated="2026-01-29T23:00:00")

    check = only(gate(workspace(tmp_path)), "freshness", "crm")

    assert check.passed and check.severity == "info"
    assert check.message == "crm: newest row is 2 days old (limit 3)"


def test_stale_source_fails(tmp_path: Path) -> None:
    crm_csv(tmp_path, updated="2026-01-22T08:00:00")

    check = only(gate(workspace(tmp_path)), "freshness", "crm")

    assert not check.passed and check.severity == "critical"
    assert check.message == "crm: newest row is 9 days old (limit 3)"
    assert (check.observed, check.threshold) == (9.0, 3.0)


def test_source_without_timestamps_fails_freshness(tmp_path: Path) -> None:
    crm_csv(tmp_path, updated="")

    check = only(gate(workspace(tmp_path)), "freshness", "crm")

    assert not check.passed
    assert check.message == "crm: no row has a timestamp in 'updated_at'"


def test_events_source_is_always_checked_for_freshness(tmp_path: Path) -> None:
    crm_csv(tmp_path)

    check = only(gate(workspace(tmp_path)), "freshness", "product")

    assert check.passed
    assert check.message == "product: newest row is 0 days old (limit 3)"


def test_entity_source_without_timestamp_column_has_no_freshness_check(tmp_path: Path) -> None:
    crm_csv(tmp_path)

    report = gate(workspace(tmp_path, timestamp=None))

    assert [c.source for c in report.checks if c.kind == "freshness"] == ["product"]


def test_source_threshold_overrides_the_workspace(tmp_path: Path) -> None:
    crm_csv(tmp_path, updated="2026-01-22")

    check = only(gate(workspace(tmp_path, quality={"max_age_days": 10})), "freshness", "crm")

    assert check.passed


# --------------------------------------------------------------------------- row count


def test_row_count_without_history_passes(tmp_path: Path) -> None:
    crm_csv(tmp_path)

    check = only(gate(workspace(tmp_path)), "row_count", "crm")

    assert check.passed
    assert check.message == "crm: 10 rows (no earlier run to compare)"


def test_small_row_change_passes(tmp_path: Path) -> None:
    crm_csv(tmp_path, rows=11)

    check = only(gate(workspace(tmp_path), [profile(rows=10)]), "row_count", "crm")

    assert check.passed
    assert check.message == "crm: 11 rows, +10% vs the last run (limit ±25%)"


def test_large_row_drop_fails(tmp_path: Path) -> None:
    crm_csv(tmp_path, rows=6)

    history = [profile(rows=20), profile(rows=10)]

    check = only(gate(workspace(tmp_path), history), "row_count", "crm")

    assert not check.passed
    assert check.message == "crm: rows fell 40% from 10 to 6 (limit ±25%)"
    assert check.baseline == 10


# --------------------------------------------------------------------------- null rate


def test_null_rate_without_enough_history_passes(tmp_path: Path) -> None:
    crm_csv(tmp_path, plan_nulls=5)

    check = only(gate(workspace(tmp_path), [profile(plan=0.0)]), "null_rate", column="plan")

    assert check.passed
    assert "history too short to compare: 1 of 2 runs" in check.message


def test_null_rate_jump_fails(tmp_path: Path) -> None:
    crm_csv(tmp_path, plan_nulls=4)
    history = [profile(plan=0.0), profile(plan=0.02), profile(plan=0.5)]

    check = only(gate(workspace(tmp_path), history), "null_rate", column="plan")

    assert not check.passed
    assert check.message == "crm.plan: nulls rose from 2% to 40% (limit +10 points)"
    assert check.source == "crm"


def test_always_sparse_column_passes(tmp_path: Path) -> None:
    crm_csv(tmp_path, plan_nulls=9)

    check = only(
        gate(workspace(tmp_path), [profile(plan=0.95), profile(plan=0.85)]),
        "null_rate",
        column="plan",
    )

    assert check.passed
    assert check.message == "crm.plan: 90% null (usually 90%)"


def test_feature_columns_are_checked_too(tmp_path: Path) -> None:
    crm_csv(tmp_path)

    report = gate(workspace(tmp_path))

    assert {c.column for c in report.checks if c.kind == "null_rate"} == {
        "plan",
        "seats",
        "logins",
        "engagement",
    }


# --------------------------------------------------------------------------- duplicates


def test_duplicate_ids_fail(tmp_path: Path) -> None:
    write(tmp_path, "crm.csv", "account_id,plan,updated_at\na,pro,2026-01-30\na,free,2026-01-30\n")

    check = only(gate(workspace(tmp_path)), "duplicates", "crm")

    assert not check.passed
    assert check.message == (
        "crm: 1 id appears more than once (limit 0); the first row of each was kept"
    )


def test_duplicate_ids_within_limit_pass(tmp_path: Path) -> None:
    write(tmp_path, "crm.csv", "account_id,plan,updated_at\na,pro,2026-01-30\na,free,2026-01-30\n")

    check = only(gate(workspace(tmp_path, quality={"max_duplicate_ids": 1})), "duplicates", "crm")

    assert check.passed


def test_unique_ids_pass(tmp_path: Path) -> None:
    crm_csv(tmp_path)

    check = only(gate(workspace(tmp_path)), "duplicates", "crm")

    assert check.passed and check.message == "crm: no duplicate ids"


# --------------------------------------------------------------------------- missing columns


def test_missing_declared_column_fails_but_evaluation_can_run(tmp_path: Path) -> None:
    write(tmp_path, "crm.csv", "account_id,plan,updated_at\na,pro,2026-01-30\n")
    ws = workspace(tmp_path)
    dataset = load_dataset(ws, as_of=AS_OF)

    check = only(run_gate(dataset, ws, history=[]), "missing_columns", "crm")

    assert not check.passed
    assert check.column == "seats"
    assert check.message == "crm: declared column 'seats' is missing from the data (read as null)"
    assert dataset.frame["seats"].isna().all()


def test_no_missing_columns_means_no_missing_column_checks(tmp_path: Path) -> None:
    crm_csv(tmp_path)

    assert not [c for c in gate(workspace(tmp_path)).checks if c.kind == "missing_columns"]


def test_missing_value_column_fails_for_the_source(tmp_path: Path) -> None:
    crm_csv(tmp_path)
    ws = workspace(tmp_path)
    write(tmp_path, "events.csv", "account_id,ts,event\na0,2026-01-31T09:00:00,login\n")

    check = only(gate(ws), "missing_columns", "product")

    assert check.column is None
    assert check.message == "product: value column 'value' is missing from the data"


# --------------------------------------------------------------------------- blocking


def test_failure_on_an_unused_column_does_not_block(tmp_path: Path) -> None:
    write(tmp_path, "crm.csv", "account_id,plan,updated_at\na,pro,2026-01-30\n")
    report = gate(workspace(tmp_path))

    assert report.blocking_for(segment(), {"plan"}, {"crm"}) == []
    assert [c.column for c in report.blocking_for(segment(), {"crm.seats"}, set())] == ["seats"]


def test_stale_source_blocks_segments_using_its_columns(tmp_path: Path) -> None:
    crm_csv(tmp_path, updated="2026-01-01")
    report = gate(workspace(tmp_path))

    blocking = report.blocking_for(segment(), {"plan"}, set())

    assert [(c.kind, c.source) for c in blocking] == [("freshness", "crm")]
    assert report.blocking_for(segment(), {"logins"}, set()) == []


def test_columns_used_through_a_score_bring_their_sources(tmp_path: Path) -> None:
    crm_csv(tmp_path)
    ws = workspace(tmp_path)
    write(tmp_path, "events.csv", "account_id,ts,event,value\na0,2026-01-10,login,1\n")
    report = gate(ws)

    blocking = report.blocking_for(segment(), {"engagement"}, set())

    assert [(c.kind, c.source) for c in blocking] == [("freshness", "product")]


def test_sources_used_block_even_without_columns(tmp_path: Path) -> None:
    crm_csv(tmp_path, updated="2026-01-01")
    report = gate(workspace(tmp_path))

    assert [c.kind for c in report.blocking_for(segment(), set(), {"crm"})] == ["freshness"]


def test_segment_thresholds_override_source_thresholds(tmp_path: Path) -> None:
    crm_csv(tmp_path, updated="2026-01-22")
    report = gate(workspace(tmp_path))

    assert report.blocking_for(segment(max_age_days=30), {"plan"}, {"crm"}) == []
    assert len(report.blocking_for(segment(), {"plan"}, {"crm"})) == 1
    assert not report.passed


def test_failures_for_without_segment_uses_workspace_thresholds(tmp_path: Path) -> None:
    crm_csv(tmp_path, updated="2026-01-22")
    report = gate(workspace(tmp_path))

    failures = report.failures_for({"crm"}, set())

    assert failures == report.failures
    assert all(isinstance(c, Check) and c.severity == "critical" for c in failures)


# --------------------------------------------------------------------------- profile


def test_profile_is_json_and_feeds_the_next_run(tmp_path: Path) -> None:
    crm_csv(tmp_path, rows=10, plan_nulls=1)
    ws = workspace(tmp_path)
    first = gate(ws)
    stored = json.loads(json.dumps(first.profile))
    crm_csv(tmp_path, rows=4)

    second = gate(ws, [stored])

    assert stored["sources"]["crm"] == {"rows": 10, "max_timestamp": "2026-01-30T00:00:00"}
    assert stored["columns"]["plan"] == pytest.approx(0.1)
    assert not only(second, "row_count", "crm").passed


def test_profile_leaves_out_missing_columns(tmp_path: Path) -> None:
    write(tmp_path, "crm.csv", "account_id,plan,updated_at\na,pro,2026-01-30\n")

    report = gate(workspace(tmp_path))

    assert "seats" not in report.profile["columns"]
    assert not [c for c in report.checks if c.kind == "null_rate" and c.column == "seats"]


def test_events_source_without_rows_fails_freshness(tmp_path: Path) -> None:
    crm_csv(tmp_path)
    ws = workspace(tmp_path)
    write(tmp_path, "events.csv", "account_id,ts,event,value\na0,2026-03-01,login,1\n")

    check = only(gate(ws), "freshness", "product")

    assert not check.passed
    assert check.message == "product: no rows, so freshness is unknown"


# --------------------------------------------------------------------------- ids


def ids_profile(**sources: tuple[int, int, int]) -> dict[str, Any]:
    """A past profile holding only id counts: source=(rows, blank, unresolved)."""
    return {
        "as_of": "2026-01-30",
        "sources": {},
        "columns": {},
        "ids": {
            name: {"rows": rows, "blank": blank, "unresolved": unresolved}
            for name, (rows, blank, unresolved) in sources.items()
        },
    }


def test_blank_entity_ids_fail_and_block_the_segments_that_read_the_source(
    tmp_path: Path,
) -> None:
    write(tmp_path, "crm.csv", "account_id,plan,seats,updated_at\n" + " ,pro,1,2026-01-30\n" * 10)

    report = gate(workspace(tmp_path))

    blank = only(report, "blank_ids", "crm")
    assert not blank.passed
    assert blank.message == "crm: 100% of account_id values are blank (limit 50%)"
    assert (blank.observed, blank.threshold) == (1.0, 0.5)
    events = only(report, "unresolved_ids", "product")
    assert not events.passed
    assert events.message == (
        "product: 100% of account_id ids do not match a known entity (limit 50%)"
    )
    assert [c.kind for c in report.blocking_for(segment(), {"plan"}, set())] == ["blank_ids"]


def test_a_few_blank_ids_pass_and_clean_ids_say_so(tmp_path: Path) -> None:
    crm_csv(tmp_path)
    clean = gate(workspace(tmp_path))
    write(tmp_path, "crm.csv", "account_id,plan,updated_at\na0,pro,2026-01-30\n,pro,2026-01-30\n")

    few = only(gate(workspace(tmp_path)), "blank_ids", "crm")

    assert only(clean, "blank_ids", "crm").message == "crm: no blank account_id values"
    assert only(clean, "unresolved_ids", "product").message == (
        "product: all account_id ids match a known entity"
    )
    assert few.passed and few.message == "crm: 50% of account_id values are blank"


def test_blank_ids_rising_against_their_history_fail(tmp_path: Path) -> None:
    lines = [f"{'' if i < 3 else f'a{i}'},pro,{i},2026-01-30" for i in range(10)]
    write(tmp_path, "crm.csv", "account_id,plan,seats,updated_at\n" + "\n".join(lines) + "\n")
    history = [ids_profile(crm=(10, 0, 0)), ids_profile(crm=(10, 1, 0))]

    check = only(gate(workspace(tmp_path), history), "blank_ids", "crm")

    assert not check.passed
    assert check.message == "crm: 30% of account_id values are blank (median 5%, limit +10 points)"
    assert check.baseline == pytest.approx(0.05)


def test_events_whose_id_format_changed_fail_and_block_their_features(tmp_path: Path) -> None:
    crm_csv(tmp_path)
    ws = workspace(tmp_path)
    events = [f"ACC-{i:04d},2026-01-30T10:00:00,login,1" for i in range(8)]  # was a0..a7
    write(tmp_path, "events.csv", "account_id,ts,event,value\n" + "\n".join(events) + "\n")

    report = gate(ws)

    check = only(report, "unresolved_ids", "product")
    assert not check.passed
    assert check.message == (
        "product: 100% of account_id ids do not match a known entity (limit 50%)"
    )
    assert [c.kind for c in report.blocking_for(segment(), {"logins"}, set())] == ["unresolved_ids"]
    assert [c.kind for c in report.blocking_for(segment(), {"engagement"}, set())] == [
        "unresolved_ids"
    ]
    assert report.blocking_for(segment(), {"plan"}, {"crm"}) == []


def mapped_workspace(tmp_path: Path, emails: list[str]) -> Workspace:
    """crm a0..a9, people user<i>@acme.io -> a<i>, product events keyed by e-mail."""
    crm_csv(tmp_path)
    people = [f"user{i}@acme.io,a{i}" for i in range(10)]
    write(tmp_path, "people.csv", "email,account_id\n" + "\n".join(people) + "\n")
    events = [f"{email},2026-01-30T10:00:00,login,1" for email in emails]
    write(tmp_path, "mapped.csv", "email,ts,event,value\n" + "\n".join(events) + "\n")
    data = workspace(tmp_path).model_dump(include={"sources", "features", "scores"})
    data["sources"]["product"].update(path="mapped.csv", id="email", map_via="people")
    data["sources"]["people"] = {
        "kind": "mapping",
        "path": "people.csv",
        "key": "email",
        "id": "account_id",
    }
    return Workspace.model_validate({**data, "base_dir": tmp_path})


def test_mapped_ids_that_no_longer_map_fail_against_their_median(tmp_path: Path) -> None:
    emails = [f"user{i}@acme.io" for i in range(6)] + [f"u{i}@sso.acme.io" for i in range(4)]
    ws = mapped_workspace(tmp_path, emails)
    history = [ids_profile(product=(100, 0, 1)), ids_profile(product=(100, 0, 1))]

    report = gate(ws, history)

    check = only(report, "unresolved_ids", "product")
    assert not check.passed
    assert check.message == (
        "product: 40% of email ids no longer map to a known account_id through people "
        "(median 1%, limit +10 points)"
    )
    assert only(report, "unresolved_ids", "people").passed
    assert [c.kind for c in report.blocking_for(segment(), {"logins"}, set())] == ["unresolved_ids"]


def test_mapped_ids_within_their_usual_share_pass(tmp_path: Path) -> None:
    emails = [f"user{i}@acme.io" for i in range(9)] + ["stranger@x.io"]
    ws = mapped_workspace(tmp_path, emails)
    history = [ids_profile(product=(10, 0, 1)), ids_profile(product=(10, 0, 1))]

    check = only(gate(ws, history), "unresolved_ids", "product")

    assert check.passed
    assert check.message == (
        "product: 10% of email ids do not map to a known account_id through people (median 10%)"
    )


def test_id_ceiling_is_a_source_threshold(tmp_path: Path) -> None:
    write(tmp_path, "crm.csv", "account_id,plan,updated_at\na0,pro,2026-01-30\n,pro,2026-01-30\n")

    strict = only(gate(workspace(tmp_path, quality={"max_id_share": 0.2})), "blank_ids", "crm")

    assert not strict.passed
    assert strict.message == "crm: 50% of account_id values are blank (limit 20%)"


def test_profile_keeps_id_and_value_counts_for_the_next_run(tmp_path: Path) -> None:
    crm_csv(tmp_path)
    ws = workspace(tmp_path)
    stored = json.loads(json.dumps(gate(ws).profile))
    lines = [f"{'' if i < 3 else f'a{i}'},pro,{i},2026-01-30" for i in range(10)]
    write(tmp_path, "crm.csv", "account_id,plan,seats,updated_at\n" + "\n".join(lines) + "\n")

    second = gate(ws, [stored, stored])

    assert stored["ids"]["crm"] == {"rows": 10, "blank": 0, "unresolved": 0}
    assert stored["ids"]["product"] == {"rows": 1, "blank": 0, "unresolved": 0}
    assert stored["values"]["crm"]["seats"] == {"present": 10, "invalid": 0}
    assert "median 0%" in only(second, "blank_ids", "crm").message
    assert not only(second, "blank_ids", "crm").passed


# --------------------------------------------------------------------------- values


def crm_with_seats(tmp_path: Path, seats: list[str]) -> None:
    lines = [f'a{i},pro,"{value}",2026-01-30' for i, value in enumerate(seats)]
    write(tmp_path, "crm.csv", "account_id,plan,seats,updated_at\n" + "\n".join(lines) + "\n")


def test_unparseable_numbers_fail_on_the_first_refresh(tmp_path: Path) -> None:
    crm_with_seats(tmp_path, ["1,2x", "ten", "ten", *map(str, range(7))])

    report = gate(workspace(tmp_path))

    check = only(report, "invalid_values", "crm", "seats")
    assert not check.passed
    assert check.message == (
        "crm.seats: 3 of 10 values are not numbers (e.g. '1,2x', 'ten'); limit 2%"
    )
    assert check.observed == pytest.approx(0.3)
    assert [c.kind for c in report.blocking_for(segment(), {"seats"}, set())] == ["invalid_values"]
    assert report.blocking_for(segment(), {"plan"}, {"crm"}) == []


def test_a_few_unparseable_numbers_pass_alone_but_fail_as_a_jump(tmp_path: Path) -> None:
    crm_with_seats(tmp_path, ["n.a.", *map(str, range(99))])
    ws = workspace(tmp_path)
    clean = {"crm": {"seats": {"present": 100, "invalid": 0}}}
    history = [{**profile(rows=100), "values": clean}] * 2

    first = only(gate(ws), "invalid_values", "crm", "seats")
    later = only(gate(ws, history), "invalid_values", "crm", "seats")

    assert first.passed
    assert first.message == "crm.seats: 1 of 100 values are not numbers (e.g. 'n.a.')"
    assert not later.passed
    assert later.message == (
        "crm.seats: 1 of 100 values are not numbers (e.g. 'n.a.'); usually 0%, limit +0.1 points"
    )


def test_infinite_numbers_are_invalid_and_read_as_null(tmp_path: Path) -> None:
    crm_with_seats(tmp_path, ["inf", "-inf", *map(str, range(8))])
    ws = workspace(tmp_path)
    dataset = load_dataset(ws, as_of=AS_OF)

    check = only(run_gate(dataset, ws, history=[]), "invalid_values", "crm", "seats")

    assert not check.passed
    assert check.message == (
        "crm.seats: 2 of 10 values are not numbers (e.g. 'inf', '-inf'); limit 2%"
    )
    assert dataset.frame["seats"].isna().sum() == 2
    assert np.isfinite(dataset.frame["seats"].dropna()).all()


def test_entirely_unparseable_column_fails_on_the_first_refresh(tmp_path: Path) -> None:
    crm_with_seats(tmp_path, ["ten seats", "a dozen", "ten seats"] * 3)

    report = gate(workspace(tmp_path))

    check = only(report, "invalid_values", "crm", "seats")
    assert not check.passed
    assert check.message == (
        "crm.seats: none of the 9 values is a number (e.g. 'ten seats', 'a dozen'); limit 2%"
    )
    assert only(report, "null_rate", column="seats").passed  # no history: only this catches it


def invalid_checks(report: QualityReport) -> dict[str, Check]:
    """The invalid_values checks by the column label their message starts with."""
    return {c.message.split(":")[0]: c for c in report.checks if c.kind == "invalid_values"}


def test_clean_columns_have_nothing_invalid(tmp_path: Path) -> None:
    crm_csv(tmp_path)
    report = gate(workspace(tmp_path))

    checks = invalid_checks(report)

    assert set(checks) == {"crm.seats", "crm.updated_at", "product.ts", "product.value"}
    assert all(c.passed for c in checks.values())
    assert checks["crm.seats"].message == "crm.seats: all 10 values are numbers"
    assert checks["product.ts"].message == "product.ts: all 1 values are dates"


def test_unparseable_timestamps_and_event_values_fail_for_their_source(tmp_path: Path) -> None:
    crm_csv(tmp_path)
    ws = workspace(tmp_path)
    write(
        tmp_path,
        "events.csv",
        "account_id,ts,event,value\n"
        "a0,2026-01-30T10:00:00,login,1\na1,soon,login,2\na2,2026-01-30,login,lots\n",
    )

    report = gate(ws)

    ts, value = invalid_checks(report)["product.ts"], invalid_checks(report)["product.value"]
    assert not ts.passed and ts.column is None
    assert ts.message == "product.ts: 1 of 3 values are not dates (e.g. 'soon'); limit 2%"
    assert not value.passed
    assert [c.kind for c in report.blocking_for(segment(), {"logins"}, set())] == [
        "invalid_values",
        "invalid_values",
    ]


# --------------------------------------------------------------------------- future timestamps


def test_a_future_timestamp_does_not_make_a_stale_source_fresh(tmp_path: Path) -> None:
    lines = [f"a{i},pro,{i},2026-01-22" for i in range(9)] + ["a9,pro,9,2099-01-01"]
    write(tmp_path, "crm.csv", "account_id,plan,seats,updated_at\n" + "\n".join(lines) + "\n")

    check = only(gate(workspace(tmp_path)), "freshness", "crm")

    assert not check.passed
    assert check.message == (
        "crm: newest row is 9 days old (limit 3); "
        "1 row dated more than 1 day after as_of was not counted"
    )


def test_future_tolerance_is_configurable(tmp_path: Path) -> None:
    lines = [f"a{i},pro,{i},2026-01-22" for i in range(9)] + ["a9,pro,9,2026-02-03T08:00:00"]
    write(tmp_path, "crm.csv", "account_id,plan,seats,updated_at\n" + "\n".join(lines) + "\n")
    report = gate(workspace(tmp_path, quality={"max_future_days": 5}))

    assert only(report, "freshness", "crm").passed
    assert report.blocking_for(segment(max_future_days=0), {"plan"}, set())[0].message == (
        "crm: newest row is 9 days old (limit 3); "
        "1 row dated more than 0 days after as_of was not counted"
    )


def test_an_export_newer_than_as_of_is_not_stale(tmp_path: Path) -> None:
    crm_csv(tmp_path, updated="2026-03-01")

    check = only(gate(workspace(tmp_path)), "freshness", "crm")

    assert check.passed
    assert check.message == (
        "crm: all 10 timestamps are more than 1 day after as_of, "
        "so the data was exported later and is not stale"
    )

"""Live evaluation: classification, event checks, state, and equivalence with the batch
refresh on random event sequences."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segments.live import EntityState, EventProblem, LiveModel, check_event, day_of
from segments.live.model import properties_workspace
from segments.rules.mask import evaluate_all
from segments.sources import load_dataset
from segments.workspace import SegmentDef, Workspace

AS_OF = date(2026, 3, 31)
CRM = "account_id,plan,seats\na0,pro,3\na1,free,1\na2,pro,12\na3,team,\na4,free,7\n"
FEATURES = {
    "logins_7d": {"source": "product", "event": "login", "agg": "count", "window_days": 7},
    "spend_30d": {"source": "product", "event": "purchase", "agg": "sum", "window_days": 30},
    "avg_value": {"source": "product", "agg": "avg"},
    "events_all": {"source": "product", "agg": "count"},
    "days_since_login": {"source": "product", "event": "login", "agg": "days_since"},
    "recent_views": {
        "source": "product",
        "event": ["view", "login"],
        "agg": "count",
        "window_days": 3,
        "fill": -1,
    },
    "top_value": {"source": "product", "agg": "max"},
}
RULES = {
    "active": "logins_7d >= 2",
    "spenders": "plan = 'pro' and spend_30d > 50",
    "fresh": "days_since_login <= 3",
    "mixed": "avg_value > 40 or events_all >= 5",
    "never": "days_since_login is null and seats >= 2",
    "browsing": "recent_views >= 1 and not in_segment('active')",
    "combined": "in_segment('fresh') and in_segment('spenders')",
}


def segment(name: str, rule: str, cadence: str = "live") -> dict[str, Any]:
    return {"name": name, "title": name, "owner": "U111", "cadence": cadence, "rule": rule}


def make_workspace(tmp_path: Path, segments: list[dict[str, Any]]) -> Workspace:
    (tmp_path / "crm.csv").write_text(CRM, encoding="utf-8")
    if not (tmp_path / "events.csv").exists():
        (tmp_path / "events.csv").write_text("account_id,ts,event,value\n", encoding="utf-8")
    return Workspace.model_validate(
        {
            "base_dir": tmp_path,
            "sources": {
                "crm": {
                    "kind": "entity",
                    "path": "crm.csv",
                    "id": "account_id",
                    "columns": {"plan": "string", "seats": "number"},
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
            "features": FEATURES,
            "scores": {"engagement": {"weights": {"logins_7d": 1.0}}},
            "segments": segments,
        }
    )


def definitions(ws: Workspace) -> dict[str, SegmentDef]:
    return {d.name: d for d in ws.segments}


def test_classification_names_what_keeps_a_segment_on_batch(tmp_path: Path) -> None:
    ws = make_workspace(
        tmp_path,
        [
            segment("active", "logins_7d >= 2 and plan = 'pro'"),
            segment("weekly", "logins_7d >= 2", cadence="weekly"),
            segment("scored", "engagement > 50"),
            segment("peaks", "top_value > 10"),
            segment("derived", "in_segment('weekly') and seats > 1"),
            segment("chained", "in_segment('active')"),
        ],
    )
    found = LiveModel(ws, definitions(ws)).classes
    assert found["active"].mode == "live"
    assert "logins_7d: count of login over 7 days, kept per day" in found["active"].reasons
    assert "plan: entity property" in found["active"].reasons
    assert found["weekly"].mode == "batch"
    assert "cadence weekly" in found["weekly"].reasons[0]
    assert found["scored"].mode == "batch"
    assert "normalised over the whole population" in found["scored"].reasons[0]
    assert found["peaks"].mode == "batch" and "'max'" in found["peaks"].reasons[0]
    assert found["derived"].mode == "batch"
    assert "weekly is a batch segment" in found["derived"].reasons[0]
    assert found["chained"].mode == "live"


def test_the_index_sends_an_event_only_to_the_segments_it_can_change(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, [segment(n, r) for n, r in RULES.items()])
    model = LiveModel(ws, definitions(ws))
    assert model.segments_for("product", "purchase") == {"spenders", "mixed", "combined"}
    assert model.segments_for("product", "login") == {
        "active",
        "fresh",
        "mixed",
        "never",
        "browsing",
        "combined",
    }
    assert model.segments_for("product", "view") == {"mixed", "browsing"}
    assert "never" in model.timed() and "mixed" not in model.timed()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"entity": "a0", "event": "login", "ts": "2026-03-01T00:00:00Z"}, "id: missing"),
        ({"id": "e1", "entity": "a0", "ts": "2026-03-01T00:00:00Z"}, "event: missing"),
        ({"id": 5, "entity": "a0", "event": "x", "ts": "2026-03-01T00:00:00Z"}, "id: "),
        ({"id": "e1", "entity": "a0", "event": "x", "ts": 1700000000}, "ts: must be an ISO"),
        ({"id": "e1", "entity": "a0", "event": "x", "ts": "yesterday"}, "ts: "),
        (
            {"id": "e1", "entity": "a0", "event": "x", "ts": "2026-03-01", "value": "3"},
            "value: ",
        ),
        (
            {"id": "e1", "entity": "a0", "event": "x", "ts": "2026-03-01", "value": True},
            "value: ",
        ),
        ({"id": "e1", "entity": "a0", "event": "x", "ts": "2026-03-01", "extra": 1}, "extra"),
        ({"id": "e1", "entity": " ", "event": "x", "ts": "2026-03-01"}, "entity: blank"),
        (
            {"id": "e1", "entity": "a0", "event": "x", "ts": "2026-03-01", "source": "crm"},
            "source: 'crm' is not an events source",
        ),
        (["not", "an", "object"], "must be a JSON object"),
    ],
)
def test_bad_events_are_refused_naming_the_field(raw: Any, message: str) -> None:
    with pytest.raises(EventProblem) as caught:
        check_event(raw, sources={"product"})
    assert message in str(caught.value)


def test_a_checked_event_is_utc_with_its_source_resolved() -> None:
    event = check_event(
        {"id": "e1", "entity": " a0 ", "event": "login", "ts": "2026-03-01T23:30:00-02:00"},
        sources={"product"},
    )
    assert event.entity == "a0" and event.source == "product"
    assert event.ts == datetime(2026, 3, 2, 1, 30, tzinfo=UTC)
    assert day_of(event.ts) == (date(2026, 3, 2) - date(1970, 1, 1)).days


def test_state_round_trips_and_folding_keeps_totals_without_a_window() -> None:
    state = EntityState()
    for day, value in ((100, 5.0), (100, None), (90, 2.0), (10, 1.0)):
        state.add("product", "login", day, value)
    again = EntityState.from_json(state.to_json())
    assert again.aggregate("product", None, None, 100) == (4.0, 3.0, 8.0, 100)
    from segments.live.state import Horizon

    assert again.fold({"product": Horizon(first_day=95, keep_old=True)})
    assert again.aggregate("product", None, None, 100) == (4.0, 3.0, 8.0, 100)
    assert again.aggregate("product", None, 95, 100) == (2.0, 1.0, 5.0, 100)
    assert again.aggregate("product", None, None, 50) == (2.0, 2.0, 3.0, 90)


events_strategy = st.lists(
    st.tuples(
        st.integers(0, 5),  # entity a0..a4, and a5 unknown to the batch
        st.sampled_from(["login", "purchase", "view"]),
        st.integers(0, 45),  # days before as_of
        st.integers(0, 23),
        st.one_of(st.none(), st.integers(0, 100)),
    ),
    max_size=60,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(events=events_strategy, order=st.randoms(use_true_random=False))
def test_live_membership_equals_the_batch_refresh_on_random_events(
    tmp_path_factory: pytest.TempPathFactory, events: list[tuple], order: Any
) -> None:
    tmp_path = tmp_path_factory.mktemp("live")
    lines = ["account_id,ts,event,value"]
    for entity, name, back, hour, value in events:
        ts = datetime.combine(AS_OF - timedelta(days=back), datetime.min.time()) + timedelta(
            hours=hour
        )
        lines.append(f"a{entity},{ts.isoformat()},{name},{'' if value is None else value}")
    (tmp_path / "events.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    ws = make_workspace(tmp_path, [segment(n, r) for n, r in RULES.items()])
    batch = load_dataset(ws, as_of=AS_OF)
    expected = evaluate_all({d.name: d.tree() for d in ws.segments}, batch.frame, batch.schema)

    model = LiveModel(ws, definitions(ws), lateness_days=1)
    today = (AS_OF - date(1970, 1, 1)).days
    props = load_dataset(properties_workspace(ws), as_of=AS_OF).frame
    states = {key: EntityState() for key in props.index}
    shuffled = list(events)
    order.shuffle(shuffled)  # out of order: buckets are commutative
    for entity, name, back, _hour, value in shuffled:
        key = f"a{entity}"
        if key in states:
            states[key].add("product", name, today - back, None if value is None else value)
            states[key].fold(model.horizons(today))
    ordered = [states[key] for key in batch.frame.index]
    _frame, masks = model.evaluate(props.loc[batch.frame.index], ordered, today)
    for name in RULES:
        assert np.array_equal(masks[name], expected[name]), name
    for fname in model.features:
        live_values = _frame[fname].to_numpy()
        batch_values = batch.frame[fname].to_numpy()
        assert np.allclose(live_values, batch_values, equal_nan=True), fname
    assert not math.isnan(_frame["recent_views"].min())  # fill -1 applies


def test_transitions_name_the_clause(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, [segment("spenders", "plan = 'pro' and spend_30d > 50")])
    model = LiveModel(ws, definitions(ws))
    props = load_dataset(properties_workspace(ws), as_of=AS_OF).frame
    today = (AS_OF - date(1970, 1, 1)).days
    rich = EntityState()
    rich.add("product", "purchase", today, 80.0)
    states = [rich, None, None, None, None]
    frame, masks = model.evaluate(props, states, today)
    before = {"spenders": np.array([False, False, True, False, False])}
    found = model.transitions(frame, masks, before, touched=[{"spend_30d"}] + [set()] * 4)
    assert [(t.row, t.kind, t.clause) for t in found] == [
        (2, "leave", "spend_30d > 50"),
        (0, "join", "spend_30d > 50"),
    ]

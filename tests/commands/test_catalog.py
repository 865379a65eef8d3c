"""Applying a workspace: versions, no-ops, guardrails, export round trip."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from sqlmodel import func, select

from commands.catalog import apply_workspace, export_workspace, history, list_segments
from commands.errors import Refused, UnknownSegment
from segments.workspace import WorkspaceError, load_workspace
from store.db import session_scope
from store.models import Segment, SegmentVersion

BASE = {
    "sources": {
        "crm": {
            "kind": "entity",
            "path": "crm.csv",
            "id": "account_id",
            "columns": {"plan": "string", "seats": "number", "region": "string"},
        },
        "billing": {
            "kind": "entity",
            "path": "billing.csv",
            "id": "account_id",
            "columns": {"plan": "string", "mrr": "number"},
        },
    },
    "segments": [
        {
            "name": "paying",
            "title": "Paying accounts",
            "tier": "core",
            "owner": "U111",
            "approvers": ["U222"],
            "rule": "crm.plan in ('pro', 'team') and mrr > 0",
        },
        {
            "name": "big-paying",
            "title": "Big paying accounts",
            "owner": "U111",
            "rule": 'in_segment("paying") and seats >= 50',
        },
    ],
}


def write(tmp_path: Path, data: dict, name: str = "workspace.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def versions(engine) -> int:
    with session_scope(engine) as session:
        return session.exec(select(func.count()).select_from(SegmentVersion)).one()


def test_apply_creates_one_version_per_segment(engine, tmp_path):
    ws = load_workspace(write(tmp_path, BASE))
    result = apply_workspace(engine, ws, reason="first", author="U111")
    assert sorted(result.created) == ["big-paying", "paying"]
    assert versions(engine) == 2
    assert [s.name for s in list_segments(engine, privacy_floor=10)] == ["big-paying", "paying"]


def test_applying_an_unchanged_file_writes_nothing(engine, tmp_path):
    ws = load_workspace(write(tmp_path, BASE))
    apply_workspace(engine, ws, reason=None, author="U111")
    again = apply_workspace(engine, load_workspace(write(tmp_path, BASE)), reason=None, author="x")
    assert not again.changed
    assert sorted(again.unchanged) == ["big-paying", "paying"]
    assert versions(engine) == 2


def test_whitespace_only_rule_edit_is_not_a_change(engine, tmp_path):
    apply_workspace(engine, load_workspace(write(tmp_path, BASE)), reason=None, author="U1")
    data = yaml.safe_load(yaml.safe_dump(BASE))
    data["segments"][1]["rule"] = 'in_segment( "paying" )   AND seats>=50'
    result = apply_workspace(
        engine, load_workspace(write(tmp_path, data)), reason=None, author="U1"
    )
    assert not result.changed


def test_changed_segment_gets_new_version_with_reason(engine, tmp_path):
    apply_workspace(engine, load_workspace(write(tmp_path, BASE)), reason=None, author="U1")
    data = yaml.safe_load(yaml.safe_dump(BASE))
    data["segments"][1]["rule"] = 'in_segment("paying") and seats >= 100'
    result = apply_workspace(
        engine, load_workspace(write(tmp_path, data)), reason="raise the bar", author="U2"
    )
    assert result.updated == ["big-paying"]
    top = history(engine, "big-paying")[0]
    assert (top.version, top.change_kind, top.reason, top.author) == (
        2,
        "edit",
        "raise the bar",
        "U2",
    )
    assert top.rule == "in_segment('paying') and seats >= 100"


def test_removing_a_core_segment_without_reason_is_refused(engine, tmp_path):
    apply_workspace(engine, load_workspace(write(tmp_path, BASE)), reason=None, author="U1")
    data = yaml.safe_load(yaml.safe_dump(BASE))
    data["segments"] = [
        {"name": "solo", "title": "Solo", "owner": "U1", "rule": "seats < 2"},
    ]
    with pytest.raises(Refused, match="'paying' is core"):
        apply_workspace(engine, load_workspace(write(tmp_path, data)), reason=None, author="U1")
    with session_scope(engine) as session:
        names = session.exec(select(Segment.name)).all()
    assert sorted(names) == ["big-paying", "paying"]
    assert versions(engine) == 2


def test_removing_segments_with_reason_archives_them(engine, tmp_path):
    apply_workspace(engine, load_workspace(write(tmp_path, BASE)), reason=None, author="U1")
    data = {**BASE, "segments": []}
    result = apply_workspace(
        engine, load_workspace(write(tmp_path, data)), reason="sunset", author="U1"
    )
    assert sorted(result.archived) == ["big-paying", "paying"]
    assert {s.status for s in list_segments(engine, privacy_floor=10)} == {"archived"}
    assert history(engine, "paying")[0].change_kind == "archive"


def test_archiving_core_by_status_needs_reason(engine, tmp_path):
    apply_workspace(engine, load_workspace(write(tmp_path, BASE)), reason=None, author="U1")
    data = yaml.safe_load(yaml.safe_dump(BASE))
    data["segments"][0]["status"] = "archived"
    data["segments"].pop(1)
    with pytest.raises(Refused):
        apply_workspace(engine, load_workspace(write(tmp_path, data)), reason="  ", author="U1")
    assert versions(engine) == 2


def test_export_round_trips_through_apply(engine, tmp_path):
    ws = load_workspace(write(tmp_path, BASE))
    apply_workspace(engine, ws, reason=None, author="U1")
    exported = write(tmp_path, yaml.safe_load(export_workspace(engine, ws)), "exported.yaml")
    back = load_workspace(exported)
    assert [s.canonical() for s in back.segments] == [s.canonical() for s in ws.segments]
    assert back.sources == ws.sources
    assert not apply_workspace(engine, back, reason=None, author="U1").changed


def test_unknown_segment_suggests_close_names(engine, tmp_path):
    apply_workspace(engine, load_workspace(write(tmp_path, BASE)), reason=None, author="U1")
    with pytest.raises(UnknownSegment, match="did you mean 'paying'"):
        history(engine, "payng")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["segments"][0].update(rule="plan in ('pro'"), "segment 'paying': rule:"),
        (lambda d: d["segments"][0].update(rule="seets > 3"), "seets"),
        (lambda d: d["segments"][0].update(rule="plan = 'pro'"), "ambiguous"),
        (
            lambda d: d["segments"][0].update(rule='in_segment("big-paying")'),
            "cycle",
        ),
        (lambda d: d["segments"][1].update(rule='in_segment("nope")'), "nope"),
        (lambda d: d["segments"][0].update(tier="gold"), "segment 'paying', field tier"),
        (lambda d: d["segments"][0].update(name="Paying!"), "slug"),
        (lambda d: d["segments"][0].update(cadence="every tuesday"), "cadence"),
        (lambda d: d["segments"].append(dict(d["segments"][0])), "more than once"),
        (lambda d: d["segments"][0].update(kpis=["arr"]), "kpis"),
    ],
)
def test_invalid_workspace_names_segment_and_problem_and_writes_nothing(
    engine, tmp_path, change, message
):
    data = yaml.safe_load(yaml.safe_dump(BASE))
    change(data)
    path = write(tmp_path, data)
    with pytest.raises(WorkspaceError) as info:
        load_workspace(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)
    assert versions(engine) == 0


def test_malformed_yaml_points_at_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("segments:\n  - name: x\n    rule: [unclosed\n")
    with pytest.raises(WorkspaceError, match=r"line \d+, column \d+"):
        load_workspace(path)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {"features": {"seats": {"source": "events", "agg": "count"}}},
            "feature 'seats' has the name of a column of source 'crm'",
        ),
        (
            {
                "scores": {
                    "a": {"weights": {"b": 1.0}},
                    "b": {"weights": {"a": 1.0}},
                }
            },
            "cycle: a -> b -> a",
        ),
    ],
)
def test_name_clashes_and_score_cycles_are_refused(tmp_path, extra, message):
    data = yaml.safe_load(yaml.safe_dump(BASE))
    data["sources"]["events"] = {
        "kind": "events",
        "path": "events.csv",
        "id": "account_id",
        "timestamp": "ts",
    }
    data.update(extra)
    with pytest.raises(WorkspaceError, match=message):
        load_workspace(write(tmp_path, data))


def rows(engine) -> tuple[int, int]:
    with session_scope(engine) as session:
        segments = session.exec(select(func.count()).select_from(Segment)).one()
        return segments, session.exec(select(func.count()).select_from(SegmentVersion)).one()


def _hostile_query(data: dict, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'source.db'}"
    data["sources"]["warehouse"] = {
        "kind": "entity",
        "url": url,
        "query": "select 1 as account_id; drop table segment",
        "id": "account_id",
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_hostile_query, "source 'warehouse': query must be a single SELECT statement"),
        (
            lambda d, _: d["sources"]["crm"].update(path="../../etc/passwd"),
            "source 'crm': path '../../etc/passwd' resolves to",
        ),
        (
            lambda d, _: d["segments"][1].update(rule="not " * 1_000 + "seats >= 50"),
            "segment 'big-paying': rule: rule nests more than 50 levels deep",
        ),
        (
            lambda d, _: d["segments"][1].update(rule="seats >= 50 " + " " * 30_000),
            "rule is 30,012 characters long; the limit is 20,000",
        ),
        (
            lambda d, _: d["segments"][1].update(rule=" or ".join(["seats = 1"] * 501)),
            "more than 500 conditions",
        ),
        (lambda d, _: d["segments"][1].update(name="big-paying\n"), "must be a slug"),
        (
            lambda d, _: d["sources"].update({"crm\n": d["sources"].pop("crm")}),
            "source name 'crm\\n' must be",
        ),
    ],
)
def test_hostile_workspace_is_refused_and_nothing_is_written(engine, tmp_path, change, message):
    apply_workspace(engine, load_workspace(write(tmp_path, BASE)), reason=None, author="U1")
    before = rows(engine)
    data = yaml.safe_load(yaml.safe_dump(BASE))
    data["segments"][0]["title"] = "Paying accounts, renamed"  # a change that would be written
    change(data, tmp_path)
    path = write(tmp_path, data)

    with pytest.raises(WorkspaceError) as info:
        apply_workspace(engine, load_workspace(path), reason="edit", author="U1")

    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert rows(engine) == before == (2, 2)


REFERS = "segment 'paying' is archived but active segments refer to it: 'big-paying'"


def test_a_file_archiving_a_segment_its_active_segments_refer_to_is_refused(engine, tmp_path):
    apply_workspace(engine, load_workspace(write(tmp_path, BASE)), reason=None, author="U1")
    before = rows(engine)
    data = yaml.safe_load(yaml.safe_dump(BASE))
    data["segments"][0]["status"] = "archived"
    with pytest.raises(WorkspaceError, match=REFERS) as refused:
        load_workspace(write(tmp_path, data))
    assert "\n" not in str(refused.value)
    assert rows(engine) == before


def test_apply_refuses_a_reference_to_a_segment_archived_in_the_catalog(engine, tmp_path):
    ws = load_workspace(write(tmp_path, BASE))
    apply_workspace(engine, ws, reason=None, author="U1")
    data = yaml.safe_load(yaml.safe_dump(BASE))
    data["segments"][0]["status"] = "archived"
    data["segments"].pop(1)
    apply_workspace(engine, load_workspace(write(tmp_path, data)), reason="sunset", author="U1")
    before = rows(engine)
    only_big = ws.model_copy(update={"segments": [ws.segment("big-paying")]})
    with pytest.raises(Refused, match=REFERS):
        apply_workspace(engine, only_big, reason="back", author="U1")
    assert rows(engine) == before
    with session_scope(engine) as session:
        statuses = dict(session.exec(select(Segment.name, Segment.status)).all())
    assert statuses == {"paying": "archived", "big-paying": "archived"}


def test_removing_a_segment_active_segments_refer_to_is_refused(engine, tmp_path):
    ws = load_workspace(write(tmp_path, BASE))
    apply_workspace(engine, ws, reason=None, author="U1")
    before = rows(engine)
    only_big = ws.model_copy(update={"segments": [ws.segment("big-paying")]})
    with pytest.raises(Refused, match=REFERS):
        apply_workspace(engine, only_big, reason="sunset", author="U1")
    assert rows(engine) == before
    assert {s.status for s in list_segments(engine, privacy_floor=10)} == {"active"}

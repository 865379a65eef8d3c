"""Names in the workspace are matched whole: no leading, trailing or embedded extras."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from segments.workspace import WorkspaceError, parse_workspace

BAD = ["trial\n", " trial", "trial ", "tri al", "trial\r\n", ""]


def data(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "sources": {
            "crm": {"kind": "entity", "path": "crm.csv", "id": "account_id", "columns": {}},
            "events": {"kind": "events", "path": "events.csv", "id": "id", "timestamp": "ts"},
        },
        "features": {"logins": {"source": "events", "agg": "count"}},
        "scores": {"activity": {"weights": {"logins": 1.0}}},
        "segments": [{"name": "trial", "title": "Trials", "owner": "U1", "rule": "logins > 1"}],
    }
    base.update(changes)
    return base


def parse(raw: dict[str, Any], tmp_path: Path):
    return parse_workspace(raw, origin="ws.yaml", base_dir=tmp_path)


def test_the_base_workspace_is_valid(tmp_path: Path) -> None:
    assert parse(data(), tmp_path).segments[0].name == "trial"


@pytest.mark.parametrize("name", BAD)
def test_segment_names_must_be_whole_slugs(tmp_path: Path, name: str) -> None:
    segment = {"name": name, "title": "Trials", "owner": "U1", "rule": "logins > 1"}

    with pytest.raises(WorkspaceError, match=r"^ws\.yaml: segment .*field name: .* must be a slug"):
        parse(data(segments=[segment]), tmp_path)


@pytest.mark.parametrize("name", [*BAD, "crm-2", "2crm", "a.b"])
def test_source_names_must_be_whole_identifiers(tmp_path: Path, name: str) -> None:
    raw = data()
    raw["sources"][name] = raw["sources"].pop("crm")

    with pytest.raises(WorkspaceError) as info:
        parse(raw, tmp_path)
    assert str(info.value).startswith(f"ws.yaml: source name {name!r} must be letters, digits")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("group", ["features", "scores"])
@pytest.mark.parametrize("name", ["logins\n", " logins", "logins "])
def test_feature_and_score_names_must_be_whole_identifiers(
    tmp_path: Path, group: str, name: str
) -> None:
    raw = data(scores={}, segments=[])
    if group == "features":
        raw["features"] = {name: raw["features"]["logins"]}
    else:
        raw["scores"] = {name: {"weights": {"logins": 1.0}}}

    message = re.escape(f"ws.yaml: {group[:-1]} name {name!r} must be")
    with pytest.raises(WorkspaceError, match=f"^{message}"):
        parse(raw, tmp_path)


def test_a_cron_cadence_field_is_matched_whole(tmp_path: Path) -> None:
    segment = {"name": "trial", "title": "T", "owner": "U1", "rule": "logins > 1"}
    assert parse(data(segments=[{**segment, "cadence": "0 6 * * 1"}]), tmp_path)
    with pytest.raises(WorkspaceError, match="cadence"):
        parse(data(segments=[{**segment, "cadence": "0 6 * * 1;"}]), tmp_path)


def test_segment_names_accept_underscores_as_well_as_hyphens(tmp_path: Path) -> None:
    segments = [
        {"name": n, "title": "T", "owner": "U1", "rule": "logins > 1"}
        for n in ("engaged_trial", "late-payers")
    ]
    ws = parse(data(segments=segments), tmp_path)
    assert [s.name for s in ws.segments] == ["engaged_trial", "late-payers"]


def test_segment_names_differing_only_by_hyphen_and_underscore_are_refused(
    tmp_path: Path,
) -> None:
    segments = [
        {"name": n, "title": "T", "owner": "U1", "rule": "logins > 1"}
        for n in ("engaged-trial", "engaged_trial")
    ]
    with pytest.raises(
        WorkspaceError,
        match="^ws.yaml: segments 'engaged-trial' and 'engaged_trial' differ only by '-' and '_'",
    ):
        parse(data(segments=segments), tmp_path)


def test_a_workspace_file_that_is_not_utf8_is_one_line_naming_it(tmp_path: Path) -> None:
    from segments.workspace import load_workspace

    path = tmp_path / "workspace.yaml"
    path.write_bytes("segments:\n- name: caf\u00e9\n".encode("latin-1"))
    with pytest.raises(WorkspaceError) as caught:
        load_workspace(path)
    message = str(caught.value)
    assert message == f"{path}: not UTF-8 text (byte 0xe9 at offset 21): save the file as UTF-8"

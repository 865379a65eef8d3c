"""Labels: how messages name and show a column, feature or score."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from segments.workspace import WorkspaceError, dump_workspace, parse_workspace
from tests.segments.test_workspace_names import data


def parse(raw, tmp_path: Path):
    return parse_workspace(raw, origin="ws.yaml", base_dir=tmp_path)


def test_labels_of_features_and_scores_are_kept_for_messages(tmp_path: Path) -> None:
    ws = parse(
        data(
            labels={
                "logins": {"label": "Logins in 30 days", "unit": "per account"},
                "activity": {"label": "Activity score", "good_direction": "up"},
            }
        ),
        tmp_path,
    )
    assert ws.labels_for(["activity", "logins", "plan"]) == {
        "activity": {"label": "Activity score", "format": "number", "good_direction": "up"},
        "logins": {"label": "Logins in 30 days", "format": "number", "unit": "per account"},
    }
    again = parse_workspace(yaml.safe_load(dump_workspace(ws)), origin="again", base_dir=tmp_path)
    assert again.labels == ws.labels


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ({"logns": {"label": "Logins"}}, "labels: unknown column 'logns' (did you mean 'logins'?)"),
        ({"logins": {"format": "money"}}, "format"),
        ({"logins": {"good_direction": "sideways"}}, "good_direction"),
        ({"logins": {"colour": "red"}}, "colour"),
    ],
)
def test_a_label_of_an_unknown_column_or_with_a_bad_field_is_refused(
    tmp_path: Path, labels, message
) -> None:
    with pytest.raises(WorkspaceError, match="ws.yaml") as error:
        parse(data(labels=labels), tmp_path)
    assert message in str(error.value)

"""Owners, approvers and channels in the workspace are Slack ids (a channel may be ``#name``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from segments.workspace import WorkspaceError, parse_workspace


def parse(tmp_path: Path, **segment: Any):
    seg = {"name": "trial", "title": "Trials", "owner": "U0123ABCD", "rule": "plan = 'trial'"}
    seg.update(segment)
    raw = {
        "sources": {
            "crm": {"kind": "entity", "path": "crm.csv", "id": "id", "columns": {"plan": "string"}}
        },
        "segments": [seg],
    }
    return parse_workspace(raw, origin="ws.yaml", base_dir=tmp_path)


@pytest.mark.parametrize(
    "fields",
    [
        {"owner": "W0123ABCD", "approvers": ["U0AAA1", "U2"]},
        {"channel": "C0123ABCD"},
        {"channel": "G0123ABCD"},
        {"channel": "#product-adoption"},
        {"channel": "#cs_alerts"},
        {"channel": None},
    ],
)
def test_slack_ids_and_channel_names_are_accepted(tmp_path, fields):
    assert parse(tmp_path, **fields).segments[0].name == "trial"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"owner": "alice"}, "owner: 'alice' is not a Slack user id"),
        ({"owner": "@U0123ABCD"}, "owner: '@U0123ABCD' is not a Slack user id"),
        ({"owner": "u0123abcd"}, "is not a Slack user id"),
        ({"approvers": ["U0123ABCD", "bob@example.com"]}, "approvers: 'bob@example.com'"),
        ({"channel": "growth"}, "channel: 'growth' must be a channel id"),
        ({"channel": "#Growth"}, "must be a channel id (like C0123ABCD) or '#name'"),
        ({"channel": "<#C0123|growth>"}, "must be a channel id"),
    ],
)
def test_other_text_is_refused_naming_the_segment_and_field(tmp_path, fields, message):
    with pytest.raises(WorkspaceError) as refused:
        parse(tmp_path, **fields)
    assert str(refused.value).startswith("ws.yaml: segment 'trial': ")
    assert message in str(refused.value)

"""Loading with the ids the store already knows: the same dataset, fewer hashes."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from textwrap import dedent

import pandas as pd
import pytest

from segments.sources import load_dataset
from segments.workspace import Workspace

AS_OF = date(2026, 1, 31)

CRM = """\
    account_id,plan,seats
    a1,pro,10
    A2 ,free,1
    a3,team,
"""


def _workspace(tmp_path: Path, crm: str, **more: dict) -> Workspace:
    (tmp_path / "crm.csv").write_text(dedent(crm), encoding="utf-8")
    sources = {
        "crm": {
            "kind": "entity",
            "path": "crm.csv",
            "id": "account_id",
            "id_case": "lower",
            "columns": {"plan": "string", "seats": "number"},
        },
        **more,
    }
    return Workspace.model_validate({"sources": sources, "base_dir": tmp_path})


class _Known:
    def __init__(self, keys: list[str]) -> None:
        self.keys = pd.Index(keys, dtype="str")
        self.calls = 0

    def __call__(self) -> pd.Index:
        self.calls += 1
        return self.keys


@pytest.mark.parametrize(
    "keys",
    [
        ["a1", "a2", "a3"],  # the same ids: used as they are
        ["a1", "a2", "a3", "old"],  # the ids are the dictionary's first keys
        ["a1", "a3", "a2"],  # another order: not used
        ["a1", "a2"],  # fewer keys than ids: not used
        ["b1", "a2", "a3"],
        [],
    ],
)
def test_the_dataset_is_the_same_whatever_ids_are_known(tmp_path: Path, keys: list[str]) -> None:
    ws = _workspace(tmp_path, CRM)
    plain = load_dataset(ws, as_of=AS_OF)
    known = _Known(keys)
    hinted = load_dataset(ws, as_of=AS_OF, known_ids=known)
    assert known.calls == 1
    pd.testing.assert_frame_equal(hinted.frame, plain.frame)
    assert list(hinted.frame.index) == ["a1", "a2", "a3"]
    assert hinted.fingerprint == plain.fingerprint
    assert hinted.id_stats == plain.id_stats


def test_repeated_or_blank_ids_never_take_the_known_ids(tmp_path: Path) -> None:
    """Known ids that would pass for the data's must not hide a repeated or blank id."""
    ws = _workspace(tmp_path, "account_id,plan,seats\na1,pro,1\na1,free,2\n,team,3\na2,x,4\n")
    plain = load_dataset(ws, as_of=AS_OF)
    hinted = load_dataset(ws, as_of=AS_OF, known_ids=_Known(["a1", "a1", "", "a2"]))
    pd.testing.assert_frame_equal(hinted.frame, plain.frame)
    assert list(hinted.frame.index) == ["a1", "a2"]
    assert hinted.sources["crm"].duplicate_ids == plain.sources["crm"].duplicate_ids == 1


def test_two_entity_sources_do_not_ask_for_known_ids(tmp_path: Path) -> None:
    (tmp_path / "billing.csv").write_text("account_id,mrr\na3,5\na9,7\n", encoding="utf-8")
    billing = {"kind": "entity", "path": "billing.csv", "id": "account_id"}
    ws = _workspace(tmp_path, CRM, billing={**billing, "columns": {"mrr": "number"}})
    known = _Known(["a1", "a2", "a3", "a9"])
    hinted = load_dataset(ws, as_of=AS_OF, known_ids=known)
    assert known.calls == 0
    assert list(hinted.frame.index) == ["a1", "a2", "a3", "a9"]

"""A CSV source in another encoding: one clear line naming the file and the option, and
``encoding:`` reads it."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from segments.sources import SourceError
from tests.segments.test_sources import crm_source, load, workspace

LATIN1 = "account_id,plan,seats,active,signed_at\na1,Équipe,3,true,2026-01-01\n"


def test_a_csv_that_is_not_utf8_is_one_line_naming_the_file_and_the_option(
    tmp_path: Path,
) -> None:
    (tmp_path / "crm.csv").write_bytes(LATIN1.encode("latin-1"))
    ws = workspace(tmp_path, {"crm": crm_source()})
    with pytest.raises(SourceError) as caught:
        load(ws)
    message = str(caught.value)
    assert message == (
        "source 'crm': crm.csv is not utf-8 text (byte 0xc9 at offset 42): set encoding: on "
        "the source, for example latin-1, cp1252 or utf-16"
    )


def test_encoding_reads_it(tmp_path: Path) -> None:
    (tmp_path / "crm.csv").write_bytes(LATIN1.encode("latin-1"))
    ws = workspace(tmp_path, {"crm": crm_source(encoding="latin-1")})
    frame = load(ws).frame
    assert list(frame["plan"]) == ["Équipe"]


def test_an_unknown_encoding_is_refused_when_the_workspace_is_read(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="encoding 'latin-9x' is not a known text encoding"):
        workspace(tmp_path, {"crm": crm_source(encoding="latin-9x")})

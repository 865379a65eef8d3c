"""``segops tokens create|list|revoke``."""

from __future__ import annotations

import json

from sqlalchemy import select

from commands.tokens import digest
from store.db import make_engine, session_scope
from store.models import ApiToken
from tests.cli.test_app import run, workspace  # noqa: F401 - the fixture


def test_create_list_and_revoke(workspace, monkeypatch, capsys, tmp_path):  # noqa: F811
    run(monkeypatch, capsys, "apply", str(workspace))
    code, out, err = run(
        monkeypatch, capsys, "tokens", "create", "flags", "-s", "paid", "-s", "big"
    )
    assert code == 0 and "not shown again" in err
    token = out.strip()
    assert token.startswith("sgo_") and len(token) > 40

    code, out, _ = run(monkeypatch, capsys, "tokens", "list", "--json")
    listed = json.loads(out)
    assert listed == [
        {
            "name": "flags",
            "prefix": token[:10],
            "segments": ["big", "paid"],
            "created_at": listed[0]["created_at"],
            "revoked_at": None,
        }
    ]
    assert token not in out
    engine = make_engine(f"sqlite:///{tmp_path / 'cli.db'}")
    with session_scope(engine) as session:
        assert session.execute(select(ApiToken.token_hash)).scalar_one() == digest(token)
    engine.dispose()

    code, out, _ = run(monkeypatch, capsys, "tokens", "revoke", "flags")
    assert code == 0 and "revoked token 'flags'" in out
    code, out, _ = run(monkeypatch, capsys, "tokens", "list", "--json")
    assert json.loads(out)[0]["revoked_at"] is not None


def test_bad_token_requests_are_one_line(workspace, monkeypatch, capsys):  # noqa: F811
    run(monkeypatch, capsys, "apply", str(workspace))
    code, _, err = run(monkeypatch, capsys, "tokens", "create", "x", "-s", "pad")
    assert code == 1 and "unknown segment 'pad'" in err
    run(monkeypatch, capsys, "tokens", "create", "x", "-s", "*")
    code, _, err = run(monkeypatch, capsys, "tokens", "create", "x", "-s", "*")
    assert code == 1 and "a token named 'x' exists already" in err
    code, _, err = run(monkeypatch, capsys, "tokens", "revoke", "nobody")
    assert code == 1 and "no token named 'nobody'" in err

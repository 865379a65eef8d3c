"""The membership API over HTTP: lookups, paging as of a date, tokens and their scopes."""

from __future__ import annotations

from sqlalchemy import select

from commands.tokens import revoke_token
from store.db import session_scope
from store.models import ApiToken
from tests.api.conftest import EARLY
from tests.factories import AS_OF
from tests.sync.helpers import members


def _get(served, path, token=None, **params):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return served.client.get(served.url + path, headers=headers, params=params)


def test_which_segments_an_entity_is_in(served):
    enterprise = sorted(members(served.engine, "enterprise"))
    trial = members(served.engine, "trial")
    key = enterprise[0]
    answer = _get(served, f"/api/v1/entities/{key}/segments", served.token_all)
    assert answer.status_code == 200
    found = answer.json()["segments"]
    assert "enterprise" in found and ("trial" in found) == (key in trial)
    scoped = _get(served, f"/api/v1/entities/{key}/segments", served.token_enterprise)
    assert scoped.json() == {"entity": key, "segments": ["enterprise"]}
    nobody = _get(served, "/api/v1/entities/NOBODY/segments", served.token_all)
    assert nobody.json() == {"entity": "NOBODY", "segments": []}


def test_is_member_now_and_as_of_an_earlier_refresh(served):
    now = members(served.engine, "enterprise")
    fx = served.fx
    before = set(fx.crm_at(EARLY).index)  # every account, to find one that moved
    path = "/api/v1/segments/enterprise/members/{}"
    answers = {}
    for key in sorted(before)[:60]:
        body = _get(served, path.format(key), served.token_enterprise).json()
        early = _get(served, path.format(key), served.token_enterprise, as_of=EARLY.isoformat())
        answers[key] = (body["member"], early.json()["member"])
        assert body["as_of"] == AS_OF.isoformat() and body["member"] == (key in now)
        assert early.json()["as_of"] == EARLY.isoformat()
    assert any(a != b for a, b in answers.values())  # some moved between the refreshes


def test_members_paged_cover_the_segment_once(served):
    expected = members(served.engine, "enterprise")
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 7} | ({"cursor": cursor} if cursor else {})
        page = _get(served, "/api/v1/segments/enterprise/members", served.token_all, **params)
        assert page.status_code == 200
        body = page.json()
        assert body["total"] == len(expected)
        seen += body["members"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(expected) and len(seen) == len(set(seen))
    assert pages == -(-len(expected) // 7)


def test_tokens_are_checked_hashed_scoped_and_revocable(served):
    path = "/api/v1/segments/trial/members/A0001"
    assert _get(served, path).status_code == 401
    assert _get(served, path).headers["www-authenticate"].startswith("Bearer")
    assert _get(served, path, "sgo_not-a-token").status_code == 401
    refused = _get(served, path, served.token_enterprise)
    assert refused.status_code == 403 and "may not read segment 'trial'" in refused.json()["error"]
    assert _get(served, "/api/v1/segments/nope/members", served.token_enterprise).status_code == 403
    assert _get(served, "/api/v1/segments/nope/members", served.token_all).status_code == 404
    with session_scope(served.engine) as session:
        stored = session.execute(select(ApiToken.token_hash)).scalars().all()
    assert served.token_all not in stored and all(len(h) == 64 for h in stored)
    revoke_token(served.engine, name="flags")
    assert _get(served, path, served.token_all).status_code == 401


def test_bad_parameters_are_400_with_a_json_error(served):
    base = "/api/v1/segments/enterprise/members"
    for params in ({"as_of": "31/03/2026"}, {"limit": "0"}, {"limit": "x"}, {"cursor": "2"}):
        answer = _get(served, base, served.token_all, **params)
        assert answer.status_code == 400, params
        assert answer.json()["error"]
    for cursor in ("99999.2", "3468052219.2", "1.99999999999"):
        gone = _get(served, base, served.token_all, cursor=cursor)
        assert gone.status_code == 404 and "no page" in gone.json()["error"], cursor


def test_the_openapi_document_is_served(served):
    answer = served.client.get(served.url + "/api/v1/openapi.json")
    assert answer.status_code == 200
    assert set(answer.json()["paths"]) == {
        "/api/v1/entities/{entity}/segments",
        "/api/v1/segments/{segment}/members/{entity}",
        "/api/v1/segments/{segment}/members",
    }


def test_entity_ids_are_read_as_utf8_and_control_characters_refused(served):
    odd = _get(served, "/api/v1/entities/caf%C3%A9/segments", served.token_all)
    assert odd.status_code == 200 and odd.json()["entity"] == "café"
    nul = _get(served, "/api/v1/entities/a%00b/segments", served.token_all)
    assert nul.status_code == 400 and "control characters" in nul.json()["error"]

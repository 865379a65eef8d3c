"""The membership API as a WSGI application (no framework: four routes).

Every answer is JSON. Errors are ``{"error": "..."}`` with 400 (bad parameters),
401 (no or unknown token, with ``WWW-Authenticate: Bearer``), 403 (a segment the token
may not read, answered before looking the segment up, so a token learns nothing of
segments outside its scope), 404 (no such segment or path) or 405.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable
from datetime import date
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from sqlalchemy import Engine

from api.openapi import document
from commands import membership, tokens
from commands.errors import UnknownSegment
from segments.errors import SegopsError
from store.db import session_scope

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

logger = logging.getLogger(__name__)

API_PREFIX = "/api/"
_IS_MEMBER = re.compile(r"^/api/v1/segments/([^/]+)/members/([^/]+)$")
_MEMBERS = re.compile(r"^/api/v1/segments/([^/]+)/members$")
_SEGMENTS_OF = re.compile(r"^/api/v1/entities/([^/]+)/segments$")
_SLUG = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
_CURSOR = re.compile(r"^[0-9]+\.[0-9]+$")
_LIMIT = re.compile(r"^[0-9]{1,9}$")
MAX_KEY = 256


class _Fail(Exception):
    def __init__(self, status: str, message: str, headers: list[tuple[str, str]] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or []


def _json(start: StartResponse, status: str, body: Any, extra=()) -> Iterable[bytes]:
    payload = json.dumps(body, separators=(",", ":")).encode()
    start(
        status,
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(payload))),
            ("Cache-Control", "no-store"),
            *extra,
        ],
    )
    return [payload]


def build_api(engine: Engine) -> Callable[[WSGIEnvironment, StartResponse], Iterable[bytes]]:
    """The API's WSGI application on ``engine``."""

    def app(environ: WSGIEnvironment, start: StartResponse) -> Iterable[bytes]:
        # WSGI hands the decoded path over as latin-1 code points; ids are UTF-8
        raw = environ.get("PATH_INFO") or "/"
        try:
            path = raw.encode("latin-1").decode("utf-8")
        except UnicodeError:
            return _json(start, "400 Bad Request", {"error": "the path is not UTF-8"})
        method = environ.get("REQUEST_METHOD", "GET")
        try:
            if path == "/api/v1/openapi.json":
                if method not in ("GET", "HEAD"):
                    raise _Fail("405 Method Not Allowed", "use GET")
                return _json(start, "200 OK", document())
            if method not in ("GET", "HEAD"):
                raise _Fail("405 Method Not Allowed", "use GET")
            return _json(start, "200 OK", _route(engine, environ, path))
        except _Fail as fail:
            return _json(start, fail.status, {"error": fail.message}, fail.headers)
        except Exception:  # noqa: BLE001 - a JSON 500, never a traceback to the caller
            logger.exception("api_error path=%s", path)
            return _json(start, "500 Internal Server Error", {"error": "internal error"})

    return app


def _token(engine: Engine, environ: WSGIEnvironment) -> Any:
    header = environ.get("HTTP_AUTHORIZATION") or ""
    scheme, _, value = header.partition(" ")
    challenge = [("WWW-Authenticate", 'Bearer realm="segops"')]
    if scheme.lower() != "bearer" or not value.strip():
        raise _Fail("401 Unauthorized", "missing bearer token", challenge)
    with session_scope(engine) as session:
        row = tokens.authenticate(session, value.strip())
        if row is None:
            raise _Fail("401 Unauthorized", "unknown or revoked token", challenge)
        session.expunge(row)
        return row


def _query(environ: WSGIEnvironment) -> dict[str, str]:
    raw = parse_qs(environ.get("QUERY_STRING") or "", keep_blank_values=True)
    return {k: v[-1] for k, v in raw.items()}


def _date(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise _Fail("400 Bad Request", f"as_of {value!r} is not a date (YYYY-MM-DD)") from None


def _key(raw: str) -> str:
    key = raw
    if not key or len(key) > MAX_KEY:
        raise _Fail("400 Bad Request", f"entity ids are 1 to {MAX_KEY} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise _Fail("400 Bad Request", "entity ids cannot contain control characters")
    return key


def _scoped(token: Any, segment: str) -> str:
    name = segment
    if not _SLUG.match(name):
        raise _Fail("400 Bad Request", f"segment {name!r} is not a segment name")
    if not tokens.may_read(token, name):
        raise _Fail("403 Forbidden", f"this token may not read segment '{name}'")
    return name


def _route(engine: Engine, environ: WSGIEnvironment, path: str) -> dict[str, Any]:
    if not any(p.match(path) for p in (_IS_MEMBER, _MEMBERS, _SEGMENTS_OF)):
        raise _Fail("404 Not Found", "no such path")
    token = _token(engine, environ)
    query = _query(environ)
    try:
        if match := _SEGMENTS_OF.match(path):
            key = _key(match.group(1))
            allowed = None if tokens.ALL in token.segments else set(token.segments)
            found = membership.segments_of(engine, key=key, allowed=allowed)
            return {"entity": key, "segments": found}
        if match := _IS_MEMBER.match(path):
            segment = _scoped(token, match.group(1))
            key = _key(match.group(2))
            result = membership.is_member(
                engine, segment=segment, key=key, as_of=_date(query.get("as_of"))
            )
            return dict(result.__dict__)
        match = _MEMBERS.match(path)
        assert match is not None
        segment = _scoped(token, match.group(1))
        limit_text = query.get("limit", "1000")
        if not _LIMIT.match(limit_text):
            raise _Fail("400 Bad Request", "limit must be a whole number")
        cursor = query.get("cursor")
        if cursor is not None and not _CURSOR.match(cursor):
            raise _Fail("400 Bad Request", "cursor is not one this API gave out")
        page = membership.members_page(
            engine,
            segment=segment,
            as_of=_date(query.get("as_of")),
            cursor=cursor,
            limit=int(limit_text),
        )
        return dict(page.__dict__)
    except (UnknownSegment, membership.UnknownCursor) as error:
        raise _Fail("404 Not Found", str(error)) from None
    except SegopsError as error:
        raise _Fail("400 Bad Request", str(error)) from None

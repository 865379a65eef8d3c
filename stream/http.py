"""``POST /events``: batched events over HTTP, authenticated, checked, onto the event log.

Request: ``Authorization: Bearer <SEGOPS_EVENTS_TOKEN>`` and a JSON body
``{"events": [event, ...]}`` (the event schema is in :mod:`segments.live.events`), at most
:data:`segments.live.MAX_BATCH` events and ``max_body`` bytes. Answers, always JSON:

======  ===============================================================================
202     ``{"accepted": n, "duplicates": k}``: on the log; ``k`` repeated ids in the batch
400     the body is not JSON or not ``{"events": [...]}``, or holds no event
401     missing or wrong token
405     not a POST
413     body or batch too large
422     ``{"error", "problems": [{"index", "error"}]}``: some events are malformed or name
        an unknown entity; nothing of the batch is accepted
503     the event log cannot be reached; nothing accepted, send again
======  ===============================================================================

Sending a batch again is safe: events are applied once per id.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import redis
from sqlalchemy import Engine

from commands.live import check_batch
from segments.live import MAX_BATCH
from stream.log import EventLog

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

logger = logging.getLogger(__name__)

EVENTS_PATH = "/events"
MAX_BODY = 1 << 20


def _answer(start_response: StartResponse, status: str, body: dict[str, Any]) -> Iterable[bytes]:
    payload = json.dumps(body).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
    )
    return [payload]


def events_app(
    engine: Engine,
    log: EventLog,
    *,
    token: str,
    sources: Sequence[str],
    mapped: Sequence[str] = (),
    max_events: int = MAX_BATCH,
    max_body: int = MAX_BODY,
) -> WSGIApplication:
    """The WSGI application of ``POST /events`` (any path it is mounted on)."""
    if not token:
        raise ValueError("missing environment: SEGOPS_EVENTS_TOKEN")
    expected = f"Bearer {token}".encode()

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "POST":
            return _answer(start_response, "405 Method Not Allowed", {"error": "use POST"})
        given = environ.get("HTTP_AUTHORIZATION", "").encode()
        if not hmac.compare_digest(given, expected):
            return _answer(start_response, "401 Unauthorized", {"error": "invalid token"})
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return _answer(start_response, "400 Bad Request", {"error": "bad content-length"})
        if length > max_body:
            return _answer(
                start_response,
                "413 Payload Too Large",
                {"error": f"body of {length} bytes; at most {max_body}"},
            )
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        try:
            data = json.loads(body)
        except ValueError:
            return _answer(start_response, "400 Bad Request", {"error": "body: not JSON"})
        raw = data.get("events") if isinstance(data, dict) else None
        if not isinstance(raw, list):
            error = 'body: expected {"events": [...]}'
            return _answer(start_response, "400 Bad Request", {"error": error})
        if not raw:
            return _answer(start_response, "400 Bad Request", {"error": "events: empty"})
        if len(raw) > max_events:
            return _answer(
                start_response,
                "413 Payload Too Large",
                {"error": f"batch of {len(raw)} events; at most {max_events}"},
            )
        checked = check_batch(engine, raw, sources=sources, mapped=mapped)
        if checked.problems:
            first = checked.problems[0]
            return _answer(
                start_response,
                "422 Unprocessable Entity",
                {
                    "error": f"events[{first['index']}]: {first['error']}",
                    "problems": checked.problems,
                },
            )
        unique: dict[str, str] = {}
        for event in checked.events:
            unique.setdefault(event.id, json.dumps(event.to_json(), separators=(",", ":")))
        try:
            log.publish(list(unique.values()), accepted_at=time.time())
        except redis.RedisError:
            logger.exception("event_log_unavailable")
            return _answer(
                start_response, "503 Service Unavailable", {"error": "event log unavailable"}
            )
        duplicates = len(checked.events) - len(unique)
        return _answer(
            start_response, "202 Accepted", {"accepted": len(unique), "duplicates": duplicates}
        )

    return app

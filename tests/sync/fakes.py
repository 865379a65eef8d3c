"""Fake destinations on localhost, as strict as the real ones, with programmable faults.

``WebhookReceiver`` verifies every delivery's Standard Webhooks signature (the
``standardwebhooks`` package, 5-minute timestamp tolerance) and answers 401 to a bad
one; it applies each ``webhook-id`` once (a repeat is acknowledged without applying) and
records anything that would betray a doubled or lost event: an add of a current member,
a removal of a non-member, a webhook id delivered with two different bodies.

``FakeHubSpot`` serves the lists API the client calls:
``PUT /crm/v3/lists/{listId}/memberships/add-and-remove`` and
``GET /crm/v3/lists/{listId}/memberships``. It checks the bearer token, refuses a body
with more than ``max_batch`` record ids (400 ``VALIDATION_ERROR``), answers 404 for an
unknown list, 429 with ``Retry-After`` past ``rate_limit`` requests a second, and reports
record ids it does not know in ``recordIdsMissing`` (adding nothing for them).

Both take ``faults``: a :class:`Faults` that fails a share of calls with 429, 5xx or a
hang longer than the client's timeout (half of the hangs apply the change first: the
answer is lost, not the change).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

WEBHOOK_SECRET = "whsec_" + "c2Vnb3BzLXRlc3Qtc2VjcmV0LWZvci13ZWJob29rcw=="
HUBSPOT_TOKEN = "pat-na1-test-token"


@dataclass
class Faults:
    """Fail ``rate`` of calls: 429, 500/503, or a hang of ``hang`` seconds."""

    rate: float = 0.0
    hang: float = 1.0
    seed: int = 1
    counts: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.lock = threading.Lock()

    def pick(self) -> str | None:
        with self.lock:
            if self.rng.random() >= self.rate:
                return None
            kind = self.rng.choice(["429", "500", "503", "hang", "hang-applied"])
            self.counts[kind] += 1
            return kind


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Base:
    def __init__(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, status: int, body: Any = None, headers: dict | None = None) -> None:
                payload = json.dumps(body if body is not None else {}).encode()
                try:
                    self.send_response(status)
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _body(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def do_POST(self) -> None:
                owner.handle(self, "POST")

            def do_PUT(self) -> None:
                owner.handle(self, "PUT")

            def do_GET(self) -> None:
                owner.handle(self, "GET")

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.lock = threading.Lock()
        self.calls = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def handle(self, request: Any, method: str) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class WebhookReceiver(_Base):
    def __init__(self, *, secret: str = WEBHOOK_SECRET, faults: Faults | None = None) -> None:
        super().__init__()
        self.verifier = Webhook(secret)
        self.faults = faults or Faults()
        self.members: dict[str, set[str]] = defaultdict(set)
        self.applied: Counter[str] = Counter()
        self.deliveries: Counter[str] = Counter()
        self.bodies: dict[str, str] = {}
        self.problems: list[str] = []
        self.rejected = 0
        self.gone = False
        self.slow = 0.0  # seconds between applying an event and answering

    def handle(self, request: Any, method: str) -> None:
        body = request._body()
        with self.lock:
            self.calls += 1
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            event = self.verifier.verify(body, headers)
        except WebhookVerificationError:
            with self.lock:
                self.rejected += 1
            request._reply(401, {"error": "bad signature"})
            return
        if self.gone:
            request._reply(410, {"error": "endpoint removed"})
            return
        fault = self.faults.pick()
        if fault in ("429", "500", "503"):
            extra = {"Retry-After": "1"} if fault == "429" else {}
            request._reply(int(fault), {"error": fault}, extra)
            return
        if fault == "hang":
            time.sleep(self.faults.hang)
            return
        self._apply(headers["webhook-id"], body.decode(), event)
        if self.slow:
            time.sleep(self.slow)
        if fault == "hang-applied":
            time.sleep(self.faults.hang)
            return
        request._reply(200, {"ok": True})

    def _apply(self, msg_id: str, body: str, event: dict[str, Any]) -> None:
        digest = hashlib.sha256(body.encode()).hexdigest()
        with self.lock:
            self.deliveries[msg_id] += 1
            seen = self.bodies.setdefault(msg_id, digest)
            if seen != digest:
                self.problems.append(f"{msg_id} delivered with two different bodies")
            if self.applied[msg_id]:
                return  # a retry of an applied event: acknowledged, not applied again
            self.applied[msg_id] += 1
            data = event["data"]
            members = self.members[data["segment"]]
            if event["type"] == "segment.membership.reset":
                members.clear()
                return
            for key in data["removed"]:
                if key not in members:
                    self.problems.append(f"{msg_id} removes {key}, not a member")
                members.discard(key)
            for key in data["added"]:
                if key in members:
                    self.problems.append(f"{msg_id} adds {key}, already a member")
                members.add(key)


_ADD_REMOVE = re.compile(r"^/crm/v3/lists/([^/]+)/memberships/add-and-remove$")
_MEMBERS = re.compile(r"^/crm/v3/lists/([^/]+)/memberships$")


class FakeHubSpot(_Base):
    def __init__(
        self,
        *,
        records: set[str],
        lists: tuple[str, ...] = ("123",),
        token: str = HUBSPOT_TOKEN,
        max_batch: int = 100,
        rate_limit: int = 100,
        faults: Faults | None = None,
    ) -> None:
        super().__init__()
        self.records = set(records)
        self.lists: dict[str, set[str]] = {name: set() for name in lists}
        self.token, self.max_batch, self.rate_limit = token, max_batch, rate_limit
        self.faults = faults or Faults()
        self.window: list[float] = []
        self.rate_limited = 0
        self.oversized = 0
        self.unauthorised = 0

    def handle(self, request: Any, method: str) -> None:
        body = request._body()
        with self.lock:
            self.calls += 1
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            with self.lock:
                self.unauthorised += 1
            request._reply(
                401, _error("INVALID_AUTHENTICATION", "Authentication credentials not found.")
            )
            return
        path = urlsplit(request.path)
        with self.lock:
            now = time.monotonic()
            self.window = [t for t in self.window if now - t < 1.0]
            over = len(self.window) >= self.rate_limit
            if over:
                self.rate_limited += 1
            else:
                self.window.append(now)
        if over:
            request._reply(
                429,
                _error("RATE_LIMIT", "You have reached your secondly limit."),
                {"Retry-After": "1"},
            )
            return
        fault = self.faults.pick()
        if fault in ("429", "500", "503"):
            extra = {"Retry-After": "1"} if fault == "429" else {}
            request._reply(int(fault), _error("INTERNAL_ERROR", fault), extra)
            return
        if fault == "hang":
            time.sleep(self.faults.hang)
            return
        match = _ADD_REMOVE.match(path.path)
        if method == "PUT" and match:
            answer = self._add_remove(match.group(1), json.loads(body or b"{}"))
        elif method == "GET" and (match := _MEMBERS.match(path.path)):
            answer = self._page(match.group(1), parse_qs(path.query))
        else:
            answer = (404, _error("NOT_FOUND", "no such endpoint"))
        if fault == "hang-applied":
            time.sleep(self.faults.hang)
            return
        request._reply(*answer)

    def _add_remove(self, list_id: str, body: dict[str, Any]) -> tuple[int, Any]:
        if list_id not in self.lists:
            return 404, _error("OBJECT_NOT_FOUND", f"List {list_id} does not exist.")
        add = body.get("recordIdsToAdd")
        remove = body.get("recordIdsToRemove")
        if not isinstance(add, list) or not isinstance(remove, list):
            return 400, _error(
                "VALIDATION_ERROR", "recordIdsToAdd and recordIdsToRemove are required"
            )
        if len(add) + len(remove) > self.max_batch:
            with self.lock:
                self.oversized += 1
            return 400, _error("VALIDATION_ERROR", f"at most {self.max_batch} record ids")
        with self.lock:
            members = self.lists[list_id]
            missing = sorted({r for r in add + remove if r not in self.records})
            removed = sorted(r for r in remove if r in members)
            added = sorted(r for r in add if r in self.records and r not in members)
            members.difference_update(remove)
            members.update(r for r in add if r in self.records)
        return 200, {
            "recordIdsMissing": missing,
            "recordIdsRemoved": removed,
            "recordsIdsAdded": added,
        }

    def _page(self, list_id: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        if list_id not in self.lists:
            return 404, _error("OBJECT_NOT_FOUND", f"List {list_id} does not exist.")
        limit = min(int((query.get("limit") or ["100"])[0]), 250)
        after = (query.get("after") or [""])[0]
        with self.lock:
            ordered = sorted(self.lists[list_id])
        rest = [r for r in ordered if r > after] if after else ordered
        page = rest[:limit]
        body: dict[str, Any] = {
            "results": [
                {"recordId": r, "membershipTimestamp": "2026-01-01T00:00:00Z"} for r in page
            ],
            "total": len(ordered),
        }
        if len(rest) > limit:
            body["paging"] = {"next": {"after": page[-1]}}
        return 200, body


def _error(category: str, message: str) -> dict[str, Any]:
    return {"status": "error", "message": message, "category": category, "correlationId": "test"}


@contextmanager
def running(server: _Base) -> Iterator[Any]:
    server.start()
    try:
        yield server
    finally:
        server.close()

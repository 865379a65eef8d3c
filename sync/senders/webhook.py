"""Webhook destinations: Standard Webhooks signed POSTs of added and removed ids.

Each batch is one POST whose JSON body is::

    {"type": "segment.membership.changed", "timestamp": "2026-09-01T00:00:00Z",
     "data": {"destination": "crm-hook", "segment": "churn-risk", "as_of": "2026-09-01",
              "run": 12, "batch": 1, "added": ["a1", ...], "removed": ["a9", ...]}}

with the headers ``webhook-id`` (the batch's idempotency key, the same on every attempt),
``webhook-timestamp`` (Unix seconds of this attempt) and ``webhook-signature``
(``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``, signed with the ``whsec_`` secret by
the ``standardwebhooks`` package). A rebuild first sends
``segment.membership.reset`` (id ``<key>-reset``): drop everything held for the segment.

Answers: 2xx done; 410 the endpoint is gone; 429 later (``Retry-After``); 408, 5xx,
timeouts and connection errors later with backoff; any other status is final.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook

from commands.syncs import Work
from segments.destinations import DestinationConfig
from sync.errors import ConfigError, Retry, classify_status

CHANGED = "segment.membership.changed"
RESET = "segment.membership.reset"


class WebhookSender:
    def __init__(self, name: str, config: DestinationConfig, secret: str) -> None:
        self.name, self.config = name, config
        try:
            self.signer = Webhook(secret)
        except Exception as error:  # noqa: BLE001 - the package raises several kinds
            raise ConfigError(
                f"destination '{name}': its secret is not a valid whsec_ secret "
                f"({type(error).__name__})"
            ) from None
        self.client = httpx.Client(timeout=config.timeout, follow_redirects=False)

    def send(self, work: Work) -> list[str]:
        data = {
            "destination": self.name,
            "segment": work.segment,
            "as_of": work.as_of.isoformat() if work.as_of else None,
            "run": work.run_id,
            "batch": work.seq,
            "added": work.add,
            "removed": work.remove,
        }
        self._post(work.key, self._body(CHANGED, work, data))
        return []

    def reset(self, work: Work) -> None:
        data = {"destination": self.name, "segment": work.segment, "run": work.run_id}
        self._post(f"{work.key}-reset", self._body(RESET, work, data))

    def close(self) -> None:
        self.client.close()

    @staticmethod
    def _body(kind: str, work: Work, data: dict[str, Any]) -> str:
        stamp = f"{work.as_of.isoformat()}T00:00:00Z" if work.as_of else None
        return json.dumps({"type": kind, "timestamp": stamp, "data": data}, separators=(",", ":"))

    def _post(self, msg_id: str, body: str) -> None:
        now = datetime.now(UTC)
        headers = {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self.signer.sign(msg_id, now, body),
        }
        what = f"webhook '{self.name}'"
        try:
            answer = self.client.post(self.config.url or "", content=body, headers=headers)
        except httpx.TimeoutException:
            raise Retry(f"{what} timed out after {self.config.timeout:g}s") from None
        except httpx.TransportError as error:
            raise Retry(f"{what} unreachable ({type(error).__name__})") from None
        problem = classify_status(
            answer.status_code, retry_after_header=answer.headers.get("retry-after"), what=what
        )
        if problem is not None:
            raise problem

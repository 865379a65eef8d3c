"""``segops serve``'s HTTP surface: the Slack endpoints and the membership API in one
WSGI application behind waitress. Composed here, where both transports are visible."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

logger = logging.getLogger(__name__)

WSGI = Callable[[dict, Callable], Iterable[bytes]]


def compose(api: WSGI | None, slack: WSGI | None) -> WSGI:
    """``/api/...`` to the API, everything else to Slack's stack (health check included);
    without Slack, ``/healthz`` answers here and other paths are 404."""
    from api import API_PREFIX

    def app(environ: dict, start: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if api is not None and path.startswith(API_PREFIX):
            return api(environ, start)
        if slack is not None:
            return slack(environ, start)
        if path == "/healthz":
            start("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"ok"]
        body = json.dumps({"error": "no such path"}).encode()
        start("404 Not Found", [("Content-Type", "application/json")])
        return [body]

    return app


def make_server(app: WSGI, *, host: str, port: int, threads: int, **adjustments: Any) -> Any:
    """A bound waitress server (``port=0`` picks a free port)."""
    from waitress import create_server

    return create_server(
        app,
        host=host,
        port=port,
        threads=threads,
        ident="segops",
        clear_untrusted_proxy_headers=True,
        **adjustments,
    )

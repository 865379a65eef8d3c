"""Ack latency of a running segops HTTP app under concurrent signed slash commands.

    report = ack_latency("http://127.0.0.1:3000/slack/events", signing_secret, requests=50)
    print(report)   # 50 requests: p50 12.3 ms, p99 48.0 ms, max 51.2 ms

Every request is a correctly signed ``/segment help`` (answered in the ack itself),
fired at once from ``requests`` threads; the time is measured from sending the
request to reading the whole answer, so it is what Slack's 3-second budget sees.
"""

from __future__ import annotations

import json
import logging
import statistics
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing import get_context
from urllib.parse import urlencode

from slack_sdk.signature import SignatureVerifier
from sqlalchemy import Engine


@dataclass(frozen=True)
class AckLatency:
    """Latency percentiles (milliseconds) and answer statuses of one run."""

    requests: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    statuses: dict[int, int]

    def __str__(self) -> str:
        return (
            f"{self.requests} requests: p50 {self.p50_ms:.1f} ms, p99 {self.p99_ms:.1f} ms, "
            f"max {self.max_ms:.1f} ms, statuses {dict(self.statuses)}"
        )


def _percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def ack_latency(
    url: str,
    signing_secret: str,
    *,
    requests: int = 50,
    command: str = "/segment",
    text: str = "help",
    response_url: str = "https://hooks.slack.com/commands/T111/1/x",
    timeout: float = 10.0,
) -> AckLatency:
    """Fire ``requests`` concurrent signed ``command text`` posts at ``url``; time each ack.

    ``response_url`` is where the app sends its follow-up answers, if the command has any.
    """
    verifier = SignatureVerifier(signing_secret)
    start = threading.Barrier(requests)

    def one(index: int) -> tuple[int, float]:
        body = urlencode(
            {
                "team_id": "T111",
                "channel_id": "C111",
                "user_id": f"U{index:05d}",
                "command": command,
                "text": text,
                "response_url": response_url,
                "trigger_id": f"{index}.111.bench",
            }
        ).encode()
        start.wait()
        ts = str(int(time.time()))
        signature = verifier.generate_signature(timestamp=ts, body=body) or ""
        request = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Slack-Request-Timestamp": ts,
                "X-Slack-Signature": signature,
            },
        )
        began = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                answer.read()
                status = answer.status
        except urllib.error.HTTPError as error:
            status = error.code
        return status, (time.perf_counter() - began) * 1000

    with ThreadPoolExecutor(max_workers=requests) as pool:
        results = list(pool.map(one, range(requests)))
    latencies = [ms for _, ms in results]
    return AckLatency(
        requests=requests,
        p50_ms=statistics.median(latencies),
        p99_ms=_percentile(latencies, 99),
        max_ms=max(latencies),
        statuses=dict(Counter(status for status, _ in results)),
    )


class _StubWebApi(ThreadingHTTPServer):
    """A local stand-in for Slack's Web API and response URLs: every call answers ok."""

    daemon_threads = True

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()  # path -> number of posts
        self.answers: list[tuple[str, str]] = []  # (path, text) posted to response URLs
        self._lock = threading.Lock()
        calls, answers, lock = self.calls, self.answers, self._lock

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with lock:
                    calls[self.path] += 1
                    if self.path.startswith("/response") and raw.startswith(b"{"):
                        answers.append((self.path, str(json.loads(raw).get("text") or "")))
                body = json.dumps(
                    {
                        "ok": True,
                        "ts": "1.000100",
                        "channel": "C111",
                        "user_id": "UBENCH",
                        "team_id": "T111",
                        "bot_id": "BBENCH",
                        "user": "UBENCH",
                        # files.getUploadURLExternal: the upload goes back to this stub
                        "upload_url": f"http://127.0.0.1:{self.server.server_address[1]}/upload",
                        "file_id": "FBENCH",
                        "files": [{"id": "FBENCH"}],
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: object) -> None:
                return

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"

    def count(self, path: str) -> int:
        """How many posts reached ``path`` so far."""
        with self._lock:
            return self.calls[path]


def run_slack_bench(
    engine: Engine, *, segment: str, requests: int = 50, lazy_workers: int | None = None
) -> dict[str, AckLatency]:
    """Serve the real app on a local port and time acks of ``requests`` concurrent commands.

    The Web API and response URLs point at a local stub that answers ``ok``, so the
    figures measure segops (verification, ack, follow-up scheduling), not the network.
    """
    from bot.app import LAZY_WORKERS, build_app, shutdown
    from bot.server import BackgroundServer
    from commands.settings import Settings

    stub = _StubWebApi()
    threading.Thread(target=stub.serve_forever, daemon=True).start()
    secret = "bench-signing-secret"
    settings = Settings(
        SLACK_BOT_TOKEN="xoxb-bench",
        SLACK_SIGNING_SECRET=secret,
        SLACK_API_URL=stub.url,
    )
    results: dict[str, AckLatency] = {}
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    app = build_app(settings, engine=engine, lazy_workers=lazy_workers or LAZY_WORKERS)
    try:
        with BackgroundServer(app) as server:
            for command, text in (("/segment", "help"), ("/persona", segment)):
                args = (server.events_url, secret)
                kwargs = {"command": command, "text": text, "response_url": stub.url + "response"}
                # The client runs in its own process so it does not share the server's GIL.
                with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as client:
                    client.submit(ack_latency, *args, requests=5, **kwargs).result()
                    results[f"{command} {text}"] = client.submit(
                        ack_latency, *args, requests=requests, **kwargs
                    ).result()
    finally:
        shutdown(app)  # let the follow-up work reach the stub before it goes
        stub.shutdown()
    return results

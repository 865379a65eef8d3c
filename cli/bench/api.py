"""Latency of the membership API on a store with a 1M-member segment, from a separate
process.

The store is built directly (a million entity keys, one segment whose current result
holds them all), ``segops serve --no-slack`` is started on it as its own process, and
this process times sequential single lookups over one kept-alive connection:
``GET /api/v1/segments/S/members/{key}`` (member or not) and
``GET /api/v1/entities/{key}/segments``. The peer is ``GET /healthz`` on the same
server, which answers without touching the database: the ratio is what a lookup adds
to a bare request.
"""

from __future__ import annotations

import http.client
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from cli.bench.slack import _percentile


@dataclass(frozen=True)
class Latency:
    name: str
    requests: int
    p50_ms: float
    p99_ms: float


def _store(url: str, members: int) -> str:
    """Build the store; return a token that may read every segment."""
    import numpy as np

    from commands.tokens import create_token
    from segments.membership import encode, to_bitmap
    from store.db import make_engine, session_scope, upgrade
    from store.entities import add_entity_keys
    from store.models import Segment, SegmentResult, SegmentVersion, Snapshot

    engine = make_engine(url)
    upgrade(engine)
    with session_scope(engine) as session:
        add_entity_keys(session, start=0, keys=[f"C{i:07d}" for i in range(members)])
        segment = Segment(name="everyone", title="Everyone", owner="U111", cadence="daily")
        session.add(segment)
        session.flush()
        version = SegmentVersion(
            segment_id=segment.id,
            version=1,
            definition={},
            rule_text="true",
            definition_hash="0" * 64,
            change_kind="create",
            author="bench",
        )
        snapshot = Snapshot(as_of=date(2026, 1, 1), status="published", data_fingerprint="b")
        session.add_all([version, snapshot])
        session.flush()
        bitmap = to_bitmap(np.arange(members, dtype=np.uint32))
        result = SegmentResult(
            snapshot_id=snapshot.id,
            segment_id=segment.id,
            version_id=version.id,
            status="published",
            size=members,
            bitmap=encode(bitmap),
        )
        session.add(result)
        session.flush()
        segment.current_version_id, segment.current_result_id = version.id, result.id
        session.add(segment)
    token, _ = create_token(engine, name="bench", segments=["*"])
    engine.dispose()
    return token


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _time(conn: http.client.HTTPConnection, paths: list[str], headers: dict) -> list[float]:
    out = []
    for path in paths:
        began = time.perf_counter()
        conn.request("GET", path, headers=headers)
        answer = conn.getresponse()
        answer.read()
        out.append((time.perf_counter() - began) * 1000)
        if answer.status != 200:
            raise RuntimeError(f"{path} answered {answer.status}")
    return out


def run_api_bench(*, members: int = 1_000_000, requests: int = 2000) -> list[Latency]:
    """Build the store, serve it from another process, time lookups and the peer."""
    folder = Path(tempfile.mkdtemp(prefix="segops-api-bench-"))
    url = f"sqlite:///{folder / 'api.db'}"
    token = _store(url, members)
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": url}
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from cli.app import script; script()",
            "serve",
            "--no-slack",
            "--port",
            str(port),
            "--threads",
            "4",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the API server did not start") from None
                time.sleep(0.1)
        rng = random.Random(1)
        keys = [f"C{rng.randrange(members * 2):07d}" for _ in range(requests)]
        headers = {"Authorization": f"Bearer {token}"}
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        _time(
            conn,
            ["/healthz"] * 50 + [f"/api/v1/segments/everyone/members/{k}" for k in keys[:50]],
            headers,
        )
        figures = []
        for name, paths in (
            ("healthz (peer)", ["/healthz"] * requests),
            ("is member", [f"/api/v1/segments/everyone/members/{k}" for k in keys]),
            ("segments of", [f"/api/v1/entities/{k}/segments" for k in keys]),
        ):
            ms = _time(conn, paths, headers)
            figures.append(Latency(name, len(ms), statistics.median(ms), _percentile(ms, 99)))
        conn.close()
        return figures
    finally:
        server.terminate()
        server.wait(timeout=10)
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()


def print_api_bench(figures: list[Latency], console, *, members: int) -> None:
    """The latency table, each lookup as a ratio of the bare request measured with it."""
    from rich.table import Table

    peer = figures[0]
    table = Table(
        title=f"Membership API, {members:,}-member segment, separate client process",
        title_justify="left",
    )
    for col in ("request", "requests", "p50 ms", "p99 ms", "p99 vs healthz"):
        table.add_column(col, justify="right" if col != "request" else "left")
    for f in figures:
        ratio = f.p99_ms / peer.p99_ms if peer.p99_ms else float("nan")
        table.add_row(
            f.name, f"{f.requests:,}", f"{f.p50_ms:.2f}", f"{f.p99_ms:.2f}", f"{ratio:.1f}x"
        )
    console.print(table)

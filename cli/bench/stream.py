"""``segops bench --stream``: live segments under a steady stream of events.

One run, all on this machine:

1. writes ``customers`` accounts and a workspace of ``segments`` live segments (counts and
   sums over 1, 7 and 30 days, days since, plan) into a temporary folder, applies it to a
   fresh SQLite database and times one batch refresh over the same accounts (the peer);
2. starts ``segops stream`` (the consumer) and ``segops stream http`` (``POST /events``)
   as their own processes, and a *separate producer process* that posts batches of 50
   events at ``rate`` events per second for ``duration`` seconds;
3. waits for the consumer to drain, then reads from the store, for every applied event,
   the time from *accepted* (the endpoint put it on the log) to *recorded* (the
   transaction that updated the state and the memberships) and prints events per second
   sustained, p50/p95/p99 of that latency, the consumer's resident memory a tenth into
   the run and at its end, and the batch refresh time measured in the same run.

The full figure of the target is ``segops bench --stream --customers 1000000 --segments 20
--rate 1000 --duration 600``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from rich.console import Console
from rich.table import Table

TOKEN = "bench-token"
BATCH = 50
EVENTS = ("login", "purchase", "view")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rules(segments: int) -> list[str]:
    shapes = [
        "logins_7d >= {a}",
        "plan = 'pro' and spend_30d > {b}",
        "days_since_login <= {c}",
        "views_1d >= {a} or logins_7d >= {d}",
        "plan in ('team', 'pro') and seats >= {e} and logins_7d >= 1",
        "spend_30d > {b} and days_since_login <= {c}",
    ]
    out = []
    for i in range(segments):
        k = i // len(shapes)
        out.append(shapes[i % len(shapes)].format(a=1 + k, b=50 * (k + 1), c=k, d=3 + k, e=5 + k))
    return out


def write_workspace(root: Path, customers: int, segments: int) -> Path:
    rng = np.random.default_rng(21)
    keys = [f"A{i:07d}" for i in range(customers)]
    pd.DataFrame(
        {
            "account_id": keys,
            "plan": rng.choice(["free", "team", "pro"], customers),
            "seats": rng.integers(1, 60, customers),
        }
    ).to_csv(root / "crm.csv", index=False)
    yesterday = datetime.now(UTC).replace(tzinfo=None).isoformat()
    (root / "events.csv").write_text(
        f"account_id,ts,event,value\n{keys[0]},{yesterday},view,\n", encoding="utf-8"
    )
    data = {
        "sources": {
            "crm": {
                "kind": "entity",
                "path": "crm.csv",
                "id": "account_id",
                "columns": {"plan": "string", "seats": "number"},
            },
            "product": {
                "kind": "events",
                "path": "events.csv",
                "id": "account_id",
                "timestamp": "ts",
                "event": "event",
                "value": "value",
            },
        },
        "features": {
            "logins_7d": {"source": "product", "event": "login", "agg": "count", "window_days": 7},
            "views_1d": {"source": "product", "event": "view", "agg": "count", "window_days": 1},
            "spend_30d": {
                "source": "product",
                "event": "purchase",
                "agg": "sum",
                "window_days": 30,
            },
            "days_since_login": {"source": "product", "event": "login", "agg": "days_since"},
        },
        "segments": [
            {
                "name": f"live-{i:02d}",
                "title": f"Live {i}",
                "owner": "U0BENCH01",
                "cadence": "live",
                "rule": rule,
            }
            for i, rule in enumerate(_rules(segments))
        ],
    }
    path = root / "workspace.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def produce(url: str, customers: int, rate: float, duration: float, seed: int) -> dict[str, Any]:
    """Post batches of events at ``rate`` per second for ``duration`` seconds (a process)."""
    rng = np.random.default_rng(seed)
    statuses: dict[int, int] = {}
    sent = 0
    lock = threading.Lock()
    interval = BATCH / rate
    start = time.monotonic()
    ticks = iter(range(10**9))

    def worker() -> None:
        nonlocal sent
        while True:
            with lock:
                tick = next(ticks)
            due = start + tick * interval
            if due - start >= duration:
                return
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            now = datetime.now(UTC).isoformat()
            with lock:
                entities = rng.integers(0, customers, BATCH)
                names = rng.integers(0, len(EVENTS), BATCH)
                values = rng.integers(1, 200, BATCH)
            events = [
                {
                    "id": f"{seed}-{tick}-{j}",
                    "entity": f"A{int(entities[j]):07d}",
                    "event": EVENTS[int(names[j])],
                    "ts": now,
                    "value": int(values[j]),
                }
                for j in range(BATCH)
            ]
            body = json.dumps({"events": events}).encode()
            request = urllib.request.Request(
                url,
                data=body,
                headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
                method="POST",
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as answer:
                    status = answer.status
            except urllib.error.HTTPError as error:
                status = error.code
            except OSError:
                status = 0
            with lock:
                statuses[status] = statuses.get(status, 0) + 1
                if status == 202:
                    sent += BATCH

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"sent": sent, "statuses": statuses, "seconds": time.monotonic() - start}


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _wait_http(url: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(urllib.request.Request(url, method="GET"), timeout=1)
        except urllib.error.HTTPError:
            return  # it answers (405 for a GET)
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the events endpoint did not start")


def _percentile(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def run_stream_bench(
    *, customers: int, segments: int, rate: float, duration: float, console: Console
) -> dict[str, Any]:
    """Run the stream benchmark and print its table; returns the figures."""
    from sqlalchemy import select

    from commands.catalog import apply_workspace
    from commands.refresh import refresh
    from segments.workspace import load_workspace
    from store.db import make_engine, session_scope, upgrade
    from store.models import LiveEvent, LiveSegment, LiveTransition
    from stream.log import EventLog

    root = Path(tempfile.mkdtemp(prefix="segops-stream-bench-"))
    stream_name = f"segops:bench:{uuid.uuid4().hex[:8]}"
    url = f"sqlite:///{root / 'segops.db'}"
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "SEGOPS_WORKSPACE": str(root / "workspace.yaml"),
        "SEGOPS_STREAM": stream_name,
        "SEGOPS_EVENTS_TOKEN": TOKEN,
    }
    redis_url = env.get("SEGOPS_REDIS_URL", "redis://127.0.0.1:6379/0")
    children: list[subprocess.Popen] = []
    figures: dict[str, Any] = {"customers": customers, "segments": segments, "rate": rate}
    try:
        path = write_workspace(root, customers, segments)
        engine = make_engine(url)
        upgrade(engine)
        ws = load_workspace(path)
        apply_workspace(engine, ws, reason="bench", author="bench")
        started = time.perf_counter()
        refresh(engine, ws, as_of=datetime.now(UTC).date(), notify=False)
        figures["batch_refresh_s"] = time.perf_counter() - started
        console.print(
            f"batch refresh of {customers:,} accounts: {figures['batch_refresh_s']:.1f} s"
        )

        command = [sys.executable, "-m", "cli.app"]
        consumer = subprocess.Popen(
            [*command, "stream", "--name", "bench"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(root / "consumer.log", "w"),  # noqa: SIM115
        )
        children.append(consumer)
        port = _free_port()
        children.append(
            subprocess.Popen(
                [*command, "stream", "http", "--port", str(port)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=open(root / "http.log", "w"),  # noqa: SIM115
            )
        )
        events_url = f"http://127.0.0.1:{port}/events"
        deadline = time.monotonic() + 300
        _wait_http(events_url, deadline)
        while time.monotonic() < deadline:
            with session_scope(engine) as session:
                built = session.execute(
                    select(LiveSegment).where(LiveSegment.built_version_id.is_not(None))
                ).all()
            if len(built) >= segments:
                break
            if consumer.poll() is not None:
                raise RuntimeError(f"the consumer stopped: see {root / 'consumer.log'}")
            time.sleep(0.5)
        console.print(f"consumer ready (rss {_rss_mb(consumer.pid):.0f} MB); producing")

        samples: list[tuple[float, float]] = []
        stop = threading.Event()

        def sample() -> None:
            begin = time.monotonic()
            while not stop.wait(1.0):
                samples.append((time.monotonic() - begin, _rss_mb(consumer.pid)))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        with get_context("spawn").Pool(1) as pool:
            produced = pool.apply(produce, (events_url, customers, rate, duration, 7))
        log = EventLog.from_url(redis_url, stream_name)
        drain_deadline = time.monotonic() + 120
        while time.monotonic() < drain_deadline:
            with session_scope(engine) as session:
                applied = session.execute(select(LiveEvent.event_id)).all()
            if len(applied) >= produced["sent"] and log.status().get("pending", 0) == 0:
                break
            time.sleep(0.5)
        stop.set()
        sampler.join()
        with session_scope(engine) as session:
            rows = session.execute(select(LiveEvent.accepted_at, LiveEvent.applied_at)).all()
            transitions = session.execute(select(LiveTransition.id)).all()
        accepted = np.array([a.timestamp() for a, _ in rows])
        recorded = np.array([b.timestamp() for _, b in rows])
        latency = (recorded - accepted) * 1000
        span = recorded.max() - accepted.min() if len(rows) else float("nan")
        early = [m for t, m in samples if t >= duration * 0.1]
        figures.update(
            sent=produced["sent"],
            statuses=produced["statuses"],
            applied=len(rows),
            transitions=len(transitions),
            events_per_s=len(rows) / span if span else float("nan"),
            offered_per_s=produced["sent"] / produced["seconds"],
            p50_ms=_percentile(latency, 50),
            p95_ms=_percentile(latency, 95),
            p99_ms=_percentile(latency, 99),
            rss_early_mb=early[0] if early else float("nan"),
            rss_end_mb=samples[-1][1] if samples else float("nan"),
        )
        log.delete()
        _print(console, figures)
        return figures
    finally:
        for child in children:
            if child.poll() is None:
                child.terminate()
                try:
                    child.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    child.kill()
        shutil.rmtree(root, ignore_errors=True)


def _print(console: Console, f: dict[str, Any]) -> None:
    table = Table(
        title=(
            f"Live segments: {f['customers']:,} accounts, {f['segments']} live segments, "
            f"offered {f['offered_per_s']:,.0f} events/s"
        ),
        title_justify="left",
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("events accepted / applied", f"{f['sent']:,} / {f['applied']:,}")
    table.add_row(
        "sustained events/s (first accepted .. last recorded)", f"{f['events_per_s']:,.0f}"
    )
    table.add_row("accepted -> recorded p50", f"{f['p50_ms']:,.0f} ms")
    table.add_row("accepted -> recorded p95", f"{f['p95_ms']:,.0f} ms")
    table.add_row("accepted -> recorded p99", f"{f['p99_ms']:,.0f} ms")
    table.add_row("joins and leaves recorded", f"{f['transitions']:,}")
    table.add_row(
        "consumer memory a tenth in / at the end",
        f"{f['rss_early_mb']:,.0f} / {f['rss_end_mb']:,.0f} MB",
    )
    table.add_row("batch refresh of the same accounts (peer)", f"{f['batch_refresh_s']:,.1f} s")
    ratio = f["batch_refresh_s"] * 1000 / f["p95_ms"] if f["p95_ms"] else float("nan")
    table.add_row("batch refresh time / live p95 latency", f"{ratio:,.2f}x")
    table.add_row("HTTP answers", json.dumps(f["statuses"]))
    console.print(table)

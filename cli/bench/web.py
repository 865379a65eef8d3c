"""Memory of the web process (``segops serve``) while concurrent ``/segment propose`` arrive.

    figures = run_web_bench(customers=200_000, requests=50, console=console)

A scratch workspace (the benchmark's synthetic accounts and tickets, three segments)
is applied to a scratch SQLite database. Then a real ``segops serve`` runs as a child
process, pointed at a local stand-in for Slack's Web API and response URLs, and a
separate client process fires ``requests`` signed ``/segment propose`` commands at
once. The child's resident memory is sampled every 20 ms from ``/proc`` until every
command has had its reply (a post to its response URL), then once more after the
process has settled. The peer measured in the same run is the same process idle,
after one ``/segment help``.

The web process only queues the impact previews; a ``segops worker`` child then
drains them, and its peak memory and the time until every preview is measured and
answered are reported too.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from cli.bench.refresh import make_accounts, make_events, make_rules
from cli.bench.slack import _StubWebApi, ack_latency

SECRET = "bench-signing-secret"
PAGE_MB = 1024.0


def _status_mb(pid: int, field: str) -> float | None:
    """``VmRSS`` or ``VmHWM`` of ``pid`` in MB, or None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / PAGE_MB
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


class _Sampler:
    """Samples a process's resident memory in a thread; keeps the largest value seen."""

    def __init__(self, pid: int, every: float = 0.02) -> None:
        self.pid, self.every = pid, every
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = _status_mb(self.pid, "VmRSS")
            if rss is None:
                return
            self.peak = max(self.peak, rss)
            self._stop.wait(self.every)

    def __enter__(self) -> _Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_listening(port: int, child: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise RuntimeError(f"segops serve exited with {child.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("segops serve did not start listening")


def _segops(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    code = "import sys; from cli.app import main; sys.argv[0] = 'segops'; main()"
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def _stop(child: subprocess.Popen) -> None:
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(20)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _wait(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def run_web_bench(
    *, customers: int, console: Console, requests: int = 50, timeout: float = 600.0
) -> dict[str, Any]:
    """Measure ``segops serve`` under ``requests`` concurrent proposals; print and return."""
    from commands.catalog import apply_workspace
    from segments.workspace import load_workspace
    from store.db import make_engine, upgrade

    root = Path(tempfile.mkdtemp(prefix="segops-bench-web-"))
    stub = _StubWebApi()
    threading.Thread(target=stub.serve_forever, daemon=True).start()
    figures: dict[str, Any] = {"customers": customers, "requests": requests}
    try:
        accounts = make_accounts(customers)
        accounts.to_parquet(root / "accounts.parquet", index=False)
        make_events(accounts, 2.0).to_parquet(root / "tickets.parquet", index=False)
        del accounts
        from cli.bench.refresh import _workspace

        rule_texts = make_rules(3)
        (root / "workspace.yaml").write_text(yaml.safe_dump(_workspace(root, rule_texts)))
        url = f"sqlite:///{root / 'bench.db'}"
        engine = make_engine(url)
        upgrade(engine)
        apply_workspace(engine, load_workspace(root / "workspace.yaml"), reason="bench", author="b")
        engine.dispose()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "SEGOPS_"))},
            "DATABASE_URL": url,
            "SEGOPS_WORKSPACE": str(root / "workspace.yaml"),
            "SLACK_BOT_TOKEN": "xoxb-bench",
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": stub.url,
        }
        port = _free_port()
        events_url = f"http://127.0.0.1:{port}/slack/events"
        web = _segops(["serve", "--port", str(port)], env, root / "web.log")
        try:
            _wait_listening(port, web)
            replies = stub.url + "response"
            with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as client:
                client.submit(
                    ack_latency, events_url, SECRET, requests=2, response_url=replies
                ).result()
                time.sleep(1.0)
                figures["idle_mb"] = _status_mb(web.pid, "VmRSS")
                before = stub.count("/response")
                text = f"propose bench-000 rule: {rule_texts[1]} reason: bench"
                started = time.perf_counter()
                with _Sampler(web.pid) as sampler:
                    acks = client.submit(
                        ack_latency,
                        events_url,
                        SECRET,
                        requests=requests,
                        text=text,
                        response_url=replies,
                        timeout=30.0,
                    ).result()
                    answered = _wait(lambda: stub.count("/response") - before >= requests, timeout)
                    figures["replies_s"] = time.perf_counter() - started
                    time.sleep(2.0)
                figures["answered"] = answered
                figures["acks"] = acks
                figures["peak_mb"] = sampler.peak
                figures["end_mb"] = _status_mb(web.pid, "VmRSS")
                figures["hwm_mb"] = _status_mb(web.pid, "VmHWM")
        finally:
            _stop(web)
        figures.update(_drain(env, root, url, requests, timeout))
    finally:
        stub.shutdown()
        shutil.rmtree(root, ignore_errors=True)
    _print(figures, console)
    return figures


def _drain(env: dict[str, str], root: Path, url: str, requests: int, timeout: float) -> dict:
    """Run ``segops worker`` until the work the web process queued is done and answered."""
    from commands.queue import outstanding
    from store.db import make_engine

    engine = make_engine(url)
    try:
        if not outstanding(engine):
            return {}
        worker = _segops(["worker"], env, root / "worker.log")
        started = time.perf_counter()
        try:
            with _Sampler(worker.pid) as sampler:
                done = _wait(lambda: outstanding(engine) == 0, timeout)
            return {
                "drained": done,
                "drain_s": time.perf_counter() - started,
                "worker_peak_mb": sampler.peak,
            }
        finally:
            _stop(worker)
    finally:
        engine.dispose()


def _print(figures: dict[str, Any], console: Console) -> None:
    table = Table(title=f"segops serve under {figures['requests']} concurrent /segment propose")
    table.add_column("measure")
    table.add_column("figure", justify="right")
    idle, peak = figures.get("idle_mb") or 0.0, figures.get("peak_mb") or 0.0
    table.add_row("customers", f"{figures['customers']:,}")
    table.add_row("web RSS idle (peer)", f"{idle:,.0f} MB")
    table.add_row("web RSS peak", f"{peak:,.0f} MB ({peak / idle:.2f}x idle)" if idle else "-")
    table.add_row("web RSS after", f"{figures.get('end_mb') or 0:,.0f} MB")
    table.add_row("acks", str(figures.get("acks")))
    answered = "all" if figures.get("answered") else "NOT all"
    table.add_row("replies", f"{answered} in {figures.get('replies_s', 0):.1f} s")
    if "drain_s" in figures:
        state = "drained" if figures["drained"] else "NOT drained"
        table.add_row(
            "worker",
            f"{state} in {figures['drain_s']:.1f} s, peak {figures['worker_peak_mb']:,.0f} MB",
        )
    console.print(table)

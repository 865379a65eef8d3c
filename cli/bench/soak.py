"""``segops bench --soak SECONDS``: web, worker and CLI side by side, then an integrity report.

    report = run_soak(seconds=30, console=console, pg_url=None)

On a scratch database (a SQLite file, and a scratch PostgreSQL database when
``DATABASE_URL`` names a PostgreSQL server) with a small synthetic workspace, a real
``segops serve`` and a real ``segops worker`` run as child processes against a local
stand-in for Slack. For ``SECONDS`` seconds, about 15 requests a second arrive as
Slack would send them: ``/feedback`` notes, ``/segment propose`` and
``/segment refresh``; meanwhile the command line applies a changed rule every 5 s and
refreshes every 10 s. Then the queue is left to drain and the report checks:

* every feedback confirmed to its author is stored (and those not stored were told so);
* every segment's current version is its latest (no change reverted by a refresh);
* every queued job was run and answered (none lost);
* no process printed a traceback, and each process's memory at start and end.

Everything stays on 127.0.0.1; the run is bounded by ``SECONDS`` plus the drain.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pandas as pd
import yaml
from rich.console import Console
from rich.table import Table
from slack_sdk.signature import SignatureVerifier

from cli.bench.refresh import AS_OF, _workspace, make_accounts, make_events, make_rules
from cli.bench.slack import _StubWebApi
from cli.bench.web import SECRET, _free_port, _segops, _status_mb, _stop, _wait, _wait_listening

RATE = 15.0  # requests per second from "Slack"
APPLY_EVERY = 5.0
CLI_REFRESH_EVERY = 10.0
SLACK_REFRESH_EVERY = 5.0
SEGMENTS = 10
CUSTOMERS = 5000
DRAIN = 180.0  # seconds the queue may take to drain afterwards


def _post(url: str, text: str, *, command: str, user: str, response_url: str) -> int:
    body = urlencode(
        {
            "team_id": "T111",
            "channel_id": "C111",
            "user_id": user,
            "command": command,
            "text": text,
            "response_url": response_url,
            "trigger_id": "1.111.soak",
        }
    ).encode()
    ts = str(int(time.time()))
    signature = SignatureVerifier(SECRET).generate_signature(timestamp=ts, body=body) or ""
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
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            answer.read()
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


def _scratch_pg(pg_url: str) -> tuple[str, Any]:
    """A new database on ``pg_url``'s server; (its URL, a function that drops it)."""
    from sqlalchemy import create_engine

    from store.db import normalise_url

    admin_url = normalise_url(pg_url)
    name = f"segops_soak_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

    return admin_url.set(database=name).render_as_string(hide_password=False), drop


def run_soak(*, seconds: int, console: Console, pg_url: str | None = None) -> list[dict]:
    """Soak SQLite (and PostgreSQL when ``pg_url`` is given); print and return the reports."""
    reports = []
    for backend in ("sqlite", "postgresql") if pg_url else ("sqlite",):
        root = Path(tempfile.mkdtemp(prefix=f"segops-soak-{backend}-"))
        drop = None
        try:
            if backend == "sqlite":
                url = f"sqlite:///{root / 'soak.db'}"
            else:
                assert pg_url is not None
                url, drop = _scratch_pg(pg_url)
            reports.append({"backend": backend, **_soak(url, root, seconds)})
        finally:
            if drop is not None:
                drop()
            shutil.rmtree(root, ignore_errors=True)
    _print(reports, console)
    return reports


def _soak(url: str, root: Path, seconds: int) -> dict[str, Any]:
    from commands.catalog import apply_workspace
    from segments.workspace import load_workspace
    from store.db import make_engine, upgrade

    accounts = make_accounts(CUSTOMERS)
    tickets = make_events(accounts, 2.0)
    shift = pd.Timestamp(date.today()) - pd.Timestamp(AS_OF)  # fresh data for today's refreshes
    accounts["updated_at"] = accounts["updated_at"] + shift
    tickets["ts"] = tickets["ts"] + shift
    accounts.to_parquet(root / "accounts.parquet", index=False)
    tickets.to_parquet(root / "tickets.parquet", index=False)
    rules = make_rules(SEGMENTS)
    spec = _workspace(root, rules)
    for segment in spec["segments"]:
        segment["channel"] = "C111"
    path = root / "workspace.yaml"
    path.write_text(yaml.safe_dump(spec))
    engine = make_engine(url)
    upgrade(engine)
    apply_workspace(engine, load_workspace(path), reason="soak", author="U0SOAK")

    stub = _StubWebApi()
    threading.Thread(target=stub.serve_forever, daemon=True).start()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "SEGOPS_"))},
        "DATABASE_URL": url,
        "SEGOPS_WORKSPACE": str(path),
        "SLACK_BOT_TOKEN": "xoxb-soak",
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": stub.url,
    }
    port = _free_port()
    events = f"http://127.0.0.1:{port}/slack/events"
    web = _segops(["serve", "--port", str(port)], env, root / "web.log")
    worker = _segops(["worker"], env, root / "worker.log")
    cli_runs: list[tuple[str, int, str]] = []
    sent: dict[str, int] = {"feedback": 0, "propose": 0, "refresh": 0}
    statuses: dict[int, int] = {}
    try:
        _wait_listening(port, web)
        time.sleep(1.0)
        memory = {"web_start_mb": _status_mb(web.pid, "VmRSS")}
        memory["worker_start_mb"] = _status_mb(worker.pid, "VmRSS")
        started = time.monotonic()
        stop = threading.Event()
        cli = threading.Thread(
            target=_cli_loop, args=(env, path, spec, root, stop, cli_runs), daemon=True
        )
        cli.start()
        lock = threading.Lock()

        def one(index: int) -> None:
            name = f"bench-{index % SEGMENTS:03d}"
            user = f"U{index % 40:04d}"
            if index % int(RATE * SLACK_REFRESH_EVERY) == 0:
                kind, text = "refresh", f"refresh {name}"
            elif index % 15 == 7:
                kind, text = "propose", f"propose {name} rule: seats >= {index % 400} reason: soak"
            else:
                kind, text = "feedback", f"{name} soak note {index} from the field"
            command = "/feedback" if kind == "feedback" else "/segment"
            status = _post(
                events, text, command=command, user=user, response_url=f"{stub.url}response/{index}"
            )
            with lock:
                sent[kind] += 1
                statuses[status] = statuses.get(status, 0) + 1

        with ThreadPoolExecutor(max_workers=16) as pool:
            index = 0
            while time.monotonic() - started < seconds:
                pool.submit(one, index)
                index += 1
                time.sleep(max(0.0, started + index / RATE - time.monotonic()))
        stop.set()
        cli.join(120)
        from commands.queue import outstanding

        drained = _wait(lambda: outstanding(engine) == 0, DRAIN)
        time.sleep(2.0)
        memory["web_end_mb"] = _status_mb(web.pid, "VmRSS")
        memory["worker_end_mb"] = _status_mb(worker.pid, "VmRSS")
    finally:
        _stop(web)
        _stop(worker)
        stub.shutdown()
    report = _integrity(engine, stub, root, sent, statuses, cli_runs, drained)
    engine.dispose()
    return {**report, **memory, "seconds": seconds}


def _cli_loop(
    env: dict[str, str],
    path: Path,
    spec: dict[str, Any],
    root: Path,
    stop: threading.Event,
    runs: list[tuple[str, int, str]],
) -> None:
    """The command line beside the app: a changed rule applied every 5 s, a refresh every 10 s."""
    last_refresh = time.monotonic()
    turn = 0
    while not stop.wait(APPLY_EVERY):
        turn += 1
        segment = spec["segments"][turn % SEGMENTS]
        segment["rule"] = re.sub(r"seats >= \d+", f"seats >= {turn}", segment["rule"])
        if f"seats >= {turn}" not in segment["rule"]:
            segment["rule"] = f"({segment['rule']}) and seats >= {turn}"
        path.write_text(yaml.safe_dump(spec))
        runs.append(_cli(env, ["apply", str(path), "--reason", f"soak {turn}"], root, "apply"))
        if time.monotonic() - last_refresh >= CLI_REFRESH_EVERY:
            last_refresh = time.monotonic()
            runs.append(_cli(env, ["refresh"], root, "refresh"))


def _cli(env: dict[str, str], args: list[str], root: Path, kind: str) -> tuple[str, int, str]:
    log = root / f"cli-{kind}-{time.monotonic_ns()}.log"
    child = _segops(args, env, log)
    child.wait(300)
    return kind, child.returncode, log.read_text(errors="replace")


def _integrity(engine, stub, root, sent, statuses, cli_runs, drained) -> dict[str, Any]:
    from sqlalchemy import func, select

    from store.db import session_scope
    from store.models import Feedback, Job, Segment, SegmentVersion

    with stub._lock:
        answers = list(stub.answers)
    confirmed = {}
    told_not_saved = 0
    for _path, text in answers:
        found = re.match(r":memo: Logged feedback #(\d+) on `[^`]+`: (.*)", text)
        if found:
            confirmed[int(found.group(1))] = found.group(2)
        elif "was not stored" in text:
            told_not_saved += 1
    with session_scope(engine) as session:
        stored = dict(session.execute(select(Feedback.id, Feedback.text)).all())
        latest = dict(
            session.execute(
                select(SegmentVersion.segment_id, func.max(SegmentVersion.id)).group_by(
                    SegmentVersion.segment_id
                )
            ).all()
        )
        current = dict(session.execute(select(Segment.id, Segment.current_version_id)).all())
        jobs = session.execute(select(Job.kind, Job.status, Job.replied_at)).all()
    acks = {
        "refresh": sum(1 for _p, text in answers if "queued; I'll reply here" in text),
        "preview": sum(1 for _p, text in answers if "Its impact is being measured" in text),
    }
    rows = {kind: sum(1 for k, _s, _r in jobs if k == kind) for kind in acks}
    logs = [p.read_text(errors="replace") for p in root.glob("*.log")]
    logs += [text for _k, _c, text in cli_runs]
    return {
        "sent": dict(sent),
        "statuses": dict(statuses),
        "feedback_confirmed": len(confirmed),
        "feedback_lost": sum(1 for i, t in confirmed.items() if stored.get(i) != t),
        "feedback_told_not_saved": told_not_saved,
        "segments": len(current),
        "segments_reverted": sum(1 for s, v in current.items() if latest.get(s) != v),
        "applies": sum(1 for k, c, _ in cli_runs if k == "apply" and c == 0),
        "cli_refreshes": sum(1 for k, c, _ in cli_runs if k == "refresh" and c == 0),
        "cli_refused": sum(1 for _k, c, _ in cli_runs if c != 0),
        "jobs_acked": sum(acks.values()),
        "jobs_lost": sum(max(0, acks[k] - rows[k]) for k in acks),
        "jobs": len(jobs),
        "jobs_unfinished": sum(1 for _k, status, _r in jobs if status in ("pending", "running")),
        "jobs_failed": sum(1 for _k, status, _r in jobs if status == "failed"),
        "jobs_unanswered": sum(1 for _k, _s, replied in jobs if replied is None),
        "drained": drained,
        "tracebacks": sum(text.count("Traceback") for text in logs),
        "traceback_errors": sorted({e for text in logs for e in _raised(text)})[:5],
    }


def _raised(log: str) -> list[str]:
    """The exception line that ends each traceback in ``log``."""
    found = []
    for block in log.split("Traceback (most recent call last):")[1:]:
        lines = [line for line in block.splitlines() if line and not line.startswith(" ")]
        if lines:
            found.append(lines[0][:160])
    return found


def _print(reports: list[dict], console: Console) -> None:
    table = Table(title="segops bench --soak: integrity")
    table.add_column("measure")
    for report in reports:
        table.add_column(report["backend"], justify="right")

    def row(label: str, render) -> None:
        table.add_row(label, *[render(r) for r in reports])

    row("seconds of load", lambda r: str(r["seconds"]))
    row("Slack requests sent", lambda r: ", ".join(f"{k} {v}" for k, v in r["sent"].items()))
    row("HTTP answers", lambda r: str(r["statuses"]))

    def feedback(r: dict) -> str:
        told = r["feedback_told_not_saved"]
        return f"{r['feedback_confirmed']} / {r['feedback_lost']}" + (
            f" ({told} told not saved)" if told else ""
        )

    row("feedback confirmed / lost", feedback)
    row(
        "CLI applies / refreshes / refused",
        lambda r: f"{r['applies']} / {r['cli_refreshes']} / {r['cli_refused']}",
    )
    row("segments reverted", lambda r: f"{r['segments_reverted']} of {r['segments']}")
    row(
        "jobs acked / lost / unfinished / unanswered / failed",
        lambda r: (
            f"{r['jobs_acked']} / {r['jobs_lost']} / {r['jobs_unfinished']} / "
            f"{r['jobs_unanswered']} / {r['jobs_failed']}"
        ),
    )
    row("tracebacks in any log", lambda r: str(r["tracebacks"]))
    row(
        "web RSS start -> end",
        lambda r: f"{r['web_start_mb'] or 0:,.0f} -> {r['web_end_mb'] or 0:,.0f} MB",
    )
    row(
        "worker RSS start -> end",
        lambda r: f"{r['worker_start_mb'] or 0:,.0f} -> {r['worker_end_mb'] or 0:,.0f} MB",
    )
    console.print(table)
    for report in reports:
        for error in report["traceback_errors"]:
            console.print(f"{report['backend']} traceback: {error}", markup=False)

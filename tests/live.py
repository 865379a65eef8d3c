"""A small live workspace for command, consumer and endpoint tests.

Accounts ``a0`` .. ``a5`` (plans pro, free, pro, team, pro, free). The events file starts
with one ``view`` event. Segments::

    active   live    logins_7d >= 2                    (login count over 7 days)
    buyers   live    plan = 'pro' and spend_30d > 50   (purchase sum over 30 days)
    pros     weekly  plan = 'pro'                      (batch: not live)

``LiveSetup.applied(engine)`` applies the workspace and runs one batch refresh (which
assigns the dense ids the live path uses).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Engine

from commands.catalog import apply_workspace
from commands.live import Incoming
from commands.refresh import refresh
from segments.workspace import Workspace, load_workspace

PLANS = {"a0": "pro", "a1": "free", "a2": "pro", "a3": "team", "a4": "pro", "a5": "free"}
OWNER = "U0OWNER1"


def workspace_data() -> dict[str, Any]:
    return {
        "sources": {
            "crm": {
                "kind": "entity",
                "path": "crm.csv",
                "id": "account_id",
                "columns": {"plan": "string"},
            },
            "product": {
                "kind": "events",
                "path": "events.csv",
                "id": "account_id",
                "timestamp": "ts",
                "event": "event",
                "value": "value",
                "quality": {"max_age_days": 1000, "max_row_change": 1000},
            },
        },
        "features": {
            "logins_7d": {"source": "product", "event": "login", "agg": "count", "window_days": 7},
            "spend_30d": {
                "source": "product",
                "event": "purchase",
                "agg": "sum",
                "window_days": 30,
            },
        },
        "segments": [
            {
                "name": "active",
                "title": "Active",
                "owner": OWNER,
                "cadence": "live",
                "rule": "logins_7d >= 2",
            },
            {
                "name": "buyers",
                "title": "Buyers",
                "owner": OWNER,
                "cadence": "live",
                "rule": "plan = 'pro' and spend_30d > 50",
            },
            {
                "name": "pros",
                "title": "Pros",
                "owner": OWNER,
                "cadence": "weekly",
                "rule": "plan = 'pro'",
            },
        ],
    }


@dataclass
class LiveSetup:
    folder: Path
    now: datetime

    @property
    def path(self) -> Path:
        return self.folder / "workspace.yaml"

    def workspace(self) -> Workspace:
        return load_workspace(self.path)

    def write_events(self, rows: list[dict[str, Any]]) -> None:
        """The batch side's events file: the first ``view`` plus ``rows`` (event dicts)."""
        lines = ["account_id,ts,event,value"]
        first = self.now - timedelta(days=2)
        lines.append(f"a0,{first.replace(tzinfo=None).isoformat()},view,")
        for row in rows:
            ts = datetime.fromisoformat(row["ts"]).astimezone(UTC).replace(tzinfo=None)
            value = "" if row.get("value") is None else row["value"]
            lines.append(f"{row['entity']},{ts.isoformat()},{row['event']},{value}")
        (self.folder / "events.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")

    def applied(self, engine: Engine) -> Workspace:
        ws = self.workspace()
        apply_workspace(engine, ws, reason="set up", author="test")
        refresh(engine, ws, as_of=self.now.date(), notify=False)
        return ws


def build(tmp_path: Path, now: datetime | None = None) -> LiveSetup:
    folder = tmp_path / "live-ws"
    folder.mkdir()
    crm = "account_id,plan\n" + "".join(f"{k},{v}\n" for k, v in PLANS.items())
    (folder / "crm.csv").write_text(crm, encoding="utf-8")
    setup = LiveSetup(folder, now or datetime.now(UTC))
    (folder / "workspace.yaml").write_text(yaml.safe_dump(workspace_data()), encoding="utf-8")
    setup.write_events([])
    return setup


def event(
    event_id: str,
    entity: str,
    name: str,
    ts: datetime,
    value: float | None = None,
) -> dict[str, Any]:
    return {"id": event_id, "entity": entity, "event": name, "ts": ts.isoformat(), "value": value}


def incoming(*events: dict[str, Any] | str, at: datetime | None = None) -> list[Incoming]:
    when = at or datetime.now(UTC)
    return [
        Incoming(e if isinstance(e, str) else json.dumps(e), when, f"{i}-0")
        for i, e in enumerate(events)
    ]

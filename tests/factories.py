"""A small, deterministic workspace with CSV data, for command and end-to-end tests.

``build(tmp_path)`` writes under ``tmp_path/ws``::

    workspace.yaml     sources crm (entity) and product (events), two features, and
                       four segments (below)
    data/crm.csv       account_id, plan, seats, region, created_at, updated_at
    data/events.csv    account_id, ts, event (login | report), value

Accounts ``A0001``..``A0200`` (``accounts=`` changes the count). Every value comes
from one ``numpy.random.default_rng(seed)``, so the same arguments give the same
files. Events cover the 120 days up to ``END`` with at least one event a day, and
every account's ``updated_at`` is within a day of ``END``, so a refresh at any date
from ``START`` to ``END`` passes the freshness gate. About one account in ten is
created inside that window, so sizes grow between refreshes.

Segments (owner ``OWNER``, approver ``APPROVER``; ``PROPOSER`` is neither)::

    enterprise     core       plan = 'enterprise' or seats >= 50    kpis [seats]
    trial          tactical   plan = 'trial'
    engaged-trial  tactical   in_segment("trial") and logins_30d >= 4
    smb            strategic  plan in ('starter', 'pro') and seats < 50

Use ``fx.apply(engine)`` and ``fx.refresh(engine, as_of)``; change ``fx.crm`` or
``fx.events`` and call ``fx.write_data()`` to move the data, or pass ``segments=``
(workspace segment dicts) to ``build`` for another catalog.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from sqlalchemy import Engine

OWNER = "U111"
APPROVER = "U222"
PROPOSER = "U333"
CHANNEL = "C111"
END = date(2026, 3, 31)
START = END - timedelta(days=60)
AS_OF = END
HISTORY_DAYS = 120
PLANS = ("trial", "starter", "pro", "enterprise")
PLAN_WEIGHTS = (0.25, 0.35, 0.28, 0.12)
REGIONS = ("NA", "EMEA", "APAC")

SOURCES: dict[str, Any] = {
    "crm": {
        "kind": "entity",
        "path": "data/crm.csv",
        "id": "account_id",
        "created": "created_at",
        "timestamp": "updated_at",
        "columns": {
            "plan": "string",
            "seats": "number",
            "region": "string",
            "created_at": "date",
        },
    },
    "product": {
        "kind": "events",
        "path": "data/events.csv",
        "id": "account_id",
        "timestamp": "ts",
        "event": "event",
        "value": "value",
    },
}
FEATURES: dict[str, Any] = {
    "logins_30d": {"source": "product", "event": "login", "agg": "count", "window_days": 30},
    "days_since_login": {"source": "product", "event": "login", "agg": "days_since"},
}


def _segment(name: str, title: str, tier: str, rule: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "title": title,
        "tier": tier,
        "owner": OWNER,
        "approvers": [APPROVER],
        "channel": CHANNEL,
        "rule": rule,
        **extra,
    }


SEGMENTS: list[dict[str, Any]] = [
    _segment(
        "enterprise",
        "Enterprise accounts",
        "core",
        "plan = 'enterprise' or seats >= 50",
        kpis=["seats"],
        purpose="The accounts that carry the revenue.",
        data_sources=["crm"],
        persona={
            "summary": "Large teams on annual contracts with a security review.",
            "goals": ["Roll out to every team"],
            "pains": ["Procurement takes a quarter"],
            "objections": ["We need SSO first"],
            "value_propositions": ["SSO and audit logs included"],
            "talking_points": ["Lead with the admin console"],
            "discovery_questions": ["Who signs off on security?"],
        },
    ),
    _segment("trial", "Trials", "tactical", "plan = 'trial'", data_sources=["crm"]),
    _segment(
        "engaged-trial",
        "Engaged trials",
        "tactical",
        'in_segment("trial") and logins_30d >= 4',
        data_sources=["crm", "product"],
    ),
    _segment(
        "smb",
        "Small and mid-size",
        "strategic",
        "plan in ('starter', 'pro') and seats < 50",
        kpis=["seats"],
        data_sources=["crm"],
    ),
]


def make_crm(accounts: int, rng: np.random.Generator) -> pd.DataFrame:
    """One row per account; seats follow the plan, one in ten is created late."""
    plan = rng.choice(PLANS, size=accounts, p=PLAN_WEIGHTS)
    base = {"trial": 2, "starter": 5, "pro": 20, "enterprise": 80}
    seats = np.array([base[p] for p in plan]) * rng.uniform(0.5, 1.8, size=accounts)
    seats = np.maximum(1, seats.round()).astype(int)
    old = rng.integers(200, 900, size=accounts)
    late = rng.random(accounts) < 0.1
    new = rng.integers(0, (END - START).days, size=accounts)
    created = [
        (START + timedelta(days=int(n))) if is_late else (START - timedelta(days=int(o)))
        for o, n, is_late in zip(old, new, late, strict=True)
    ]
    updated = [
        datetime.combine(END, time(0)) - timedelta(minutes=int(m))
        for m in rng.integers(0, 24 * 60, size=accounts)
    ]
    return pd.DataFrame(
        {
            "account_id": [f"A{i:04d}" for i in range(1, accounts + 1)],
            "plan": plan,
            "seats": seats,
            "region": rng.choice(REGIONS, size=accounts),
            "created_at": [d.isoformat() for d in created],
            "updated_at": [t.isoformat(sep=" ") for t in updated],
        }
    )


def make_events(crm: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Logins and reports over the last HISTORY_DAYS, plus one login every day."""
    first = pd.Timestamp(END - timedelta(days=HISTORY_DAYS - 1))
    end = pd.Timestamp(END)
    rate = crm["plan"].map({"trial": 0.12, "starter": 0.08, "pro": 0.2, "enterprise": 0.3})
    since = pd.to_datetime(crm["created_at"]).clip(lower=first)
    days = ((end - since).dt.days + 1).to_numpy()
    counts = rng.poisson(rate.to_numpy() * days)
    owner = np.repeat(np.arange(len(crm)), counts)
    offset = (rng.random(len(owner)) * days[owner]).astype(int)
    minute = rng.integers(0, 24 * 60, size=len(owner))
    ts = since.to_numpy()[owner] + offset.astype("timedelta64[D]") + minute.astype("timedelta64[m]")
    kind = np.where(rng.random(len(owner)) < 0.8, "login", "report")
    beat = np.arange(HISTORY_DAYS)  # a heartbeat login keeps every day fresh
    ids = crm["account_id"].to_numpy()
    events = pd.DataFrame(
        {
            "account_id": np.concatenate([ids[owner], ids[beat % len(ids)]]),
            "ts": np.concatenate(
                [
                    ts,
                    first.to_datetime64() + beat.astype("timedelta64[D]") + np.timedelta64(12, "h"),
                ]
            ),
            "event": np.concatenate([kind, np.full(HISTORY_DAYS, "login")]),
            "value": 1,
        }
    )
    events["ts"] = pd.to_datetime(events["ts"]).dt.strftime("%Y-%m-%d %H:%M:%S")
    return events.sort_values(["ts", "account_id"], kind="stable").reset_index(drop=True)


@dataclass
class Factory:
    """The files of one test workspace and the frames they were written from."""

    root: Path
    crm: pd.DataFrame
    events: pd.DataFrame
    segments: list[dict[str, Any]] = field(default_factory=lambda: copy.deepcopy(SEGMENTS))
    quality: dict[str, Any] = field(default_factory=dict)
    _ws: Any = field(default=None, repr=False)

    @property
    def path(self) -> Path:
        return self.root / "workspace.yaml"

    def workspace_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "sources": copy.deepcopy(SOURCES),
            "features": copy.deepcopy(FEATURES),
            "segments": copy.deepcopy(self.segments),
        }
        if self.quality:
            data["quality"] = dict(self.quality)
        return data

    def write_workspace(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        self._ws = None
        self.path.write_text(yaml.safe_dump(self.workspace_data(), sort_keys=False))
        return self.path

    def write_data(self) -> None:
        data = self.root / "data"
        data.mkdir(parents=True, exist_ok=True)
        self.crm.to_csv(data / "crm.csv", index=False)
        self.events.to_csv(data / "events.csv", index=False)

    def ws(self):
        """The workspace, loaded and validated from disk (cached until rewritten)."""
        from segments.workspace import load_workspace

        if self._ws is None:
            self._ws = load_workspace(self.path)
        return self._ws

    def segment(self, name: str) -> dict[str, Any]:
        return next(s for s in self.segments if s["name"] == name)

    def crm_at(self, as_of: date) -> pd.DataFrame:
        """CRM rows that exist on ``as_of`` (created on or before it), indexed by id."""
        created = pd.to_datetime(self.crm["created_at"]).dt.date
        return self.crm[created <= as_of].set_index("account_id")

    def apply(self, engine: Engine, *, reason: str | None = "initial catalog", author=OWNER):
        from commands.catalog import apply_workspace

        return apply_workspace(engine, self.ws(), reason=reason, author=author)

    def refresh(self, engine: Engine, as_of: date = AS_OF, **kwargs: Any):
        from commands.refresh import refresh

        return refresh(engine, self.ws(), as_of=as_of, **kwargs)


@lru_cache(maxsize=4)
def _frames(accounts: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    crm = make_crm(accounts, rng)
    return crm, make_events(crm, rng)


def build(
    tmp_path: Path,
    *,
    accounts: int = 200,
    seed: int = 7,
    segments: list[dict[str, Any]] | None = None,
    quality: dict[str, Any] | None = None,
) -> Factory:
    """Write the workspace and its data under ``tmp_path/ws``."""
    crm, events = _frames(accounts, seed)
    fx = Factory(
        root=Path(tmp_path) / "ws",
        crm=crm.copy(),
        events=events.copy(),
        segments=copy.deepcopy(segments if segments is not None else SEGMENTS),
        quality=dict(quality or {}),
    )
    fx.write_workspace()
    fx.write_data()
    return fx


def applied(engine: Engine, tmp_path: Path, **kwargs: Any) -> Factory:
    """``build`` and apply the catalog."""
    fx = build(tmp_path, **kwargs)
    fx.apply(engine)
    return fx


def refreshed(engine: Engine, tmp_path: Path, as_of: date = AS_OF, **kwargs: Any) -> Factory:
    """``build``, apply, and refresh once at ``as_of``."""
    fx = applied(engine, tmp_path, **kwargs)
    fx.refresh(engine, as_of)
    return fx

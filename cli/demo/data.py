"""Deterministic sample data for a small B2B SaaS, with a behaviour shift built in.

``generate(out_dir)`` writes five files (CSV, or Parquet with ``fmt="parquet"``) that the
demo workspace (``cli/demo/workspace.yaml``) reads from ``data/`` beside it;
``install_demo(target)`` writes both, the workspace and its data:

==========  ==================  ======================================================
source      file                columns
==========  ==================  ======================================================
crm         crm.csv             account_id ("A000123"), name, plan (trial | starter |
                                pro | enterprise), industry, employees, size_band,
                                region (NAMER | EMEA | APAC | LATAM), seats,
                                sso_enabled (bool),
                                csm_owner (empty for most small accounts), created_at
                                (date), updated_at (timestamp). One row per account.
people      people.csv          email, account_id, full_name: several e-mails per
                                account, typed by hand (mixed case, stray spaces).
product     product_events.csv  email, ts, event (login | report_created |
                                integration_added | seat_invited | export |
                                api_call), value (calls in an api_call batch, else 1).
                                Keyed by e-mail, often cased unlike people.csv. Trials
                                start with a burst of use, richer for those that buy.
billing     billing_events.csv  account_id, ts, event (trial_started | invoice_paid |
                                payment_failed), amount. Monthly invoices; a failed
                                payment is retried three days later.
support     support_events.csv  account_id, ts, event (ticket_opened |
                                ticket_escalated), priority (1 low .. 4 urgent).
==========  ==================  ======================================================

Event files are sorted by ``ts``; a few account ids in billing and support arrive
lower-cased with spaces around them, so id normalisation matters everywhere. The CRM
file is one snapshot taken at the end of the period: ``plan`` is the final plan, so
time-aware rules lean on events (``paid_invoices_total``, ``days_since_trial_start``).

The data covers ``months`` calendar months from ``start`` (default May-October
2026). The demo refreshes at the ends of the last three months, ``DEMO_AS_OF``
(2026-08-31, 2026-09-30, 2026-10-31), and the behaviour shifts between the first and
the second:

* **Churn wave** - from the first day of month ``months - 1`` (``shift_start``,
  2026-09-01 by default) about 70% of the established ``pro`` accounts in ``EMEA`` and
  a third of the ``enterprise`` ones (heavier users more often) nearly stop using the
  product: logins fall by 92%, reports, exports and invitations by 80%, API calls by
  40%; 80% of their invoices fail and three in four retries fail again; they open a
  burst of support tickets. Churn risk, dormant, at-risk enterprise and support-heavy
  swell; power users and expansion candidates shrink.
* **Trial conversion spike** - trials that reach their decision (4-16 days after the
  start) from that day on convert at 45% instead of 20%: new paying and activated
  accounts grow.

``break_data(out_dir, as_of)`` then spoils the generated files for a blocked refresh:
``kind="stale_billing"`` (the default) truncates the billing export so its newest row
is 12 days older than ``as_of`` (the freshness check fails for every segment that reads
billing); ``kind="null_region"`` empties ``region`` on 60% of CRM rows (the null-rate
check fails for segments whose rule reads ``region`` once two clean refreshes exist).
Generating again with the same arguments restores the good files.

Everything is drawn from one ``numpy.random.default_rng(seed)`` with whole-array
operations (one writer thread overlaps the disk output, drawing nothing), so the same
arguments give byte-identical files. A million customers (about 29 million product
events, 2.6 GB of CSV) take roughly 20-40 seconds on two cores.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from segments.errors import SegopsError

Format = Literal["csv", "parquet"]
Breakage = Literal["stale_billing", "null_region"]

DEMO_START = date(2026, 5, 1)
DEMO_MONTHS = 6

PLANS = ("trial", "starter", "pro", "enterprise")
REGIONS = ("NAMER", "EMEA", "APAC", "LATAM")  # not "NA": CSV readers take it for null
PRODUCT_EVENTS = (
    "login",
    "report_created",
    "integration_added",
    "seat_invited",
    "export",
    "api_call",
)
BILLING_EVENTS = ("trial_started", "invoice_paid", "payment_failed")
SUPPORT_EVENTS = ("ticket_opened", "ticket_escalated")
SIZE_BANDS = ("1-10", "11-50", "51-200", "201-1000", "1000+")
FILES = {
    "crm": "crm",
    "people": "people",
    "product": "product_events",
    "billing": "billing_events",
    "support": "support_events",
}

SHIFT_PLANS = ("pro", "enterprise")  # the churn wave's plans, mostly pro (_COHORT_SHARE)
SHIFT_REGION = "EMEA"
STALE_DAYS = 12
NULL_REGION_SHARE = 0.60

_DAY = 86_400
_TRIAL_DAYS = 14
_NEW_SHARE = 0.30  # accounts created during the period
_TRIAL_SHARE = 0.85  # of new accounts, the rest buy straight away
_CONVERT_BEFORE, _CONVERT_AFTER = 0.20, 0.45
_CHURN_DRAW = 0.10  # drawn to cancel; about 8% of paying accounts do so within the data
# Share of established accounts in SHIFT_REGION caught by the churn wave, by plan, for the
# lighter / heavier half of users: most pro accounts (heavy ones above all), some enterprise.
_COHORT_SHARE = {"pro": (0.5, 0.95), "enterprise": (0.2, 0.45)}
_ACTIVITY_SIGMA = 0.8
_PRICE = np.array([0.0, 12.0, 29.0, 55.0])  # per seat per month, by plan index
_REGION_P = [0.45, 0.30, 0.15, 0.10]
_INDUSTRIES = (
    "software",
    "fintech",
    "healthcare",
    "retail",
    "manufacturing",
    "education",
    "media",
    "logistics",
    "professional services",
    "nonprofit",
)
_INDUSTRY_P = [0.24, 0.12, 0.1, 0.1, 0.09, 0.07, 0.08, 0.07, 0.09, 0.04]
_CSMS = (
    "Priya Shah",
    "Tom Becker",
    "Ana Souza",
    "Kenji Watanabe",
    "Lena Fischer",
    "Marcus Reed",
    "Sofia Marino",
    "David Okafor",
)
# P(plan = starter, pro, enterprise) for established accounts, by size band.
_PLAN_BY_BAND = np.array(
    [
        [0.80, 0.18, 0.02],
        [0.58, 0.36, 0.06],
        [0.40, 0.46, 0.14],
        [0.22, 0.45, 0.33],
        [0.08, 0.34, 0.58],
    ]
)
# Usage profiles: casual, analyst, integrator, collaborator; P(event) in PRODUCT_EVENTS order.
_PROFILE_P = [0.55, 0.20, 0.12, 0.13]
_EVENT_MIX = np.array(
    [
        [0.70, 0.12, 0.010, 0.03, 0.10, 0.040],
        [0.46, 0.33, 0.015, 0.03, 0.15, 0.015],
        [0.32, 0.10, 0.060, 0.02, 0.04, 0.460],
        [0.55, 0.15, 0.015, 0.16, 0.08, 0.045],
    ]
)
# Expected events per trial day, by event: trials that lapse / trials that will convert.
_TRIAL_MIX = np.array(
    [
        [0.30, 0.05, 0.010, 0.03, 0.03, 0.02],
        [0.50, 0.20, 0.120, 0.15, 0.08, 0.06],
    ]
)
# Share of the churn-wave cohort's events kept after the shift, by event.
_COHORT_KEEP = np.array([0.08, 0.2, 0.2, 0.2, 0.2, 0.6])

# Relative activity by hour of day (UTC): a working-hours peak, a quiet night.
_HOURLY = np.array(
    [0.15, 0.12, 0.1, 0.1, 0.12, 0.2, 0.35, 0.6, 0.9, 1.0, 1.0, 0.95]
    + [0.8, 0.9, 1.0, 1.0, 0.95, 0.8, 0.6, 0.45, 0.35, 0.3, 0.25, 0.2]
)

_PREFIXES = (
    "Acme Arbor Atlas Aurora Beacon Birch Blue Bright Cedar Clear Cobalt Copper Crest "
    "Delta Ember Evergreen Falcon Fern Forge Granite Harbor Helix Horizon Iris Juniper "
    "Keystone Lantern Linden Lumen Maple Meridian Nimbus North Oak Onyx Orbit Pine Polar "
    "Prism Quartz Quill Raven Redwood Ridge River Sage Silver Slate Solar Sparrow Spruce "
    "Stone Summit Tidal Torch True Union Vector Willow Zenith Harvest Kestrel Lotus"
).split()
_SUFFIXES = (
    "Analytics Apparel Bank Bio Brands Capital Clinic Cloud Commerce Data Design Dynamics "
    "Energy Foods Freight Games Health Industries Insights Labs Learning Legal Logistics "
    "Media Metrics Partners Robotics Security Software Studio Systems Tech Travel Ventures "
    "Works Goods Mobility Networks Outdoors Pharma"
).split()
_TLDS = ("com", "io", "co", "ai", "net")
_FIRST = (
    "Aisha Alex Amir Ana Ben Carla Chen Chloe Daniel Diego Elena Emma Ethan Fatima Felix "
    "Grace Hana Hugo Ines Ivan Jack James Jana Jonas Julia Kai Karim Laura Leo Lina Lucas "
    "Maya Mei Mia Nadia Noah Nora Olga Omar Paul Priya Rafael Rosa Ryan Sam Sara Sofia "
    "Tariq Theo Tom Uma Victor Wen Yara Yusuf Zoe Mateo Ingrid Kofi Lars"
).split()
_LAST = (
    "Adams Ahmed Baker Becker Brown Castro Chen Costa Cruz Dubois Evans Fischer Garcia "
    "Gomez Gupta Hansen Ito Jensen Jones Kim Kowalski Kumar Lee Lopez Martin Meyer Moreau "
    "Murphy Nakamura Nguyen Novak Okafor Olsen Park Patel Perez Petrov Reed Rossi Santos "
    "Schmidt Shah Silva Singh Smith Suzuki Tanaka Taylor Torres Wagner Walsh Wang Weber "
    "Williams Wilson Wong Young Zhang Ali Berg"
).split()


def month_start(start: date, k: int) -> date:
    """The first day of the k-th calendar month after ``start``'s month."""
    index = start.year * 12 + start.month - 1 + k
    return date(index // 12, index % 12 + 1, 1)


def demo_as_of(start: date = DEMO_START, months: int = DEMO_MONTHS) -> tuple[date, ...]:
    """The three demo refresh dates: the last days of months ``months-2 .. months``."""
    ends = (month_start(start, k) for k in (months - 2, months - 1, months))
    return tuple(day - timedelta(days=1) for day in ends)


def shift_start(start: date = DEMO_START, months: int = DEMO_MONTHS) -> date:
    """The day the churn wave and the trial conversion spike begin (month ``months - 1``)."""
    return month_start(start, months - 2)


DEMO_AS_OF: tuple[date, ...] = demo_as_of()
"""Refresh dates of the demo: 2026-08-31 (before the shift), 2026-09-30, 2026-10-31."""


def generate(
    out_dir: Path,
    *,
    customers: int = 2000,
    seed: int = 7,
    start: date = DEMO_START,
    months: int = DEMO_MONTHS,
    events_per_customer: float = 30.0,
    fmt: Format = "csv",
    progress: Callable[[str], None] | None = None,
) -> dict[str, Path]:
    """Write the five sample files into ``out_dir``; return {source name: path}.

    ``events_per_customer`` is the mean number of product events per account over the
    whole period (billing and support events come on top).
    """
    if customers < 1:
        raise SegopsError(f"sample data: customers must be at least 1, got {customers}")
    if months < 3:
        raise SegopsError(f"sample data: months must be at least 3, got {months}")
    if start.day != 1:
        raise SegopsError(f"sample data: start must be the first day of a month, got {start}")
    if fmt not in ("csv", "parquet"):
        raise SegopsError(f"sample data: format must be csv or parquet, got {fmt!r}")
    say = progress or (lambda _message: None)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    t = _Timeline(start, months)
    paths = {name: out_dir / f"{stem}.{fmt}" for name, stem in FILES.items()}

    # One writer thread overlaps disk output with the next table's generation; every
    # random draw stays on this thread, in a fixed order.
    with ThreadPoolExecutor(max_workers=1) as writer:
        pending = []

        def emit(name: str, table: pa.Table) -> None:
            pending.append(writer.submit(_write, table, paths[name], fmt))

        say(f"accounts: {customers:,}")
        acc = _accounts(rng, customers, t)
        acc["begin"], acc["end"] = _windows(rng, acc, t)
        emit("crm", acc.pop("table"))
        say("people")
        ppl = _people(rng, acc, customers)
        emit("people", ppl.pop("table"))
        say("product events")
        emit("product", _product(rng, acc, ppl, t, events_per_customer))
        say("billing events")
        emit("billing", _billing(rng, acc, t))
        say("support events")
        emit("support", _support(rng, acc, t))
        say("writing files")
        for job in pending:
            job.result()
    return paths


def install_demo(
    target: Path,
    *,
    customers: int = 2000,
    seed: int = 7,
    fmt: Format = "csv",
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Write the demo workspace to ``target/workspace.yaml`` and its data to ``target/data``.

    Returns the workspace path. With ``fmt="parquet"`` the source paths are rewritten to
    the ``.parquet`` files.
    """
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    text = resources.files("cli.demo").joinpath("workspace.yaml").read_text("utf-8")
    if fmt == "parquet":
        for stem in FILES.values():
            text = text.replace(f"data/{stem}.csv", f"data/{stem}.parquet")
    path = target / "workspace.yaml"
    path.write_text(text, encoding="utf-8")
    generate(target / "data", customers=customers, seed=seed, fmt=fmt, progress=progress)
    return path


def break_data(out_dir: Path, as_of: date, *, kind: Breakage = "stale_billing") -> Path:
    """Spoil generated files in place so a refresh at ``as_of`` is blocked; return the file.

    ``stale_billing`` keeps only billing rows at least ``STALE_DAYS`` days older than
    ``as_of``; ``null_region`` empties ``region`` on ``NULL_REGION_SHARE`` of CRM rows.
    """
    out_dir = Path(out_dir)
    source = {"stale_billing": "billing", "null_region": "crm"}.get(kind)
    if source is None:
        raise SegopsError(f"sample data: unknown breakage {kind!r}")
    path = next(
        (p for fmt in ("csv", "parquet") if (p := out_dir / f"{FILES[source]}.{fmt}").is_file()),
        None,
    )
    if path is None:
        raise SegopsError(f"sample data: no {FILES[source]}.csv or .parquet in {out_dir}")
    fmt: Format = "parquet" if path.suffix == ".parquet" else "csv"
    table = _read(path, fmt)
    if kind == "stale_billing":
        cutoff = np.datetime64(as_of - timedelta(days=STALE_DAYS - 1), "s")
        ts = table.column("ts").cast(pa.timestamp("s")).to_numpy()
        table = table.filter(pa.array(ts < cutoff))
    else:
        digest = hashlib.sha256(f"{kind}:{as_of.isoformat()}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
        blank = pa.array(rng.random(table.num_rows) < NULL_REGION_SHARE)
        region = table.column("region").combine_chunks()
        index = table.schema.get_field_index("region")
        nulls = pa.nulls(table.num_rows, region.type)
        table = table.set_column(index, "region", pc.if_else(blank, nulls, region))
    _write(table, path, fmt)
    return path


class _Timeline:
    """Seconds since ``start`` for the month boundaries, the shift and the end."""

    def __init__(self, start: date, months: int) -> None:
        self.start = start
        self.months = months
        self.origin = np.datetime64(start, "s")
        self.month_starts = np.array(
            [(month_start(start, k) - start).days * _DAY for k in range(months + 1)],
            dtype=np.int64,
        )
        self.end = int(self.month_starts[-1])
        self.shift = int(self.month_starts[months - 2])

    def stamps(self, seconds: np.ndarray) -> pa.Array:
        return pa.array(self.origin + seconds.astype("timedelta64[s]"))

    def dates(self, seconds: np.ndarray) -> pa.Array:
        days = np.floor_divide(seconds, _DAY).astype("timedelta64[D]")
        return pa.array(np.datetime64(self.start, "D") + days)


def _accounts(rng: np.random.Generator, n: int, t: _Timeline) -> dict:
    """Accounts in creation order, their plans and lifecycles, and the CRM table."""
    old = rng.random(n) >= _NEW_SHARE
    created = np.where(
        old,
        -rng.integers(_DAY, 4 * 365 * _DAY, n),
        rng.integers(0, t.end, n),
    )
    order = np.argsort(created, kind="stable")
    created = created[order]
    old = created < 0
    new = ~old

    employees = np.clip(np.exp(rng.normal(np.log(45), 1.4, n)), 2, 40_000).astype(np.int64)
    band = np.searchsorted(np.array([10, 50, 200, 1000]), employees, side="left")
    cum = np.cumsum(_PLAN_BY_BAND, axis=1)[band]
    old_plan = 1 + (rng.random(n)[:, None] > cum[:, :2]).sum(axis=1)

    trial = new & (rng.random(n) < _TRIAL_SHARE)
    direct = new & ~trial
    decide = created + (rng.uniform(4, 16, n) * _DAY).astype(np.int64)
    p_convert = np.where(decide >= t.shift, _CONVERT_AFTER, _CONVERT_BEFORE)
    converts = trial & (rng.random(n) < p_convert) & (decide < t.end)
    new_plan = 1 + (rng.random(n)[:, None] > np.array([0.62, 0.95])).sum(axis=1)
    plan = np.where(old, old_plan, np.where(direct | converts, new_plan, 0))

    never = np.iinfo(np.int64).max // 4
    paid_from = np.where(old, 0, np.where(direct, created, np.where(converts, decide, never)))
    paying = paid_from < never
    low = np.minimum(np.maximum(paid_from, 0), t.end) + 20 * _DAY
    churn_at = low + rng.random(n) * (t.end + 60 * _DAY - low)
    churner = paying & (rng.random(n) < _CHURN_DRAW) & (churn_at < t.end)
    paid_until = np.where(churner, churn_at.astype(np.int64), never)

    region = rng.choice(len(REGIONS), size=n, p=_REGION_P)
    activity = np.exp(rng.normal(0.0, _ACTIVITY_SIGMA, n))  # how heavily the account uses it
    heavy = activity > 1.0  # the median
    cohort = (
        old
        & ~churner
        & (region == REGIONS.index(SHIFT_REGION))
        & (rng.random(n) < _cohort_share()[plan, heavy.astype(np.int64)])
    )

    seats_by_plan = np.stack(
        [
            rng.integers(1, 6, n),
            rng.integers(1, 11, n),
            np.clip(np.exp(rng.normal(np.log(14), 0.6, n)), 5, 150),
            np.clip(np.exp(rng.normal(np.log(70), 0.8, n)), 25, 2000),
        ]
    ).astype(np.int64)
    seats = np.maximum(1, np.minimum(seats_by_plan[plan, np.arange(n)], employees))
    discount = np.where(plan == 3, rng.uniform(0.75, 1.0, n), 1.0)
    mrr = np.round(seats * _PRICE[plan] * discount, 2)

    csm_share = np.array([0.0, 0.06, 0.62, 0.93])[plan]
    has_csm = rng.random(n) < csm_share
    csm = rng.integers(0, len(_CSMS), n)
    sso = rng.random(n) < np.array([0.0, 0.03, 0.3, 0.85])[plan]
    industry = rng.choice(len(_INDUSTRIES), size=n, p=_INDUSTRY_P)
    updated = rng.integers(np.maximum(created, 0), t.end)

    ids, names, domains = _account_names(rng, n)
    table = pa.table(
        {
            "account_id": ids,
            "name": names,
            "plan": _labels(PLANS, plan),
            "industry": _labels(_INDUSTRIES, industry),
            "employees": pa.array(employees),
            "size_band": _labels(SIZE_BANDS, band),
            "region": _labels(REGIONS, region),
            "seats": pa.array(seats),
            "sso_enabled": pa.array(sso),
            "csm_owner": _labels(_CSMS, csm, mask=~has_csm),
            "created_at": t.dates(created),
            "updated_at": t.stamps(updated),
        }
    )
    return {
        "table": table,
        "ids": ids,
        "domains": domains,
        "created": created,
        "plan": plan,
        "seats": seats,
        "mrr": mrr,
        "trial": trial,
        "converts": converts,
        "decide": decide,
        "paid_from": paid_from,
        "paid_until": paid_until,
        "churner": churner,
        "cohort": cohort,
        "activity": activity,
    }


def _cohort_share() -> np.ndarray:
    """``_COHORT_SHARE`` as an array indexed by (plan code, heavier half)."""
    share = np.zeros((len(PLANS), 2))
    for plan, pair in _COHORT_SHARE.items():
        share[PLANS.index(plan)] = pair
    return share


def _account_names(rng: np.random.Generator, n: int) -> tuple[pa.Array, pa.Array, pa.Array]:
    """Unique ids, company names and e-mail domains (a number is added past ~2,600 names)."""
    width = max(6, len(str(n)))
    digits = pc.cast(pa.array(np.arange(1, n + 1)), pa.string())
    ids = _concat("A", pc.utf8_lpad(digits, width, "0"))
    combos = len(_PREFIXES) * len(_SUFFIXES)
    pick = rng.permutation(combos)[np.arange(n) % combos]
    again = np.arange(n) // combos
    prefix = pa.array(_PREFIXES).take(pa.array(pick // len(_SUFFIXES)))
    suffix = pa.array(_SUFFIXES).take(pa.array(pick % len(_SUFFIXES)))
    repeat = pa.array(again > 0)
    number = pc.if_else(repeat, pc.cast(pa.array(again + 1), pa.string()), "")
    names = _concat(prefix, " ", suffix, pc.if_else(repeat, _concat(" ", number), ""))
    tld = pa.array(_TLDS).take(pa.array(rng.integers(0, len(_TLDS), n)))
    domains = _concat(pc.utf8_lower(prefix), pc.utf8_lower(suffix), number, ".", tld)
    return ids, names, domains


def _people(rng: np.random.Generator, acc: dict, n: int) -> dict:
    """Several people per account; e-mails as typed into the CRM (mixed case, spaces)."""
    seats = acc["seats"]
    count = np.clip(1 + rng.poisson(1.0 + 0.15 * np.minimum(seats, 30)), 1, 15)
    offsets = np.concatenate([[0], np.cumsum(count)[:-1]])
    owner = np.repeat(np.arange(n), count)
    rank = np.arange(owner.size) - offsets[owner]
    pool = len(_FIRST) * len(_LAST)  # 61 is coprime to the pool: names differ within an account
    combo = (rng.integers(0, pool, n)[owner] + rank * 61) % pool
    first = pa.array(_FIRST).take(pa.array(combo // len(_LAST)))
    last = pa.array(_LAST).take(pa.array(combo % len(_LAST)))
    domain = acc["domains"].take(pa.array(owner))
    clean = _concat(pc.utf8_lower(first), ".", pc.utf8_lower(last), "@", domain)
    style = rng.random(owner.size)
    space = rng.random(owner.size)
    typed = clean
    for lo, hi, fold in (
        (0.60, 0.80, pc.utf8_capitalize),
        (0.80, 0.93, pc.utf8_title),
        (0.93, 1.00, pc.utf8_upper),
    ):
        typed = _rewrite(typed, (style >= lo) & (style < hi), fold)
    typed = _rewrite(typed, space < 0.08, lambda text: _concat(" ", text, " "))
    typed = _rewrite(typed, (space >= 0.08) & (space < 0.14), lambda text: _concat(text, " "))
    table = pa.table(
        {
            "email": typed,
            "account_id": acc["ids"].take(pa.array(owner)),
            "full_name": _concat(first, " ", last),
        }
    )
    return {"table": table, "clean": clean, "typed": typed, "count": count, "offsets": offsets}


def _windows(rng: np.random.Generator, acc: dict, t: _Timeline) -> tuple[np.ndarray, np.ndarray]:
    """Days each account uses the product, [first, last + 1): creation to churn, expiry or end."""
    n = acc["created"].size
    begin = np.maximum(acc["created"], 0) // _DAY
    end = np.full(n, t.end // _DAY, dtype=np.int64)
    lapsed = acc["trial"] & ~acc["converts"]
    expiry = acc["created"] // _DAY + rng.integers(_TRIAL_DAYS, _TRIAL_DAYS + 10, n)
    end = np.where(lapsed, np.minimum(expiry, end), end)
    fade = acc["paid_until"] // _DAY - rng.integers(0, 25, n)
    end = np.where(acc["churner"], np.minimum(fade, end), end)
    return begin, np.maximum(end, begin)


def _product(
    rng: np.random.Generator, acc: dict, ppl: dict, t: _Timeline, per_customer: float
) -> pa.Table:
    """Product events keyed by e-mail; the churn-wave cohort goes quiet after the shift.

    Events come from spans (an account, a run of days, an expected count per event):
    each account's usage before and after the shift, plus a burst of evaluation during a
    trial (heavier, and rich in integrations, for trials that will convert). Counts are
    Poisson, each event gets a day in its span, and ``_day_order`` puts the rows in time
    order without a full sort.
    """
    n = acc["created"].size
    begin, end = acc["begin"], acc["end"]
    trials = np.flatnonzero(acc["trial"])
    trial_first = begin[trials]
    trial_days = np.clip(end[trials] - trial_first, 0, _TRIAL_DAYS)
    converts = acc["converts"][trials]
    burst = np.where(converts[:, None], _TRIAL_MIX[1], _TRIAL_MIX[0]) * trial_days[:, None]
    burst_total = float(burst.sum())

    plan_weight = np.array([1.0, 0.9, 1.4, 1.3])[acc["plan"]]
    rate = acc["activity"] * plan_weight * np.minimum(acc["seats"], 300) ** 0.25
    rate *= np.where(acc["converts"], 0.8, np.where(acc["trial"], 0.5, 1.0))
    usual = max(per_customer * n - burst_total, 0.0)
    rate *= usual / max(float((rate * (end - begin)).sum()), 1e-9)
    cut = np.clip(t.shift // _DAY, begin, end)
    mix = _EVENT_MIX[rng.choice(len(_PROFILE_P), size=n, p=_PROFILE_P)]  # (n, 6)
    after = np.where(acc["cohort"][:, None], _COHORT_KEEP[None, :], 1.0)

    owner = np.concatenate([np.arange(n), np.arange(n), trials])
    first = np.concatenate([begin, cut, trial_first])
    days = np.concatenate([cut - begin, end - cut, trial_days])
    lam = np.concatenate(
        [
            (rate * (cut - begin))[:, None] * mix,
            (rate * (end - cut))[:, None] * mix * after,
            burst,
        ]
    )
    count = rng.poisson(lam)  # (span, event)
    per_span = count.sum(axis=1)
    size = int(per_span.sum())
    day = np.repeat(first.astype(np.int32), per_span)
    day += (rng.random(size, dtype=np.float32) * np.repeat(_below(days), per_span)).astype(np.int32)
    event = np.repeat(np.tile(np.arange(6, dtype=np.int8), owner.size), count.ravel())
    person = np.repeat(ppl["offsets"][owner].astype(np.int32), per_span)
    person += (
        rng.random(size, dtype=np.float32) * np.repeat(_below(ppl["count"][owner]), per_span)
    ).astype(np.int32)
    person += (rng.random(size, dtype=np.float32) < 0.25) * np.int32(ppl["count"].sum())
    order, ts = _day_order(rng, day)
    del day
    event, person = event[order], person[order]
    del order
    api = np.flatnonzero(event == PRODUCT_EVENTS.index("api_call"))
    value = np.ones(size, dtype=np.int32)
    value[api] = 1 + np.floor(np.exp(rng.normal(4.3, 1.0, api.size)))
    emails = pa.concat_arrays([ppl["clean"], pc.utf8_trim_whitespace(ppl["typed"])])
    return pa.table(
        {
            "email": pa.DictionaryArray.from_arrays(pa.array(person), emails),
            "ts": t.stamps(ts),
            "event": _labels(PRODUCT_EVENTS, event),
            "value": pa.array(value),
        }
    )


def _below(upper: np.ndarray) -> np.ndarray:
    """``upper`` as float32 shrunk just enough that float32 ``u * upper`` stays below it."""
    return (upper * (1 - 2.0**-16)).astype(np.float32)


def _slot_table(bits: int) -> np.ndarray:
    """4096 equally likely slot numbers following ``_HOURLY`` (a lookup-table sampler)."""
    hours = (np.arange(1 << bits) * 24) >> bits
    cum = np.cumsum(_HOURLY[hours])
    quantiles = (np.arange(4096) + 0.5) / 4096 * cum[-1]
    return np.searchsorted(cum, quantiles).astype(np.uint16)


def _day_order(rng: np.random.Generator, day: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A time order for events known by day, and their times in seconds.

    Each day is cut into 2**bits slots; every event draws a slot (busier in working
    hours), one radix pass over the 16-bit (day, slot) key orders the rows, and the k-th
    of c events in a slot gets a time in the k-th c-th of it. Times are non-decreasing
    in that order.
    """
    bits = 16 - max(1, int(day.max(initial=0))).bit_length()
    if bits < 4:  # longer than ~11 years: fall back to a plain sort
        ts = day * _DAY + rng.integers(0, _DAY, day.size)
        order = _time_order(ts)
        return order, ts[order]
    slot = _slot_table(bits)[rng.integers(0, 4096, day.size, dtype=np.uint16)]
    key = (day.astype(np.uint16) << bits) | slot
    del slot
    order = np.argsort(key, kind="stable")
    slots = np.bincount(key, minlength=1 << 16).astype(np.int32)
    starts = np.cumsum(slots, dtype=np.int32) - slots
    key = key[order]
    rank = np.arange(key.size, dtype=np.int32) - starts[key]
    width = np.float32(_DAY / (1 << bits))
    offset = (rank + rng.random(key.size, dtype=np.float32)) / slots[key] * width
    ts = (key.astype(np.int64) * _DAY >> bits) + offset.astype(np.int64)
    return order, ts


def _time_order(ts: np.ndarray) -> np.ndarray:
    """Row order by time, ties by row: one sort of (ts, row) packed in 64 bits."""
    rows = np.arange(ts.size, dtype=np.uint64)
    packed = np.sort((ts.astype(np.uint64) << np.uint64(32)) | rows)
    return (packed & np.uint64(0xFFFFFFFF)).astype(np.int64)


def _billing(rng: np.random.Generator, acc: dict, t: _Timeline) -> pa.Table:
    """Trial starts and monthly invoices; the cohort's payments fail after the shift."""
    n = acc["created"].size
    paid_from, paid_until = acc["paid_from"], acc["paid_until"]
    first_day = np.datetime64(t.start, "D") + np.maximum(paid_from, 0) // _DAY
    day_of_month = (first_day - first_day.astype("datetime64[M]")).astype(np.int64)
    anchor = np.where(acc["created"] < 0, rng.integers(0, 28, n), np.minimum(day_of_month, 27))
    at = t.month_starts[None, :-1] + anchor[:, None] * _DAY + rng.integers(0, _DAY, n)[:, None]
    due = (
        (at >= paid_from[:, None] - 3 * _DAY)
        & (at >= 0)
        & (at < paid_until[:, None])
        & (at < t.end)
    )
    owner, month = np.nonzero(due)
    at = at[owner, month]
    last = at + 31 * _DAY >= paid_until[owner]
    wave = acc["cohort"][owner] & (at >= t.shift)
    p_fail = np.where(wave, 0.8, np.where(last, 0.5, 0.03))
    p_retry = np.where(wave, 0.25, np.where(last, 0.1, 0.8))
    failed = rng.random(owner.size) < p_fail
    recovered = rng.random(owner.size) < p_retry
    retry_at = at + 3 * _DAY
    retried = failed & (retry_at < t.end)

    trials = np.flatnonzero(acc["trial"])
    paid_ev = BILLING_EVENTS.index("invoice_paid")
    failed_ev = BILLING_EVENTS.index("payment_failed")
    who = np.concatenate([trials, owner, owner[retried]])
    ts = np.concatenate([acc["created"][trials], at, retry_at[retried]])
    event = np.concatenate(
        [
            np.zeros(trials.size, dtype=np.int8),
            np.where(failed, failed_ev, paid_ev).astype(np.int8),
            np.where(recovered[retried], paid_ev, failed_ev).astype(np.int8),
        ]
    )
    amount = np.concatenate([np.zeros(trials.size), acc["mrr"][owner], acc["mrr"][owner[retried]]])
    return _account_events(rng, acc, t, who, ts, event, BILLING_EVENTS, "amount", amount)


def _support(rng: np.random.Generator, acc: dict, t: _Timeline) -> pa.Table:
    """Tickets and escalations; the cohort opens a burst of tickets after the shift."""
    n = acc["created"].size
    begin, end = acc["begin"] * _DAY, acc["end"] * _DAY
    month = 30 * _DAY
    rate = 0.22 * np.exp(rng.normal(0.0, 0.9, n)) * (1 + np.log1p(acc["seats"]) / 3)
    count = rng.poisson(rate * (end - begin) / month)
    burst = np.where(acc["cohort"], rng.poisson(2.0, n), 0)
    usual = np.repeat(np.arange(n), count)
    extra = np.repeat(np.arange(n), burst)
    owner = np.concatenate([usual, extra])
    span = np.concatenate([(end - begin)[usual], np.full(extra.size, month)])
    base = np.concatenate([begin[usual], np.full(extra.size, t.shift)])
    opened = base + (rng.random(owner.size) * span).astype(np.int64)
    priority = 1 + np.searchsorted([0.35, 0.75, 0.95], rng.random(owner.size))
    p_escalate = 0.08 + 0.12 * (priority >= 3) + 0.08 * (acc["plan"][owner] == 3)
    escalated = rng.random(owner.size) < p_escalate
    esc_at = opened + (rng.uniform(0.2, 4.0, owner.size) * _DAY).astype(np.int64)
    escalated &= esc_at < t.end
    who = np.concatenate([owner, owner[escalated]])
    ts = np.concatenate([opened, esc_at[escalated]])
    event = np.concatenate([np.zeros(owner.size), np.ones(escalated.sum())]).astype(np.int8)
    level = np.concatenate([priority, np.maximum(priority[escalated], 3)])
    return _account_events(rng, acc, t, who, ts, event, SUPPORT_EVENTS, "priority", level)


def _account_events(
    rng: np.random.Generator,
    acc: dict,
    t: _Timeline,
    who: np.ndarray,
    ts: np.ndarray,
    event: np.ndarray,
    names: tuple[str, ...],
    value_name: str,
    value: np.ndarray,
) -> pa.Table:
    """An events table keyed by account id, sorted by time; 4% of ids arrive untidy."""
    n = acc["created"].size
    untidy = rng.random(who.size) < 0.04
    ids = pa.DictionaryArray.from_arrays(
        pa.array(who + untidy * n),
        pa.concat_arrays([acc["ids"], _concat(" ", pc.utf8_lower(acc["ids"]), " ")]),
    )
    order = _time_order(ts)
    return pa.table(
        {
            "account_id": ids.take(pa.array(order)),
            "ts": t.stamps(ts[order]),
            "event": _labels(names, event[order]),
            value_name: pa.array(value[order]),
        }
    )


def _labels(names: tuple[str, ...], codes: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    """Codes as a dictionary-encoded string column (nulls where ``mask`` is true)."""
    indices = pa.array(codes.astype(np.int32), mask=mask)
    return pa.DictionaryArray.from_arrays(indices, pa.array(names, pa.string()))


def _rewrite(text: pa.Array, where: np.ndarray, change: Callable[[pa.Array], pa.Array]) -> pa.Array:
    """``text`` with ``change`` applied to the rows ``where`` is true (only those are computed)."""
    mask = pa.array(where)
    return pc.replace_with_mask(text, mask, change(text.filter(mask)))


def _concat(*parts: pa.Array | str) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


def _write(table: pa.Table, path: Path, fmt: Format) -> None:
    if fmt == "parquet":
        # Plain strings: Arrow dictionaries with repeated values (the e-mail spellings) do
        # not write byte-identically, and big ones would be repeated in every row group.
        for i, column in enumerate(table.columns):
            if pa.types.is_dictionary(column.type):
                table = table.set_column(i, table.field(i).name, column.cast(pa.string()))
        pq.write_table(table, path, compression="zstd")
    else:
        pacsv.write_csv(table, path)


def _read(path: Path, fmt: Format) -> pa.Table:
    if fmt == "parquet":
        return pq.read_table(path)
    return pacsv.read_csv(path)

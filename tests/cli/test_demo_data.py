"""The sample-data generator and the demo workspace built on it."""

from __future__ import annotations

import re
import shutil
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cli.demo import data as sample
from cli.demo.data import DEMO_AS_OF, break_data, generate, install_demo
from segments.errors import SegopsError

CUSTOMERS = 2000
DEMO_YAML = Path(sample.__file__).parent / "workspace.yaml"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo workspace with 2,000 customers of generated data beside it."""
    return install_demo(tmp_path_factory.mktemp("demo"), customers=CUSTOMERS)


@pytest.fixture(scope="module")
def data(demo: Path) -> Path:
    return demo.parent / "data"


def _read(data: Path, name: str) -> pd.DataFrame:
    frame = pd.read_csv(data / f"{sample.FILES[name]}.csv", keep_default_na=False, na_values=[""])
    if "ts" in frame:
        frame["ts"] = pd.to_datetime(frame["ts"])
    return frame


def _month(ts: pd.Series) -> pd.Series:
    return ts.dt.to_period("M").astype(str)


def _bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_same_seed_writes_byte_identical_files(tmp_path: Path) -> None:
    generate(tmp_path / "a", customers=300, seed=3)
    generate(tmp_path / "b", customers=300, seed=3)
    assert _bytes(tmp_path / "a") == _bytes(tmp_path / "b")


def test_same_seed_writes_byte_identical_parquet(tmp_path: Path) -> None:
    generate(tmp_path / "a", customers=300, seed=3, fmt="parquet")
    generate(tmp_path / "b", customers=300, seed=3, fmt="parquet")
    assert _bytes(tmp_path / "a") == _bytes(tmp_path / "b")


def test_another_seed_writes_other_data(tmp_path: Path) -> None:
    generate(tmp_path / "a", customers=300, seed=3)
    generate(tmp_path / "b", customers=300, seed=4)
    assert (
        _bytes(tmp_path / "a")["product_events.csv"] != _bytes(tmp_path / "b")["product_events.csv"]
    )


def test_generate_returns_a_path_per_source(data: Path) -> None:
    paths = {name: data / f"{stem}.csv" for name, stem in sample.FILES.items()}
    assert all(path.is_file() for path in paths.values())
    assert set(paths) == {"crm", "people", "product", "billing", "support"}


def test_crm_has_one_row_per_customer_with_unique_ids(data: Path) -> None:
    crm = _read(data, "crm")
    assert len(crm) == CUSTOMERS
    assert crm["account_id"].is_unique
    assert crm["account_id"].str.fullmatch(r"A\d{6}").all()
    assert set(crm["plan"]) == set(sample.PLANS)
    assert set(crm["region"]) == set(sample.REGIONS)


def test_declared_crm_columns_match_the_file_and_kinds(demo: Path, data: Path) -> None:
    from segments.workspace import load_workspace

    declared = load_workspace(demo).sources["crm"].columns
    crm = _read(data, "crm")
    assert set(declared) | {"account_id"} == set(crm.columns)
    for column, kind in declared.items():
        values = crm[column].dropna()
        if kind == "number":
            assert pd.api.types.is_numeric_dtype(values), column
        elif kind == "bool":
            assert pd.api.types.is_bool_dtype(values), column
        elif kind == "date":
            assert pd.to_datetime(values, errors="coerce").notna().all(), column
        else:
            assert pd.api.types.is_string_dtype(values) or values.dtype == object, column


def test_declared_event_columns_exist_in_the_files(demo: Path, data: Path) -> None:
    from segments.workspace import load_workspace

    ws = load_workspace(demo)
    for name in ("product", "billing", "support"):
        header = set(_read(data, name).columns)
        cfg = ws.sources[name]
        assert {cfg.id, cfg.timestamp, cfg.event, cfg.value} | set(cfg.columns) <= header


def test_csm_owner_is_sparse_for_small_accounts_only(data: Path) -> None:
    crm = _read(data, "crm")
    missing = crm["csm_owner"].isna().groupby(crm["plan"]).mean()
    assert missing["starter"] > 0.8
    assert missing["trial"] == 1.0
    assert missing["enterprise"] < 0.2


def test_people_give_several_untidy_emails_per_account(data: Path) -> None:
    people = _read(data, "people")
    per_account = people.groupby("account_id").size()
    assert per_account.mean() > 2
    assert people["email"].str.strip().str.lower().is_unique
    assert (people["email"] != people["email"].str.strip()).mean() > 0.05
    assert (people["email"] != people["email"].str.lower()).mean() > 0.2


def test_every_product_email_maps_to_an_account_after_normalising(data: Path) -> None:
    people = _read(data, "people")
    events = _read(data, "product")
    known = set(people["email"].str.strip().str.lower())
    assert events["email"].str.strip().str.lower().isin(known).all()
    assert not events["email"].isin(set(people["email"])).all()  # casing differs somewhere


def test_event_files_use_their_vocabularies_and_are_in_time_order(data: Path) -> None:
    vocab = {
        "product": sample.PRODUCT_EVENTS,
        "billing": sample.BILLING_EVENTS,
        "support": sample.SUPPORT_EVENTS,
    }
    for name, names in vocab.items():
        events = _read(data, name)
        assert set(events["event"]) == set(names), name
        assert events["ts"].is_monotonic_increasing, name
        assert events["ts"].min() >= pd.Timestamp(sample.DEMO_START)
        assert events["ts"].max() < pd.Timestamp(DEMO_AS_OF[-1] + timedelta(days=1))


def test_account_ids_in_billing_need_trimming_and_case_folding(data: Path) -> None:
    crm_ids = set(_read(data, "crm")["account_id"])
    ids = _read(data, "billing")["account_id"]
    assert (ids != ids.str.strip().str.upper()).any()
    assert ids.str.strip().str.upper().isin(crm_ids).all()


def test_demo_as_of_are_the_last_three_month_ends() -> None:
    assert DEMO_AS_OF == (date(2026, 8, 31), date(2026, 9, 30), date(2026, 10, 31))
    assert sample.shift_start() == date(2026, 9, 1)


def _cohort_logins(data: Path) -> pd.DataFrame:
    """Logins per account and month, for established pro accounts in EMEA and the rest."""
    crm = _read(data, "crm").set_index("account_id")
    people = _read(data, "people")
    owner = dict(zip(people["email"].str.strip().str.lower(), people["account_id"], strict=True))
    logins = _read(data, "product").query("event == 'login'")
    account = logins["email"].str.strip().str.lower().map(owner)
    established = crm["created_at"] < str(sample.DEMO_START)
    wave = established & (crm["plan"] == "pro") & (crm["region"] == sample.SHIFT_REGION)
    group = account.map(wave).map({True: "wave", False: "rest"})
    counts = pd.crosstab(group, _month(logins["ts"]))
    sizes = {"wave": wave.sum(), "rest": (~wave).sum()}
    return counts.div(pd.Series(sizes), axis=0)


def test_logins_of_established_emea_pro_accounts_collapse_after_the_shift(data: Path) -> None:
    rate = _cohort_logins(data)
    assert rate.loc["wave", "2026-09"] < 0.5 * rate.loc["wave", "2026-08"]
    assert rate.loc["rest", "2026-09"] > 0.8 * rate.loc["rest", "2026-08"]


def test_failed_payments_of_emea_pro_accounts_jump_after_the_shift(data: Path) -> None:
    crm = _read(data, "crm").set_index("account_id")
    billing = _read(data, "billing")
    billing["account_id"] = billing["account_id"].str.strip().str.upper()
    wave = crm["plan"].isin(sample.SHIFT_PLANS) & (crm["region"] == sample.SHIFT_REGION)
    failed = billing[billing["event"] == "payment_failed"]
    in_wave = failed["account_id"].map(wave)
    per_month = failed[in_wave].groupby(_month(failed["ts"][in_wave])).size()
    assert per_month.get("2026-09", 0) > 4 * per_month.get("2026-08", 0) + 10


def test_trial_conversions_spike_after_the_shift(data: Path) -> None:
    billing = _read(data, "billing")
    billing["account_id"] = billing["account_id"].str.strip().str.upper()
    started = billing[billing["event"] == "trial_started"].set_index("account_id")["ts"]
    paid = billing[billing["event"] == "invoice_paid"].groupby("account_id")["ts"].min()
    converted = paid.reindex(started.index).notna()
    decided = _month(started + pd.Timedelta(days=10))
    before = converted[decided.isin(["2026-06", "2026-07", "2026-08"]).to_numpy()].mean()
    after = converted[decided.isin(["2026-09"]).to_numpy()].mean()
    assert after > 1.5 * before


def test_stale_billing_leaves_the_newest_row_twelve_days_old(tmp_path: Path) -> None:
    generate(tmp_path, customers=300)
    path = break_data(tmp_path, DEMO_AS_OF[-1])
    assert path.name == "billing_events.csv"
    newest = pd.to_datetime(pd.read_csv(path)["ts"]).max()
    assert (DEMO_AS_OF[-1] - newest.date()).days == sample.STALE_DAYS


def test_null_region_empties_most_of_the_region_column(tmp_path: Path) -> None:
    generate(tmp_path, customers=1000)
    path = break_data(tmp_path, DEMO_AS_OF[-1], kind="null_region")
    crm = pd.read_csv(path, keep_default_na=False, na_values=[""])
    assert crm["region"].isna().mean() == pytest.approx(sample.NULL_REGION_SHARE, abs=0.05)
    assert crm["plan"].notna().all()


def test_break_data_on_parquet_keeps_the_format(tmp_path: Path) -> None:
    generate(tmp_path, customers=200, fmt="parquet")
    path = break_data(tmp_path, DEMO_AS_OF[-1])
    newest = pd.read_parquet(path)["ts"].max()
    assert (DEMO_AS_OF[-1] - newest.date()).days == sample.STALE_DAYS


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"customers": 0}, "customers"),
        ({"months": 2}, "months"),
        ({"start": date(2026, 5, 2)}, "first day"),
        ({"fmt": "json"}, "format"),
    ],
)
def test_generate_rejects_bad_arguments(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(SegopsError, match=message):
        generate(tmp_path, **kwargs)


def test_break_data_without_files_names_the_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SegopsError, match=re.escape("billing_events.csv")):
        break_data(tmp_path, DEMO_AS_OF[-1])


def test_packaged_workspace_loads_beside_generated_data(tmp_path: Path, data: Path) -> None:
    from segments.workspace import load_workspace

    shutil.copy(DEMO_YAML, tmp_path / "workspace.yaml")
    shutil.copytree(data, tmp_path / "data")
    ws = load_workspace(tmp_path / "workspace.yaml")
    assert len(ws.segments) == 10
    assert all(ws.resolve_path(src.path or "").is_file() for src in ws.sources.values())


def test_demo_segments_have_distinct_owners_and_rich_personas(demo: Path) -> None:
    from segments.workspace import load_workspace

    ws = load_workspace(demo)
    assert all(re.fullmatch(r"U0AAA[A-Z0-9]+", s.owner) for s in ws.segments)
    assert all(s.owner not in s.approvers for s in ws.segments)
    for seg in ws.segments:
        persona = seg.persona
        for field in (
            "goals",
            "pains",
            "objections",
            "value_propositions",
            "talking_points",
            "discovery_questions",
        ):
            assert 3 <= len(getattr(persona, field)) <= 5, (seg.name, field)
        assert persona.summary and seg.purpose and seg.rationale and seg.kpis


def _sizes(demo: Path) -> dict[str, list[float]]:
    """Share of accounts in each demo segment at each DEMO_AS_OF date."""
    from segments import rules
    from segments.evaluate import evaluate_all
    from segments.sources import load_dataset
    from segments.workspace import load_workspace

    ws = load_workspace(demo)
    parsed = {seg.name: rules.parse(seg.rule) for seg in ws.segments}
    shares: dict[str, list[float]] = {name: [] for name in parsed}
    for as_of in DEMO_AS_OF:
        dataset = load_dataset(ws, as_of=as_of)
        for name, mask in evaluate_all(parsed, dataset.frame, dataset.schema).items():
            shares[name].append(float(np.mean(mask)))
    return shares


@pytest.fixture(scope="module")
def sizes(demo: Path) -> dict[str, list[float]]:
    return _sizes(demo)


def test_demo_segments_have_plausible_sizes_at_every_refresh(sizes: dict) -> None:
    for name, shares in sizes.items():
        assert all(0.005 <= share <= 0.40 for share in shares), (name, shares)


def test_the_shift_moves_churn_risk_power_users_and_new_paying(sizes: dict) -> None:
    assert sizes["churn-risk"][1] > 1.2 * sizes["churn-risk"][0]
    assert sizes["power-users"][1] < 0.9 * sizes["power-users"][0]
    assert sizes["new-paying"][2] > 1.2 * sizes["new-paying"][0]


def test_demo_refreshes_pass_the_quality_gate(demo: Path) -> None:
    from segments.quality import run_gate
    from segments.sources import load_dataset
    from segments.workspace import load_workspace

    ws = load_workspace(demo)
    history: list[dict] = []
    for as_of in DEMO_AS_OF:
        report = run_gate(load_dataset(ws, as_of=as_of), ws, history=history)
        assert report.failures == [], (as_of, [c.message for c in report.failures])
        history.append(report.profile)


@pytest.mark.parametrize(
    ("kind", "blocked", "clear"),
    [
        (
            "stale_billing",
            ["trial", "new-paying", "churn-risk", "power-users"],
            ["support-heavy", "dormant", "integration-champions"],
        ),
        ("null_region", ["expansion-candidates"], ["churn-risk", "power-users", "trial"]),
    ],
)
def test_broken_data_blocks_the_segments_that_read_it(
    tmp_path: Path, kind: str, blocked: list[str], clear: list[str]
) -> None:
    from segments import rules
    from segments.quality import run_gate
    from segments.sources import load_dataset
    from segments.workspace import load_workspace

    ws = load_workspace(install_demo(tmp_path, customers=500))
    history = [run_gate(load_dataset(ws, as_of=d), ws, history=[]).profile for d in DEMO_AS_OF[:2]]
    break_data(tmp_path / "data", DEMO_AS_OF[2], kind=kind)
    dataset = load_dataset(ws, as_of=DEMO_AS_OF[2])
    report = run_gate(dataset, ws, history=history)
    parsed = {seg.name: rules.parse(seg.rule) for seg in ws.segments}

    def blocking(name: str) -> list:
        """As a refresh judges it: rule columns through references, KPIs, their sources."""
        seg, todo, columns = ws.segment(name), [name], set()
        while todo:
            rule = parsed[todo.pop()]
            columns |= rules.columns(rule)
            todo.extend(rules.dependencies(rule))
        columns = {dataset.schema.resolve(c) for c in columns | set(seg.kpis)}
        used = set().union(*(dataset.lineage.get(c, set()) for c in columns))
        return report.blocking_for(seg, columns_used=columns, sources_used=used)

    assert all(blocking(name) for name in blocked)
    assert not any(blocking(name) for name in clear)

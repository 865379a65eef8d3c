"""A real effect for the demo experiment: extra logins for the treated accounts.

``add_logins(data_dir, accounts, months=...)`` appends login events to the generated
product export: each account answers the action with probability ``rate`` and then logs
in ``per_month`` more times on days 5-25 of each month given, so any 30-day window
ending at one of those month ends holds ``rate * per_month`` extra logins per treated
account on average: the true effect the readout's interval should cover. Everything is
drawn from one seeded generator, so the same arguments write the same file.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime, time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv


def add_logins(
    data_dir: Path,
    accounts: Iterable[str],
    *,
    months: Sequence[date],
    rate: float = 0.5,
    per_month: int = 3,
    seed: int = 13,
) -> float:
    """Append the extra logins; return the true effect on a 30-day login count."""
    rng = np.random.default_rng(seed)
    people = pacsv.read_csv(data_dir / "people.csv").to_pandas()
    first_email = people.groupby("account_id", sort=True)["email"].first()
    chosen = sorted(set(accounts) & set(first_email.index))
    answers = np.asarray(chosen, dtype=object)[rng.random(len(chosen)) < rate]
    emails = first_email.reindex(answers).to_numpy(dtype=object)
    stamps: list[datetime] = []
    who: list[str] = []
    for month in months:
        days = rng.integers(5, 26, size=(len(emails), per_month))
        seconds = rng.integers(0, 86_400, size=(len(emails), per_month))
        for row, email in enumerate(emails):
            for day, second in zip(days[row], seconds[row], strict=True):
                start = datetime.combine(month.replace(day=int(day)), time())
                stamps.append(start + np.timedelta64(int(second), "s").item())
                who.append(email)
    path = data_dir / "product_events.csv"
    events = pacsv.read_csv(path)
    extra = pa.table(
        {
            "email": pa.array(who, pa.string()),
            "ts": pa.array(stamps, events.schema.field("ts").type),
            "event": pa.array(["login"] * len(who), pa.string()),
            "value": pa.array([1] * len(who), events.schema.field("value").type),
        }
    )
    merged = pa.concat_tables([events, extra.cast(events.schema)])
    merged = merged.take(pc.sort_indices(merged, sort_keys=[("ts", "ascending")]))
    pacsv.write_csv(merged, path)
    return rate * per_month

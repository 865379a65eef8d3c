"""Size charts: valid PNGs at Slack's preview size, date ticks for any span, the KPI
line always visible, blocked days as marked gaps. Speed is measured in ``segops bench``."""

from __future__ import annotations

import math
import struct
import threading
from datetime import date, timedelta
from pathlib import Path

import numpy as np
from matplotlib import dates as mdates

from briefs.chart import KPI_COLOR, figure, size_chart
from tests.briefs import samples

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def tick_labels(fig) -> list[str]:
    ax = fig.axes[0]
    fig.canvas.draw()
    low, high = ax.get_xlim()
    return [
        t.get_text()
        for t in ax.get_xticklabels()
        if t.get_text() and low <= mdates.date2num(mdates.num2date(t.get_position()[0])) <= high
    ]


def by_gid(fig, gid: str):
    return [a for a in fig.axes[0].get_children() if a.get_gid() == gid]


def test_chart_writes_a_valid_png_at_slack_preview_size(tmp_path: Path) -> None:
    path = tmp_path / "size.png"
    data = size_chart(
        {"power-users": samples.TREND},
        title="Power users",
        subtitle="Definition v3 · data as of 2026-08-31",
        kpi=[(d, 14.0 + i / 10) for i, (d, _) in enumerate(samples.TREND)],
        kpi_label="Seats (average)",
        path=path,
    )
    assert path.read_bytes() == data
    assert png_size(data) == (960, 540)
    assert data.endswith(b"IEND\xaeB`\x82")


def test_chart_draws_gaps_single_points_and_no_data() -> None:
    gappy = [(date(2026, 6, 30), 40), (date(2026, 7, 31), None), ("2026-08-31", 55)]
    for series in ({"a": gappy, "b": [("2026-08-31", 3)]}, {}, {"empty": []}):
        assert png_size(size_chart(series, title="Edge cases", drift=[])) == (960, 540)


def test_one_point_gets_one_date_tick_and_a_scale_from_zero() -> None:
    fig = figure({"churn-risk": [("2026-09-30", 472)]}, title="One refresh")
    assert tick_labels(fig) == ["30 Sep 2026"]
    low, high = fig.axes[0].get_ylim()
    assert low == 0 and high > 472


def test_two_points_tick_each_refresh_and_the_kpi_stays_visible() -> None:
    fig = figure(
        {"churn-risk": [("2026-08-31", 472), ("2026-09-30", 647)]},
        title="Two refreshes",
        kpi=[("2026-08-31", 0.25), ("2026-09-30", 0.56)],
        kpi_label="Failed payments (average)",
    )
    assert tick_labels(fig) == ["31 Aug\n2026", "30 Sep"]
    (kpi,) = by_gid(fig, "kpi")
    size_line = next(line for line in fig.axes[0].get_lines() if line.get_label() == "churn-risk")
    assert kpi.get_color() == KPI_COLOR and kpi.get_linestyle() != size_line.get_linestyle()
    assert kpi.get_zorder() > size_line.get_zorder()
    kpi_y, size_y = np.asarray(kpi.get_ydata()), np.asarray(size_line.get_ydata(), float)
    assert (kpi_y > size_y).all()  # drawn above the sizes, never hidden under them
    low, high = fig.axes[0].get_ylim()
    assert low <= kpi_y.min() and kpi_y.max() <= high


def test_months_get_month_ticks_with_the_year_once() -> None:
    points = [(date(2025, 11, 1) + timedelta(days=30 * i), 400 + i) for i in range(12)]
    labels = tick_labels(figure({"a": points}, title="A year"))
    assert labels[0].endswith("2025") and "Jan\n2026" in labels
    assert all(
        label.split("\n")[0] in {f"{date(2026, m, 1):%b}" for m in range(1, 13)} for label in labels
    )


def test_days_get_day_ticks_and_years_get_year_ticks() -> None:
    days = [(date(2026, 9, 1) + timedelta(days=i), 80 + i) for i in range(30)]
    labels = tick_labels(figure({"a": days}, title="A month"))
    assert labels[0].endswith("\n2026") and 5 <= len(labels) <= 8
    assert all(label.split("\n")[0].split(" ")[1] in ("Aug", "Sep", "Oct") for label in labels)
    years = [(date(2019, 1, 1) + timedelta(days=91 * i), 900 + i) for i in range(28)]
    labels = tick_labels(figure({"a": years}, title="Years"))
    assert labels == [str(y) for y in range(2019, 2026)] or labels == [
        str(y) for y in range(2019, 2027)
    ]


def test_a_blocked_day_is_a_marked_gap_not_a_dropped_segment() -> None:
    kept = [("2026-08-31", 120), ("2026-09-30", 126)]
    fig = figure(
        {"new-paying": kept, "churn-risk": [("2026-08-31", 472), ("2026-09-30", 647)]},
        title="Blocked",
        blocked={"new-paying": ["2026-10-31"]},
    )
    line = next(line for line in fig.axes[0].get_lines() if line.get_label() == "new-paying")
    xs, ys = line.get_xdata(), np.asarray(line.get_ydata(), float)
    assert len(xs) == 3 and math.isnan(ys[-1])  # the blocked day is a gap in the line
    (cross,) = by_gid(fig, "blocked")
    ((x, y),) = cross.get_offsets()
    assert mdates.num2date(x).date() == date(2026, 10, 31) and y == 126
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "blocked" in legend


def test_the_same_chart_gives_the_same_bytes_whatever_was_drawn_before() -> None:
    months = [(date(2026, m, 28), 400 + m * 37) for m in range(1, 13)]
    with_kpi = {
        "series": {"churn-risk": months},
        "kpi": [(d, 0.25 + i * 0.03) for i, (d, _) in enumerate(months)],
        "kpi_label": "Failed payments (average)",
        "title": "Churn risk: size",
        "subtitle": "Definition v3",
    }
    others = [
        {
            "series": {"a": months, "b": [(d, v // 2) for d, v in months[:-1]]},
            "blocked": {"b": [months[-1][0]]},
            "drift": [months[3][0]],
            "title": "Blocked and drift",
        },
        {"series": {}, "title": "Nothing yet"},
        {"series": {"one": [("2026-09-30", 3)]}, "title": "One point"},
    ]
    first = size_chart(**with_kpi)
    for other in others:  # legends, crosses, rings, texts and ticks of other charts
        assert size_chart(**other) != first
        assert size_chart(**with_kpi) == first
    fresh: list[bytes] = []  # a thread draws on a figure of its own, never drawn on before
    thread = threading.Thread(target=lambda: fresh.append(size_chart(**with_kpi)))
    thread.start()
    thread.join()
    assert fresh == [first]
    plain = size_chart(**others[2])
    size_chart(**with_kpi)
    assert size_chart(**others[2]) == plain

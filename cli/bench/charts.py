"""Chart rendering time: the size charts of :mod:`briefs.chart` against bare matplotlib.

Each case (one point, two points with a KPI, a month of days, a year of months with a
blocked day, years) is drawn ``runs`` times; the peer draws the same points as one
plain line on a bare ``Figure`` of the same pixel size and saves it as PNG, so the
ratio is what the styling, ticks and labels cost on top of matplotlib itself.
"""

from __future__ import annotations

import io
import time
from datetime import date, timedelta
from typing import Any


def cases() -> dict[str, dict[str, Any]]:
    """The charts drawn, by name: keyword arguments of ``size_chart``."""
    months = [(date(2026, m, 28), 400 + m * 10) for m in range(1, 13)]
    return {
        "one point": {"series": {"churn-risk": [("2026-09-30", 472)]}},
        "two points + KPI": {
            "series": {"churn-risk": [("2026-08-31", 472), ("2026-09-30", 647)]},
            "kpi": [("2026-08-31", 0.25), ("2026-09-30", 0.56)],
            "kpi_label": "Failed payments (mean)",
        },
        "30 days": {
            "series": {"trial": [(date(2026, 9, 1) + timedelta(days=i), 80 + i) for i in range(30)]}
        },
        "12 months, 3 segments, blocked": {
            "series": {
                "churn-risk": months,
                "new-paying": [(d, v // 3) for d, v in months],
                "win-back": [(d, v // 2) for d, v in months[:-1]],
            },
            "blocked": {"win-back": [months[-1][0]]},
        },
        "7 years": {
            "series": {
                "core": [
                    (date(2019, 1, 1) + timedelta(days=91 * i), 900 + 9 * i) for i in range(28)
                ]
            }
        },
    }


def _bare(series: dict[str, list], **_: Any) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.6), dpi=150)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for points in series.values():
        ax.plot([p[0] for p in points], [p[1] for p in points])
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def run_chart_bench(runs: int = 10) -> dict[str, dict[str, float]]:
    """Median milliseconds per chart for each case, segops and bare matplotlib."""
    from briefs.chart import size_chart

    size_chart({"warm-up": [("2026-09-30", 1)]}, title="warm up")
    _bare({"warm-up": [(date(2026, 9, 30), 1)]})
    out: dict[str, dict[str, float]] = {}
    for name, kwargs in cases().items():
        ours, peer = [], []
        for _ in range(runs):
            started = time.perf_counter()
            size_chart(title=name, **kwargs)
            ours.append(time.perf_counter() - started)
            started = time.perf_counter()
            _bare(**kwargs)
            peer.append(time.perf_counter() - started)
        out[name] = {
            "ms": 1000 * sorted(ours)[runs // 2],
            "bare_ms": 1000 * sorted(peer)[runs // 2],
        }
    return out

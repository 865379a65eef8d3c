"""Segment size charts as PNG, drawn off-screen with matplotlib's Agg canvas.

The figure is built with ``matplotlib.figure.Figure`` and ``FigureCanvasAgg``
directly, so there is no pyplot global state and no display is needed; charts can be
drawn from any thread.
"""

from __future__ import annotations

import io
import math
from collections.abc import Collection, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

from matplotlib import dates as mdates
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, MaxNLocator

PALETTE = ("#0B6BCB", "#1F9D6B", "#C2418E", "#E08A00", "#5B5BD6", "#2AA5C7", "#333333")
DRIFT_COLOR = "#D64545"
KPI_COLOR = "#7A7F87"
INK = "#1F2328"
MUTED = "#6E7781"
GRID = "#E6E8EB"

Point = tuple[Any, Any]


def size_chart(
    series: Mapping[str, Sequence[Point]],
    *,
    title: str,
    subtitle: str | None = None,
    kpi: Sequence[Point] | None = None,
    kpi_label: str = "KPI",
    drift: Collection[Any] | None = None,
    drift_threshold: float = 0.2,
    path: Path | None = None,
    size: tuple[float, float] = (8.0, 4.2),
    dpi: int = 150,
) -> bytes:
    """Draw member counts over time; return the PNG bytes (also written to ``path``).

    ``series`` maps a name to ``(date, size)`` points (dates as ``date``, ``datetime``
    or ``"YYYY-MM-DD"``; a ``None`` size, e.g. under the privacy floor, leaves a gap).
    ``kpi`` is an optional ``(date, value)`` line on a second axis. Drift points are
    ringed in red: the dates in ``drift`` when given, otherwise every point whose size
    moved by at least ``drift_threshold`` (20 %) from the point before. The last value
    of every line is printed beside it.
    """
    fig = Figure(figsize=size, dpi=dpi, facecolor="white")
    # fixed margins: constrained layout would double the drawing time
    top = 0.83 if subtitle else 0.9
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    _style(ax)
    lines = {name: _points(points) for name, points in series.items()}
    lines = {name: pts for name, pts in lines.items() if pts}
    handles: list[Any] = []
    drift_dates = {_date(d) for d in drift} if drift is not None else None
    ringed = False
    labels: list[tuple] = []
    for index, (name, pts) in enumerate(lines.items()):
        color = PALETTE[index % len(PALETTE)]
        xs, ys = _xy(pts)
        (line,) = ax.plot(
            xs,
            ys,
            color=color,
            lw=2.2,
            marker="o",
            ms=3.8,
            label=name,
            zorder=3,
            solid_capstyle="round",
        )
        handles.append(line)
        hits = _drift_points(xs, ys, drift_dates, drift_threshold)
        if hits:
            ringed = True
            ax.scatter(
                [xs[i] for i in hits],
                [ys[i] for i in hits],
                s=150,
                facecolors="none",
                edgecolors=DRIFT_COLOR,
                linewidths=2.0,
                zorder=4,
            )
        label = _last_label(xs, ys, color)
        if label:
            labels.append(label)
    if kpi:
        kpts = _points(kpi)
        if kpts:
            ax2 = ax.twinx()
            ax.set_zorder(ax2.get_zorder() + 1)  # sizes above the KPI line
            ax.patch.set_visible(False)
            _style(ax2, twin=True)
            kx, ky = _xy(kpts)
            last = next((v for v in reversed(ky) if not math.isnan(v)), None)
            (kline,) = ax2.plot(
                kx,
                ky,
                color=KPI_COLOR,
                lw=1.6,
                ls=(0, (4, 3)),
                marker="s",
                ms=3,
                label=kpi_label if last is None else f"{kpi_label}: {_full(last)} now",
                zorder=2,
            )
            ax2.set_ylabel(kpi_label, color=KPI_COLOR, fontsize=9)
            ax2.yaxis.set_major_formatter(FuncFormatter(_short))
            ax2.set_ylim(*_padded(ky))
            handles.append(kline)
    if not lines:
        ax.text(
            0.5,
            0.5,
            "No refreshes yet",
            transform=ax.transAxes,
            ha="center",
            va="center",
            color=MUTED,
            fontsize=12,
        )
        ax.set_xticks([])
        ax.set_yticks([])
    else:
        ys_all = [float(v) for pts in lines.values() for _, v in pts if v is not None]
        low, high = _padded(ys_all)
        ax.set_ylim(low, high)
        if len(lines) == 1:
            xs, ys = _xy(next(iter(lines.values())))
            ax.fill_between(xs, ys, low, color=PALETTE[0], alpha=0.07, zorder=1)
        locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        _pad_x(ax, [d for pts in lines.values() for d, _ in pts])
    if ringed:
        handles.append(
            Line2D(
                [],
                [],
                ls="none",
                marker="o",
                ms=9,
                mfc="none",
                mec=DRIFT_COLOR,
                mew=2,
                label="drift",
            )
        )
    ax.set_title(
        title, loc="left", fontsize=13, fontweight="bold", color=INK, pad=26 if subtitle else 10
    )
    if subtitle:
        ax.text(0, 1.035, subtitle, transform=ax.transAxes, fontsize=9.5, color=MUTED, va="bottom")
    if len(handles) > 1:
        fig.legend(
            handles=handles,
            loc="lower center",
            bbox_to_anchor=(0.5, 0.005),
            ncol=min(len(handles), 5),
            frameon=False,
            fontsize=9,
            handlelength=1.8,
            labelcolor=INK,
        )
    bottom = 0.18 if len(handles) > 1 else 0.1
    fig.subplots_adjust(left=0.09, right=0.9 if kpi else 0.97, top=top, bottom=bottom)
    if labels:
        _place_labels(ax, labels, *ax.get_ylim(), size[1] * 72 * (top - bottom))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, facecolor="white")
    png = buffer.getvalue()
    if path is not None:
        Path(path).write_bytes(png)
    return png


def _date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _points(points: Sequence[Point]) -> list[tuple[date, Any]]:
    return sorted(((_date(d), v) for d, v in points), key=lambda p: p[0])


def _xy(points: Sequence[tuple[date, Any]]) -> tuple[list[date], list[float]]:
    return [d for d, _ in points], [math.nan if v is None else float(v) for _, v in points]


def _style(ax: Any, *, twin: bool = False) -> None:
    for side in ("top",) + (() if twin else ("right",)):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom", "right"):
        ax.spines[side].set_color("#C9CDD2")
    ax.tick_params(colors=MUTED, labelsize=9, length=0 if twin else 3)
    if not twin:
        ax.grid(axis="y", color=GRID, lw=0.9)
        ax.grid(axis="x", color=GRID, lw=0.5, alpha=0.6)
        ax.set_axisbelow(True)
        ax.yaxis.set_major_formatter(FuncFormatter(_short))
        ax.yaxis.set_major_locator(MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10], integer=True))
        ax.set_ylabel("members", color=MUTED, fontsize=9)


def _short(value: float, _pos: int | None = None) -> str:
    """Axis labels: 950, 1.5k, 10.5k, 2.25M (exact to two decimals, never rounded away)."""
    size = abs(value)
    unit, scale = ("M", 1e6) if size >= 1e6 else ("k", 1e3) if size >= 1e3 else ("", 1.0)
    text = f"{value / scale:.2f}".rstrip("0").rstrip(".")
    return text.replace("-", "−") + unit


def _full(value: float) -> str:
    if abs(value) >= 100 or value == int(value):
        return f"{value:,.0f}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def _padded(values: Sequence[float]) -> tuple[float, float]:
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return 0.0, 1.0
    low, high = min(finite), max(finite)
    span = high - low or max(abs(high) * 0.1, 1.0)
    return max(0.0, low - span * 0.18) if low >= 0 else low - span * 0.18, high + span * 0.18


def _pad_x(ax: Any, xs: Sequence[date]) -> None:
    first, last = min(xs), max(xs)
    span = max((last - first).days, 1)
    left = mdates.date2num(first) - span * 0.03
    right = mdates.date2num(last) + span * 0.13
    ax.set_xlim(left, right)


def _drift_points(
    xs: Sequence[date], ys: Sequence[float], dates: set[date] | None, threshold: float
) -> list[int]:
    if dates is not None:
        return [i for i, d in enumerate(xs) if d in dates and not math.isnan(ys[i])]
    hits = []
    for i in range(1, len(ys)):
        before, now = ys[i - 1], ys[i]
        if math.isnan(before) or math.isnan(now) or before == 0:
            continue
        if abs(now - before) / abs(before) >= threshold:
            hits.append(i)
    return hits


def _last_label(xs: Sequence[date], ys: Sequence[float], color: str) -> tuple | None:
    """(x, y, text, color) for the last value of a line, with its change, or None."""
    finite = [i for i, y in enumerate(ys) if not math.isnan(y)]
    if not finite:
        return None
    last = finite[-1]
    text = _full(ys[last])
    if len(finite) > 1 and ys[finite[-2]]:
        change = 100.0 * (ys[last] - ys[finite[-2]]) / abs(ys[finite[-2]])
        text += f"\n{change:+.1f}%".replace("-", "−")
    return xs[last], ys[last], text, color


def _place_labels(ax: Any, labels: list[tuple], low: float, high: float, height_pt: float) -> None:
    """Print each line's last value beside it, nudged apart so labels never overlap."""
    gap = 26.0  # points: two lines of 9.5 pt text
    per_unit = height_pt / (high - low)
    wanted = sorted(labels, key=lambda label: label[1])
    placed: list[float] = []
    for _x, y, _text, _color in wanted:
        at = (y - low) * per_unit
        placed.append(max(at, placed[-1] + gap) if placed else at)
    overflow = (placed[-1] - height_pt + gap / 2) if placed else 0.0
    if overflow > 0:  # push the stack down if the top label left the plot
        placed = [p - overflow for p in placed]
        for i in range(len(placed) - 2, -1, -1):
            placed[i] = min(placed[i], placed[i + 1] - gap)
    for (x, y, text, color), at in zip(wanted, placed, strict=True):
        ax.annotate(
            text,
            xy=(x, y),
            xytext=(8, at - (y - low) * per_unit),
            textcoords="offset points",
            va="center",
            ha="left",
            fontsize=9.5,
            color=color,
            fontweight="bold",
            linespacing=1.1,
        )

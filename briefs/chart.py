"""Segment size charts as PNG, drawn off-screen with matplotlib's Agg canvas.

The figure is built with ``matplotlib.figure.Figure`` and ``FigureCanvasAgg``
directly, so there is no pyplot global state and no display is needed; charts can be
drawn from any thread. Each thread keeps one figure and draws every chart on it, its
axes cleared and styled again (:func:`_canvas`): building a figure and its axes cost
a third of a chart. Nothing of one chart is left on the next, so the same chart gives
the same bytes whatever was drawn before it. The title sits at a fixed height (no
search for the tick labels it might overlap) and the PNG is written with zlib's
fastest level: together about half the time of a fresh figure, under 150 ms a chart.

Made for Slack's preview: 960 x 540 pixels with text of 11 pt and more, so the numbers
read in a message without opening the image. Date ticks follow the span (:func:`_dates`):
one tick for one point, days up to a month, months up to three years, years beyond.
The KPI line has its own colour, a dashed style and square markers, and is drawn in the
upper part of the plot above the sizes (its values printed at its ends rather than on a
second axis), so it never hides under them. A blocked day
(the refresh did not publish) is a gap in the line with a grey cross at the size the
segment kept.
"""

from __future__ import annotations

import io
import math
import threading
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
KPI_COLOR = "#B35900"
BLOCKED_COLOR = "#8C959F"
INK = "#1F2328"
MUTED = "#6E7781"
GRID = "#E6E8EB"

Point = tuple[Any, Any]

PNG_COMPRESSION = 1
"""zlib level of the PNG: the fastest; a chart is a few kB larger than at level 6."""

_local = threading.local()


def _canvas(size: tuple[float, float], dpi: int) -> tuple[Figure, Any]:
    """This thread's figure and axes, cleared and styled for a new chart.

    Everything a chart adds is removed: the axes' lines, texts and collections (by
    ``clear``, which also resets its ticks, limits, locators and formatters), and the
    figure's legends and texts; the margins are set again by :func:`figure`.
    """
    fig = getattr(_local, "figure", None)
    if fig is None or getattr(_local, "key", None) != (size, dpi):
        fig = Figure(figsize=size, dpi=dpi, facecolor="white")
        FigureCanvasAgg(fig)
        fig.add_subplot()
        _local.figure, _local.key = fig, (size, dpi)
    (ax,) = fig.axes
    ax.clear()
    fig.legends.clear()
    fig.texts.clear()
    _style(ax)
    return fig, ax


def size_chart(
    series: Mapping[str, Sequence[Point]],
    *,
    title: str,
    path: Path | None = None,
    dpi: int = 150,
    **options: Any,
) -> bytes:
    """Draw member counts over time (:func:`figure`); return the PNG bytes, also written
    to ``path`` when given."""
    fig = figure(series, title=title, dpi=dpi, **options)
    buffer = io.BytesIO()
    fig.savefig(
        buffer,
        format="png",
        dpi=dpi,
        facecolor="white",
        pil_kwargs={"compress_level": PNG_COMPRESSION},
    )
    png = buffer.getvalue()
    if path is not None:
        Path(path).write_bytes(png)
    return png


def render(spec: Mapping[str, Any]) -> bytes:
    """The PNG of a chart spec as :mod:`commands.notify` stores it in the outbox:
    ``{"series": {name: [[day, size], ...]}, "title": ..., "kpi": [[day, value], ...],
    "kpi_label": ..., "blocked": {name: [day, ...]}}`` (all but the first two optional).
    Delivery draws it when the message is posted, so a refresh never waits for charts."""
    options = {k: spec[k] for k in ("kpi", "kpi_label", "blocked") if spec.get(k) is not None}
    return size_chart(spec["series"], title=str(spec["title"]), **options)


def figure(
    series: Mapping[str, Sequence[Point]],
    *,
    title: str,
    subtitle: str | None = None,
    kpi: Sequence[Point] | None = None,
    kpi_label: str = "KPI",
    drift: Collection[Any] | None = None,
    drift_threshold: float = 0.2,
    blocked: Mapping[str, Collection[Any]] | None = None,
    size: tuple[float, float] = (6.4, 3.6),
    dpi: int = 150,
) -> Figure:
    """The chart of member counts over time, as a matplotlib ``Figure`` on an Agg canvas.

    ``series`` maps a name to ``(date, size)`` points (dates as ``date``, ``datetime``
    or ``"YYYY-MM-DD"``; a ``None`` size, e.g. under the privacy floor, leaves a gap).
    ``kpi`` is an optional ``(date, value)`` line on a second axis. Drift points are
    ringed in red: the dates in ``drift`` when given, otherwise every point whose size
    moved by at least ``drift_threshold`` (20 %) from the point before. ``blocked`` maps
    a name to the dates its refresh was blocked: a gap in its line, marked with a cross
    at the size it kept. The last value of every line is printed beside it.

    The figure is this thread's own (:func:`_canvas`): it holds this chart until the
    thread draws the next one.
    """
    fig, ax = _canvas(size, dpi)
    # fixed margins: constrained layout would double the drawing time
    top = 0.83 if subtitle else 0.9
    lines = {name: _points(points) for name, points in series.items()}
    crosses: list[tuple[date, float]] = []
    for name, days in (blocked or {}).items():
        pts = lines.get(name, [])
        for day in {_date(d) for d in days}:
            kept = [v for d, v in pts if d < day and v is not None]
            if any(d == day for d, _ in pts):
                continue
            pts = sorted([*pts, (day, None)], key=lambda p: p[0])
            if kept:
                crosses.append((day, float(kept[-1])))
        lines[name] = pts
    lines = {name: pts for name, pts in lines.items() if any(v is not None for _, v in pts)}
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
            lw=2.4,
            marker="o",
            ms=5 if len(xs) < 8 else 3.8,
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
    kpts = _points(kpi) if kpi else []
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
        if len(set(ys_all)) == 1:  # one value: show it against zero, not a tiny band
            low, high = 0.0, max(ys_all[0] * 1.35, 1.0)
        if kpts:
            high += (high - low) * 0.45  # room above the sizes for the KPI line
            handles.append(_kpi_line(ax, kpts, kpi_label, low, high))
        ax.set_ylim(low, high)
        if crosses:
            ax.scatter(
                [d for d, _ in crosses],
                [y for _, y in crosses],
                marker="X",
                s=70,
                color=BLOCKED_COLOR,
                zorder=6,
                gid="blocked",
            )
            handles.append(
                Line2D([], [], ls="none", marker="X", ms=8, color=BLOCKED_COLOR, label="blocked")
            )
        if len(lines) == 1:
            xs, ys = _xy(next(iter(lines.values())))
            ax.fill_between(xs, ys, low, color=PALETTE[0], alpha=0.07, zorder=1)
        _dates(ax, [d for pts in lines.values() for d, _ in pts])
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
    ax.set_title(  # a fixed y: no search for tick labels above the axes (there are none)
        title,
        loc="left",
        y=1.0,
        fontsize=14,
        fontweight="bold",
        color=INK,
        pad=26 if subtitle else 10,
    )
    if subtitle:
        ax.text(0, 1.035, subtitle, transform=ax.transAxes, fontsize=10.5, color=MUTED, va="bottom")
    if len(handles) > 1:
        fig.legend(
            handles=handles,
            loc="lower center",
            bbox_to_anchor=(0.5, 0.005),
            ncol=min(len(handles), 4),
            frameon=False,
            fontsize=10.5,
            handlelength=1.8,
            labelcolor=INK,
        )
    bottom = 0.22 if len(handles) > 1 else 0.12
    fig.subplots_adjust(left=0.1, right=0.95, top=top, bottom=bottom)
    if labels:
        _place_labels(ax, labels, *ax.get_ylim(), size[1] * 72 * (top - bottom))
    return fig


def _kpi_line(ax: Any, kpts: list[tuple[date, Any]], label: str, low: float, high: float) -> Any:
    """The KPI drawn in the upper band of the size axes, above the sizes, its values
    printed at its first and last points (no second axis: half the drawing time)."""
    kx, ky = _xy(kpts)
    finite = [v for v in ky if not math.isnan(v)]
    klow, khigh = (min(finite), max(finite)) if finite else (0.0, 1.0)
    band_low, band_high = low + (high - low) * 0.62, low + (high - low) * 0.92
    scale = (band_high - band_low) / (khigh - klow) if khigh > klow else 0.0
    mid = (band_low + band_high) / 2

    def place(v: float) -> float:
        return math.nan if math.isnan(v) else (band_low + (v - klow) * scale if scale else mid)

    ys = [place(v) for v in ky]
    last = finite[-1] if finite else None
    (line,) = ax.plot(
        kx,
        ys,
        color=KPI_COLOR,
        lw=1.8,
        ls=(0, (5, 3)),
        marker="s",
        ms=4.5,
        mfc="white",
        mew=1.5,
        label=label if last is None else f"{label}: {_full(last)} now",
        zorder=5,
        gid="kpi",
    )
    shown = [i for i, v in enumerate(ky) if not math.isnan(v)]
    for i in sorted({shown[0], shown[-1]}) if shown else []:
        ax.annotate(
            _full(ky[i]),
            xy=(kx[i], ys[i]),
            xytext=(0, 7),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=10,
            color=KPI_COLOR,
        )
    return line


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
    ax.tick_params(colors=MUTED, labelsize=10.5, length=0 if twin else 3)
    if not twin:
        ax.grid(axis="y", color=GRID, lw=0.9)
        ax.grid(axis="x", color=GRID, lw=0.5, alpha=0.6)
        ax.set_axisbelow(True)
        ax.yaxis.set_major_formatter(FuncFormatter(_short))
        ax.yaxis.set_major_locator(MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10], integer=True))
        ax.set_ylabel("members", color=MUTED, fontsize=10)


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


def _dates(ax: Any, xs: Sequence[date]) -> None:
    """Ticks and limits for the span of ``xs``: a single date, days, months or years."""
    first, last = min(xs), max(xs)
    span = (last - first).days
    if span == 0:
        ax.set_xticks([mdates.date2num(first)])
        ax.set_xticklabels([f"{first.day} {first:%b %Y}"])
        ax.set_xlim(mdates.date2num(first) - 10, mdates.date2num(first) + 14)
        return
    distinct = sorted(set(xs))
    if len(distinct) <= 6:  # few refreshes: a tick on each, named by its span
        ax.set_xticks([mdates.date2num(d) for d in distinct])
        if span <= 45:
            names = [f"{d.day} {d:%b}" for d in distinct]
            names[0] += f"\n{distinct[0].year}"
        elif span <= 3 * 366:
            names = [f"{d:%b}" if d.month != 1 else f"{d:%b}\n{d.year}" for d in distinct]
            names[0] = f"{distinct[0]:%b}\n{distinct[0].year}"
        else:
            names = [str(d.year) for d in distinct]
        ax.set_xticklabels(names)
    elif span <= 45:
        step = max(1, math.ceil(span / 6))
        ax.xaxis.set_major_locator(mdates.DayLocator(interval=step))
        ax.xaxis.set_major_formatter(FuncFormatter(_day_label()))
    elif span <= 3 * 366:
        months = span / 30.4
        step = next(n for n in (1, 2, 3, 4, 6, 12) if months / n <= 7)
        ax.xaxis.set_major_locator(mdates.MonthLocator(interval=step))
        ax.xaxis.set_major_formatter(FuncFormatter(_month_label()))
    else:
        years = span / 365.25
        step = next(n for n in (1, 2, 5, 10, 20, 50) if years / n <= 7)
        ax.xaxis.set_major_locator(mdates.YearLocator(base=step))
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y"))
    left = mdates.date2num(first) - max(span * 0.04, 1)
    right = mdates.date2num(last) + max(span * 0.15, 2)
    ax.set_xlim(left, right)


def _day_label() -> Any:
    """``3 Sep``, with the year under the first tick."""

    def label(value: float, pos: int | None = None) -> str:
        day = mdates.num2date(value).date()
        return f"{day.day} {day:%b}" + (f"\n{day.year}" if pos == 0 else "")

    return label


def _month_label() -> Any:
    """``Sep``, with the year under January and under the first tick."""

    def label(value: float, pos: int | None = None) -> str:
        day = mdates.num2date(value).date()
        return f"{day:%b}\n{day.year}" if day.month == 1 or pos == 0 else f"{day:%b}"

    return label


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
    return xs[-1], ys[last], text, color  # a blocked last day: beside its cross


def _place_labels(ax: Any, labels: list[tuple], low: float, high: float, height_pt: float) -> None:
    """Print each line's last value beside it, nudged apart so labels never overlap."""
    gap = 28.0  # points: two lines of 11 pt text
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
            fontsize=11,
            color=color,
            fontweight="bold",
            linespacing=1.1,
        )

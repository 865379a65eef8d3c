"""Size charts: valid PNGs, odd inputs, and speed."""

from __future__ import annotations

import struct
import time
from datetime import date
from pathlib import Path

from briefs.chart import size_chart
from tests.briefs import samples

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_chart_writes_a_valid_png(tmp_path: Path) -> None:
    path = tmp_path / "size.png"
    data = size_chart(
        {"power-users": samples.TREND},
        title="Power users",
        subtitle="Definition v3 · data as of 2026-08-31",
        kpi=[(d, 14.0 + i / 10) for i, (d, _) in enumerate(samples.TREND)],
        kpi_label="seats (avg)",
        path=path,
    )
    assert path.read_bytes() == data
    assert png_size(data) == (1200, 630)
    assert data.endswith(b"IEND\xaeB`\x82")


def test_chart_draws_gaps_single_points_and_no_data() -> None:
    gappy = [(date(2026, 6, 30), 40), (date(2026, 7, 31), None), ("2026-08-31", 55)]
    for series in ({"a": gappy, "b": [("2026-08-31", 3)]}, {}, {"empty": []}):
        assert png_size(size_chart(series, title="Edge cases", drift=[])) == (1200, 630)


def test_chart_is_quick_once_matplotlib_is_loaded() -> None:
    size_chart({"warm": samples.TREND}, title="warm up")
    started = time.perf_counter()
    size_chart(
        {"a": samples.TREND, "b": [(d, v * 2) for d, v in samples.TREND]},
        title="Two segments",
        kpi=[(d, 1.0) for d, _ in samples.TREND],
    )
    assert time.perf_counter() - started < 1.0  # ~0.12 s typical; generous for busy CI

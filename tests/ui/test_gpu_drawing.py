"""The drawing helpers behind the GPU cards and graphs: what a user reads off them."""

from __future__ import annotations

import pytest

from gpuconsole.present import format as fmt
from gpuconsole.ui.widgets.time_graph import render_graph


def test_sparkline_scales_to_the_top_and_leaves_gaps() -> None:
    assert fmt.spark((0, 50, 100), 3, top=100) == "▁▅█"
    assert fmt.spark((0, None, 100), 3, top=100) == "▁ █"
    assert fmt.spark((100,), 4, top=100) == "   █"  # newest on the right
    assert fmt.spark((None, None), 2) == "  "


def test_bar_and_levels() -> None:
    assert fmt.bar(0.5, 10) == "█████·····"
    assert fmt.bar(None, 5) == " N/A "
    assert fmt.level(None, 70, 90) == "na"
    assert fmt.level(95, 70, 90) == "crit" and fmt.level(75, 70, 90) == "warn"


def test_graph_draws_levels_gaps_and_a_time_axis() -> None:
    values = (0.0, 50.0, None, 100.0)
    stamps = (0.0, 10.0, 20.0, 30.0)
    text = render_graph(
        values,
        width=12,
        height=5,
        top=100,
        interval=1.0,
        label=lambda v: f"{v:.0f}",
        timestamps=stamps,
    ).plain
    rows = text.splitlines()
    assert len(rows) == 5
    assert rows[0].startswith("100┤") and rows[3].startswith("  0┤")
    plot = [r[4:] for r in rows[:4]]
    assert [r[-1] for r in plot] == ["█"] * 4  # 100 % fills the last column
    assert [r[-2] for r in plot] == [" "] * 4  # the missing sample is a gap, not a zero
    assert plot[0][-3] == " " and plot[3][-3] == "█"  # 50 %: bottom half
    assert rows[4].split() == ["now"]  # too narrow for "-1.2m" beside it: left out, not garbled
    wide = render_graph(
        values,
        width=30,
        height=3,
        top=100,
        interval=1.0,
        label=lambda v: f"{v:.0f}",
        timestamps=stamps,
    ).plain.splitlines()
    assert wide[-1].split() == ["-4.2m", "-2.1m", "now"]  # 25 columns x 10 s, from timestamps


@pytest.mark.parametrize("height", [3, 9, 24, 45])
def test_graph_scale_and_time_axis_hold_at_any_height(height: int) -> None:
    # A graph grown to fill the screen still reads right: full scale at the top, zero at the
    # bottom, the half mark in the middle, the time axis under it; a full value fills it all.
    rows = render_graph(
        (0.0, 350.0, 700.0),
        width=40,
        height=height,
        top=700,
        interval=1.0,
        label=lambda v: f"{v:.0f}W",
    ).plain.splitlines()
    plot = rows[:-1]
    assert len(rows) == height and len(plot) == height - 1
    assert plot[0].startswith("700W┤") and plot[-1].startswith("  0W┤")
    if height > 3:
        assert plot[(height - 1) // 2].startswith("350W┤")
    assert [r[-1] for r in plot] == ["█"] * len(plot)  # 700 W: the whole column
    half = [r[-2] for r in plot]
    assert half.count("█") in (len(plot) // 2, (len(plot) + 1) // 2)  # 350 W: half of it
    assert [r[-3] for r in plot] == [" "] * len(plot)  # 0 W: nothing drawn
    assert rows[-1].split()[-1] == "now"


def _column(lines: list[str], x: int) -> str:
    """One plot column, top to bottom."""
    return "".join(line[x] for line in lines)


def test_live_graph_columns_are_buckets_of_time() -> None:
    # 30 samples a second apart on 10 columns spanning 100 s: 10 s a column, counted from the
    # epoch, the newest sample's bucket at the right. Each column reads its samples' mean (or,
    # for memory, their peak); a column with no reading is a gap, not a zero.
    stamps = tuple(1000.0 + i for i in range(30))
    values: list[float | None] = [0.0 if i % 2 else 100.0 for i in range(10)]  # mean 50, peak 100
    values += [None] * 10  # readings missing for 10 s
    values += [80.0] * 10

    def plot(peak: bool) -> list[str]:
        rows = render_graph(
            values,
            width=14,  # "100┤" and 10 columns
            height=9,  # 8 rows and the time axis
            top=100,
            interval=1.0,
            label=lambda v: f"{v:.0f}",
            timestamps=stamps,
            span=100.0,
            peak=peak,
        ).plain.splitlines()
        assert rows[-1].split() == ["-1.7m", "now"]  # the whole 100 s, left edge to now
        return [r[4:] for r in rows[:-1]]

    mean = plot(peak=False)
    assert _column(mean, -3) == "    ████"  # 100 and 0 by turns: 50 %, half the height
    assert _column(mean, -2) == "        "  # no reading: a gap
    assert _column(mean, -1) == " ▃██████"  # 80 %: 6.4 of 8 rows
    assert {_column(mean, x) for x in range(7)} == {"        "}  # before the first sample
    peak = plot(peak=True)
    assert _column(peak, -3) == "████████"  # the bucket's peak: 100 %
    assert _column(peak, -1) == _column(mean, -1)

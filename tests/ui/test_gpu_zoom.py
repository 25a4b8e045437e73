"""The GPU screen zoomed out: the last hour, day or week from the GPU recording (``z``), and a
clear word where there is no recording."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from gpuconsole.accounting.meter import GpuInterval
from gpuconsole.accounting.store import Writer
from gpuconsole.ui.app import GpuconsoleApp
from gpuconsole.ui.screens.gpus import GpuBlock, GpuScreen
from gpuconsole.ui.widgets.time_graph import TimeGraph

from fakes import H100_RECORDING, FakeHost, SteppedReplay
from support import host_of
from uihelpers import until

UUID = "GPU-85f63f49-2356-f053-21c3-2eb02bd04522"


def record_two_days(path: Path, host: str) -> None:
    """One row a minute for two days: 100 W a day ago and before, 400 W in the last day."""
    writer = Writer(path)
    now = time.time()
    rows = []
    t = now - 2 * 86400
    while t < now:
        t += 60
        watts = 400.0 if t > now - 86400 else 100.0
        rows.append(
            GpuInterval(
                host, UUID, 0, "H100", t, 60.0, watts * 60, 50.0, 20 << 30, 80 << 30, watts, 60
            )
        )
    writer.write(rows, [])
    writer.close()


def status(screen: Any) -> str:
    shown = screen._status._shown
    return "" if shown is None else shown.plain


async def zoom_to(pilot: Any, screen: GpuScreen, label: str) -> None:
    await pilot.press("z")
    await until(pilot, lambda: f"last {label}" in status(screen), what=label)


def graphs(screen: GpuScreen) -> dict[str, TimeGraph]:
    return {g.border_title: g for g in screen.query_one(GpuBlock).query(TimeGraph)}


async def test_zoom_shows_the_recording(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = SteppedReplay(step=1.0, limit=40)
    db = tmp_path / "usage.sqlite"
    record_two_days(db, source.host)
    monkeypatch.setenv("GPUCONSOLE_DB", str(db))
    app = GpuconsoleApp(
        host_of(FakeHost(), gpu=source),
        refresh_seconds=60,
        gpu_interval=0.05,
        replay_name=H100_RECORDING.name,
    )
    async with app.run_test(size=(180, 50)) as pilot:
        await until(pilot, lambda: source.calls >= 5, what="samples")
        await pilot.press("g")
        await until(pilot, lambda: isinstance(app.screen, GpuScreen), what="the GPU screen")
        screen = app.screen
        assert isinstance(screen, GpuScreen)
        assert "last 10 min (z)" in status(screen)

        await zoom_to(pilot, screen, "1 h (recording)")
        power = graphs(screen)["power"]
        await until(pilot, lambda: power.border_subtitle == "peak 400 W", what="the hour's peak")
        assert graphs(screen)["utilization"].border_subtitle == "mean 50%"
        oldest = power.render().plain.split("\n")[-1].split()[0]  # the time axis's left end
        assert oldest.endswith("m") and 57 <= float(oldest[1:-1]) <= 60, oldest

        await zoom_to(pilot, screen, "24 h (recording)")
        await zoom_to(pilot, screen, "7 d (recording)")
        await until(
            pilot, lambda: re.search(r"-(6\.\d|7)d ", power.render().plain), what="a week's axis"
        )
        plot = power.render().plain.split("\n")[:-1]
        # Two days recorded of seven: the older five sevenths are empty, the last day is 4x
        # the day before it.
        width = len(plot[0]) - 5
        assert all(line[5 : 5 + width // 2].strip() == "" for line in plot[1:])
        assert "█" in plot[-2][-3:]

        await zoom_to(pilot, screen, "10 min (z)")  # back to the console's own samples


async def test_no_recording_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPUCONSOLE_DB", str(tmp_path / "nothing.sqlite"))
    source = SteppedReplay(step=1.0, limit=20)
    app = GpuconsoleApp(host_of(FakeHost(), gpu=source), refresh_seconds=60, gpu_interval=0.05)
    async with app.run_test(size=(160, 45)) as pilot:
        await until(pilot, lambda: source.calls >= 3, what="samples")
        await pilot.press("g")
        await until(pilot, lambda: isinstance(app.screen, GpuScreen), what="the GPU screen")
        screen = app.screen
        await pilot.press("z")
        await until(
            pilot,
            lambda: any("no GPU recording at" in str(n.message) for n in app._notifications),
            what="the notification",
        )
        await until(pilot, lambda: "last 10 min (z)" in status(screen), what="live")

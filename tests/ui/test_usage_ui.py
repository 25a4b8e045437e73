"""GPU accounting in the console: the usage report (``u``) from a real recording file, sortable
and regrouped by keys, and a container's recorded GPU history in its details."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable, Static

from gpuconsole.accounting.meter import GpuInterval, OwnerInterval
from gpuconsole.accounting.store import Writer
from gpuconsole.ui.app import GpuconsoleApp
from gpuconsole.ui.screens.details import DetailsScreen
from gpuconsole.ui.screens.usage import UsageScreen

from support import host_at
from uihelpers import until


def record(path: Path, cid: str, name: str) -> None:
    """An hour: ``name`` (cid) on GPU 0 at 300 W and 90 %; "sitter" holding GPU 1 idle."""
    writer = Writer(path)
    now = time.time()
    gpus, owners = [], []
    for i in range(60):
        t = now - 3600 + 60 * (i + 1)
        gpus.append(
            GpuInterval(
                "local",
                "GPU-0",
                0,
                "H100",
                t,
                60.0,
                300 * 60.0,
                90.0,
                30 << 30,
                80 << 30,
                300.0,
                70,
            )
        )
        gpus.append(
            GpuInterval("local", "GPU-1", 1, "H100", t, 60.0, 70 * 60.0, 0.0, 0, 80 << 30, 70.0, 35)
        )
        owners.append(
            OwnerInterval(
                "local",
                cid,
                "GPU-0",
                t,
                60.0,
                60.0,
                300 * 60.0,
                90 * 60.0,
                (20 + i // 6) << 30,
                0.0,
                0.0,
            )
        )
        owners.append(
            OwnerInterval("local", "f" * 64, "GPU-1", t, 60.0, 0.0, 0.0, 0.0, None, 60.0, 60.0)
        )
    names = {
        ("local", cid): (name, "gpuconsole-test/busybox:1"),
        ("local", "f" * 64): ("sitter", "jupyter:1"),
    }
    writer.write(gpus, owners, names)
    writer.close()


def cell_texts(table: DataTable[Any]) -> list[list[str]]:
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


async def test_usage_screen_reports_and_sorts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "usage.sqlite"
    record(db, "a" * 64, "trainer")
    monkeypatch.setenv("GPUCONSOLE_DB", str(db))
    app = GpuconsoleApp(host_at(), refresh_seconds=60)
    async with app.run_test(size=(180, 40)) as pilot:
        await pilot.press("u")
        await until(pilot, lambda: isinstance(app.screen, UsageScreen), what="the usage screen")
        screen = app.screen
        table = screen.query_one(DataTable)
        await until(pilot, lambda: table.row_count == 2, what="two containers")
        rows = cell_texts(table)
        assert rows[0][:2] == ["trainer", "local"]  # most GPU time first
        assert rows[0][4:7] == ["1:00:00", "300.0 Wh", "90%"]
        assert rows[1][0] == "sitter" and rows[1][8:10] == ["1:00:00", "1:00:00"]  # reserved, idle
        note = str(screen.query_one("#usage-note", Static).render())
        assert "split by their share of its used memory" in note
        # Sort by idle reserved time (s steps through the columns), then by GPU.
        for _ in range(5):
            await pilot.press("s")
        assert screen.sort_key == "idle"
        await until(pilot, lambda: cell_texts(table)[0][0] == "sitter", what="sitter first")
        await pilot.press("b")
        await until(
            pilot,
            lambda: cell_texts(table) and cell_texts(table)[0][0] == "jupyter:1",
            what="by image",
        )
        for _ in range(2):
            await pilot.press("b")
        await until(
            pilot,
            lambda: table.row_count == 2 and cell_texts(table)[0][0].startswith("GPU"),
            what="by GPU",
        )
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, UsageScreen), what="closed")


async def test_usage_screen_without_a_recording(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GPUCONSOLE_DB", str(tmp_path / "none.sqlite"))
    app = GpuconsoleApp(host_at(), refresh_seconds=60)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.press("u")
        await until(pilot, lambda: isinstance(app.screen, UsageScreen), what="the usage screen")
        note = app.screen.query_one("#usage-note", Static)
        await until(pilot, lambda: "gpuconsole record" in str(note.render()), what="the advice")


async def test_details_show_the_recorded_gpu_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_container: Any
) -> None:
    c = make_container("sleep 3600")
    db = tmp_path / "usage.sqlite"
    record(db, c.id, c.name)
    monkeypatch.setenv("GPUCONSOLE_DB", str(db))
    host = host_at()
    app = GpuconsoleApp(host, refresh_seconds=60)
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause(0.3)
        await app.push_screen(DetailsScreen(host, c.id, c.name))
        await until(pilot, lambda: isinstance(app.screen, DetailsScreen), what="details")
        panel = app.screen.query_one("#details-gpu", Static)
        await until(pilot, lambda: panel.display, what="the GPU history")
        text = str(panel.render())
        assert "GPU history (recorded)" in text
        assert "GPU time 1:00:00 on GPU 0 · 300.0 Wh · mean 90%" in text
        memory = next(line for line in text.splitlines() if line.startswith("memory"))
        spark = memory.split(" ", 1)[1].rsplit("  peak", 1)[0]
        assert spark[0] < spark[-1]  # its memory grew over the hour: the line rises
        assert "peak 29.0 GiB" in memory
        power = next(line for line in text.splitlines() if line.startswith("power"))
        assert "peak 300 W" in power

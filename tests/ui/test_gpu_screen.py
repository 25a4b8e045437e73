"""The GPU screen as a user meets it: it uses the height it has, every GPU can be reached, and
a sample that changes nothing repaints nothing (the console stays open all day)."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import pytest
from textual.app import App, ComposeResult
from textual.geometry import Region
from textual.widget import Widget
from textual.widgets import DataTable

from gpuconsole.backend.gpu import GpuSample, GpuSnapshot, GpuSourceState
from gpuconsole.backend.gpu.smi_stream import SmiStreamSource
from gpuconsole.ui.app import GpuconsoleApp
from gpuconsole.ui.screens.gpus import (
    MIN_BLOCK_HEIGHT,
    MIN_TABLE_HEIGHT,
    FixedLine,
    GpuBlock,
    GpuScreen,
    plan_layout,
)
from gpuconsole.ui.widgets.time_graph import TimeGraph

from fakes import H100_RECORDING, FakeHost, SteppedReplay
from support import host_of
from uihelpers import until

GIB = 1024**3
STUB_SMI = Path(__file__).parents[1] / "fixtures" / "bin" / "nvidia-smi"


async def open_gpu_screen(pilot: Any) -> GpuScreen:
    await pilot.press("g")
    await until(pilot, lambda: isinstance(pilot.app.screen, GpuScreen), what="the GPU screen")
    screen = pilot.app.screen
    assert isinstance(screen, GpuScreen)
    return screen


def painted(graph: TimeGraph) -> list[str]:
    """The graph's content lines as Textual paints them (render_line), for its size."""
    return [graph.render_line(y).text for y in range(graph.size.height)]


def test_plan_shares_the_height_between_blocks_and_table() -> None:
    one = plan_layout(47, gpus=1, processes=1)  # 180x50 less status, title, footer
    assert (one.per_page, one.block, one.table) == (1, 47 - MIN_TABLE_HEIGHT, MIN_TABLE_HEIGHT)
    two = plan_layout(47, gpus=2, processes=2)
    assert two.per_page == 2 and two.block >= 20 and two.blocks + two.table == 47
    eight = plan_layout(47, gpus=8, processes=1)
    assert eight.per_page == 4 and eight.block >= MIN_BLOCK_HEIGHT
    assert eight.blocks == 4 * eight.block  # a page is whole blocks: PgDn shows the next four
    shared = plan_layout(47, gpus=8, processes=8)  # the table's 8 rows shown in full
    assert shared.table >= 9 and shared.per_page == 3
    busy = plan_layout(47, gpus=1, processes=40)
    assert busy.table == 47 // 3  # the table never takes more than a third
    tiny = plan_layout(12, gpus=8, processes=0)
    assert tiny.per_page == 1 and tiny.blocks + tiny.table == 12


async def test_one_gpu_fills_the_screen_and_keeps_its_scales() -> None:
    source = SteppedReplay(step=1.0, limit=40)  # through the matmul phase: one process
    app = GpuconsoleApp(
        host_of(FakeHost(), gpu=source),
        refresh_seconds=60,
        gpu_interval=0.02,
        replay_name=H100_RECORDING.name,
    )
    async with app.run_test(size=(180, 50)) as pilot:
        await until(pilot, lambda: source.calls >= 40, what="40 samples")
        screen = await open_gpu_screen(pilot)
        table = screen.query_one("#gpu-processes", DataTable)
        await until(pilot, lambda: table.row_count == 1, what="the recorded process")
        await pilot.pause(0.3)
        block = screen.query_one(GpuBlock)
        # On a real H100 the graphs took ~30 % and the table two lines, the rest was empty.
        assert block.region.height >= 0.8 * 50
        assert MIN_TABLE_HEIGHT <= table.region.height <= 50 // 3
        graphs = {g.border_title: g for g in block.query(TimeGraph)}
        assert {g.region.height for g in graphs.values()} == {block.region.height - 1}
        power = painted(graphs["power"])
        assert len(power) == graphs["power"].size.height >= 35
        assert power[0].startswith("700W┤")  # the scale spans the whole height
        assert power[-2].startswith("  0W┤")
        assert "350W┤" in power[(len(power) - 1) // 2]
        assert power[-1].split()[-1] == "now"
        assert "█" in power[-2] and "█" in power[1]  # ~700 W under the matmul reaches the top
        assert power == graphs["power"].render().plain.split("\n")  # painted = what it says


async def test_eight_gpus_stack_and_every_one_can_be_reached(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GPUCONSOLE_SMI_STUB_GPUS", "8")
    source = SmiStreamSource(executable=str(STUB_SMI), interval=0.05)
    # The stream's first rows may name only some GPUs; start it first so the console opens on
    # all 8 (the main screen's GPU strip rebuilds its cards when the set grows, a separate
    # matter from this screen).
    deadline = time.monotonic() + 15
    while len(source.sample().gpus) < 8 and time.monotonic() < deadline:
        time.sleep(0.05)
    app = GpuconsoleApp(host_of(FakeHost(), gpu=source), refresh_seconds=60, gpu_interval=0.05)
    async with app.run_test(size=(180, 50)) as pilot:
        await until(
            pilot,
            lambda: app.gpu_view is not None and len(app.gpu_view.snapshot.gpus) == 8,
            what="8 stand-in GPUs",
        )
        screen = await open_gpu_screen(pilot)
        await until(pilot, lambda: len(screen.query(GpuBlock)) == 8, what="8 blocks")
        await pilot.pause(0.3)
        blocks = list(screen.query(GpuBlock))
        view = screen.query_one("#gpu-blocks").region
        shown = [b.index for b in blocks if view.contains_region(b.region)]
        assert shown == [0, 1, 2, 3]
        assert all(b.region.height >= MIN_BLOCK_HEIGHT for b in blocks)
        status = screen.query_one("#gpu-screen-status", FixedLine)
        assert "GPUs 1-4 of 8" in str(status.content)
        # Blocks out of view are not drawn: they take no sample until they scroll in.
        assert blocks[7].shown is None
        await pilot.press("pagedown")
        await until(
            pilot,
            lambda: [b.index for b in blocks if view.contains_region(b.region)] == [4, 5, 6, 7],
            what="the next page of GPUs",
        )
        await until(pilot, lambda: blocks[7].shown is not None, what="GPU 7 drawn")
        assert "GPUs 5-8 of 8" in str(status.content)
        assert "GPU 7" in str(screen.query_one("#gpu-head-7", FixedLine).content)
        assert "now" in painted(blocks[7].query_one("#g-pwr", TimeGraph))[-1]


class IdleGpu:
    """A GPU at rest: a new timestamp every sample, readings that wobble below what a graph
    can show (power by a few mW, as a real idle H100 does)."""

    def __init__(self) -> None:
        self.calls = 0
        self._wobble = itertools.cycle((76.12, 76.31, 76.24))

    name = "idle"
    host = "local"
    replayed = False

    def sample(self) -> GpuSnapshot:
        self.calls += 1
        gpu = GpuSample(
            0,
            "GPU-idle",
            "NVIDIA H100 80GB HBM3",
            memory_used_bytes=480 * 1024**2,
            memory_total_bytes=80 * GIB,
            utilization_gpu_percent=0,
            utilization_memory_percent=0,
            power_w=next(self._wobble),
            power_limit_w=700.0,
            temperature_c=48,
            sm_clock_mhz=345,
        )
        return GpuSnapshot("local", "idle", GpuSourceState.OK, float(self.calls), (gpu,))

    def close(self) -> None:
        pass


async def test_a_sample_that_changes_nothing_repaints_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = IdleGpu()
    app = GpuconsoleApp(host_of(FakeHost(), gpu=source), refresh_seconds=60, gpu_interval=0.02)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_gpu_screen(pilot)
        await until(pilot, lambda: len(screen.query(TimeGraph)) == 3, what="the graphs")
        graphs = list(screen.query(TimeGraph))
        width = max(g.size.width for g in graphs)
        # Until the window is full the filled part grows each sample; then the graph is still.
        await until(pilot, lambda: source.calls > width + 10, timeout=30, what="a full window")
        repaints: list[str] = []

        def counting(name: str, method: Any) -> Any:
            def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
                repaints.append(f"{name} {self.id}")
                return method(self, *args, **kwargs)

            return counted

        monkeypatch.setattr(TimeGraph, "refresh", counting("refresh", TimeGraph.refresh))
        monkeypatch.setattr(TimeGraph, "render_line", counting("paint", TimeGraph.render_line))
        monkeypatch.setattr(FixedLine, "update", counting("update", FixedLine.update))
        calls_before = source.calls
        await until(pilot, lambda: source.calls >= calls_before + 20, what="20 more samples")
        await pilot.pause(0.2)
        # 20 samples with nothing new to see: no graph or header asked for a repaint or painted.
        assert repaints == []
        assert str(graphs[1].border_subtitle) == "76 / 700 W"


class OneGraph(App[None]):
    def compose(self) -> ComposeResult:
        yield TimeGraph("power", lambda v: f"{v:.0f}W", "magenta")


async def test_a_sample_repaints_only_the_lines_it_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    async with OneGraph().run_test(size=(60, 12)) as pilot:
        graph = pilot.app.query_one(TimeGraph)
        graph.styles.height = 12
        await pilot.pause()
        idle = (76.2,) * 20
        graph.show(idle, 700, 1.0, "76 / 700 W", tuple(map(float, range(20))))
        await pilot.pause()
        repainted: list[Region] = []
        original = Widget.refresh

        def spy(self: Widget, *regions: Region, **kwargs: Any) -> Any:
            if self is graph:
                repainted.extend(regions or [Region(0, 0, 0, 0)])  # empty: the whole widget
            return original(self, *regions, **kwargs)

        monkeypatch.setattr(Widget, "refresh", spy)
        # One more sample while the window fills: the filled part grows into one more column,
        # which shows in the bottom row only (76 W of 700 is a fraction of one row).
        graph.show((*idle, 76.2), 700, 1.0, "76 / 700 W", tuple(map(float, range(21))))
        bottom_row = graph.size.height - 2  # above the time axis
        assert repainted == [Region(0, bottom_row, graph.size.width, 1)]
        # Power crossing a whole watt changes the subtitle: only the border line below.
        repainted.clear()
        graph.show((*idle, 76.2), 700, 1.0, "77 / 700 W", tuple(map(float, range(21))))
        assert len(repainted) == 1 and repainted[0].height == 1
        assert repainted[0].y == graph.size.height  # content-relative: the border under it
        await pilot.pause()
        border = graph.render_lines(
            Region(0, graph.outer_size.height - 1, graph.outer_size.width, 1)
        )
        assert "77 / 700 W" in border[0].text

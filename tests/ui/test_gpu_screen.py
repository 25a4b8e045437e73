"""The GPU screen as a user meets it: it uses the height it has, every GPU can be reached, and
a sample that changes nothing repaints nothing (the console stays open all day)."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import pytest
from rich.text import Text
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


BLOCKS = " ▁▂▃▄▅▆▇█"


def heights(lines: list[str], axis_w: int) -> list[int]:
    """Each plot column's filled height in eighths of a cell, read off the painted lines."""
    plot = [line[axis_w:] for line in lines[:-1]]
    return [sum(BLOCKS.index(row[x]) for row in plot) for x in range(len(plot[0]))]


def bucket_means(
    values: tuple[float | int | None, ...], stamps: tuple[float, ...], columns: int, span: float
) -> list[float | None]:
    """What each column of a live graph stands for, worked out here the plain way: the mean of
    the samples whose time falls in its slice of ``span / columns`` seconds (slices counted
    from the epoch), the newest sample's slice at the right."""
    width = span / columns
    newest = int(stamps[-1] // width)
    sums: dict[int, list[float]] = {}
    for t, v in zip(stamps, values, strict=True):
        if v is not None:
            sums.setdefault(int(t // width), []).append(float(v))
    return [
        sum(sums[k]) / len(sums[k]) if k in sums else None
        for k in range(newest - columns + 1, newest + 1)
    ]


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
        # A column is the mean of its ~11 s of samples, drawn on the whole height: the columns
        # under the ~700 W matmul stand as high as their means say (against the full 700 W).
        view = app.gpu_view
        assert view is not None
        uuid = view.snapshot.gpus[0].uuid
        rows = len(power) - 1
        means = bucket_means(
            view.series(uuid, "power_w"), view.timestamps[uuid], len(power[0]) - 5, 600.0
        )
        expected = [0 if m is None else round(m / 700 * rows * 8) for m in means]
        assert heights(power, 5) == expected
        assert max(expected) > rows * 8 // 2  # the matmul shows, above the half mark
        assert power[-1].split()[0] == "-10m"  # the live graph spans the last ten minutes
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
    """A GPU at rest: a new timestamp every sample (``step`` seconds on), readings that wobble
    below what a graph can show (power by a few mW, as a real idle H100 does)."""

    def __init__(self, step: float = 1.0) -> None:
        self.calls = 0
        self.step = step
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
        return GpuSnapshot("local", "idle", GpuSourceState.OK, self.calls * self.step, (gpu,))

    def close(self) -> None:
        pass


async def test_a_sample_that_changes_nothing_repaints_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = IdleGpu(step=5.0)  # the graphs' ten minutes fill in 120 samples
    app = GpuconsoleApp(host_of(FakeHost(), gpu=source), refresh_seconds=60, gpu_interval=0.02)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_gpu_screen(pilot)
        await until(pilot, lambda: len(screen.query(TimeGraph)) == 3, what="the graphs")
        graphs = list(screen.query(TimeGraph))
        # Until the window is full the filled part grows; then the graph is still (it moves a
        # column when a column's time ends, to the same picture).
        await until(pilot, lambda: source.calls > 600 / 5 + 10, timeout=30, what="a full window")
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
        # which shows in the bottom row only (76 W of 700 is a fraction of one row): that one
        # cell is repainted, left of the 20 columns already drawn.
        graph.show((*idle, 76.2), 700, 1.0, "76 / 700 W", tuple(map(float, range(21))))
        bottom_row = graph.size.height - 2  # above the time axis
        axis_w = len("700W┤")
        assert repainted == [Region(graph.size.width - 21, bottom_row, 1, 1)]
        assert painted(graph)[bottom_row][axis_w:].strip() == "█" * 21
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
        # ... and of that line the cell that changed ("76" to "77"), a cell each side to spare.
        changed = border[0].text.index("77 / 700 W") + 1 - graph.content_offset.x
        assert repainted[0].x <= changed < repainted[0].right <= changed + 2


async def test_live_graph_moves_once_a_column_and_repaints_only_the_newest_column(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Ten minutes on the graph's columns: ~12 s a column here. A sample within the newest
    # column's time repaints the cells of that column it changed, nothing else; the graph moves
    # left only when a column's time ends. (Before, every sample moved every column: the whole
    # graph was written to the terminal every second.)
    async with OneGraph().run_test(size=(60, 12)) as pilot:
        graph = pilot.app.query_one(TimeGraph)
        graph.styles.height = 12
        await pilot.pause()
        plot_w = graph.size.width - len("700W┤")
        width = 600.0 / plot_w
        # A busy minute and a half, a sample a second, ending at the start of a column's time.
        start = (1_795_713_000 // width + 1) * width
        stamps = [start - 90 + i for i in range(91)]
        watts: list[float] = [100.0 + 6 * (i % 100) for i in range(91)]
        graph.show(watts, 700, 1.0, "", stamps, span=600.0)
        await pilot.pause()
        before = painted(graph)
        repainted: list[Region] = []
        original = Widget.refresh

        def spy(self: Widget, *regions: Region, **kwargs: Any) -> Any:
            if self is graph:
                repainted.extend(regions or [Region(0, 0, 0, 0)])  # empty: the whole widget
            return original(self, *regions, **kwargs)

        monkeypatch.setattr(Widget, "refresh", spy)
        newest = graph.size.width - 1
        for _ in range(int(width) - 2):  # within the newest column's time
            watts.append(700.0)
            stamps.append(stamps[-1] + 1)
            graph.show(watts, 700, 1.0, "", stamps, span=600.0)
        # The column's mean climbed from 640 W toward 700 W: its top cells, and only they.
        assert repainted and {(r.x, r.width) for r in repainted} == {(newest, 1)}
        await pilot.pause()
        after = painted(graph)
        assert [line[:-1] for line in after] == [line[:-1] for line in before]
        assert after[0][-1] != " "  # the newest column now reaches the top row
        # The next column's time begins: the graph moves left by one column.
        watts.append(700.0)
        stamps.append(start + int(width) + 1.5)
        graph.show(watts, 700, 1.0, "", stamps, span=600.0)
        await pilot.pause()
        moved = painted(graph)
        assert [line[5:-1] for line in moved[:-1]] == [line[6:] for line in after[:-1]]


class OneHeader(App[None]):
    def compose(self) -> ComposeResult:
        yield FixedLine()


async def test_a_header_repaints_only_the_cells_whose_text_changed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A GPU's header line moves by a degree or a clock step each few seconds: those cells are
    # written to the terminal, not the 180 of the line.
    async with OneHeader().run_test(size=(80, 3)) as pilot:
        line = pilot.app.query_one(FixedLine)

        def head(temp: int, clock: int) -> Text:
            text = Text()
            text.append("GPU 0  H100 80GB HBM3", style="bold")
            text.append(f"   {temp} °C   SM {clock} MHz   fan N/A")
            return text

        line.set_text(head(48, 345))
        await pilot.pause()
        repainted: list[Region] = []
        original = Widget.refresh

        def spy(self: Widget, *regions: Region, **kwargs: Any) -> Any:
            if self is line:
                repainted.extend(regions or [Region(0, 0, 0, 0)])  # empty: the whole widget
            return original(self, *regions, **kwargs)

        monkeypatch.setattr(Widget, "refresh", spy)
        line.set_text(head(49, 345))
        start = len("GPU 0  H100 80GB HBM3   4")
        assert repainted == [Region(start, 0, 1, 1)]  # "48" -> "49": one cell
        repainted.clear()
        line.set_text(head(49, 1980))  # longer: from the change to the end of the longer text
        start = len("GPU 0  H100 80GB HBM3   49 °C   SM ")
        assert repainted == [Region(start, 0, len(head(49, 1980)) - start, 1)]
        await pilot.pause()
        assert line.render_line(0).text.rstrip() == head(49, 1980).plain
        repainted.clear()
        line.set_text(head(49, 1980))  # the same text: nothing
        assert repainted == []


def test_a_partial_update_writes_only_the_cells_marked_dirty() -> None:
    # The newest column of a graph changed one cell at the right of its line: that cell is
    # what goes to the terminal, not the graph's line from its left edge (Textual's own
    # ChopsUpdate crops a line's part at the right only).
    from rich.console import Console
    from rich.segment import Segment
    from textual._compositor import ChopsUpdate
    from textual.strip import Strip

    from gpuconsole.ui.cropped_update import CroppedChopsUpdate, CroppingCompositor

    line = Strip([Segment("│ 700W┤   ▂█"), Segment(" │")])
    chops, spans, ends = [{0: line}], [(0, 11, 12)], [[14]]
    console = Console(color_system=None, width=80)
    assert CroppedChopsUpdate(chops, spans, ends).render_segments(console) == "\x1b[1;12H█"
    assert ChopsUpdate(chops, spans, ends).render_segments(console) == "\x1b[1;1H│ 700W┤   ▂█"
    assert isinstance(GpuScreen()._compositor, CroppingCompositor)  # the GPU screen's updates


async def test_the_gpu_screen_is_kept_and_shows_the_latest_sample_when_opened_again() -> None:
    # `g` after `escape` shows the same screen again (composed once: no 8 blocks of graphs
    # mounted and laid out at every opening), drawn with the samples that came meanwhile.
    source = SteppedReplay(step=1.0, limit=12)  # idle, then the 20 GiB allocation
    app = GpuconsoleApp(host_of(FakeHost(), gpu=source), refresh_seconds=60, gpu_interval=0.02)
    async with app.run_test(size=(180, 50)) as pilot:
        await until(pilot, lambda: source.calls >= 12, what="12 samples")
        first = await open_gpu_screen(pilot)
        memory = first.query_one("#g-mem", TimeGraph)
        await until(pilot, lambda: "/ 79.6 GiB" in str(memory.border_subtitle), what="memory")
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, GpuScreen), what="escape")
        source.limit = 40  # on into the matmul while the screen is closed
        await until(pilot, lambda: source.calls >= 40, what="28 more samples")
        await pilot.pause(0.2)
        again = await open_gpu_screen(pilot)
        assert again is first
        view = app.gpu_view
        assert view is not None
        gpu = view.snapshot.gpus[0]
        await pilot.pause(0.2)
        power = again.query_one("#g-pwr", TimeGraph)
        assert str(power.border_subtitle).startswith(f"{gpu.power_w:.0f} / 700 W")
        shown = again.query_one(GpuBlock).shown
        assert shown is not None and shown.snapshot.timestamp == view.snapshot.timestamp


async def test_a_jagged_row_is_written_in_one_colour_run() -> None:
    # A busy GPU's ten minutes are jagged: a row of the graph crosses filled and blank cells by
    # turns. Blanks between filled cells take the fill's colour (they look the same), so the
    # row is one colour change written to the terminal, not one per group of cells.
    async with OneGraph().run_test(size=(60, 12)) as pilot:
        graph = pilot.app.query_one(TimeGraph)
        graph.styles.height = 12
        await pilot.pause()
        watts = [700.0 if i % 3 else 0.0 for i in range(40)]
        graph.show(watts, 700, 1.0, "", tuple(map(float, range(40))))
        await pilot.pause()
        row = graph.render_line(0)
        plot = row.text[len("700W┤") :]
        assert plot[-40:] == "".join(" " if i % 3 == 0 else "█" for i in range(40))
        styles = [seg.style for seg in row if seg.text.strip()]
        assert len(styles) == 2  # the scale, dim; the plot, one run in the fill colour
        assert len(list(row)) <= 4  # and at most the blanks before it and after it

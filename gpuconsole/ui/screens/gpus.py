"""The `g` screen: per-GPU graphs of memory, power and utilisation, and who runs what where.

It stays cheap at rest: only the blocks in view are drawn; a graph repaints only the lines a
new sample changed (see TimeGraph), header lines only when their text changes and without a new
layout, the process table only the cells that changed (DiffTable); nothing is drawn while a
screen covers this one (the latest sample is shown when it comes back); and repaints that
Textual forwards from the screen beneath are dropped (see GpuScreen.refresh).

Zoom (``z``): the graphs show the last 10 minutes the console itself sampled, or — from the GPU
recording that ``gpuconsole record`` keeps — the last hour, day or week, read in a worker thread
and again every half minute while zoomed out.

Layout: the graph blocks share the height left over by the process table (its rows, at most a
third of the screen, at least a few lines). One or two GPUs fill it; more stack at a readable
minimum height and scroll by whole pages of blocks (PgUp/PgDn, arrows, the mouse wheel).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.cells import cell_len
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.geometry import Region
from textual.visual import VisualType
from textual.widgets import Static

from gpuconsole.backend.gpu import GpuSample
from gpuconsole.monitor.gpu_view import GpuView, process_label
from gpuconsole.present import format as fmt
from gpuconsole.ui.cropped_update import CroppingCompositor
from gpuconsole.ui.screens.quiet_focus import QuietFocusScreen
from gpuconsole.ui.widgets.diff_table import Cells, DiffTable
from gpuconsole.ui.widgets.footer import QuietFooter
from gpuconsole.ui.widgets.gpu_card import short_gpu_name
from gpuconsole.ui.widgets.text_line import TextLine
from gpuconsole.ui.widgets.time_graph import TimeGraph

if TYPE_CHECKING:
    from typing_extensions import Self

    from gpuconsole.accounting.history import History

GIB = 1024**3

#: A graph of 9 rows (border, 6 plot rows, time axis) under a header line: still readable.
MIN_BLOCK_HEIGHT = 10
#: The process table: its header and three rows at least.
MIN_TABLE_HEIGHT = 4
#: Lines of the screen that are neither blocks nor table: status, "Processes", footer.
FIXED_LINES = 3
#: Zoom levels: None is the console's own 10-minute history; the others come from a recording.
ZOOMS: tuple[tuple[float | None, str], ...] = (
    (None, "10 min"),
    (3600.0, "1 h"),
    (86400.0, "24 h"),
    (7 * 86400.0, "7 d"),
)
#: What the live graphs span (the console's own history window; the "10 min" zoom level). A
#: column is a bucket of this over the plot's width (~11 s on a 180-column screen): a sample
#: redraws the newest column only, and the graphs move one column when a bucket ends.
LIVE_SPAN_S = 600.0
#: A zoomed-out view is read from the recording again after this many seconds.
ZOOM_REFRESH_S = 30.0


@dataclass(frozen=True, slots=True)
class Plan:
    """Heights of the screen's parts, in lines."""

    block: int
    per_page: int
    blocks: int
    table: int


def plan_layout(height: int, gpus: int, processes: int) -> Plan:
    """Share ``height`` (the lines for blocks and table) between GPU blocks and the table.

    The table gets its rows (and header), at most a third, at least MIN_TABLE_HEIGHT; the blocks
    the rest, as many per page as fit at MIN_BLOCK_HEIGHT, all of the same height. The blocks'
    area is a whole number of blocks high, so a page scrolled is exactly the next blocks; the
    few lines left over go to the table.
    """
    table = min(max(processes + 1, MIN_TABLE_HEIGHT), max(MIN_TABLE_HEIGHT, height // 3))
    area = max(1, height - table)
    per_page = max(1, min(gpus, area // MIN_BLOCK_HEIGHT))
    block = area // per_page
    blocks = block * per_page
    return Plan(block, per_page, blocks, max(MIN_TABLE_HEIGHT, height - blocks))


class FixedLine(TextLine):
    """A one-line header: its height never changes, so a new text needs no new layout, and a
    new text repaints only the cells it changed (a GPU's header moves by a degree or a clock
    step: a few cells, not the line, are written to the terminal)."""

    DEFAULT_CSS = "FixedLine { height: 1; }"

    #: Set while a new text is put in: the cells (from, to) it changed.
    _narrow: tuple[int, int] | None = None

    def set_text(self, text: Text) -> None:
        old = self._shown
        if text == old:
            return
        self._narrow = _changed_cells(old, text) if self.size else None
        try:
            super().set_text(text)
        finally:
            self._narrow = None

    def update(self, content: VisualType = "", *, layout: bool = False) -> None:
        super().update(content, layout=False)

    def refresh(
        self,
        *regions: Region,
        repaint: bool = True,
        layout: bool = False,
        recompose: bool = False,
    ) -> Self:
        if self._narrow is not None and not (regions or layout or recompose):
            start, end = self._narrow
            return super().refresh(Region(start, 0, end - start, 1), repaint=repaint)
        return super().refresh(*regions, repaint=repaint, layout=layout, recompose=recompose)


def _changed_cells(old: Text | None, new: Text) -> tuple[int, int] | None:
    """The cells (from, to) in which two one-line texts differ, or None for all of them.

    Styles are compared as spans: where they differ (or a text has wide characters, which
    make cells and characters part) the whole line is repainted.
    """
    if old is None or old.spans != new.spans or old.style != new.style:
        return None
    a, b = old.plain, new.plain
    if cell_len(a) != len(a) or cell_len(b) != len(b):
        return None
    start = 0
    limit = min(len(a), len(b))
    while start < limit and a[start] == b[start]:
        start += 1
    if len(a) != len(b):
        return start, max(len(a), len(b))  # what follows moved along, or was left behind
    end = len(a)
    while end > start and a[end - 1] == b[end - 1]:
        end -= 1
    return start, end


class GpuBlock(Vertical):
    """Header line and three graphs for one GPU."""

    DEFAULT_CSS = """
    GpuBlock { height: 11; }
    GpuBlock > Horizontal { height: 1fr; }
    GpuBlock TimeGraph { width: 1fr; height: 100%; }
    """

    def __init__(self, index: int) -> None:
        super().__init__(id=f"gpu-block-{index}")
        self.index = index
        #: The sample this block shows (a block out of view keeps an older one).
        self.shown: GpuView | None = None
        # Made here, not queried per sample: a query walks the DOM, a sample comes every second.
        self._head = FixedLine(id=f"gpu-head-{index}", classes="gpu-head")
        # Memory columns show their peak (what came close to running out), power and
        # utilisation their mean (energy, busy time), as the recording's zoomed-out views do.
        self._memory = TimeGraph(
            "memory", lambda v: f"{v / GIB:.0f}G", "green", id="g-mem", peak=True
        )
        self._power = TimeGraph("power", lambda v: f"{v:.0f}W", "magenta", id="g-pwr")
        self._util = TimeGraph("utilization", lambda v: f"{v:.0f}%", "cyan", id="g-util")

    def compose(self) -> ComposeResult:
        yield self._head
        with Horizontal():
            yield self._memory
            yield self._power
            yield self._util

    def plot_width(self) -> int:
        """Columns a graph can plot (its width less the y scale): buckets worth reading."""
        return max(10, self._memory.content_region.width - 5)

    def show(self, view: GpuView, history: History | None = None) -> None:
        """Show ``view``'s reading of this GPU (each part repaints only what changed), with
        ``history`` (from the recording) in the graphs when zoomed out."""
        gpu = next((g for g in view.snapshot.gpus if g.index == self.index), None)
        if (view is self.shown and history is None) or gpu is None:
            return
        self.shown = view
        self._head.set_text(_head(gpu))
        if history is not None:
            self._show_history(gpu, history)
            return
        stamps = view.timestamps.get(gpu.uuid, ())
        self._memory.show(
            view.series(gpu.uuid, "memory_used_bytes"),
            gpu.memory_total_bytes,
            view.interval,
            f"{fmt.size(gpu.memory_used_bytes)} / {fmt.size(gpu.memory_total_bytes)}",
            stamps,
            LIVE_SPAN_S,
        )
        self._power.show(
            view.series(gpu.uuid, "power_w"),
            gpu.power_limit_w,
            view.interval,
            fmt.watts(gpu.power_w, gpu.power_limit_w),
            stamps,
            LIVE_SPAN_S,
        )
        self._util.show(
            view.series(gpu.uuid, "utilization_gpu_percent"),
            100,
            view.interval,
            f"gpu {fmt.percent(gpu.utilization_gpu_percent)} · "
            f"mem {fmt.percent(gpu.utilization_memory_percent)}",
            stamps,
            LIVE_SPAN_S,
        )

    def _show_history(self, gpu: GpuSample, history: History) -> None:
        count = len(history.power)
        width = (history.end - history.start) / max(count, 1)
        stamps = tuple(history.start + (i + 0.5) * width for i in range(count))
        peak_mem = max((v for v in history.memory if v is not None), default=None)
        peak_pwr = max((v for v in history.power if v is not None), default=None)
        util = [v for v in history.utilization if v is not None]
        self._memory.show(
            history.memory,
            gpu.memory_total_bytes,
            width,
            f"peak {fmt.size(None if peak_mem is None else int(peak_mem))}",
            stamps,
        )
        self._power.show(
            history.power,
            gpu.power_limit_w,
            width,
            "peak " + ("-" if peak_pwr is None else f"{peak_pwr:.0f} W"),
            stamps,
        )
        self._util.show(
            history.utilization,
            100,
            width,
            "mean " + (f"{sum(util) / len(util):.0f}%" if util else "-"),
            stamps,
        )


def _head(gpu: GpuSample) -> Text:
    head = Text()
    head.append(f"GPU {gpu.index}  {short_gpu_name(gpu.name)}", style="bold")
    head.append("  ")  # blanks unstyled: SVG renderers strip a styled run's leading blanks
    head.append(gpu.uuid, style="dim")
    head.append(
        f"   {fmt.celsius(gpu.temperature_c)}   SM {fmt.mhz(gpu.sm_clock_mhz)}"
        f"   fan {fmt.percent(gpu.fan_percent)}"
    )
    if gpu.error:
        head.append(f"   {gpu.error}", style="bold red")
    return head


def _process_rows(view: GpuView) -> dict[str, Cells]:
    """Row key ("gpu:pid") -> cells, for every attributed GPU process."""
    rows: dict[str, Cells] = {}
    for p in view.attribution.processes if view.attribution else ():
        owner: str | Text
        if p.container_id is not None:
            owner = Text(view.names.get(p.container_id, p.container_id[:12]), style="bold")
        else:
            label = process_label(
                p.command or p.process.process_name, p.process.pid, view.snapshot.replayed
            )
            owner = Text(label, style="dim")
        rows[f"{p.process.gpu_index}:{p.process.pid}"] = (
            str(p.process.gpu_index),
            str(p.process.pid),
            owner,
            fmt.size(p.process.used_memory_bytes),
        )
    return rows


def _by_gpu_and_pid(cells: tuple[object, ...]) -> tuple[int, int]:
    gpu, pid = cells
    return int(str(gpu)), int(str(pid))


class GpuScreen(QuietFocusScreen[None]):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("g", "app.pop_screen", "Containers", show=False),
        Binding("q", "app.quit", "Quit"),
        Binding("left_square_bracket", "host(-1)", "Prev host", show=False),
        Binding("right_square_bracket", "host(1)", "Next host", show=False),
        Binding("z", "zoom", "Zoom", tooltip="10 min, 1 h, 24 h, 7 d (from the recording)"),
    ]

    DEFAULT_CSS = """
    GpuScreen #gpu-blocks { height: 1fr; }
    GpuScreen #gpu-processes { height: 4; }
    """

    def __init__(self) -> None:
        super().__init__()
        # Updates that write only the cells that changed (the newest column of a graph, the
        # figures of a header or border), not from the start of each widget's line.
        self._compositor = CroppingCompositor()
        self._blocks: dict[int, GpuBlock] = {}
        self._indices: tuple[int, ...] = ()
        self._plan: Plan | None = None
        self._view: GpuView | None = None
        self._status = FixedLine(id="gpu-screen-status")
        self._scroll = VerticalScroll(id="gpu-blocks")
        self._table = DiffTable(id="gpu-processes", cursor_type="row", zebra_stripes=True)
        self._zoom = 0
        #: GPU uuid -> its series from the recording at the current zoom (empty when live).
        self._histories: dict[str, History] = {}
        self._histories_at = 0.0
        self._reading = False

    def refresh(
        self,
        *regions: Region,
        repaint: bool = True,
        layout: bool = False,
        recompose: bool = False,
    ) -> Self:
        """Ignore repaints forwarded from the screen beneath.

        Textual counts the screen right below the top one as visible (for see-through
        backgrounds) and forwards every region its widgets repaint to the top screen as
        ``refresh(*regions)``; the containers screen keeps updating under this one, so each of
        its refreshes repainted the same area here (most of the terminal output at rest). This
        screen is opaque: nothing below shows through, and its own widgets mark what they change
        themselves, so such regions are dropped.
        """
        if regions and not (layout or recompose) and self.styles.background.a == 1:
            return self
        return super().refresh(*regions, repaint=repaint, layout=layout, recompose=recompose)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "host":
            return len(getattr(self.app, "hosts", ())) > 1
        return True

    def action_host(self, step: int) -> None:
        """Show the next (or previous) host's GPUs: the console's host in focus moves along."""
        main = getattr(self.app, "containers_screen", None)
        if main is None:
            return
        names = [h.name for h in main.hosts]
        current = main.scope or names[0]
        main.set_scope(names[(names.index(current) + step) % len(names)])
        view = getattr(self.app, "gpu_view", None)
        if view is not None:
            self.show_gpus(view)

    def compose(self) -> ComposeResult:
        yield self._status
        yield self._scroll
        yield Static("Processes", id="gpu-proc-title")
        yield self._table
        yield QuietFooter()

    def on_mount(self) -> None:
        for key, label in (
            ("gpu", "GPU"),
            ("pid", "PID"),
            ("owner", "Container / process"),
            ("mem", "GPU memory"),
        ):
            self._table.add_column(label, key=key)
        self.watch(self._scroll, "scroll_y", self._scrolled, init=False)
        view = getattr(self.app, "gpu_view", None)
        if view is not None:
            self.show_gpus(view)

    def on_resize(self) -> None:
        self._lay_out()

    def on_screen_resume(self) -> None:
        """Back on top (a modal closed): show the sample that came while it was covered."""
        view = getattr(self.app, "gpu_view", None)
        if view is not None:
            self.show_gpus(view)

    def show_gpus(self, view: GpuView, host: str | None = None) -> None:
        """A new sample: drawn at once while this screen is on top, else when it comes back."""
        focus = getattr(self.app, "gpu_view", None)
        if focus is not None and focus is not view and host is not None:
            return  # another host's sample: this screen shows the host in focus
        self._view = view
        if not self.is_current or not self._scroll.is_mounted:
            return  # covered, or not composed yet: shown on resume or mount
        indices = tuple(g.index for g in view.snapshot.gpus)
        if indices != self._indices:
            self._indices = indices
            self._mount_blocks(indices)
        self._show_processes(view)
        self._lay_out()
        self._show_status(view)
        self._show_blocks(view)

    def _mount_blocks(self, indices: tuple[int, ...]) -> None:
        """A block per GPU index, in index order. Blocks are never removed (a GPU that
        vanishes is hidden, and shown again if it returns): a removal completes later, and a
        block mounted again under the same id before that would clash."""
        for index in sorted(set(indices) - set(self._blocks)):
            block = GpuBlock(index)
            if self._plan is not None:
                block.styles.height = self._plan.block
            later = [i for i in self._blocks if i > index]
            if later:
                self._scroll.mount(block, before=self._blocks[min(later)])
            else:
                self._scroll.mount(block)
            self._blocks[index] = block
        for index, block in self._blocks.items():
            block.display = index in indices

    def _lay_out(self) -> None:
        """Size blocks and table for the screen's height (only when the plan changes)."""
        height = self.outer_size.height  # (not .size: that asks the compositor's whole map)
        if not height:
            return
        plan = plan_layout(height - FIXED_LINES, len(self._indices), self._table.row_count)
        if plan == self._plan:
            return
        self._plan = plan
        self._scroll.styles.height = plan.blocks
        self._table.styles.height = plan.table
        for block in self._blocks.values():
            block.styles.height = plan.block
        if self._view is not None:  # other blocks may be in view now
            self._show_status(self._view)
            self._show_blocks(self._view)

    def _in_view(self) -> list[GpuBlock]:
        """The blocks on screen now (with the scroll position and the plan's block height)."""
        if self._plan is None:
            return []  # not laid out yet: nothing is on screen
        shown = [self._blocks[i] for i in self._indices if i in self._blocks]
        top = int(self._scroll.scroll_y)
        first = top // self._plan.block
        last = -(-(top + self._plan.blocks) // self._plan.block)  # the last one partly in view
        return shown[first:last]

    def _show_blocks(self, view: GpuView) -> None:
        if ZOOMS[self._zoom][0] is not None:
            self._zoomed_out(view)
            return
        for block in self._in_view():
            block.show(view)

    # -- zoom ---------------------------------------------------------------------------------

    def action_zoom(self) -> None:
        """The next zoom level; a level the recording cannot give is explained, not shown."""
        self._zoom = (self._zoom + 1) % len(ZOOMS)
        self._histories = {}
        self._histories_at = 0.0
        for block in self._blocks.values():
            block.shown = None  # redraw from scratch at the new scale
        if self._view is not None:
            self._show_status(self._view)
            self._show_blocks(self._view)

    def _zoomed_out(self, view: GpuView) -> None:
        import time

        blocks = self._in_view()
        for block in blocks:
            gpu = next((g for g in view.snapshot.gpus if g.index == block.index), None)
            history = self._histories.get(gpu.uuid) if gpu is not None else None
            if history is not None:
                block.show(view, history)
        stale = time.monotonic() - self._histories_at >= ZOOM_REFRESH_S
        if blocks and (stale or not self._histories) and not self._reading:
            self._read_histories(view, blocks[0].plot_width())

    def _read_histories(self, view: GpuView, count: int) -> None:
        """Read every GPU's series at this zoom from the recording, off the event loop."""
        import time

        span = ZOOMS[self._zoom][0]
        assert span is not None
        zoom = self._zoom
        host = view.snapshot.host
        uuids = [g.uuid for g in view.snapshot.gpus]
        self._reading = True

        def read() -> None:
            from gpuconsole.accounting.history import gpu_history
            from gpuconsole.accounting.store import RecordingError, open_for_reading, recording_path

            try:
                db = open_for_reading(recording_path())
                try:
                    end = time.time()
                    found = {u: gpu_history(db, host, u, end - span, end, count) for u in uuids}
                finally:
                    db.close()
            except RecordingError as exc:
                self.app.call_from_thread(self._no_history, zoom, str(exc))
                return
            self.app.call_from_thread(self._got_histories, zoom, found)

        self.run_worker(read, thread=True, group="zoom", exit_on_error=False)

    def _got_histories(self, zoom: int, found: dict[str, History]) -> None:
        import time

        self._reading = False
        if zoom != self._zoom:
            return  # zoomed again meanwhile
        self._histories = found
        self._histories_at = time.monotonic()
        if found and all(h.empty for h in found.values()):
            self.notify(
                f"The recording has nothing for {ZOOMS[zoom][1]} on this host: is `gpuconsole "
                "record` recording it?",
                title="Zoom",
                severity="warning",
            )
        if self._view is not None:
            self._show_status(self._view)
            self._show_blocks(self._view)

    def _no_history(self, zoom: int, reason: str) -> None:
        self._reading = False
        if zoom != self._zoom:
            return
        self.notify(reason, title="Zoom", severity="warning", timeout=8)
        self._zoom = 0  # back to what the console itself has
        for block in self._blocks.values():
            block.shown = None
        if self._view is not None:
            self._show_status(self._view)
            self._show_blocks(self._view)

    def _scrolled(self) -> None:
        """Blocks scrolled into view catch up with the latest sample (they skipped it)."""
        if self._view is not None and self.is_current:
            self._show_blocks(self._view)
            self._show_status(self._view)

    def _show_status(self, view: GpuView) -> None:
        snap = view.snapshot
        status = Text()
        if view.replay_name or snap.replayed:
            status.append(" REPLAY ", style="bold black on yellow")
            status.append(f" {view.replay_name or ''}  ")
        status.append(
            f"source: {snap.source}  ·  host: {snap.host}  ·  "
            f"{len(snap.gpus)} GPU(s)  ·  sampling every {view.interval:g} s"
        )
        span, label = ZOOMS[self._zoom]
        status.append(f"  ·  last {label}" + (" (recording)" if span else "") + " (z)")
        status.append(self._page_note())
        if snap.error:
            status.append(f"  ·  {snap.error}", style="yellow")
        self._status.set_text(status)

    def _page_note(self) -> str:
        """Which GPUs are in view, when they do not all fit."""
        plan, count = self._plan, len(self._indices)
        if plan is None or plan.per_page >= count:
            return ""
        first = min(count - 1, round(self._scroll.scroll_y / plan.block))
        last = min(count, first + plan.per_page)
        return f"  ·  GPUs {first + 1}-{last} of {count} in view (PgUp/PgDn)"

    def _show_processes(self, view: GpuView) -> None:
        if self._table.put_rows(_process_rows(view)):
            self._table.sort("gpu", "pid", key=_by_gpu_and_pid)

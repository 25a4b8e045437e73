"""The `g` screen: per-GPU graphs of memory, power and utilisation, and who runs what where."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import DataTable, Static

from gpuconsole.monitor.gpu_view import GpuView, process_label
from gpuconsole.present import format as fmt
from gpuconsole.ui.widgets.footer import QuietFooter
from gpuconsole.ui.widgets.gpu_card import short_gpu_name
from gpuconsole.ui.widgets.time_graph import TimeGraph

GIB = 1024**3


class GpuBlock(Static):
    """Header line and three graphs for one GPU."""

    DEFAULT_CSS = """
    GpuBlock { height: auto; margin-bottom: 1; }
    GpuBlock > Horizontal { height: 9; }
    GpuBlock TimeGraph { width: 1fr; }
    """

    def __init__(self, index: int) -> None:
        super().__init__(id=f"gpu-block-{index}")
        self.index = index

    def compose(self) -> ComposeResult:
        yield Static(id=f"gpu-head-{self.index}", classes="gpu-head")
        with Horizontal():
            yield TimeGraph("memory", lambda v: f"{v / GIB:.0f}G", "green", id="g-mem")
            yield TimeGraph("power", lambda v: f"{v:.0f}W", "magenta", id="g-pwr")
            yield TimeGraph("utilization", lambda v: f"{v:.0f}%", "cyan", id="g-util")

    def show(self, view: GpuView) -> None:
        gpu = next((g for g in view.snapshot.gpus if g.index == self.index), None)
        if gpu is None or not self.children:  # no such GPU, or not composed yet
            return
        head = Text()
        head.append(f"GPU {gpu.index}  {short_gpu_name(gpu.name)}", style="bold")
        head.append(f"  {gpu.uuid}", style="dim")
        head.append(
            f"   {fmt.celsius(gpu.temperature_c)}   SM {fmt.mhz(gpu.sm_clock_mhz)}"
            f"   fan {fmt.percent(gpu.fan_percent)}"
        )
        if gpu.error:
            head.append(f"   {gpu.error}", style="bold red")
        self.query_one(f"#gpu-head-{self.index}", Static).update(head)
        stamps = view.timestamps.get(gpu.uuid, ())
        self.query_one("#g-mem", TimeGraph).show(
            view.series(gpu.uuid, "memory_used_bytes"),
            gpu.memory_total_bytes,
            view.interval,
            f"{fmt.size(gpu.memory_used_bytes)} / {fmt.size(gpu.memory_total_bytes)}",
            stamps,
        )
        self.query_one("#g-pwr", TimeGraph).show(
            view.series(gpu.uuid, "power_w"),
            gpu.power_limit_w,
            view.interval,
            fmt.watts(gpu.power_w, gpu.power_limit_w),
            stamps,
        )
        self.query_one("#g-util", TimeGraph).show(
            view.series(gpu.uuid, "utilization_gpu_percent"),
            100,
            view.interval,
            f"gpu {fmt.percent(gpu.utilization_gpu_percent)} · "
            f"mem {fmt.percent(gpu.utilization_memory_percent)}",
            stamps,
        )


class GpuScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("g", "app.pop_screen", "Containers", show=False),
        Binding("q", "app.quit", "Quit"),
        Binding("left_square_bracket", "host(-1)", "Prev host", show=False),
        Binding("right_square_bracket", "host(1)", "Next host", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._indices: tuple[int, ...] = ()

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
        yield Static(id="gpu-screen-status")
        yield VerticalScroll(id="gpu-blocks")
        yield Static("Processes", id="gpu-proc-title")
        yield DataTable(id="gpu-processes", cursor_type="row", zebra_stripes=True)
        yield QuietFooter()

    def on_mount(self) -> None:
        table = self.query_one("#gpu-processes", DataTable)
        for key, label in (
            ("gpu", "GPU"),
            ("pid", "PID"),
            ("owner", "Container / process"),
            ("mem", "GPU memory"),
        ):
            table.add_column(label, key=key)
        view = getattr(self.app, "gpu_view", None)
        if view is not None:
            self.show_gpus(view)

    def show_gpus(self, view: GpuView, host: str | None = None) -> None:
        focus = getattr(self.app, "gpu_view", None)
        if focus is not None and focus is not view and host is not None:
            return  # another host's sample: this screen shows the host in focus
        snap = view.snapshot
        status = Text()
        if view.replay_name or snap.replayed:
            status.append(" REPLAY ", style="bold black on yellow")
            status.append(f" {view.replay_name or ''}  ")
        status.append(
            f"source: {snap.source}  ·  host: {snap.host}  ·  "
            f"{len(snap.gpus)} GPU(s)  ·  sampling every {view.interval:g} s"
        )
        if snap.error:
            status.append(f"  ·  {snap.error}", style="yellow")
        try:
            self.query_one("#gpu-screen-status", Static).update(status)
            blocks = self.query_one("#gpu-blocks", VerticalScroll)
        except NoMatches:  # not composed yet
            return
        indices = tuple(g.index for g in snap.gpus)
        if indices != self._indices:
            self._indices = indices
            blocks.remove_children()
            blocks.mount_all([GpuBlock(i) for i in indices])
            self.call_after_refresh(self.show_gpus, view)
            return
        for block in blocks.query(GpuBlock):
            block.show(view)
        self._show_processes(view)

    def _show_processes(self, view: GpuView) -> None:
        table = self.query_one("#gpu-processes", DataTable)
        rows: dict[str, tuple[str | Text, ...]] = {}
        attributed = view.attribution.processes if view.attribution else ()
        for p in attributed:
            if p.container_id is not None:
                owner: str | Text = Text(
                    view.names.get(p.container_id, p.container_id[:12]), style="bold"
                )
            else:
                owner = Text(
                    process_label(
                        p.command or p.process.process_name, p.process.pid, view.snapshot.replayed
                    ),
                    style="dim",
                )
            key = f"{p.process.gpu_index}:{p.process.pid}"
            rows[key] = (
                str(p.process.gpu_index),
                str(p.process.pid),
                owner,
                fmt.size(p.process.used_memory_bytes),
            )
        existing = {str(r.key.value) for r in table.ordered_rows}
        for gone in existing - set(rows):
            table.remove_row(gone)
        for key, cells in rows.items():
            if key in existing:
                for col, value in zip(("gpu", "pid", "owner", "mem"), cells, strict=True):
                    table.update_cell(key, col, value, update_width=True)
            else:
                table.add_row(*cells, key=key)

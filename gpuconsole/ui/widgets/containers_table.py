"""The containers table: keyed by container id, updated by diff, cursor kept by key."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import RowDoesNotExist

from gpuconsole import format as fmt
from gpuconsole.backend.gpu import ContainerGpuUsage
from gpuconsole.backend.models import ContainerStats, ContainerSummary, GpuRequest, HostSnapshot

COLUMNS: tuple[tuple[str, str], ...] = (
    ("name", "Name"),
    ("image", "Image"),
    ("status", "Status"),
    ("cpu", "CPU %"),
    ("mem", "Memory"),
    ("gpus", "GPUs"),
    ("gpumem", "GPU mem"),
    ("variant", "Variant"),
    ("ports", "Ports"),
)

_EXIT = re.compile(r"Exited \((\d+)\)")


def status_text(c: ContainerSummary) -> Text:
    if c.state == "running":
        style = "green"
        if "unhealthy" in c.status:
            style = "bold red"
    elif c.state in ("paused", "restarting"):
        style = "yellow"
    elif c.state in ("exited", "dead"):
        match = _EXIT.search(c.status)
        style = "red" if (match and match.group(1) != "0") or c.state == "dead" else "dim"
    else:
        style = "dim"
    return Text(c.status or c.state, style=style)


def gpu_cells(
    c: ContainerSummary, request: GpuRequest | None, usage: ContainerGpuUsage | None
) -> tuple[str | Text, str | Text]:
    """Requested GPUs (flagged when reserved but unused) and GPU memory in use."""
    requested: str | Text = fmt.gpus(request)
    if usage is None or not c.running:
        return requested, fmt.NONE
    if usage.idle_reservation:
        requested = Text(f"{requested} (idle reservation)", style="yellow")
    elif usage.unreserved_use:
        requested = Text(f"{requested} (unreserved use)", style="yellow")
    used = fmt.size(usage.memory_used_bytes) if usage.pids else fmt.NONE
    on = ",".join(str(i) for i in usage.used_indices)
    return requested, (f"{used} on {on}" if usage.pids and on else used)


def row_cells(
    c: ContainerSummary,
    stats: ContainerStats | None,
    gpus: GpuRequest | None,
    usage: ContainerGpuUsage | None = None,
) -> tuple[str | Text, ...]:
    requested, gpu_mem = gpu_cells(c, gpus, usage)
    return (
        Text(c.name, style="bold" if c.running else ""),
        fmt.image(c.image, 30),
        status_text(c),
        Text(fmt.cpu_percent(stats.cpu_percent if stats else None, c.running), justify="right"),
        Text(
            fmt.memory(
                stats.memory_bytes if stats else None,
                stats.memory_limit_bytes if stats else None,
                c.running,
            ),
            justify="right",
        ),
        requested,
        Text(gpu_mem, justify="right") if isinstance(gpu_mem, str) else gpu_mem,
        fmt.variant(c),
        fmt.ports(c.ports),
    )


def matches(c: ContainerSummary, needle: str) -> bool:
    needle = needle.strip().lower()
    return not needle or needle in c.name.lower() or needle in c.image.lower()


class ContainersTable(DataTable[str | Text]):
    """DataTable that knows how to apply a HostSnapshot without clearing itself."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)  # type: ignore[arg-type]
        self._cells: dict[str, tuple[str | Text, ...]] = {}
        self.containers: dict[str, ContainerSummary] = {}

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    @property
    def selected_id(self) -> str | None:
        if not self.row_count:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except Exception:
            return None
        return key.value

    def select_id(self, container_id: str) -> bool:
        try:
            index = self.get_row_index(container_id)
        except RowDoesNotExist:
            return False
        self.move_cursor(row=index)
        return True

    def apply(
        self,
        snapshot: HostSnapshot,
        needle: str = "",
        gpu_usage: Mapping[str, ContainerGpuUsage] | None = None,
    ) -> None:
        visible = [c for c in snapshot.containers if matches(c, needle)]
        # Newest first, as `docker ps` lists them.
        visible.sort(key=lambda c: (-c.created, c.name))
        selected = self.selected_id
        wanted = {c.id for c in visible}
        for gone in [cid for cid in self._cells if cid not in wanted]:
            self.remove_row(gone)
            del self._cells[gone]
        added = False
        for c in visible:
            cells = row_cells(
                c,
                snapshot.stats.get(c.id),
                snapshot.gpus.get(c.id),
                (gpu_usage or {}).get(c.id),
            )
            old = self._cells.get(c.id)
            if old is None:
                self.add_row(*cells, key=c.id)
                added = True
            elif old != cells:
                for (col, _), new_cell, old_cell in zip(COLUMNS, cells, old, strict=True):
                    if new_cell != old_cell:
                        self.update_cell(c.id, col, new_cell, update_width=True)
            self._cells[c.id] = cells
        self.containers = {c.id: c for c in visible}
        if added and len(visible) > 1:
            order = {c.id: i for i, c in enumerate(visible)}
            names = {c.name: order[c.id] for c in visible}
            self.sort("name", key=lambda name: names.get(str(name), 0))
        if selected is not None and selected in wanted:
            self.select_id(selected)

    def clear_rows(self) -> None:
        self.clear()
        self._cells.clear()
        self.containers = {}

    def ordered_ids(self) -> Iterable[str]:
        return [str(row.key.value) for row in self.ordered_rows]

"""The containers table: keyed by host and container id, updated by diff, cursor kept by key.

A container with a live idle-reservation alert has its GPUs cell flagged with how long the
reservation has been idle (minute steps, so the row repaints at most once a minute for it).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from rich.text import Text

from gpuconsole.backend.gpu import ContainerGpuUsage
from gpuconsole.backend.models import ContainerStats, ContainerSummary, GpuRequest, HostSnapshot
from gpuconsole.monitor.alerts import Alert
from gpuconsole.present import format as fmt
from gpuconsole.ui.alert_text import idle_flag
from gpuconsole.ui.widgets.fast_table import Cells, FastTable, RowDoesNotExist

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
    c: ContainerSummary,
    request: GpuRequest | None,
    usage: ContainerGpuUsage | None,
    idle: Alert | None = None,
    now: float = 0.0,
) -> tuple[str | Text, str | Text]:
    """Requested GPUs (flagged when reserved but unused, and louder when that raised an idle
    alert) and GPU memory in use."""
    requested: str | Text = fmt.gpus(request)
    if idle is not None and c.running:
        requested = Text(f"{requested} {idle_flag(idle, now)}", style="bold yellow")
        if usage is None:
            return requested, fmt.NONE
    elif usage is None or not c.running:
        return requested, fmt.NONE
    elif usage.idle_reservation:
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
    idle: Alert | None = None,
    now: float = 0.0,
) -> tuple[str | Text, ...]:
    requested, gpu_mem = gpu_cells(c, gpus, usage, idle, now)
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


def shown_figures(c: ContainerSummary, stats: ContainerStats | None) -> tuple[str, str]:
    """The CPU and memory cells' text (what ``row_cells`` shows of ``stats``)."""
    if stats is None:
        return fmt.cpu_percent(None, c.running), fmt.memory(None, None, c.running)
    return (
        fmt.cpu_percent(stats.cpu_percent, c.running),
        fmt.memory(stats.memory_bytes, stats.memory_limit_bytes, c.running),
    )


#: A running container's raw figures as ``shown_figures`` reads them (cpu %, memory, limit).
_Raw = tuple[float | None, int | None, int | None, bool]


def raw_figures(c: ContainerSummary, stats: ContainerStats | None) -> _Raw:
    """What ``shown_figures`` depends on: equal raw figures show the same text, so a refresh
    whose figures did not move formats nothing (500 idle containers every 2 s)."""
    if stats is None:
        return (None, None, None, c.running)
    return (stats.cpu_percent, stats.memory_bytes, stats.memory_limit_bytes, c.running)


def matches(c: ContainerSummary, needle: str) -> bool:
    needle = needle.strip().lower()
    return not needle or needle in c.name.lower() or needle in c.image.lower()


#: Row keys join host and container id: two hosts may show the same engine (an SSH alias of
#: this machine), so an id alone is not unique in a fleet.
KEY_SEP = "/"


def row_key(host: str, container_id: str) -> str:
    return f"{host}{KEY_SEP}{container_id}"


def split_key(key: str) -> tuple[str, str]:
    host, _, cid = key.rpartition(KEY_SEP)
    return host, cid


@dataclass(frozen=True, slots=True)
class HostRows:
    """One host's part of the table: its latest snapshot and, when it stopped answering, why."""

    host: str
    snapshot: HostSnapshot
    usage: Mapping[str, ContainerGpuUsage] = field(default_factory=dict)
    #: Set while the host is down: the rows stay, greyed, with this note in the status column.
    stale: str | None = None
    #: Container id -> its live idle-reservation alert.
    idle: Mapping[str, Alert] = field(default_factory=dict)


#: (sort key, row key, container, cells): newest first, hosts in config order, then by name.
_Entry = tuple[tuple[float, int, str], str, ContainerSummary, Cells]


@dataclass(slots=True)
class _HostPart:
    """One host's rows as last drawn, and what they were drawn from."""

    snapshot: HostSnapshot
    #: (host order, host column, stale note, idle-flag minute, filter, GPU usage, idle alerts)
    signature: tuple[object, ...]
    entries: list[_Entry]
    #: Container id -> (the row's inputs, its cells), for every container of the snapshot
    #: whose row was built, shown or not: a row's cells do not depend on the filter, so typing
    #: in it or clearing it builds no row that was built before.
    inputs: dict[str, tuple[object, Cells]]
    #: Container id -> (its raw figures, their text as shown), for the rows built: the text
    #: depends on nothing else, so equal figures are not formatted again.
    figures: dict[str, tuple[_Raw, tuple[str, str]]] = field(default_factory=dict)
    #: Every row as drawn before (the same cells, the same rows): nothing to write.
    unchanged: bool = False


class ContainersTable(FastTable, inherit_bindings=False):
    """Applies snapshots of one or more hosts without clearing itself.

    Enter is the screen's (details, shown in the footer): a table binding for it would hide the
    footer's key while the table has the focus and show it again whenever the focus moves.
    """

    BINDINGS = FastTable.NAV_BINDINGS

    def __init__(self, **kwargs: object) -> None:
        super().__init__(zebra_stripes=True, **kwargs)
        #: Row key -> container, for the rows shown.
        self.rows_shown: dict[str, ContainerSummary] = {}
        self.with_host = False
        #: Host -> its rows as last drawn. A fleet's hosts refresh one at a time and most rows
        #: do not change between refreshes: a host whose inputs are the same keeps its rows
        #: whole, and a row whose inputs are equal keeps its cells. With 10 hosts of 100 rows,
        #: rebuilding every row on every host's refresh was most of the console's CPU at rest.
        self._parts: dict[str, _HostPart] = {}

    def on_mount(self) -> None:
        self._add_columns()

    def _add_columns(self) -> None:
        if self.with_host:
            self.add_column("Host", key="host")
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    @property
    def containers(self) -> dict[str, ContainerSummary]:
        """Container id -> container for the rows shown (ids of a one-host table)."""
        return {split_key(k)[1]: c for k, c in self.rows_shown.items()}

    @property
    def selected(self) -> tuple[str, ContainerSummary] | None:
        """(host, container) of the row under the cursor."""
        key = self.selected_key
        if key is None or key not in self.rows_shown:
            return None
        return split_key(key)[0], self.rows_shown[key]

    @property
    def selected_id(self) -> str | None:
        key = self.selected_key
        return None if key is None else split_key(key)[1]

    def key_of(self, container_id: str, host: str | None = None) -> str | None:
        """The row key of a container id (on ``host``, else on any host shown)."""
        for key in self.row_keys:
            h, cid = split_key(key)
            if cid == container_id and (host is None or h == host):
                return key
        return None

    def row_of(self, container_id: str) -> list[str | Text]:
        key = self.key_of(container_id)
        if key is None:
            raise RowDoesNotExist(container_id)
        return self.get_row(key)

    def select_id(self, container_id: str, host: str | None = None) -> bool:
        key = self.key_of(container_id, host)
        if key is None:
            return False
        try:
            index = self.get_row_index(key)
        except RowDoesNotExist:
            return False
        self.move_cursor(row=index)
        return True

    def apply(
        self,
        parts: HostSnapshot | Sequence[HostRows],
        needle: str = "",
        gpu_usage: Mapping[str, ContainerGpuUsage] | None = None,
        *,
        with_host: bool | None = None,
    ) -> None:
        """Show ``parts`` (one or more hosts' rows); ``with_host``: a host column (default:
        when there are several hosts)."""
        if isinstance(parts, HostSnapshot):
            parts = [HostRows(parts.status.host, parts, gpu_usage or {})]
        if with_host is None:
            with_host = len(parts) > 1
        if with_host != self.with_host:
            self.with_host = with_host
            self.clear(columns=True)
            self._parts = {}
            self._add_columns()
        now = time.time()
        order_of_host = {p.host: i for i, p in enumerate(parts)}
        reused = 0
        drawn = False  # a part whose rows are not exactly as drawn
        fresh: dict[str, _HostPart] = {}
        for part in parts:
            signature = (
                order_of_host[part.host],
                with_host,
                part.stale,
                int(now // 60) if part.idle else None,
                needle,
                dict(part.usage),
                dict(part.idle),
            )
            cached = self._parts.get(part.host)
            if (
                cached is not None
                and cached.snapshot is part.snapshot
                and cached.signature == signature
            ):
                fresh[part.host] = cached
                reused += 1
            else:
                built = self._build_part(part, signature, with_host, needle, now, cached)
                fresh[part.host] = built
                drawn = drawn or not built.unchanged
        if reused == len(parts) and fresh.keys() == self._parts.keys():
            return  # nothing any row is drawn from changed
        if fresh.keys() == self._parts.keys() and not drawn:
            self._parts = fresh  # new figures, the same text in every cell: nothing to draw
            return
        self._parts = fresh
        # Newest first, as `docker ps` lists them; hosts in config order break ties.
        entries = [e for host_part in fresh.values() for e in host_part.entries]
        entries.sort(key=lambda e: e[0])
        selected = self.selected_key
        rows: dict[str, Cells] = {key: cells for _, key, _, cells in entries}
        self.put_rows(rows)
        self.rows_shown = {key: c for _, key, c, _ in entries}
        if selected is not None and selected in rows:
            index = self.get_row_index(selected)
            if index != self.cursor_row:
                self.move_cursor(row=index)

    def _build_part(
        self,
        part: HostRows,
        signature: tuple[object, ...],
        with_host: bool,
        needle: str,
        now: float,
        before: _HostPart | None,
    ) -> _HostPart:
        """One host's rows; a row whose inputs equal last time's keeps its cells (the very
        object, which put_rows then skips). The filter picks the rows shown, not their cells:
        a row filtered out keeps its cells for when the filter lets it in again."""
        order = int(str(signature[0]))
        # What a row's cells are drawn from besides its own inputs (host column, stale note,
        # idle-flag minute); the filter (signature[4]) is not among them.
        same_look = before is not None and before.signature[1:4] == signature[1:4]
        old = before.inputs if before is not None and same_look else {}
        inputs_of: dict[str, tuple[object, Cells]] = {}
        old_figures = before.figures if before is not None else {}
        figures: dict[str, tuple[_Raw, tuple[str, str]]] = {}
        entries: list[_Entry] = []
        rebuilt = False
        wanted = needle.strip().lower()  # matches(c, needle), its needle folded once
        for c in part.snapshot.containers:
            if wanted and wanted not in c.name.lower() and wanted not in c.image.lower():
                kept = old.get(c.id)
                if kept is not None:
                    inputs_of[c.id] = kept  # checked against its inputs when shown again
                if (known := old_figures.get(c.id)) is not None:
                    figures[c.id] = known
                continue
            stats = part.snapshot.stats.get(c.id)
            request = part.snapshot.gpus.get(c.id)
            usage = part.usage.get(c.id)
            idle = part.idle.get(c.id)
            # CPU and memory as the cells show them: figures that move below the shown
            # resolution (every refresh, for a running container) leave the row alone.
            raw = raw_figures(c, stats)
            known = old_figures.get(c.id)
            shown = known[1] if known is not None and known[0] == raw else shown_figures(c, stats)
            figures[c.id] = (raw, shown)
            inputs = (c, shown, request, usage, idle)
            prev = old.get(c.id)
            if prev is not None and prev[0] == inputs:
                cells = prev[1]
            else:
                rebuilt = True
                cells = row_cells(c, stats, request, usage, idle, now)
                if part.stale is not None:
                    cells = stale_cells(cells, part.stale)
                if with_host:
                    cells = (Text(part.host, style="dim" if part.stale else "cyan"), *cells)
            inputs_of[c.id] = (inputs, cells)
            entries.append(((-c.created, order, c.name), row_key(part.host, c.id), c, cells))
        unchanged = (
            before is not None
            and same_look
            and before.signature[0] == signature[0]
            and not rebuilt
            and [e[1] for e in entries] == [e[1] for e in before.entries]
        )
        return _HostPart(
            part.snapshot, signature, entries, inputs_of, figures=figures, unchanged=unchanged
        )

    def clear_rows(self) -> None:
        self.clear()
        self.rows_shown = {}
        self._parts = {}

    def ordered_ids(self) -> Iterable[str]:
        return [split_key(key)[1] for key in self.row_keys]


def stale_cells(cells: tuple[str | Text, ...], note: str) -> tuple[str | Text, ...]:
    """A down host's row: every cell greyed, the status saying how old it is and why."""
    out: list[str | Text] = []
    for index, cell in enumerate(cells):
        text = cell.copy() if isinstance(cell, Text) else Text(str(cell))
        if index == STATUS_COLUMN:
            text = Text(f"{text.plain} ({note})")
        text.stylize("dim")
        out.append(text)
    return tuple(out)


STATUS_COLUMN = [key for key, _ in COLUMNS].index("status")

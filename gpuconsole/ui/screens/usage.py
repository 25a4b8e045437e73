"""The usage report (``u``): GPU time, energy and idle reservations per container, image, host
or GPU, from the recording ``gpuconsole record`` keeps — what ``gpuconsole usage`` prints.

Read off the event loop (a week of minute rows is a few thousand rows per GPU) and again every
half minute while shown. ``b`` changes the grouping, ``t`` the window (24 h, 7 d, 30 d, all),
``s`` the sort column (or click a column's header; again reverses).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Static

from gpuconsole.accounting.meter import SPLIT_RULE
from gpuconsole.accounting.report import hours
from gpuconsole.present import format as fmt
from gpuconsole.ui.widgets.footer import QuietFooter

if TYPE_CHECKING:
    from gpuconsole.accounting.report import UsageRow

GROUPINGS = ("container", "image", "host", "gpu")
WINDOWS: tuple[tuple[str, float | None], ...] = (
    ("24 h", 86400.0),
    ("7 d", 7 * 86400.0),
    ("30 d", 30 * 86400.0),
    ("all", None),
)
#: (key, header, value to sort by)
COLUMNS: tuple[tuple[str, str], ...] = (
    ("who", "Container"),
    ("host", "Host"),
    ("image", "Image"),
    ("gpus", "GPUs"),
    ("gpu_h", "GPU time"),
    ("energy", "Energy"),
    ("util", "Util"),
    ("mem", "Peak mem"),
    ("reserved", "Reserved"),
    ("idle", "Idle reserved"),
    ("last", "Last seen"),
)
REFRESH_S = 30.0


def _sort_value(row: UsageRow, key: str) -> tuple[float, str]:
    """Numbers sort as numbers, names as names (one tuple type for both)."""
    values: dict[str, float | str] = {
        "who": row.container or row.image or row.host or "",
        "host": row.host or "",
        "image": row.image or "",
        "gpus": ",".join(row.gpus),
        "gpu_h": row.gpu_seconds,
        "energy": row.energy_wh,
        "util": row.mean_utilization_percent or 0.0,
        "mem": row.peak_memory_bytes or 0,
        "reserved": row.reserved_gpu_seconds,
        "idle": row.idle_reserved_gpu_seconds,
        "last": row.last_seen or 0.0,
    }
    value = values[key]
    return (0.0, value) if isinstance(value, str) else (float(value), "")


def _cells(row: UsageRow, by: str) -> tuple[str | Text, ...]:
    who = {
        "container": row.container or "-",
        "image": row.image or "-",
        "host": row.host or "-",
        "gpu": f"GPU {row.gpus[0].split(':', 1)[0]}" if row.gpus else "-",
    }[by]
    idle = hours(row.idle_reserved_gpu_seconds)
    return (
        Text(who, style="bold"),
        row.host or "(several)",
        row.image or "-",
        ",".join(g.split(":", 1)[0] if by != "container" else g for g in row.gpus) or "-",
        hours(row.gpu_seconds),
        f"{row.energy_wh:.1f} Wh",
        "-" if row.mean_utilization_percent is None else f"{row.mean_utilization_percent:.0f}%",
        fmt.size(row.peak_memory_bytes),
        hours(row.reserved_gpu_seconds),
        Text(idle, style="bold yellow") if row.idle_reserved_gpu_seconds >= 900 else idle,
        time.strftime("%Y-%m-%d %H:%M", time.localtime(row.last_seen)) if row.last_seen else "-",
    )


class UsageScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("b", "grouping", "By"),
        Binding("t", "window", "Window"),
        Binding("s", "sort", "Sort"),
        Binding("r", "reload", "Reload"),
        Binding("q", "app.quit", "Quit"),
    ]

    DEFAULT_CSS = """
    UsageScreen #usage-title { height: 1; padding: 0 1; }
    UsageScreen #usage-note { height: auto; padding: 0 1; color: $text-muted; }
    UsageScreen DataTable { height: 1fr; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.by = 0
        self.window = 0
        self.sort_key = "gpu_h"
        self.descending = True
        self.rows: list[UsageRow] = []
        self._title = Static(id="usage-title")
        self._note = Static(id="usage-note")
        self._table: DataTable[str | Text] = DataTable(
            id="usage-table", cursor_type="row", zebra_stripes=True
        )
        self._reading = False

    def compose(self) -> ComposeResult:
        yield self._title
        yield self._table
        yield self._note
        yield QuietFooter()

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self._table.add_column(label, key=key)
        self._show_title()
        self.action_reload()
        self.set_interval(REFRESH_S, self.action_reload)

    # -- actions --------------------------------------------------------------------------------

    def action_grouping(self) -> None:
        self.by = (self.by + 1) % len(GROUPINGS)
        self.action_reload()

    def action_window(self) -> None:
        self.window = (self.window + 1) % len(WINDOWS)
        self.action_reload()

    def action_sort(self) -> None:
        keys = [k for k, _ in COLUMNS]
        self.sort_key = keys[(keys.index(self.sort_key) + 1) % len(keys)]
        self.descending = self.sort_key not in ("who", "host", "image", "gpus")
        self._fill()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        key = str(event.column_key.value)
        if key == self.sort_key:
            self.descending = not self.descending
        else:
            self.sort_key = key
            self.descending = key not in ("who", "host", "image", "gpus")
        self._fill()

    def action_reload(self) -> None:
        if self._reading or not self.is_attached:
            return
        self._reading = True
        by = GROUPINGS[self.by]
        span = WINDOWS[self.window][1]

        def read() -> None:
            from gpuconsole.accounting.report import usage
            from gpuconsole.accounting.store import RecordingError, open_for_reading, recording_path

            path = recording_path()
            try:
                db = open_for_reading(path)
                try:
                    since = 0.0 if span is None else time.time() - span
                    rows = usage(db, since=since, by=by)
                finally:
                    db.close()
            except RecordingError as exc:
                self.app.call_from_thread(self._show_problem, str(exc))
                return
            self.app.call_from_thread(self._got, rows, str(path))

        self.run_worker(read, thread=True, group="usage", exit_on_error=False)

    # -- drawing --------------------------------------------------------------------------------

    def _show_title(self, path: str = "") -> None:
        title = Text()
        title.append("GPU usage", style="bold")
        title.append(f"  by {GROUPINGS[self.by]}  ·  last {WINDOWS[self.window][0]}")
        label = dict(COLUMNS)[self.sort_key]
        title.append(f"  ·  sorted by {label} {'↓' if self.descending else '↑'}")
        if path:
            title.append(f"  ·  {path}", style="dim")
        self._title.update(title)

    def _got(self, rows: list[UsageRow], path: str) -> None:
        self._reading = False
        self.rows = rows
        self._show_title(path)
        self._fill()
        note = f"Shared GPUs: {SPLIT_RULE}. Idle reserved: a reserved GPU with nothing of the "
        note += "container's running on it, or under 5 % utilization."
        if not rows:
            note = "Nothing recorded in this window (t: a longer one). " + note
        self._note.update(note)

    def _show_problem(self, message: str) -> None:
        self._reading = False
        self.rows = []
        self._table.clear()
        self._note.update(Text(message, style="yellow"))

    def _fill(self) -> None:
        by = GROUPINGS[self.by]
        from textual.widgets.data_table import ColumnKey

        self._table.columns[ColumnKey("who")].label = Text(
            {"container": "Container", "image": "Image", "host": "Host", "gpu": "GPU"}[by]
        )
        ordered = sorted(
            self.rows, key=lambda r: _sort_value(r, self.sort_key), reverse=self.descending
        )
        self._table.clear()
        for i, row in enumerate(ordered):
            self._table.add_row(*_cells(row, by), key=str(i))
        self._show_title()

"""The `?` screen: every key of the screen underneath, read from its BINDINGS so it stays true."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static


def _key_label(key: str) -> str:
    return {"slash": "/", "question_mark": "?", "enter": "enter", "escape": "esc"}.get(key, key)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape", "dismiss", "Close"),
        Binding("question_mark", "dismiss", "Close", show=False),
        Binding("q", "dismiss", "Close", show=False),
    ]

    def __init__(self, bindings: list[BindingType], read_only: bool) -> None:
        super().__init__()
        self._key_list = bindings
        self._read_only = read_only

    def compose(self) -> ComposeResult:
        table = Table(box=None, show_header=False, padding=(0, 2))
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        for item in self._key_list:
            if not isinstance(item, Binding) or not item.description:
                continue
            keys = ", ".join(_key_label(k.strip()) for k in item.key.split(","))
            table.add_row(keys, item.tooltip or item.description)
        with Vertical(id="help"):
            yield Static("Keys", id="help-title")
            yield Static(table)
            if self._read_only:
                yield Static(
                    "Read-only mode: start, stop, restart, remove and shells are disabled.",
                    id="help-readonly",
                )
            yield Static(
                "Mouse: click a row to select it, click it again for details.", id="help-mouse"
            )
            yield Static(
                "In a shell (e, E, o): the console waits until it ends; ~. at the start of a "
                "line leaves one that hangs.",
                id="help-shell",
            )

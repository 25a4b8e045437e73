"""The `?` keys list, drawn over the screen it describes rather than as a screen of its own.

As a modal screen, help cost a full repaint both ways: Textual re-renders the whole console
beneath to tint it, then again on the way back (p95 171 ms for `?` / esc with 111 containers
in tmux). Drawn on its own layer, showing it paints its box and closing it repaints the lines
it covered from what the widgets beneath already hold. It stays modal for keys: while it is open
every key stops here (esc, `?` or q close it), so nothing beneath acts.

It never takes the focus: a focus change restyles the focused widget, its scrollbars and the
screen itself, which Textual answers with a repaint of the whole screen (two of them per `?`,
20-45 ms each with 100 rows). Instead the app hands it keys and mouse presses first while it
is open (`take`, called from the app's ``on_event``).
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence

from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region
from textual.screen import Screen
from textual.strip import Strip
from textual.widgets import Static

#: Keys that close the panel (Textual's names).
CLOSE_KEYS = frozenset({"escape", "question_mark", "q"})

WIDTH = 78

SHELL_NOTE = (
    "In a shell (e, E, o): the console waits until it ends; ~. at the start of a line leaves "
    "one that hangs."
)
MOUSE_NOTE = "Mouse: click a row to select it, click it again for details."
READ_ONLY_NOTE = "Read-only mode: start, stop, restart, remove and shells are disabled."

#: The panel open on each screen (at most one per screen).
_OPEN: weakref.WeakKeyDictionary[Screen[object], HelpPanel] = weakref.WeakKeyDictionary()
#: Screens where a mouse press closed the panel: its release stops too (else Textual would make
#: a click of it on whatever was pressed before the panel opened).
_RELEASE_PENDING: weakref.WeakSet[Screen[object]] = weakref.WeakSet()


def take_input(screen: Screen[object], event: events.Event) -> bool:
    """True if an open help panel on ``screen`` takes ``event`` (the app then does nothing
    else with it). One dictionary lookup per input event while no panel is open."""
    if screen in _RELEASE_PENDING and isinstance(event, events.MouseUp):
        _RELEASE_PENDING.discard(screen)
        return True
    panel = _OPEN.get(screen)
    return panel is not None and panel.take(event)


def key_label(key: str) -> str:
    return {
        "slash": "/",
        "question_mark": "?",
        "exclamation_mark": "!",
        "enter": "enter",
        "escape": "esc",
    }.get(key, key)


def help_text(bindings: Sequence[BindingType], read_only: bool, notes: Sequence[str]) -> Text:
    """The keys (as the screen's BINDINGS give them, so help stays true) and the notes."""
    rows: list[tuple[str, str]] = []
    for item in bindings:
        if not isinstance(item, Binding) or not item.description:
            continue
        keys = ", ".join(key_label(k.strip()) for k in item.key.split(","))
        rows.append((keys, item.tooltip or item.description))
    key_width = max((len(k) for k, _ in rows), default=0) + 2
    text = Text(no_wrap=False)
    text.append("Keys\n\n", style="bold")
    for keys, what in rows:
        text.append(keys.ljust(key_width), style="bold cyan")
        text.append(f"{what}\n")
    if read_only:
        text.append(f"\n{READ_ONLY_NOTE}\n", style="yellow")
    for note in notes:
        text.append(f"\n{note}\n", style="dim")
    text.rstrip()
    return text


class HelpPanel(Static):
    DEFAULT_CSS = f"""
    HelpPanel {{
        layer: overlay;
        display: none;
        width: {WIDTH};
        height: auto;
        max-height: 100%;
        padding: 1 2;
        border: thick $accent;
        background: $panel;
    }}
    """

    def __init__(self, notes: Sequence[str] = (MOUSE_NOTE, SHELL_NOTE)) -> None:
        super().__init__("", id="help", markup=False)
        self.notes = tuple(notes)
        self._shown_for: object = None
        self._lines: list[Strip] = []
        self._lines_key: object = None

    @property
    def is_open(self) -> bool:
        return bool(self.display)

    def open(self, bindings: Sequence[BindingType], read_only: bool = False) -> None:
        key = (tuple(id(b) for b in bindings), read_only)
        if key != self._shown_for:
            self._shown_for = key
            self.update(help_text(bindings, read_only, self.notes))
        self._place()
        self.display = True
        _OPEN[self.screen] = self

    def close(self) -> None:
        if not self.display:
            return
        self.display = False
        if _OPEN.get(self.screen) is self:
            del _OPEN[self.screen]

    def take(self, event: events.Event) -> bool:
        """An input event while the panel is open: True if it stops here. Keys stop here (esc,
        `?` and q close it) except ctrl keys (quit, the command palette); a mouse press
        anywhere closes it and stops, with its release."""
        if isinstance(event, events.Key):
            if event.key.startswith("ctrl+"):
                return False
            if event.key in CLOSE_KEYS:
                self.close()
            return True
        if isinstance(event, events.MouseDown):
            _RELEASE_PENDING.add(self.screen)
            self.close()
            return True
        return False

    def render_lines(self, crop: Region) -> list[Strip]:
        """The box's lines as drawn last time while nothing it shows changed: showing or hiding
        a widget makes Textual drop its lines, and drawing these again through Rich was half
        of what `?` cost."""
        key = (crop, self.size, self._shown_for, self.app.theme, self.screen.is_current)
        if key != self._lines_key:
            self._lines = super().render_lines(crop)
            self._lines_key = key
        return self._lines

    def on_mount(self) -> None:
        self.screen.screen_layout_refresh_signal.subscribe(self, self._placed)

    def _placed(self, _screen: object) -> None:
        """After a layout (a terminal resize): centred again, if open."""
        if self.display:
            self._place()

    def _place(self) -> None:
        """Centre the box over the screen (its layer lays it out at the top left)."""
        screen = self.screen.size
        width = min(WIDTH, screen.width)
        lines = self.get_content_height(screen, screen, width - 6) + 4
        offset = (max(0, (screen.width - width) // 2), max(0, (screen.height - lines) // 2))
        if (self.styles.offset.x.value, self.styles.offset.y.value) != offset:
            self.styles.offset = offset

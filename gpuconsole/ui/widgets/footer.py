"""The screen's keys on one line, drawn as one piece of text.

Textual's Footer is a widget per key (about 15 here, each styled through a data binding) and
builds them afresh whenever the screen's bindings may have changed: every focus change, every
screen opened. Opening the filter or the details paid for that: restyling and laying out 15
widgets took most of the key's 100-250 ms. This footer is one widget: when the keys it shows
change it repaints its one line, and when they do not it does nothing. It looks and acts like
Textual's (same theme colours; a click runs the key; disabled keys dim and bell; the command
palette key on the right).

It also fills itself in when the app gains focus: in a browser (``gpuconsole serve``) the app
starts blurred and gains focus with nothing else changing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from rich.text import Text
from textual import events
from textual.widget import Widget

if TYPE_CHECKING:
    from textual.screen import Screen

#: Between the keys and the command palette key on the right (Textual's ``vkey`` border).
SEPARATOR = "▏"


class ShownKey(NamedTuple):
    key: str
    display: str
    description: str
    enabled: bool
    tooltip: str


class Placed(NamedTuple):
    """Where a key was drawn at the last paint (cells ``start`` to ``end``)."""

    start: int
    end: int
    shown: ShownKey


def shown_keys(screen: Screen[object]) -> tuple[list[ShownKey], ShownKey | None]:
    """(the keys shown on the left, one per action; the command palette key or None), as
    Textual's Footer picks them."""
    app = screen.app
    active = screen.active_bindings
    keys: list[ShownKey] = []
    actions: set[str] = set()
    for _node, binding, enabled, tooltip in active.values():
        if not binding.show or binding.action in actions:
            continue
        actions.add(binding.action)
        keys.append(
            ShownKey(
                binding.key,
                app.get_key_display(binding),
                binding.description,
                enabled,
                tooltip or binding.tooltip,
            )
        )
    palette: ShownKey | None = None
    if app.ENABLE_COMMAND_PALETTE and app.COMMAND_PALETTE_BINDING in active:
        _node, binding, enabled, tooltip = active[app.COMMAND_PALETTE_BINDING]
        palette = ShownKey(
            binding.key,
            app.get_key_display(binding),
            binding.description,
            enabled,
            binding.tooltip or binding.description,
        )
        keys = [k for k in keys if k.key != palette.key]
    return keys, palette


class QuietFooter(Widget):
    ALLOW_SELECT = False
    COMPONENT_CLASSES = {
        "footer--key",
        "footer--description",
        "footer--hover",
        "footer--separator",
    }
    DEFAULT_CSS = """
    QuietFooter {
        dock: bottom;
        height: 1;
        color: $footer-foreground;
        background: $footer-background;
        & > .footer--key {
            color: $footer-key-foreground;
            background: $footer-key-background;
            text-style: bold;
        }
        & > .footer--description {
            color: $footer-description-foreground;
            background: $footer-description-background;
        }
        & > .footer--hover {
            background: $block-hover-background;
        }
        & > .footer--separator {
            color: $foreground 20%;
        }
    }
    """

    def __init__(self) -> None:
        super().__init__()
        self._keys: list[ShownKey] = []
        self._palette: ShownKey | None = None
        self._placed: list[Placed] = []
        self._hover: ShownKey | None = None

    @property
    def keys_text(self) -> str:
        """What the line says, as plain text (for tests and the web page's readers)."""
        return " ".join(
            f"{k.display} {k.description}".strip()
            for k in [*self._keys, *([self._palette] if self._palette else [])]
        )

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self.bindings_changed)
        self.watch(self.app, "app_focus", self._app_focus_changed, init=False)
        self.bindings_changed(self.screen)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _app_focus_changed(self, focused: bool) -> None:
        if focused and self.is_attached:
            self.bindings_changed(self.screen)

    def bindings_changed(self, screen: Screen[object]) -> None:
        if not self.is_attached or screen is not self.screen:
            return
        keys, palette = shown_keys(screen)
        if keys != self._keys or palette != self._palette:
            self._keys, self._palette = keys, palette
            self.refresh()

    def render(self) -> Text:
        key_style = self.get_component_rich_style("footer--key")
        description_style = self.get_component_rich_style("footer--description")
        hover_style = self.get_component_rich_style("footer--hover")
        placed: list[Placed] = []
        line = Text(no_wrap=True, overflow="crop", end="")

        def put(shown: ShownKey) -> None:
            start = line.cell_len
            extra = hover_style if shown == self._hover else None
            line.append(f" {shown.display} ", key_style + extra if extra else key_style)
            if shown.description:
                described = description_style + extra if extra else description_style
                line.append(f"{shown.description} ", described)
            if not shown.enabled:
                line.stylize("dim", start)
            placed.append(Placed(start, line.cell_len, shown))

        for shown in self._keys:
            put(shown)
        if self._palette is not None:
            # Always shown, on the right, compact as Textual draws it ("▏^p palette "); the
            # keys give way to it.
            palette = self._palette
            tail = 1 + Text(f"{palette.display} {palette.description} ").cell_len
            room = max(0, self.size.width - tail)
            if line.cell_len > room:
                line.truncate(room)
                placed = [p._replace(end=min(p.end, room)) for p in placed if p.start < room]
            line.append(" " * (room - line.cell_len))
            line.append(SEPARATOR, self.get_component_rich_style("footer--separator"))
            start = line.cell_len
            extra = hover_style if palette == self._hover else None
            line.append(palette.display, key_style + extra if extra else key_style)
            described = description_style + extra if extra else description_style
            line.append(f" {palette.description}", described)
            line.append(" ")
            placed.append(Placed(start, line.cell_len, palette))
        self._placed = placed
        return line

    def _at(self, x: int) -> ShownKey | None:
        for place in self._placed:
            if place.start <= x < place.end:
                return place.shown
        return None

    def on_mouse_move(self, event: events.MouseMove) -> None:
        shown = self._at(event.x)
        if shown != self._hover:
            self._hover = shown
            self.tooltip = shown.tooltip if shown and shown.tooltip else None
            self.refresh()

    def on_leave(self, _event: events.Leave) -> None:
        if self._hover is not None:
            self._hover = None
            self.tooltip = None
            self.refresh()

    def on_mouse_down(self, event: events.MouseDown) -> None:
        shown = self._at(event.x)
        if shown is None:
            return
        if shown.enabled:
            self.app.simulate_key(shown.key)
        else:
            self.app.bell()

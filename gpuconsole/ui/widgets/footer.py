"""A footer that rebuilds its keys only when they change.

Textual's Footer recomposes (a widget per key, styled and laid out afresh) whenever the
screen's bindings *may* have changed — on every focus change, so twice for each modal opened
and closed over the containers screen (about 40 key widgets each time): most of the cost of
``?``/``esc`` there. What it shows depends only on the active bindings it shows (a focused
table's or the help panel's hidden keys change nothing), so those are compared first.

It also fills itself in when the app gains focus. Textual's Footer skips its keys while the app
is blurred and waits for the next bindings change; in a browser (``gpuconsole serve``) the app
starts blurred and gains focus with nothing else changing, which left the footer empty.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.widgets import Footer

if TYPE_CHECKING:
    from textual.screen import Screen


def _shown(screen: Screen[object]) -> tuple[tuple[object, ...], ...]:
    return tuple(
        (binding.key, binding.description, binding.show, enabled, tooltip)
        for (_, binding, enabled, tooltip) in screen.active_bindings.values()
        if binding.show
    )


class QuietFooter(Footer):
    _last: tuple[tuple[object, ...], ...] | None = None

    def on_mount(self) -> None:
        super().on_mount()
        self.watch(self.app, "app_focus", self._app_focus_changed, init=False)

    def _app_focus_changed(self, focused: bool) -> None:
        if focused and self.is_attached:
            self.bindings_changed(self.screen)

    def bindings_changed(self, screen: Screen[object]) -> None:
        if self.is_attached and screen is self.screen and screen.app.app_focus:
            shown = _shown(screen)
            if shown == self._last:
                self._bindings_ready = True
                return
            self._last = shown
        super().bindings_changed(screen)

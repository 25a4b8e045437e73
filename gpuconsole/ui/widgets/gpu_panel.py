"""The main screen's GPU strip: a card per GPU (grouped by host), or a line saying why not."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Grid
from textual.css.query import NoMatches
from textual.widget import Widget

from gpuconsole.backend.gpu import GpuSourceState
from gpuconsole.monitor.gpu_view import GpuView
from gpuconsole.ui.widgets.gpu_card import GpuCard
from gpuconsole.ui.widgets.text_line import TextLine


class GpuPanel(Widget):
    DEFAULT_CSS = """
    GpuPanel { height: auto; max-height: 16; }
    GpuPanel > TextLine { height: auto; padding: 0 1; color: $text-muted; }
    GpuPanel > Grid { height: auto; grid-gutter: 0 1; grid-rows: 7; }
    """

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self._cards: tuple[tuple[str, int], ...] = ()
        self._views: dict[str, GpuView] = {}
        #: The mounted cards (a DOM query per sample of every host was a fleet's main cost).
        self._card_widgets: list[GpuCard] = []
        #: Cards were left unfilled below the strip's edge (filled when it grows).
        self._hidden = False

    def compose(self) -> ComposeResult:
        yield TextLine("GPUs: starting…", id="gpu-status")
        yield Grid(id="gpu-grid")

    def show(self, view: GpuView, host: str | None = None) -> None:
        """One host's GPUs (the console of a single host)."""
        self.show_hosts({host or view.snapshot.host: view})

    def show_hosts(
        self, views: Mapping[str, GpuView], changed: str | Collection[str] | None = None
    ) -> None:
        """The GPUs of several hosts, grouped by host in the given order; ``changed``: only
        those hosts' cards have news (the others are left alone, not repainted)."""
        if isinstance(changed, str):
            changed = (changed,)
        self._views = dict(views)
        try:
            status = self.query_one("#gpu-status", TextLine)
            grid = self.query_one("#gpu-grid", Grid)
        except NoMatches:  # not composed yet (first sample raced the mount): next one will do
            return
        several = len(views) > 1
        line = Text()
        for host, view in views.items():
            snap = view.snapshot
            prefix = f"{host}: " if several else ""
            if view.replay_name or snap.replayed:
                line.append(" REPLAY ", style="bold black on yellow")
                line.append(
                    f" {prefix}recorded data from {view.replay_name or 'a recording'}  ", style=""
                )
                if snap.error and snap.state is GpuSourceState.OK:  # lines the replay left out
                    line.append(f"{snap.error}  ", style="yellow")
            if snap.state is not GpuSourceState.OK and snap.error:
                line.append(f"{prefix}GPUs: {snap.error}  ", style="yellow")
        status.set_text(line)
        status.display = bool(line.plain)
        cards = tuple((host, g.index) for host, view in views.items() for g in view.snapshot.gpus)
        if cards != self._cards:
            self._cards = cards
            grid.remove_children()
            self._card_widgets = []
            grid.styles.grid_size_columns = max(1, min(4, len(cards)))
            grid.mount_all([GpuCard(i, host if several else None) for host, i in cards])
            # Fill the new cards once mounted — with the views current THEN (an older set
            # re-applied later would rebuild the cards again, host after host, forever).
            self.call_after_refresh(lambda: self.show_hosts(self._views))
            return
        if len(self._card_widgets) != len(cards):
            self._card_widgets = list(grid.query(GpuCard))
        first = next(iter(views), "")
        # The strip is at most a few rows high: with many hosts most cards are below its edge,
        # and making their text every second was work nobody sees (they are shown again when
        # the strip grows: on_resize).
        below = self._edge(status)
        for card in self._card_widgets:
            if changed is not None and card.host is not None and card.host not in changed:
                continue
            if below is not None and card.virtual_region.y >= below:
                self._hidden = True
                continue
            shown = views.get(card.host or first)
            if shown is None:
                continue
            for gpu in shown.snapshot.gpus:
                if gpu.index == card.index:
                    card.show(gpu, shown)

    def _edge(self, status: TextLine) -> int | None:
        """The first grid line below the strip's edge (None before it is laid out)."""
        height = self.size.height
        if height <= 0:
            return None
        return height - (status.outer_size.height if status.display else 0)

    def on_resize(self) -> None:
        if self._hidden and self._views:
            self._hidden = False
            self.show_hosts(self._views)

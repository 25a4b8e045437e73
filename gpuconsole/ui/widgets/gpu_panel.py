"""The main screen's GPU strip: a card per GPU, or one line saying why there are none."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Grid
from textual.css.query import NoMatches
from textual.widget import Widget
from textual.widgets import Static

from gpuconsole.backend.gpu import GpuSourceState
from gpuconsole.ui.gpu_view import GpuView
from gpuconsole.ui.widgets.gpu_card import GpuCard


class GpuPanel(Widget):
    DEFAULT_CSS = """
    GpuPanel { height: auto; max-height: 16; }
    GpuPanel > Static { height: auto; padding: 0 1; color: $text-muted; }
    GpuPanel > Grid { height: auto; grid-gutter: 0 1; grid-rows: 7; }
    """

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self._indices: tuple[int, ...] = ()

    def compose(self) -> ComposeResult:
        yield Static("GPUs: starting…", id="gpu-status")
        yield Grid(id="gpu-grid")

    def show(self, view: GpuView) -> None:
        snap = view.snapshot
        try:
            status = self.query_one("#gpu-status", Static)
            grid = self.query_one("#gpu-grid", Grid)
        except NoMatches:  # not composed yet (first sample raced the mount): next one will do
            return
        line = Text()
        if view.replay_name or snap.replayed:
            line.append(" REPLAY ", style="bold black on yellow")
            line.append(f" recorded data from {view.replay_name or 'a recording'}  ", style="")
        if snap.state is not GpuSourceState.OK and snap.error:
            line.append(f"GPUs: {snap.error}", style="yellow")
        status.update(line)
        status.display = bool(line.plain)
        indices = tuple(g.index for g in snap.gpus)
        if indices != self._indices:
            self._indices = indices
            grid.remove_children()
            grid.styles.grid_size_columns = max(1, min(4, len(indices)))
            grid.mount_all([GpuCard(i) for i in indices])
            self.call_after_refresh(self.show, view)
            return
        for gpu in snap.gpus:
            for card in grid.query(GpuCard):
                if card.index == gpu.index:
                    card.show(gpu, view)

"""The Textual application: holds the injected host(s) and opens the containers screen."""

from __future__ import annotations

from textual.app import App
from textual.screen import Screen

from gpuconsole import __version__
from gpuconsole.backend.docker.host import DockerHost
from gpuconsole.resources import stylesheet
from gpuconsole.ui.screens.containers import ContainersScreen


class GpuconsoleApp(App[int]):
    CSS_PATH = str(stylesheet())
    TITLE = f"gpuconsole {__version__}"
    ENABLE_COMMAND_PALETTE = True

    def __init__(
        self,
        host: DockerHost,
        read_only: bool = False,
        refresh_seconds: float = 2.0,
        show_all: bool = True,
    ) -> None:
        super().__init__()
        self.host = host
        self.read_only = read_only
        self.refresh_seconds = refresh_seconds
        self.show_all = show_all

    def get_default_screen(self) -> Screen[None]:
        return ContainersScreen(self.host, self.read_only, self.refresh_seconds, self.show_all)

    def on_unmount(self) -> None:
        self.host.close()

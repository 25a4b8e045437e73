"""The Textual application: holds the injected host and GPU source, runs the GPU poller, and
opens the containers screen."""

from __future__ import annotations

import threading
from pathlib import Path

from textual.app import App
from textual.screen import Screen

from gpuconsole import __version__
from gpuconsole.backend.docker.host import DockerHost
from gpuconsole.backend.gpu import GpuSource
from gpuconsole.backend.models import HostSnapshot
from gpuconsole.resources import stylesheet
from gpuconsole.ui.gpu_view import GpuView
from gpuconsole.ui.messages import GpuUpdate
from gpuconsole.ui.pollers import GpuPoller
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
        gpu_source: GpuSource | None = None,
        gpu_interval: float = 1.0,
        replay_name: str | None = None,
        config_path: Path | None = None,
    ) -> None:
        super().__init__()
        self.host = host
        self.read_only = read_only
        self.refresh_seconds = refresh_seconds
        self.show_all = show_all
        self.gpu_source = gpu_source
        self.gpu_interval = gpu_interval
        self.replay_name = replay_name
        self.config_path = config_path
        self.gpu_view: GpuView | None = None
        self.containers_screen = ContainersScreen(
            host, read_only, refresh_seconds, show_all, with_gpus=gpu_source is not None
        )
        self.gpu_poller: GpuPoller | None = None

    def get_default_screen(self) -> Screen[None]:
        return self.containers_screen

    def _latest_containers(self) -> HostSnapshot | None:
        return self.containers_screen.snapshot

    def on_mount(self) -> None:
        if self.gpu_source is not None:
            self.gpu_poller = GpuPoller(
                self.gpu_source,
                self.post_message,
                self._latest_containers,
                interval=self.gpu_interval,
                replay_name=self.replay_name,
            )
            # A daemon thread (see ContainersScreen): a stuck sample must not block quitting.
            threading.Thread(target=self.gpu_poller.run, name="poll:gpu", daemon=True).start()

    def on_gpu_update(self, message: GpuUpdate) -> None:
        self.gpu_view = message.view
        for screen in self.screen_stack:
            show = getattr(screen, "show_gpus", None)
            if show is not None:
                show(message.view)

    def on_unmount(self) -> None:
        if self.gpu_poller is not None:
            self.gpu_poller.stop()
        self.host.close()

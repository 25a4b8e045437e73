"""The main screen: the host line, the containers table, and the keys that act on a container."""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input
from textual.worker import Worker, WorkerState

from gpuconsole.backend.docker.host import DockerHost
from gpuconsole.backend.errors import GpuconsoleError, ReadOnlyMode
from gpuconsole.backend.launch import LaunchResult
from gpuconsole.backend.models import EngineState, HostSnapshot, HostStatus
from gpuconsole.ui.gpu_view import GpuView
from gpuconsole.ui.messages import HostDown, PollFailed, SnapshotReady
from gpuconsole.ui.pollers import HostPoller
from gpuconsole.ui.screens.confirm import ConfirmScreen
from gpuconsole.ui.screens.details import DetailsScreen
from gpuconsole.ui.screens.help import HelpScreen
from gpuconsole.ui.widgets.containers_table import ContainersTable
from gpuconsole.ui.widgets.engine_down import EngineDown
from gpuconsole.ui.widgets.gpu_panel import GpuPanel
from gpuconsole.ui.widgets.host_line import HostLine

#: Actions that change something; refused (with a message) in read-only mode.
MUTATING = frozenset({"start", "stop", "restart", "remove"})


class ContainersScreen(Screen[None]):
    BINDINGS = [
        Binding("s", "start", "Start", tooltip="Start the selected container"),
        Binding("x", "stop", "Stop", tooltip="Stop the selected container"),
        Binding("r", "restart", "Restart", tooltip="Restart the selected container"),
        Binding("d", "remove", "Remove", tooltip="Remove the selected container (asks first)"),
        Binding("slash", "filter", "Filter", tooltip="Filter by name or image"),
        Binding("a", "toggle_all", "All/Running", tooltip="Show or hide stopped containers"),
        Binding("g", "gpus", "GPUs", tooltip="GPU graphs and processes"),
        Binding("n", "launch", "Launch", tooltip="Launch a Jupyter, SSH or plain container"),
        Binding(
            "b",
            "build_variant",
            "Build variant",
            tooltip="Build an SSH or Jupyter variant of an image",
        ),
        Binding(
            "enter",
            "details",
            "Details",
            tooltip="Details: image, command, limits, mounts, ports, labels, env",
        ),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding("question_mark", "help", "Help", tooltip="This help"),
        Binding("q", "app.quit", "Quit", tooltip="Quit gpuconsole"),
    ]

    def __init__(
        self,
        host: DockerHost,
        read_only: bool,
        refresh_seconds: float,
        show_all: bool,
        with_gpus: bool = False,
    ) -> None:
        super().__init__()
        self.host = host
        self.read_only = read_only
        self.poller = HostPoller(host, self.post_message, refresh_seconds, show_all=show_all)
        self.status = HostStatus(host.name, host.address, EngineState.UNKNOWN)
        self.snapshot: HostSnapshot | None = None
        self.needle = ""
        self.with_gpus = with_gpus
        self.pending_select: str | None = None
        self.gpu_view: GpuView | None = None

    def compose(self) -> ComposeResult:
        yield HostLine(id="hostline")
        yield Input(
            placeholder="filter by name or image — enter to keep, esc to clear", id="filter"
        )
        if self.with_gpus:
            yield GpuPanel(id="gpu-panel")
        yield ContainersTable(id="containers")
        yield EngineDown(id="engine-down")
        yield Footer()

    @property
    def table(self) -> ContainersTable:
        return self.query_one(ContainersTable)

    def on_mount(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = False
        box.disabled = True  # hidden: it must not catch keys (focus falls back to the screen)
        self.query_one(EngineDown).display = False
        self._refresh_host_line()
        # A daemon thread, not a Textual worker: a poll stuck on a hung engine must not hold up
        # quitting (Textual waits for its thread workers at exit).
        threading.Thread(target=self.poller.run, name=f"poll:{self.host.name}", daemon=True).start()
        self.table.focus()

    def on_unmount(self) -> None:
        self.poller.stop()

    # -- data from the poller ---------------------------------------------------------------

    def on_snapshot_ready(self, message: SnapshotReady) -> None:
        was_down = self.status.state is EngineState.DOWN
        self.snapshot = message.snapshot
        self.status = message.snapshot.status
        if was_down or not self.table.display:
            self.query_one(EngineDown).display = False
            self.table.display = True
            if was_down:
                self.notify(f"Docker engine at {self.host.address} is back", title="Engine")
        self._apply_table()
        if self.pending_select is not None and self.table.select_id(self.pending_select):
            self.pending_select = None
        self._refresh_host_line()
        self.refresh_bindings()

    def _apply_table(self) -> None:
        if self.snapshot is None:
            return
        usage = self.gpu_view.usage() if self.gpu_view is not None else {}
        self.table.apply(self.snapshot, self.needle, usage)

    def show_gpus(self, view: GpuView) -> None:
        """Called by the app for every GPU sample."""
        before = self.gpu_view.attribution if self.gpu_view is not None else None
        self.gpu_view = view
        for panel in self.query(GpuPanel):  # none while the screen is still composing
            panel.show(view)
        if view.attribution is not before:  # attribution changes at its own, slower rate
            self._apply_table()

    def action_launch(self) -> None:
        if self._refuse_if_read_only("launch"):
            return
        from gpuconsole.config import config_path
        from gpuconsole.profiles import load_profiles
        from gpuconsole.ui.screens.launch_form import LaunchForm

        path = getattr(self.app, "config_path", None) or config_path()
        try:
            profiles = dict(load_profiles(path))
        except GpuconsoleError as exc:
            self.notify(f"profiles not loaded: {exc}", severity="warning")
            profiles = {}
        self.app.push_screen(LaunchForm(self.host, self.gpu_view, profiles, path), self._launched)

    def action_build_variant(self) -> None:
        if self._refuse_if_read_only("build-variant"):
            return
        from gpuconsole.ui.screens.build_variant import BuildVariantScreen

        c = self.table.containers.get(self.table.selected_id or "")

        def built(tag: str | None) -> None:
            if tag:
                self.notify(f"{tag} is ready: press n and use it as the image", title="Built")

        self.app.push_screen(BuildVariantScreen(self.host, c.image if c else ""), built)

    def _launched(self, result: LaunchResult | None) -> None:
        if result is None:
            return
        self.pending_select = result.id
        self.poller.wake()
        reach = result.url or result.ssh_command or ""
        self.notify(f"{result.name} is up. {reach}", title="Launched", timeout=10)
        self.app.push_screen(
            DetailsScreen(
                self.host, result.id, result.name, launch=result, read_only=self.read_only
            )
        )

    def action_gpus(self) -> None:
        if not self.with_gpus:
            self.notify("No GPU source (start without --no-gpu)", severity="warning")
            return
        from gpuconsole.ui.screens.gpus import GpuScreen

        self.app.push_screen(GpuScreen())

    def on_host_down(self, message: HostDown) -> None:
        first = self.status.state is not EngineState.DOWN
        self.status = message.status
        self.snapshot = None
        self.table.clear_rows()
        self.table.display = False
        panel = self.query_one(EngineDown)
        panel.display = True
        panel.show(message.status, message.attempt, self.poller.down_interval)
        self._refresh_host_line()
        self.refresh_bindings()
        if first:
            self.notify(
                f"{message.status.error}", title="Docker engine unreachable", severity="error"
            )

    def on_poll_failed(self, message: PollFailed) -> None:
        self.notify(message.error, title="Refresh failed", severity="error")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The one place a worker's unexpected error becomes a notification."""
        if event.state is WorkerState.ERROR and event.worker.error is not None:
            self.notify(str(event.worker.error), title="Error", severity="error")

    def _refresh_host_line(self) -> None:
        self.query_one(HostLine).show(
            self.status, self.snapshot, self.read_only, self.poller.show_all, self.needle
        )

    # -- keys -------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in MUTATING | {"details"} and (
            self.status.state is not EngineState.UP or not self.table.row_count
        ):
            return None  # shown dimmed: nothing to act on
        return True

    def _selected(self) -> tuple[str, str] | None:
        cid = self.table.selected_id
        if cid is None:
            self.notify("No container selected", severity="warning")
            return None
        c = self.table.containers.get(cid)
        return cid, (c.name if c else cid[:12])

    def _refuse_if_read_only(self, action: str) -> bool:
        if self.read_only:
            self.notify(str(ReadOnlyMode(action)), title="Read-only", severity="warning")
            return True
        return False

    def _run_action(self, verb: str, done: str, call: Callable[[], None], name: str) -> None:
        def body() -> None:
            try:
                call()
            except GpuconsoleError as exc:
                self.app.call_from_thread(
                    self.notify, str(exc), title=f"{verb} failed", severity="error"
                )
                return
            finally:
                self.poller.wake()
            self.app.call_from_thread(self.notify, f"{name} {done}", title=verb)

        self.notify(f"{verb} {name}…", timeout=2)
        self.run_worker(body, thread=True, group="actions", exit_on_error=False)

    def action_start(self) -> None:
        if self._refuse_if_read_only("start") or not (sel := self._selected()):
            return
        cid, name = sel
        self._run_action("Start", "started", partial(self.host.start, cid), name)

    def action_stop(self) -> None:
        if self._refuse_if_read_only("stop") or not (sel := self._selected()):
            return
        cid, name = sel
        self._run_action("Stop", "stopped", partial(self.host.stop, cid), name)

    def action_restart(self) -> None:
        if self._refuse_if_read_only("restart") or not (sel := self._selected()):
            return
        cid, name = sel
        self._run_action("Restart", "restarted", partial(self.host.restart, cid), name)

    def action_remove(self) -> None:
        if self._refuse_if_read_only("remove") or not (sel := self._selected()):
            return
        cid, name = sel
        c = self.table.containers.get(cid)
        running = bool(c and c.running)
        body = f"Remove container {name} ({cid[:12]})?"
        if running:
            body += "\nIt is running: it will be stopped and removed."
        warning = None
        if c is not None and not c.mounts:
            warning = (
                "⚠ This container has no volume mounts: everything written inside it "
                "(notebooks, checkpoints, data) is deleted with it."
            )

        def decided(yes: bool | None) -> None:
            if yes:
                self._run_action(
                    "Remove", "removed", partial(self.host.remove, cid, force=running), name
                )

        self.app.push_screen(
            ConfirmScreen("Remove container", body, warning, yes="Remove"), decided
        )

    def action_details(self) -> None:
        if not (sel := self._selected()):
            return
        cid, name = sel
        self.app.push_screen(DetailsScreen(self.host, cid, name, read_only=self.read_only))

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_details()

    def action_toggle_all(self) -> None:
        self.poller.show_all = not self.poller.show_all
        self._refresh_host_line()
        self.poller.wake()

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.disabled = False
        box.display = True
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        box.display = False
        box.disabled = True
        self.table.focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.needle = event.value
        self._apply_table()
        self._refresh_host_line()

    @on(Input.Submitted, "#filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        if not event.value:
            event.input.display = False
            event.input.disabled = True
        self.table.focus()

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen(list(self.BINDINGS), self.read_only))

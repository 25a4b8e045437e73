"""The Textual application: holds the hosts, runs their monitors, and opens the containers screen.

The monitors (gpuconsole.monitor) are headless; their events become messages here. Container
events go to the containers screen, GPU samples to every screen that shows GPUs, alerts to a
notification, the fleet's alert log (the ``!`` panel) and the containers table.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from textual import events
from textual.app import App
from textual.driver import Driver
from textual.screen import Screen

from gpuconsole import __version__
from gpuconsole.backend.errors import GpuconsoleError
from gpuconsole.backend.hosts.host import Host
from gpuconsole.monitor.alerts import AlertKind, AlertLog, AlertSeverity
from gpuconsole.monitor.events import (
    AlertChanged,
    AlertCommandFailed,
    ContainersUpdated,
    EngineDown,
    EngineSlow,
    GpusUpdated,
    MonitorEvent,
    RefreshFailed,
)
from gpuconsole.monitor.fleet import Fleet
from gpuconsole.monitor.gpu_view import GpuView
from gpuconsole.settings.config import AlertSettings, load_alert_settings
from gpuconsole.ui import alert_text, gc_settle
from gpuconsole.ui.messages import (
    AlertCommandError,
    AlertNotice,
    GpuUpdate,
    HostDown,
    HostSlow,
    LinkChanged,
    PollFailed,
    SnapshotReady,
)
from gpuconsole.ui.resources import stylesheet
from gpuconsole.ui.screens.containers import ContainersScreen
from gpuconsole.ui.widgets.help_panel import take_input

#: Seconds after the first rows, and at the latest after start, to freeze what start-up made
#: (ui/gc_settle.py): the first rows' own paint is done by then.
SETTLE_AFTER_ROWS_S = 1.0
SETTLE_LATEST_S = 10.0


class GpuconsoleApp(App[int]):
    CSS_PATH = str(stylesheet())
    TITLE = f"gpuconsole {__version__}"
    ENABLE_COMMAND_PALETTE = True

    def __init__(
        self,
        hosts: Host | Sequence[Host],
        read_only: bool = False,
        refresh_seconds: float = 2.0,
        show_all: bool = True,
        gpu_interval: float = 1.0,
        replay_name: str | None = None,
        config_path: Path | None = None,
        warnings: Sequence[str] = (),
        shell_command: str | None = None,
        alerts: AlertSettings | None = None,
    ) -> None:
        """``alerts``: the ``[alerts]`` settings; None reads them from ``config_path`` (the
        defaults without a file), so every console judges its GPUs."""
        super().__init__()
        #: ``[shell] command`` of the config: what ``e`` runs in a container (None: bash, else sh).
        self.shell_command = shell_command
        self.hosts: tuple[Host, ...] = (hosts,) if isinstance(hosts, Host) else tuple(hosts)
        self.read_only = read_only
        self.refresh_seconds = refresh_seconds
        self.gpu_interval = gpu_interval
        self.replay_name = replay_name
        self.config_path = config_path
        self.warnings = tuple(warnings)
        self.gpu_views: dict[str, GpuView] = {}
        if alerts is None:
            try:
                alerts = load_alert_settings(config_path)
            except GpuconsoleError as exc:  # the CLI checked it: the file changed since
                alerts = AlertSettings()
                self.warnings += (f"{exc} (alerts use the defaults)",)
        self.alert_settings = alerts
        #: Every host's alerts, live and past: what the ``!`` panel and the table show.
        self.alert_log = AlertLog()
        self.fleet = Fleet(
            self.hosts,
            self._from_monitor,
            refresh_seconds=refresh_seconds,
            show_all=show_all,
            gpu_interval=gpu_interval,
            replay_name=replay_name,
            alerts=alerts,
        )
        with_gpus = any(h.gpu is not None for h in self.hosts)
        self.containers_screen = ContainersScreen(
            self.hosts, self.fleet, read_only, with_gpus=with_gpus
        )
        self._settle_armed = False
        #: Full collections at moments without input, once start-up is frozen (gc_settle.py).
        self.collector = gc_settle.IdleCollector()

    def get_driver_class(self) -> type[Driver]:
        """Textual's own driver, except on a Linux/macOS terminal: one that sees Escape sooner
        (ui/quick_escape.py); in a browser, one that quits when its server goes."""
        driver = super().get_driver_class()
        from textual.drivers.linux_driver import LinuxDriver

        if driver is LinuxDriver:
            from gpuconsole.ui.quick_escape import QuickEscapeDriver

            return QuickEscapeDriver
        if driver.__name__ == "WebDriver":  # served to a browser: see ui/served_driver.py
            from gpuconsole.ui.served_driver import ServedDriver

            return ServedDriver
        return driver

    @property
    def host(self) -> Host:
        """The first host (the only one in a one-host console)."""
        return self.hosts[0]

    @property
    def gpu_view(self) -> GpuView | None:
        """The GPU view of the host in focus (the containers screen's scope, else the first)."""
        scope = self.containers_screen.scope
        if scope is not None:
            return self.gpu_views.get(scope)
        for host in self.hosts:
            if host.name in self.gpu_views:
                return self.gpu_views[host.name]
        return None

    def get_default_screen(self) -> Screen[None]:
        return self.containers_screen

    # -- from the monitors (worker threads) -------------------------------------------------

    def _from_monitor(self, event: MonitorEvent) -> None:
        if not self.is_running:
            return  # quitting: the loop may already be closed
        with contextlib.suppress(RuntimeError):  # the loop closed between check and post
            self._route(event)

    def _route(self, event: MonitorEvent) -> None:
        if isinstance(event, ContainersUpdated):
            self.post_message(SnapshotReady(event.snapshot, event.host))
        elif isinstance(event, EngineDown):
            self.post_message(
                HostDown(event.status, event.attempt, event.retry_in, event.timed_out)
            )
        elif isinstance(event, EngineSlow):
            self.post_message(HostSlow(event.host, event.since))
        elif isinstance(event, RefreshFailed):
            self.post_message(PollFailed(event.error, event.host))
        elif isinstance(event, GpusUpdated):
            self.post_message(GpuUpdate(event.view, event.host))
        elif isinstance(event, AlertChanged):
            self.post_message(AlertNotice(event.alert))
        elif isinstance(event, AlertCommandFailed):
            self.post_message(AlertCommandError(event.alert, event.error))

    def _link_listener(self, host: str) -> Any:
        def changed(link: Any) -> None:
            self.post_message(LinkChanged(host, link))

        return changed

    async def on_event(self, event: events.Event) -> None:
        """An open help panel takes input first: it stays modal without taking the focus (see
        widgets/help_panel.py for why)."""
        if isinstance(event, events.InputEvent):
            self.collector.input_seen()
            if not event.is_forwarded and self._screen_stack and take_input(self.screen, event):
                return
        await super().on_event(event)

    def on_mount(self) -> None:
        for host in self.hosts:
            add = getattr(host.machine, "add_listener", None)
            if add is not None:
                add(self._link_listener(host.name))
        for warning in self.warnings:
            self.notify(warning, title="Config", severity="warning", timeout=15)
        # After the first rows (on_snapshot_ready), else once start-up is surely over.
        self.set_timer(SETTLE_LATEST_S, self._settle)

    # The containers screen owns the fleet's view; the app only routes to it — while the
    # screen's widgets exist (not before it is composed, not while the app shuts down).
    def _screen_ready(self) -> bool:
        screen = self.containers_screen
        return screen.live and not self._exit

    def on_snapshot_ready(self, message: SnapshotReady) -> None:
        if self._screen_ready():
            self.containers_screen.on_snapshot_ready(message)
            if not self._settle_armed:
                self._settle_armed = True
                self.set_timer(SETTLE_AFTER_ROWS_S, self._settle)

    def on_host_down(self, message: HostDown) -> None:
        if self._screen_ready():
            self.containers_screen.on_host_down(message)

    def on_host_slow(self, message: HostSlow) -> None:
        if self._screen_ready():
            self.containers_screen.on_host_slow(message)

    def on_poll_failed(self, message: PollFailed) -> None:
        if self._screen_ready():
            self.containers_screen.on_poll_failed(message)

    def on_link_changed(self, message: LinkChanged) -> None:
        if self._screen_ready():
            self.containers_screen.on_link_changed(message)

    def on_gpu_update(self, message: GpuUpdate) -> None:
        self.gpu_views[message.host] = message.view
        for screen in self.screen_stack:
            show = getattr(screen, "show_gpus", None)
            if show is not None:
                show(message.view, message.host)

    def on_alert_notice(self, message: AlertNotice) -> None:
        """Log it, say it (alert text is plain, never markup), and redraw what shows it."""
        alert = message.alert
        self.alert_log.add(alert)
        title = alert_text.title(alert, len(self.hosts) > 1)
        if alert.raised:
            error = alert.severity is AlertSeverity.ERROR
            self.notify(
                alert.message,
                title=title,
                severity="error" if error else "warning",
                timeout=15,
                markup=False,
            )
        else:
            self.notify(alert.message, title=title, markup=False)
        if alert.kind is AlertKind.IDLE_RESERVATION and self._screen_ready():
            self.containers_screen.alerts_changed()
        for screen in self.screen_stack:
            changed = getattr(screen, "alerts_changed", None)
            if changed is not None and screen is not self.containers_screen:
                changed()

    def on_alert_command_error(self, message: AlertCommandError) -> None:
        where = self.config_path or "the config file"
        self.notify(
            f"{message.error} — check [alerts] command in {where}",
            title=f"Alert command ({message.alert.host})",
            severity="warning",
            timeout=10,
            markup=False,
        )

    def _settle(self) -> None:
        """Start-up's objects frozen, and from now on full collections only at idle moments
        (once: the first of the two timers that call this)."""
        gc_settle.settle()
        if not self.collector.started:
            self.collector.start()
            self.set_interval(gc_settle.CHECK_S, self.collector.tick)

    def on_unmount(self) -> None:
        self.collector.stop()
        self.fleet.stop()
        for host in self.hosts:
            host.close()

"""The fleet: one HostMonitor per host, started and stopped together.

A slow or dead host only ever blocks its own monitor's threads; the others keep their cadence.
With alert settings, every monitor judges its samples, and one ``[alerts] command`` runner is
shared by the whole fleet (its failures come back through ``emit`` as AlertCommandFailed).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from gpuconsole.monitor.events import AlertCommandFailed, Emit
from gpuconsole.monitor.host_monitor import HostMonitor

if TYPE_CHECKING:
    from gpuconsole.backend.hosts.host import Host
    from gpuconsole.monitor.alert_command import AlertCommand
    from gpuconsole.settings.config import AlertSettings


class Fleet:
    def __init__(
        self,
        hosts: Sequence[Host],
        emit: Emit,
        *,
        alerts: AlertSettings | None = None,
        **monitor_options: Any,
    ) -> None:
        self.hosts = tuple(hosts)
        self.alert_command: AlertCommand | None = None
        if alerts is not None and alerts.enabled and alerts.command:
            from gpuconsole.monitor.alert_command import AlertCommand

            self.alert_command = AlertCommand(
                alerts.command,
                on_failure=lambda alert, error: emit(AlertCommandFailed(alert.host, alert, error)),
            )
        self.monitors = {
            h.name: HostMonitor(
                h, emit, alerts=alerts, alert_command=self.alert_command, **monitor_options
            )
            for h in self.hosts
        }
        self.started = False

    def __iter__(self) -> Iterator[HostMonitor]:
        return iter(self.monitors.values())

    def __getitem__(self, name: str) -> HostMonitor:
        return self.monitors[name]

    def start(self) -> None:
        """Start every monitor (once; later calls do nothing)."""
        if self.started:
            return
        self.started = True
        for monitor in self:
            monitor.start()

    def wake(self, name: str | None = None) -> None:
        for monitor in self:
            if name is None or monitor.name == name:
                monitor.wake()

    def pause(self) -> None:
        """Every monitor stops polling (the terminal is handed to a shell) until ``resume``."""
        for monitor in self:
            monitor.pause()

    def resume(self) -> None:
        for monitor in self:
            monitor.resume()

    @property
    def show_all(self) -> bool:
        return all(m.show_all for m in self)

    @show_all.setter
    def show_all(self, value: bool) -> None:
        for monitor in self:
            monitor.show_all = value
        self.wake()

    def stop(self) -> None:
        for monitor in self:
            monitor.stop()
        if self.alert_command is not None:
            self.alert_command.close()

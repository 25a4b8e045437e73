"""The fleet: one HostMonitor per host, started and stopped together.

A slow or dead host only ever blocks its own monitor's threads; the others keep their cadence.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from gpuconsole.monitor.events import Emit
from gpuconsole.monitor.host_monitor import HostMonitor

if TYPE_CHECKING:
    from gpuconsole.backend.hosts.host import Host


class Fleet:
    def __init__(self, hosts: Sequence[Host], emit: Emit, **monitor_options: Any) -> None:
        self.hosts = tuple(hosts)
        self.monitors = {h.name: HostMonitor(h, emit, **monitor_options) for h in self.hosts}
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

"""A ``Host``: one name, the machine it runs on, its Docker engine and its GPU source.

Built once from the configuration (``open_hosts``); the CLI and the console take hosts, never a
docker URL plus a separate GPU source, so GPUs, containers, attribution and launch checks always
describe the same computer.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gpuconsole.backend.hosts.spec import HostSpec

if TYPE_CHECKING:
    from gpuconsole.backend.docker.host import DockerHost
    from gpuconsole.backend.gpu.models import GpuSource
    from gpuconsole.backend.hosts.machine import Machine
    from gpuconsole.backend.ssh.tunnels import Tunnels


@dataclass(eq=False)
class Host:
    name: str
    machine: Machine
    engine: DockerHost
    #: None when GPU telemetry is switched off for this host.
    gpu: GpuSource | None
    spec: HostSpec = field(default_factory=lambda: HostSpec("local"))
    _tunnels: Tunnels | None = field(default=None, repr=False)

    @property
    def is_local(self) -> bool:
        return self.machine.is_local

    @property
    def address(self) -> str:
        return self.engine.address

    @property
    def tunnels(self) -> Tunnels:
        """Local ports forwarded to this host's loopback (remote hosts; made on first use)."""
        if self._tunnels is None:
            from gpuconsole.backend.ssh.tunnels import Tunnels

            self._tunnels = Tunnels(self.machine)
        return self._tunnels

    def close(self) -> None:
        """Release everything without waiting on a hung engine or a dead link."""
        if self._tunnels is not None:
            self._tunnels.close()
        if self.gpu is not None:
            with contextlib.suppress(Exception):
                self.gpu.close()
        self.engine.close()
        self.machine.close()

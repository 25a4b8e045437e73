"""The ``DockerHost`` protocol: what the UI and CLI may ask of any host, local or remote.

``DockerEngine`` implements it for every host: the local engine through its socket, a remote one
with the Docker API carried over the host's one SSH connection. What is not the API (cgroup
files, /proc, ports on the engine's loopback) goes through the engine's ``machine``.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol, runtime_checkable

from gpuconsole.backend.errors import GpuconsoleError
from gpuconsole.backend.hosts.machine import Machine
from gpuconsole.backend.models import (
    ContainerDetails,
    ContainerStats,
    ContainerSummary,
    GpuRequest,
    HostSnapshot,
    HostStatus,
)


@runtime_checkable
class EventWatch(Protocol):
    """A running subscription to the engine's container events; ``close()`` ends it."""

    def close(self) -> None: ...


@runtime_checkable
class DockerHost(Protocol):
    """A Docker engine somewhere. Every call has a timeout and raises only GpuconsoleError."""

    @property
    def name(self) -> str:
        """Short name shown in the UI and in ``--json`` output (``local`` for the local engine)."""
        ...

    @property
    def address(self) -> str:
        """Where the engine is reached, shown when it cannot be."""
        ...

    @property
    def machine(self) -> Machine:
        """The computer the engine runs on: its files, ports and tools (local or over SSH)."""
        ...

    def status(self) -> HostStatus: ...

    def list_containers(self, all: bool = True) -> tuple[ContainerSummary, ...]: ...

    def stats(self, container_ids: list[str]) -> dict[str, ContainerStats]: ...

    def gpu_requests(self, container_ids: list[str]) -> dict[str, GpuRequest]: ...

    def snapshot(self, all: bool = True, stats: bool = True) -> HostSnapshot: ...

    def inspect(self, ref: str) -> ContainerDetails: ...

    def start(self, ref: str) -> None: ...

    def stop(self, ref: str, timeout: int = 10) -> None: ...

    def restart(self, ref: str, timeout: int = 10) -> None: ...

    def remove(self, ref: str, force: bool = False) -> None: ...

    def watch_events(self, on_event: EventCallback) -> EventWatch: ...

    def close(self) -> None: ...


class EventCallback(Protocol):
    def __call__(self, action: str, container_id: str) -> None: ...


@runtime_checkable
class EngineApiHost(DockerHost, Protocol):
    """A host that also hands out its low-level Docker API client (launches, image builds).

    ``api()`` is docker-py's ``APIClient`` (connected, with the host's timeout); every call on
    it goes inside ``engine_call(ref, action)``, which turns docker-py and transport exceptions
    into the backend's typed errors. A remote host provides the same client over its own SSH
    connection, so the launcher and builder work unchanged.
    """

    def api(self) -> Any: ...

    def engine_call(
        self, ref: str | None = None, action: str | None = None
    ) -> AbstractContextManager[None]: ...


class EngineCall(Protocol):
    def __call__(
        self, ref: str | None = None, action: str | None = None
    ) -> AbstractContextManager[None]: ...


def engine_api(host: DockerHost) -> tuple[Any, EngineCall]:
    """The host's API client and error-mapping context, or a clear error when it has none."""
    if not isinstance(host, EngineApiHost):
        raise GpuconsoleError(
            f"host {host.name!r} cannot launch or build containers (its connection offers no "
            "Docker API client)"
        )
    return host.api(), host.engine_call

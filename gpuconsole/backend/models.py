"""Immutable values that cross threads between the backend and the UI or CLI.

Pollers build these in worker threads; the UI only ever reads them. A value the source cannot
provide is ``None`` (rendered "N/A" or "-" by the presenter), never 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

#: Labels gpuconsole puts on the containers it launches; the engine is the source of truth.
LABEL_PREFIX = "gpuconsole."
LABEL_VARIANT = "gpuconsole.variant"


#: The addresses that mean "every interface" in a port binding. The engine reports a port
#: published that way (by a container someone else started) with one of them; gpuconsole's
#: launches bind 127.0.0.1 unless the user asks for one of these, and are warned then.
EVERY_INTERFACE = ("0.0.0.0", "::")


@dataclass(frozen=True, slots=True)
class PortMapping:
    """One published (or only exposed) port of a container."""

    private_port: int
    protocol: str = "tcp"
    host_ip: str | None = None
    host_port: int | None = None


@dataclass(frozen=True, slots=True)
class Mount:
    """A volume or bind mount as the engine reports it."""

    type: str
    source: str
    destination: str
    read_only: bool = False


@dataclass(frozen=True, slots=True)
class ContainerSummary:
    """What one list call tells about a container (no per-container inspect)."""

    host: str
    id: str
    name: str
    image: str
    state: str
    status: str
    created: float
    ports: tuple[PortMapping, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    mounts: tuple[Mount, ...] = ()
    command: str = ""

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def variant(self) -> str | None:
        return dict(self.labels).get(LABEL_VARIANT)

    def label(self, key: str) -> str | None:
        return dict(self.labels).get(key)


@dataclass(frozen=True, slots=True)
class ContainerStats:
    """CPU and memory of one running container at one moment.

    ``cpu_percent`` is relative to one core (200.0 = two cores busy), as ``docker stats`` shows it;
    None until two samples exist. ``memory_bytes`` excludes the inactive page cache, again as
    ``docker stats`` does, so the two tools agree.
    """

    id: str
    cpu_percent: float | None
    memory_bytes: int | None
    memory_limit_bytes: int | None
    source: str = "cgroup"


@dataclass(frozen=True, slots=True)
class GpuRequest:
    """The GPUs a container asked for through DeviceRequests (``--gpus``)."""

    all: bool = False
    count: int = 0
    device_ids: tuple[str, ...] = ()

    @property
    def none(self) -> bool:
        return not self.all and self.count == 0 and not self.device_ids


NO_GPUS = GpuRequest()


@dataclass(frozen=True, slots=True)
class ContainerDetails:
    """The inspect view of a container, for the details screen and ``rm`` warnings."""

    summary: ContainerSummary
    command: tuple[str, ...]
    entrypoint: tuple[str, ...]
    created_iso: str
    started_at: str | None
    finished_at: str | None
    exit_code: int | None
    restart_policy: str
    memory_limit_bytes: int | None
    nano_cpus: int | None
    shm_size_bytes: int | None
    gpus: GpuRequest
    env: tuple[tuple[str, str], ...]
    labels: tuple[tuple[str, str], ...]
    mounts: tuple[Mount, ...]
    ports: tuple[PortMapping, ...]
    ulimits: tuple[tuple[str, int, int], ...] = ()
    pid: int | None = None


class EngineState(Enum):
    UNKNOWN = "unknown"
    UP = "up"
    DOWN = "down"


@dataclass(frozen=True, slots=True)
class HostStatus:
    """How a host's engine looks right now, for the header line and the no-engine screen."""

    host: str
    address: str
    state: EngineState
    engine_version: str | None = None
    api_version: str | None = None
    cpus: int | None = None
    memory_bytes: int | None = None
    error: str | None = None
    hint: str | None = None


@dataclass(frozen=True, slots=True)
class HostSnapshot:
    """One full refresh of a host: status, containers, their stats and GPU requests."""

    status: HostStatus
    containers: tuple[ContainerSummary, ...] = ()
    stats: dict[str, ContainerStats] = field(default_factory=dict)
    gpus: dict[str, GpuRequest] = field(default_factory=dict)
    taken_at: float = 0.0

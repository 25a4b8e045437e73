"""The plain values a HostMonitor emits, from its worker threads, to whoever listens."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gpuconsole.backend.models import HostSnapshot, HostStatus
from gpuconsole.monitor.alerts import Alert
from gpuconsole.monitor.gpu_view import GpuView


@dataclass(frozen=True, slots=True)
class ContainersUpdated:
    """A full refresh of one host's containers arrived."""

    host: str
    snapshot: HostSnapshot


@dataclass(frozen=True, slots=True)
class EngineDown:
    """The host's engine (or the host itself) could not be reached on the last attempt."""

    host: str
    status: HostStatus
    attempt: int
    retry_in: float
    #: The engine took the request but never answered (hung, overloaded), rather than
    #: refusing it: what the host last showed is probably still true, only unconfirmed.
    timed_out: bool = False


@dataclass(frozen=True, slots=True)
class EngineSlow:
    """A refresh has waited longer than the monitor's deadline and is still waiting: the
    engine is not answering (yet). Emitted once per late refresh, before the call's own
    timeout turns it into EngineDown; the next ContainersUpdated ends it."""

    host: str
    #: ``time.monotonic()`` when the late refresh began.
    since: float


@dataclass(frozen=True, slots=True)
class RefreshFailed:
    """A refresh failed for a reason other than an unreachable engine."""

    host: str
    error: str


@dataclass(frozen=True, slots=True)
class GpusUpdated:
    """A GPU sample of one host, with its history tails and container attribution."""

    host: str
    view: GpuView


@dataclass(frozen=True, slots=True)
class AlertChanged:
    """An alert was raised or cleared on one host (see gpuconsole.monitor.alerts)."""

    host: str
    alert: Alert


@dataclass(frozen=True, slots=True)
class AlertCommandFailed:
    """``[alerts] command`` failed for an alert (it exited non-zero, hung, or did not start)."""

    host: str
    alert: Alert
    error: str


MonitorEvent = (
    ContainersUpdated
    | EngineDown
    | EngineSlow
    | RefreshFailed
    | GpusUpdated
    | AlertChanged
    | AlertCommandFailed
)
Emit = Callable[[MonitorEvent], object]

"""Immutable GPU values that cross from the sampling thread to the UI, CLI and history.

Every reading a device cannot give is ``None`` (the presenter renders it "N/A" in one place); a
source never reports 0 for "unknown", because 0 W or 0 % is a real reading a user would trust.
Units are fixed here so no caller converts: bytes, watts (float), °C, MHz, percent.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Protocol, runtime_checkable


class GpuSourceState(Enum):
    """Why a snapshot may hold fewer (or no) GPUs than the host has.

    The console keeps running in every state; the UI shows ``GpuSnapshot.error`` beside it.
    """

    OK = "ok"
    #: The source has not produced its first reading yet (stream still starting).
    STARTING = "starting"
    #: Some GPUs answer, others do not (a GPU fell off the bus); see each ``GpuSample.error``.
    DEGRADED = "degraded"
    #: The last reading is older than a few intervals (stream stalled, SSH hiccup).
    STALE = "stale"
    #: No telemetry at all on this host: no driver, driver mismatch, no GPU, tool missing.
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True, slots=True)
class GpuInfo:
    """What identifies a GPU and does not change while the host runs."""

    index: int
    uuid: str
    name: str
    memory_total_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class GpuSample:
    """One GPU at one moment. ``error`` is set when this GPU (only) stopped answering."""

    index: int
    uuid: str
    name: str
    memory_used_bytes: int | None = None
    memory_total_bytes: int | None = None
    utilization_gpu_percent: int | None = None
    utilization_memory_percent: int | None = None
    power_w: float | None = None
    power_limit_w: float | None = None
    temperature_c: int | None = None
    sm_clock_mhz: int | None = None
    fan_percent: int | None = None
    error: str | None = None
    #: NVML's hardware energy counter (millijoules since the driver loaded; Volta and newer).
    #: None over nvidia-smi, which has no energy field: energy is then integrated from power.
    energy_mj: int | None = None

    @property
    def info(self) -> GpuInfo:
        return GpuInfo(self.index, self.uuid, self.name, self.memory_total_bytes)

    @property
    def memory_fraction(self) -> float | None:
        """Used/total in 0..1, for bars; None when either side is unknown."""
        if self.memory_used_bytes is None or not self.memory_total_bytes:
            return None
        return self.memory_used_bytes / self.memory_total_bytes


@dataclass(frozen=True, slots=True)
class GpuProcess:
    """A compute process on a GPU. ``pid`` is a host PID (NVML never reports container PIDs)."""

    pid: int
    gpu_index: int
    gpu_uuid: str
    used_memory_bytes: int | None = None
    #: Name as the telemetry tool reports it (nvidia-smi); NVML gives none.
    process_name: str | None = None


@dataclass(frozen=True, slots=True)
class GpuSnapshot:
    """Everything one ``GpuSource.sample()`` returns; safe to hand to any thread."""

    host: str
    source: str
    state: GpuSourceState
    timestamp: float
    gpus: tuple[GpuSample, ...] = ()
    processes: tuple[GpuProcess, ...] = ()
    #: The user-facing reason for a state other than OK ("no NVIDIA driver on this host").
    error: str | None = None
    #: True when the data is a recording played back, not this host's live GPUs.
    replayed: bool = False
    #: (pid, /proc/<pid>/cgroup text, comm) read on the GPU host together with the process
    #: list, so attribution needs no second remote command; empty when not read that way.
    origins: tuple[tuple[int, str | None, str | None], ...] = ()
    #: True when the source reads origins with its process list (a PID missing from
    #: ``origins`` then has no /proc there: it exited), so nobody reads /proc again for it.
    origins_read: bool = False

    @property
    def ok(self) -> bool:
        return self.state is GpuSourceState.OK

    def processes_on(self, gpu_index: int) -> tuple[GpuProcess, ...]:
        return tuple(p for p in self.processes if p.gpu_index == gpu_index)


@runtime_checkable
class GpuSource(Protocol):
    """A host's GPU telemetry, polled by one worker at the sample rate.

    ``sample()`` must be cheap and must not raise for device trouble: failures come back as a
    snapshot state, so one broken GPU or driver never takes the console down. The first
    ``sample()`` may do the one-time initialisation, which is why callers run it off the UI thread.
    """

    @property
    def name(self) -> str: ...

    @property
    def host(self) -> str: ...

    @property
    def replayed(self) -> bool: ...

    def sample(self) -> GpuSnapshot: ...

    def close(self) -> None: ...

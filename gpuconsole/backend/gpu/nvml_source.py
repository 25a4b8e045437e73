"""Local GPU telemetry through NVML (``pynvml`` from nvidia-ml-py).

NVML answers in tens of microseconds where an nvidia-smi process costs ~35 ms, so it is the
local source of choice. It is initialised once, lazily, on the first ``sample()`` (which the UI
runs in a worker thread), and every failure is turned into a snapshot state: a host without a
driver, a driver/library mismatch or a GPU that fell off the bus must leave the rest of the
console working. A field a device answers NotSupported for is remembered per device and never
asked again, so an H100 without a fan costs one failed call, not one per tick.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from gpuconsole.backend.gpu.models import (
    GpuProcess,
    GpuSample,
    GpuSnapshot,
    GpuSourceState,
)

#: Fields queried per device, each one NVML call (memory and utilization give two values each).
FIELDS = ("memory", "utilization", "power", "power_limit", "temperature", "sm_clock", "fan")


class _Device:
    """Per-device state kept between samples (handle, static identity, what it cannot do)."""

    __slots__ = ("handle", "index", "lost", "memory_total", "name", "reason", "unsupported", "uuid")

    def __init__(self, index: int, handle: Any, name: str, uuid: str) -> None:
        self.index = index
        self.handle = handle
        self.name = name
        self.uuid = uuid
        self.memory_total: int | None = None
        self.unsupported: set[str] = set()
        self.lost = False
        self.reason = f"GPU {index} fell off the bus"


def _text(value: object) -> str:
    """Older pynvml returns bytes for names and UUIDs; newer returns str."""
    return value.decode() if isinstance(value, bytes) else str(value)


def describe_init_error(nvml: Any, err: BaseException) -> str:
    """The user-facing sentence for an ``nvmlInit`` failure."""
    if isinstance(err, nvml.NVMLError_LibraryNotFound):
        return "no NVIDIA driver on this host (NVML library not found)"
    if isinstance(err, nvml.NVMLError_DriverNotLoaded):
        return "no NVIDIA driver on this host (the nvidia kernel module is not loaded)"
    if isinstance(err, nvml.NVMLError_LibRmVersionMismatch):
        return (
            "NVIDIA driver/library version mismatch (driver updated without reboot): "
            "reboot or reload the nvidia kernel modules"
        )
    if isinstance(err, nvml.NVMLError_NoPermission):
        return "no permission to open the NVIDIA devices (/dev/nvidia*)"
    return f"NVML failed to start: {err}"


class NvmlSource:
    """GpuSource backed by NVML. ``nvml`` may be any module-like object (tests pass a stand-in)."""

    def __init__(
        self,
        host: str = "local",
        *,
        nvml: Any | None = None,
        process_interval: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._host = host
        #: The pynvml module (or a stand-in); None until imported on first use.
        self._nvml: Any = nvml
        self._process_interval = process_interval
        self._clock = clock
        self._wall_clock = wall_clock
        self._started = False
        self._init_error: str | None = None
        self._devices: list[_Device] = []
        self._processes: tuple[GpuProcess, ...] = ()
        self._processes_at: float | None = None
        #: How many NVML calls were made per field name; tests and the bench read it.
        self.calls: dict[str, int] = {}

    @property
    def name(self) -> str:
        return "nvml"

    @property
    def host(self) -> str:
        return self._host

    @property
    def replayed(self) -> bool:
        return False

    @property
    def init_error(self) -> str | None:
        """Why NVML is unusable here (after the first sample), or None."""
        self.start()
        return self._init_error

    def start(self) -> None:
        """Initialise NVML once; later calls are no-ops whatever the outcome."""
        if self._started:
            return
        self._started = True
        if self._nvml is None:
            try:
                import pynvml
            except ImportError:
                self._init_error = "nvidia-ml-py (pynvml) is not installed"
                return
            self._nvml = pynvml
        nvml = self._nvml
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as err:
            self._init_error = describe_init_error(nvml, err)
            return
        try:
            count = int(nvml.nvmlDeviceGetCount())
        except nvml.NVMLError as err:
            self._init_error = f"NVML cannot count the GPUs: {err}"
            return
        if count == 0:
            self._init_error = "no NVIDIA GPU on this host"
            return
        for index in range(count):
            self._devices.append(self._open_device(index))

    def _open_device(self, index: int) -> _Device:
        nvml = self._nvml
        try:
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            name = _text(nvml.nvmlDeviceGetName(handle))
            uuid = _text(nvml.nvmlDeviceGetUUID(handle))
        except nvml.NVMLError as err:
            device = _Device(index, None, "", "")
            device.lost = True
            if not isinstance(err, nvml.NVMLError_GpuIsLost):
                device.reason = f"GPU {index} cannot be read: {err}"
            return device
        return _Device(index, handle, name, uuid)

    def close(self) -> None:
        if self._started and self._init_error is None and self._nvml is not None:
            with contextlib.suppress(self._nvml.NVMLError):
                self._nvml.nvmlShutdown()
        self._started = False
        self._init_error = None
        self._devices = []

    def _call(self, device: _Device, field: str, fn: Callable[..., Any], *args: Any) -> Any:
        """One NVML read: None if unsupported (remembered) or failing this tick."""
        if device.lost or field in device.unsupported:
            return None
        nvml = self._nvml
        self.calls[field] = self.calls.get(field, 0) + 1
        try:
            return fn(device.handle, *args)
        except nvml.NVMLError_NotSupported:
            device.unsupported.add(field)
        except nvml.NVMLError_GpuIsLost:
            device.lost = True
        except nvml.NVMLError:
            pass
        return None

    def _sample_device(self, device: _Device) -> GpuSample:
        nvml = self._nvml
        memory = self._call(device, "memory", nvml.nvmlDeviceGetMemoryInfo)
        util = self._call(device, "utilization", nvml.nvmlDeviceGetUtilizationRates)
        power = self._call(device, "power", nvml.nvmlDeviceGetPowerUsage)
        limit = self._call(device, "power_limit", nvml.nvmlDeviceGetEnforcedPowerLimit)
        temp = self._call(
            device, "temperature", nvml.nvmlDeviceGetTemperature, nvml.NVML_TEMPERATURE_GPU
        )
        clock = self._call(device, "sm_clock", nvml.nvmlDeviceGetClockInfo, nvml.NVML_CLOCK_SM)
        fan = self._call(device, "fan", nvml.nvmlDeviceGetFanSpeed)
        energy = self._call(device, "energy", nvml.nvmlDeviceGetTotalEnergyConsumption)
        if memory is not None:
            device.memory_total = int(memory.total)
        if device.lost:
            return GpuSample(
                index=device.index,
                uuid=device.uuid,
                name=device.name,
                memory_total_bytes=device.memory_total,
                error=device.reason,
            )
        return GpuSample(
            index=device.index,
            uuid=device.uuid,
            name=device.name,
            memory_used_bytes=None if memory is None else int(memory.used),
            memory_total_bytes=device.memory_total,
            utilization_gpu_percent=None if util is None else int(util.gpu),
            utilization_memory_percent=None if util is None else int(util.memory),
            power_w=None if power is None else int(power) / 1000.0,
            power_limit_w=None if limit is None else int(limit) / 1000.0,
            temperature_c=None if temp is None else int(temp),
            sm_clock_mhz=None if clock is None else int(clock),
            fan_percent=None if fan is None else int(fan),
            energy_mj=None if energy is None else int(energy),
        )

    def _sample_processes(self) -> tuple[GpuProcess, ...]:
        nvml = self._nvml
        procs: list[GpuProcess] = []
        for device in self._devices:
            running = self._call(device, "processes", nvml.nvmlDeviceGetComputeRunningProcesses)
            for proc in running or ():
                used = getattr(proc, "usedGpuMemory", None)
                procs.append(
                    GpuProcess(
                        pid=int(proc.pid),
                        gpu_index=device.index,
                        gpu_uuid=device.uuid,
                        used_memory_bytes=None if used is None else int(used),
                    )
                )
        return tuple(procs)

    def sample(self) -> GpuSnapshot:
        self.start()
        now = self._wall_clock()
        if self._init_error is not None:
            return GpuSnapshot(
                host=self._host,
                source=self.name,
                state=GpuSourceState.UNAVAILABLE,
                timestamp=now,
                error=self._init_error,
            )
        gpus = tuple(self._sample_device(d) for d in self._devices)
        tick = self._clock()
        if self._processes_at is None or tick - self._processes_at >= self._process_interval:
            self._processes = self._sample_processes()
            self._processes_at = tick
        lost = [g for g in gpus if g.error]
        return GpuSnapshot(
            host=self._host,
            source=self.name,
            state=GpuSourceState.DEGRADED if lost else GpuSourceState.OK,
            timestamp=now,
            gpus=gpus,
            processes=self._processes,
            error="; ".join(g.error for g in lost if g.error) or None,
        )

"""A stand-in for the ``pynvml`` module: H100-shaped devices that answer instantly.

Tests, the sampling benchmark and UI demos need NVML behaviour on machines without a GPU,
including its failures. The stand-in raises the *real* exception classes of the installed
``pynvml`` so the NVML source's error mapping is exercised exactly as on a broken host.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from types import SimpleNamespace

import pynvml

#: Values read from the H100 recording (matmul phase) in tests/fixtures/gpu/h100/.
H100_NAME = "NVIDIA H100 80GB HBM3"
H100_MEMORY_TOTAL = 85_520_809_984


@dataclass
class StandInDevice:
    """One pretend GPU; change attributes between samples to script a scenario."""

    uuid: str
    name: str = H100_NAME
    memory_total: int = H100_MEMORY_TOTAL
    memory_used: int = 22_530_555_904
    util_gpu: int = 100
    util_memory: int = 62
    power_mw: int = 699_337
    power_limit_mw: int = 700_000
    temperature_c: int = 74
    sm_mhz: int = 1980
    #: None: the device answers NotSupported, as an H100 does for fan speed.
    fan_percent: int | None = None
    processes: list[tuple[int, int | None]] = field(default_factory=list)
    #: An exception (instance) every call on this device raises, e.g. NVMLError_GpuIsLost().
    failure: BaseException | None = None
    #: The energy counter (mJ), advanced by the power drawn between reads, as the hardware's
    #: is; None: the device answers NotSupported (older than Volta).
    energy_mj: float | None = 0.0
    energy_read_at: float | None = None


def h100_devices(count: int) -> list[StandInDevice]:
    return [
        StandInDevice(uuid=f"GPU-85f63f49-2356-f053-21c3-2eb02bd045{i:02d}") for i in range(count)
    ]


class StandInNvml:
    """Module-like object with the pynvml functions the NVML source calls."""

    NVML_CLOCK_SM = pynvml.NVML_CLOCK_SM
    NVML_TEMPERATURE_GPU = pynvml.NVML_TEMPERATURE_GPU

    def __init__(
        self, devices: list[StandInDevice], init_error: BaseException | None = None
    ) -> None:
        self.devices = devices
        self.init_error = init_error
        self.calls: Counter[str] = Counter()
        self.initialised = False
        for name in dir(pynvml):
            if name.startswith("NVMLError"):
                setattr(self, name, getattr(pynvml, name))

    def _device(self, handle: int, call: str) -> StandInDevice:
        self.calls[call] += 1
        device = self.devices[handle]
        if device.failure is not None:
            raise device.failure
        return device

    def nvmlInit(self) -> None:
        self.calls["nvmlInit"] += 1
        if self.init_error is not None:
            raise self.init_error
        self.initialised = True

    def nvmlShutdown(self) -> None:
        self.initialised = False

    def nvmlDeviceGetCount(self) -> int:
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        self._device(index, "nvmlDeviceGetHandleByIndex")
        return index

    def nvmlDeviceGetName(self, handle: int) -> str:
        return self._device(handle, "nvmlDeviceGetName").name

    def nvmlDeviceGetUUID(self, handle: int) -> str:
        return self._device(handle, "nvmlDeviceGetUUID").uuid

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> SimpleNamespace:
        d = self._device(handle, "nvmlDeviceGetMemoryInfo")
        return SimpleNamespace(
            total=d.memory_total, used=d.memory_used, free=d.memory_total - d.memory_used
        )

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> SimpleNamespace:
        d = self._device(handle, "nvmlDeviceGetUtilizationRates")
        return SimpleNamespace(gpu=d.util_gpu, memory=d.util_memory)

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        return self._device(handle, "nvmlDeviceGetPowerUsage").power_mw

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: int) -> int:
        return self._device(handle, "nvmlDeviceGetEnforcedPowerLimit").power_limit_mw

    def nvmlDeviceGetTemperature(self, handle: int, sensor: int) -> int:
        return self._device(handle, "nvmlDeviceGetTemperature").temperature_c

    def nvmlDeviceGetClockInfo(self, handle: int, clock: int) -> int:
        return self._device(handle, "nvmlDeviceGetClockInfo").sm_mhz

    def nvmlDeviceGetFanSpeed(self, handle: int) -> int:
        d = self._device(handle, "nvmlDeviceGetFanSpeed")
        if d.fan_percent is None:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return d.fan_percent

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: int) -> int:
        d = self._device(handle, "nvmlDeviceGetTotalEnergyConsumption")
        if d.energy_mj is None:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        now = time.monotonic()
        if d.energy_read_at is not None:
            d.energy_mj += d.power_mw * (now - d.energy_read_at)  # mW x s = mJ
        d.energy_read_at = now
        return int(d.energy_mj)

    def nvmlDeviceGetComputeRunningProcesses(self, handle: int) -> list[SimpleNamespace]:
        d = self._device(handle, "nvmlDeviceGetComputeRunningProcesses")
        return [SimpleNamespace(pid=pid, usedGpuMemory=used) for pid, used in d.processes]

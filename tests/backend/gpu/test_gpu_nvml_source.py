"""NVML source: error mapping with the real pynvml error classes, unsupported fields, lost GPUs."""

from __future__ import annotations

import subprocess
import sys

import pynvml
import pytest

from gpuconsole.backend.gpu.models import GpuSourceState
from gpuconsole.backend.gpu.nvml_source import NvmlSource
from gpuconsole.backend.gpu.nvml_standin import StandInNvml, h100_devices


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (pynvml.NVMLError_LibraryNotFound(), "no NVIDIA driver on this host"),
        (pynvml.NVMLError_DriverNotLoaded(), "no NVIDIA driver on this host"),
        (pynvml.NVMLError_LibRmVersionMismatch(), "version mismatch"),
        (pynvml.NVMLError_NoPermission(), "no permission"),
        (pynvml.NVMLError_Unknown(), "NVML failed to start: Unknown Error"),
    ],
)
def test_init_failures_become_a_state_not_an_exception(
    error: pynvml.NVMLError, message: str
) -> None:
    nvml = StandInNvml(h100_devices(1), init_error=error)
    source = NvmlSource(nvml=nvml)
    first = source.sample()
    second = source.sample()
    assert first.state is GpuSourceState.UNAVAILABLE
    assert first.error is not None and message in first.error
    assert first.gpus == ()
    assert second.error == first.error
    assert nvml.calls["nvmlInit"] == 1  # init once, not per tick


def test_h100_values_and_unit_conversion() -> None:
    devices = h100_devices(2)
    devices[1].processes = [(416, 22_017_998_848)]
    source = NvmlSource(nvml=StandInNvml(devices))
    snap = source.sample()
    assert snap.state is GpuSourceState.OK and snap.error is None
    assert [g.index for g in snap.gpus] == [0, 1]
    gpu = snap.gpus[0]
    assert gpu.name == "NVIDIA H100 80GB HBM3"
    assert gpu.memory_total_bytes == 85_520_809_984
    assert gpu.power_w == pytest.approx(699.337)
    assert gpu.power_limit_w == pytest.approx(700.0)
    assert (gpu.temperature_c, gpu.sm_clock_mhz, gpu.utilization_gpu_percent) == (74, 1980, 100)
    assert gpu.fan_percent is None
    assert [(p.pid, p.gpu_index, p.used_memory_bytes) for p in snap.processes] == [
        (416, 1, 22_017_998_848)
    ]


def test_unsupported_fan_is_queried_once_while_others_every_tick() -> None:
    nvml = StandInNvml(h100_devices(2))
    source = NvmlSource(nvml=nvml)
    snaps = [source.sample() for _ in range(10)]
    assert all(g.fan_percent is None for s in snaps for g in s.gpus)
    assert nvml.calls["nvmlDeviceGetFanSpeed"] == 2  # once per device, then remembered
    assert nvml.calls["nvmlDeviceGetPowerUsage"] == 20


def test_a_device_with_a_fan_reports_it() -> None:
    devices = h100_devices(1)
    devices[0].fan_percent = 41
    assert NvmlSource(nvml=StandInNvml(devices)).sample().gpus[0].fan_percent == 41


def test_gpu_falling_off_the_bus_degrades_only_that_gpu() -> None:
    devices = h100_devices(4)
    nvml = StandInNvml(devices)
    source = NvmlSource(nvml=nvml)
    assert source.sample().state is GpuSourceState.OK
    devices[3].failure = pynvml.NVMLError_GpuIsLost()
    snap = source.sample()
    assert snap.state is GpuSourceState.DEGRADED
    assert snap.error == "GPU 3 fell off the bus"
    lost = snap.gpus[3]
    assert lost.error == "GPU 3 fell off the bus"
    assert lost.memory_used_bytes is None and lost.power_w is None
    assert lost.memory_total_bytes == 85_520_809_984  # still shows which card it was
    assert snap.gpus[2].power_w is not None
    calls = nvml.calls["nvmlDeviceGetMemoryInfo"]
    source.sample()
    assert nvml.calls["nvmlDeviceGetMemoryInfo"] == calls + 3  # the lost GPU is not asked again


def test_a_transient_error_is_none_for_that_tick_only() -> None:
    devices = h100_devices(1)
    source = NvmlSource(nvml=StandInNvml(devices))
    source.sample()
    devices[0].failure = pynvml.NVMLError_Unknown()
    assert source.sample().gpus[0].power_w is None
    devices[0].failure = None
    assert source.sample().gpus[0].power_w == pytest.approx(699.337)


def test_a_gpu_unreadable_at_start_is_reported_and_the_others_work() -> None:
    devices = h100_devices(2)
    devices[0].failure = pynvml.NVMLError_Unknown()
    snap = NvmlSource(nvml=StandInNvml(devices)).sample()
    assert snap.state is GpuSourceState.DEGRADED
    assert snap.gpus[0].error == "GPU 0 cannot be read: Unknown Error"
    assert snap.gpus[1].power_w == pytest.approx(699.337)


def test_process_list_is_refreshed_at_its_own_lower_rate() -> None:
    now = [0.0]
    nvml = StandInNvml(h100_devices(1))
    source = NvmlSource(nvml=nvml, process_interval=2.0, clock=lambda: now[0])
    for tick in range(6):
        now[0] = float(tick)
        source.sample()
    assert nvml.calls["nvmlDeviceGetComputeRunningProcesses"] == 3  # t = 0, 2, 4


def test_importing_the_gpu_package_does_not_import_pynvml_or_textual() -> None:
    code = (
        "import sys, gpuconsole.backend.gpu as g; "
        "print(sorted(m for m in ('pynvml', 'textual', 'rich') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

"""The `gpus --json` report and the local source factory's fallbacks."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pynvml
import pytest

from gpuconsole.backend.gpu.factory import LocalGpuSource, NoGpuSource, open_local_gpu_source
from gpuconsole.backend.gpu.models import GpuProcess, GpuSample, GpuSnapshot, GpuSourceState
from gpuconsole.backend.gpu.nvml_source import NvmlSource
from gpuconsole.backend.gpu.nvml_standin import StandInNvml, h100_devices
from gpuconsole.backend.gpu.replay import ReplaySource
from gpuconsole.backend.gpu.report import REPORT_KEYS, gpu_report


def test_report_shape_nulls_and_containers() -> None:
    snap = GpuSnapshot(
        "box",
        "nvml",
        GpuSourceState.OK,
        1.0,
        (
            GpuSample(0, "GPU-a", "NVIDIA H100 80GB HBM3", 1024, 2048, 5, 1, 76.5, 700.0, 48, 345),
            GpuSample(1, "GPU-b", "NVIDIA H100 80GB HBM3"),
        ),
        (GpuProcess(416, 0, "GPU-a", 1024), GpuProcess(417, 0, "GPU-a", None)),
    )
    report = gpu_report([snap], {416: "pytorch-train"})
    assert json.loads(json.dumps(report)) == report
    assert [list(r) for r in report] == [list(REPORT_KEYS)] * 2
    first, second = report
    assert first["power_w"] == 76.5 and first["fan_percent"] is None
    assert first["processes"] == [
        {"pid": 416, "used_memory_bytes": 1024, "container": "pytorch-train"},
        {"pid": 417, "used_memory_bytes": None, "container": None},
    ]
    assert second["memory_used_bytes"] is None and second["processes"] == []


def test_report_over_several_hosts_keys_pids_by_host() -> None:
    def one(host: str) -> GpuSnapshot:
        gpus = (GpuSample(0, f"GPU-{host}", "H100"),)
        procs = (GpuProcess(7, 0, f"GPU-{host}", 1),)
        return GpuSnapshot(host, "nvidia-smi", GpuSourceState.OK, 1.0, gpus, procs)

    report = gpu_report([one("a"), one("b")], {("b", 7): "job"})
    assert [(r["host"], r["processes"][0]["container"]) for r in report] == [
        ("a", None),
        ("b", "job"),
    ]


def test_factory_replay(h100: Path) -> None:
    source = open_local_gpu_source(h100 / "nvml-recording-h100.jsonl", 1.0)
    assert isinstance(source, ReplaySource)
    assert source.sample().replayed


def nvml_failing(error: pynvml.NVMLError) -> NvmlSource:
    return NvmlSource(nvml=StandInNvml(h100_devices(1), init_error=error))


def test_factory_prefers_nvml() -> None:
    source = LocalGpuSource(nvml_factory=lambda: NvmlSource(nvml=StandInNvml(h100_devices(2))))
    assert source.name == "local"  # nothing initialised before the first sample
    snap = source.sample()
    assert source.name == "nvml" and len(snap.gpus) == 2


def test_factory_falls_back_to_the_nvidia_smi_stream(stub_smi: Path) -> None:
    source = LocalGpuSource(
        0.05,
        nvml_factory=lambda: nvml_failing(pynvml.NVMLError_LibRmVersionMismatch()),
        which=lambda name: str(stub_smi),
    )
    try:
        deadline = time.monotonic() + 10
        while not (snap := source.sample()).gpus and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        source.close()
    assert source.name == "nvidia-smi"
    assert snap.gpus[0].name == "NVIDIA H100 80GB HBM3"


def test_factory_without_nvml_or_nvidia_smi_reports_why() -> None:
    source = LocalGpuSource(
        nvml_factory=lambda: nvml_failing(pynvml.NVMLError_LibraryNotFound()),
        which=lambda name: None,
    )
    snap = source.sample()
    assert isinstance(source.chosen, NoGpuSource)
    assert snap.state is GpuSourceState.UNAVAILABLE and snap.gpus == ()
    assert snap.error == (
        "no NVIDIA driver on this host (NVML library not found); nvidia-smi is not installed either"
    )


def test_real_pynvml_on_a_host_without_a_driver_is_a_state() -> None:
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        pass
    else:
        pynvml.nvmlShutdown()
        pytest.skip("this host has a working NVIDIA driver")
    snap = NvmlSource().sample()
    assert snap.state is GpuSourceState.UNAVAILABLE
    assert snap.error is not None and snap.error.startswith("no NVIDIA driver on this host")

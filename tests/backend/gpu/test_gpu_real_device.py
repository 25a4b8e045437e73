"""On a machine with an NVIDIA GPU: NVML and the nvidia-smi stream read the real device."""

from __future__ import annotations

import shutil
import time

import pytest

from gpuconsole.backend.gpu.models import GpuSourceState
from gpuconsole.backend.gpu.nvml_source import NvmlSource
from gpuconsole.backend.gpu.smi_stream import SmiStreamSource


def _nvml_works() -> bool:
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:
        return False
    try:
        return int(pynvml.nvmlDeviceGetCount()) > 0
    finally:
        pynvml.nvmlShutdown()


pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not _nvml_works(), reason="no NVIDIA GPU/driver on this host"),
]


def test_nvml_reads_every_gpu() -> None:
    source = NvmlSource()
    try:
        snap = source.sample()
        again = source.sample()
    finally:
        source.close()
    assert snap.state is GpuSourceState.OK, snap.error
    assert snap.gpus and all(g.name and g.uuid.startswith("GPU-") for g in snap.gpus)
    for gpu in again.gpus:
        assert gpu.memory_total_bytes and gpu.memory_used_bytes is not None
        assert gpu.memory_used_bytes <= gpu.memory_total_bytes
        if "H100" in gpu.name:
            assert gpu.fan_percent is None  # NotSupported on an H100: None, not 0
    assert source.calls.get("fan", 0) <= 2 * len(snap.gpus)


@pytest.mark.skipif(shutil.which("nvidia-smi") is None, reason="nvidia-smi not installed")
def test_nvidia_smi_stream_agrees_with_nvml() -> None:
    nvml = NvmlSource()
    smi = SmiStreamSource(interval=0.2)
    try:
        deadline = time.monotonic() + 15
        while not (stream := smi.sample()).gpus and time.monotonic() < deadline:
            time.sleep(0.05)
        direct = nvml.sample()
    finally:
        smi.close()
        nvml.close()
    assert [(g.uuid, g.name) for g in stream.gpus] == [(g.uuid, g.name) for g in direct.gpus]
    for a, b in zip(stream.gpus, direct.gpus, strict=True):
        assert a.memory_total_bytes is not None and b.memory_total_bytes is not None
        assert abs(a.memory_total_bytes - b.memory_total_bytes) < 1024 * 1024  # MiB rounding

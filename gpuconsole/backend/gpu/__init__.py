"""GPU telemetry: sources (NVML, nvidia-smi stream, replay), history, container attribution.

Importing this package is cheap: pynvml is imported only when an NVML source first samples.
"""

from __future__ import annotations

from gpuconsole.backend.gpu.attribution import (
    AttributedProcess,
    ContainerGpuUsage,
    GpuAttribution,
    attribute_gpu_processes,
    container_id_from_cgroup,
)
from gpuconsole.backend.gpu.factory import LocalGpuSource, NoGpuSource, open_local_gpu_source
from gpuconsole.backend.gpu.history import METRICS, GpuHistory, Metric
from gpuconsole.backend.gpu.models import (
    GpuInfo,
    GpuProcess,
    GpuSample,
    GpuSnapshot,
    GpuSource,
    GpuSourceState,
)
from gpuconsole.backend.gpu.nvml_source import NvmlSource
from gpuconsole.backend.gpu.replay import ReplayError, ReplaySource
from gpuconsole.backend.gpu.report import gpu_report
from gpuconsole.backend.gpu.runner import (
    CommandError,
    CommandRunner,
    LineStream,
    LocalCommandRunner,
)
from gpuconsole.backend.gpu.smi_stream import SmiStreamSource

__all__ = [
    "METRICS",
    "AttributedProcess",
    "CommandError",
    "CommandRunner",
    "ContainerGpuUsage",
    "GpuAttribution",
    "GpuHistory",
    "GpuInfo",
    "GpuProcess",
    "GpuSample",
    "GpuSnapshot",
    "GpuSource",
    "GpuSourceState",
    "LineStream",
    "LocalCommandRunner",
    "LocalGpuSource",
    "Metric",
    "NoGpuSource",
    "NvmlSource",
    "ReplayError",
    "ReplaySource",
    "SmiStreamSource",
    "attribute_gpu_processes",
    "container_id_from_cgroup",
    "gpu_report",
    "open_local_gpu_source",
]

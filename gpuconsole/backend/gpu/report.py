"""The ``gpuconsole gpus --json`` document: one object per GPU, stable keys, null for unknown.

Kept pure (snapshots and a PID -> container map in, plain data out) so scripts that consume the
JSON can rely on the shape, and tests need no GPU.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from gpuconsole.backend.gpu.models import GpuSnapshot

REPORT_KEYS = (
    "host",
    "index",
    "uuid",
    "name",
    "memory_used_bytes",
    "memory_total_bytes",
    "utilization_gpu_percent",
    "utilization_memory_percent",
    "power_w",
    "power_limit_w",
    "temperature_c",
    "sm_clock_mhz",
    "fan_percent",
    "processes",
)


def gpu_report(
    snapshots: Iterable[GpuSnapshot],
    containers: Mapping[tuple[str, int], str | None] | Mapping[int, str | None] | None = None,
) -> list[dict[str, Any]]:
    """JSON-ready list of GPUs across hosts.

    ``containers`` maps a PID (or ``(host, pid)`` when several hosts are reported) to the
    container name or id shown as ``container``; missing means a host process (null).
    """
    owners: Mapping[Any, str | None] = containers or {}
    report: list[dict[str, Any]] = []
    for snap in snapshots:
        for gpu in snap.gpus:
            procs = [
                {
                    "pid": p.pid,
                    "used_memory_bytes": p.used_memory_bytes,
                    "container": owners.get((snap.host, p.pid), owners.get(p.pid)),
                }
                for p in snap.processes
                if p.gpu_index == gpu.index
            ]
            report.append(
                {
                    "host": snap.host,
                    "index": gpu.index,
                    "uuid": gpu.uuid,
                    "name": gpu.name,
                    "memory_used_bytes": gpu.memory_used_bytes,
                    "memory_total_bytes": gpu.memory_total_bytes,
                    "utilization_gpu_percent": gpu.utilization_gpu_percent,
                    "utilization_memory_percent": gpu.utilization_memory_percent,
                    "power_w": gpu.power_w,
                    "power_limit_w": gpu.power_limit_w,
                    "temperature_c": gpu.temperature_c,
                    "sm_clock_mhz": gpu.sm_clock_mhz,
                    "fan_percent": gpu.fan_percent,
                    "processes": procs,
                }
            )
    return report

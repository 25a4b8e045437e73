"""Bounded per-GPU, per-metric history for sparklines and graphs.

Ring buffers (``deque(maxlen=...)``) keep memory flat however long the console runs; readers get
tuples, so a graph being drawn never sees the buffer move under it. Missing readings stay
``None`` so a graph shows a gap, not a drop to zero.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Final, Literal

from gpuconsole.backend.gpu.models import GpuSample, GpuSnapshot

Metric = Literal[
    "memory_used_bytes",
    "utilization_gpu_percent",
    "utilization_memory_percent",
    "power_w",
    "temperature_c",
    "sm_clock_mhz",
    "fan_percent",
]
METRICS: Final[tuple[Metric, ...]] = (
    "memory_used_bytes",
    "utilization_gpu_percent",
    "utilization_memory_percent",
    "power_w",
    "temperature_c",
    "sm_clock_mhz",
    "fan_percent",
)

Value = float | int | None


class _GpuSeries:
    __slots__ = ("metrics", "timestamps")

    def __init__(self, capacity: int) -> None:
        self.timestamps: deque[float] = deque(maxlen=capacity)
        self.metrics: dict[str, deque[Value]] = {m: deque(maxlen=capacity) for m in METRICS}

    def append(self, timestamp: float, gpu: GpuSample) -> None:
        self.timestamps.append(timestamp)
        for metric, values in self.metrics.items():
            values.append(getattr(gpu, metric))


class GpuHistory:
    """History of every GPU seen, keyed by ``(host, uuid)`` (indices can change on reboot).

    Not thread-safe on purpose: one poller appends and hands out tuples; keep both on one thread
    or behind the poller's own lock.
    """

    def __init__(self, interval: float = 1.0, window_s: float = 600.0) -> None:
        if interval <= 0 or window_s <= 0:
            raise ValueError("interval and window must be positive")
        self.interval = interval
        self.window_s = window_s
        #: Enough points to cover the whole window at the sample rate.
        self.capacity = math.ceil(window_s / interval) + 1
        self._series: dict[tuple[str, str], _GpuSeries] = {}
        self._last_timestamp: dict[str, float] = {}

    def append(self, snapshot: GpuSnapshot) -> bool:
        """Record a snapshot; a repeat of the last one (same host and timestamp) is ignored.

        Returns whether anything was recorded, so a poller faster than its source does not
        stretch the graph with duplicate points.
        """
        if not snapshot.gpus or self._last_timestamp.get(snapshot.host) == snapshot.timestamp:
            return False
        self._last_timestamp[snapshot.host] = snapshot.timestamp
        for gpu in snapshot.gpus:
            key = (snapshot.host, gpu.uuid or str(gpu.index))
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = _GpuSeries(self.capacity)
            series.append(snapshot.timestamp, gpu)
        return True

    def keys(self) -> tuple[tuple[str, str], ...]:
        return tuple(self._series)

    def series(self, host: str, gpu: str, metric: Metric) -> tuple[Value, ...]:
        """Oldest-first values of one metric; ``gpu`` is the UUID (or index as text)."""
        found = self._series.get((host, gpu))
        return () if found is None else tuple(found.metrics[metric])

    def timestamps(self, host: str, gpu: str) -> tuple[float, ...]:
        found = self._series.get((host, gpu))
        return () if found is None else tuple(found.timestamps)

    def clear(self) -> None:
        self._series.clear()
        self._last_timestamp.clear()

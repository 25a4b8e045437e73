"""Play a recorded GPU session (JSONL) back in real time, looping.

Replays let the console be shown, tested and screenshotted with real H100 behaviour on machines
without a GPU. Every snapshot is flagged ``replayed`` so nobody mistakes a recording for the
host's live GPUs (and so PIDs in it are not attributed to this host's containers).

Format, one JSON object a line (as tests/fixtures/gpu/h100/nvml-recording-h100.jsonl): ``t``
(unix seconds), ``index``, ``uuid``, ``name``, ``mem_used``/``mem_total`` (bytes),
``util_gpu``/``util_mem`` (%), ``power_mw``/``power_limit_mw``, ``temp_c``, ``sm_mhz``,
``fan_percent`` (null: not supported), ``procs`` (list of ``{pid, used}``). Lines of several GPUs
taken in the same round form one frame: a frame ends when a GPU index repeats.
"""

from __future__ import annotations

import bisect
import json
import statistics
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpuconsole.backend.gpu.models import GpuProcess, GpuSample, GpuSnapshot, GpuSourceState


class ReplayError(ValueError):
    """The recording cannot be played (missing, empty, malformed); ``str()`` names the line."""


@dataclass(frozen=True, slots=True)
class ReplayFrame:
    """One round of the recording: its offset from the start, the GPUs and their processes."""

    offset: float
    gpus: tuple[GpuSample, ...]
    processes: tuple[GpuProcess, ...]
    phase: str | None = None


def _opt_int(row: Mapping[str, Any], key: str) -> int | None:
    value = row.get(key)
    return None if value is None else int(value)


def _milli(row: Mapping[str, Any], key: str) -> float | None:
    value = row.get(key)
    return None if value is None else float(value) / 1000.0


def _sample(row: Mapping[str, Any]) -> GpuSample:
    return GpuSample(
        index=int(row["index"]),
        uuid=str(row.get("uuid", "")),
        name=str(row.get("name", "")),
        memory_used_bytes=_opt_int(row, "mem_used"),
        memory_total_bytes=_opt_int(row, "mem_total"),
        utilization_gpu_percent=_opt_int(row, "util_gpu"),
        utilization_memory_percent=_opt_int(row, "util_mem"),
        power_w=_milli(row, "power_mw"),
        power_limit_w=_milli(row, "power_limit_mw"),
        temperature_c=_opt_int(row, "temp_c"),
        sm_clock_mhz=_opt_int(row, "sm_mhz"),
        fan_percent=_opt_int(row, "fan_percent"),
        energy_mj=_opt_int(row, "energy_mj"),
    )


def load_frames(lines: Iterable[str]) -> tuple[ReplayFrame, ...]:
    """Group recorded lines into frames (one per sampling round, all GPUs of that round)."""
    frames: list[ReplayFrame] = []
    rows: list[dict[str, Any]] = []

    def flush() -> None:
        if not rows:
            return
        start = float(rows[0]["t"])
        gpus = tuple(sorted((_sample(r) for r in rows), key=lambda g: g.index))
        procs = tuple(
            GpuProcess(
                pid=int(p["pid"]),
                gpu_index=int(r["index"]),
                gpu_uuid=str(r.get("uuid", "")),
                used_memory_bytes=None if p.get("used") is None else int(p["used"]),
            )
            for r in rows
            for p in r.get("procs") or ()
        )
        frames.append(ReplayFrame(start, gpus, procs, rows[0].get("phase")))
        rows.clear()

    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            float(row["t"])
            int(row["index"])
        except (ValueError, KeyError, TypeError) as err:
            raise ReplayError(f"line {number} of the recording is not a GPU sample: {err}") from err
        if any(int(r["index"]) == int(row["index"]) for r in rows):
            flush()
        rows.append(row)
    flush()
    if not frames:
        raise ReplayError("the recording holds no samples")
    origin = frames[0].offset
    return tuple(ReplayFrame(f.offset - origin, f.gpus, f.processes, f.phase) for f in frames)


class ReplaySource:
    """GpuSource that plays frames at their recorded pace (``speed`` x), from the first sample."""

    def __init__(
        self,
        frames: tuple[ReplayFrame, ...],
        *,
        host: str = "replay",
        speed: float = 1.0,
        loop: bool = True,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if not frames:
            raise ReplayError("the recording holds no samples")
        self._frames = frames
        self._offsets = [f.offset for f in frames]
        gaps = [b - a for a, b in zip(self._offsets, self._offsets[1:], strict=False)]
        period = statistics.median(gaps) if gaps else 1.0
        #: One loop lasts the recording plus one sampling period, so the loop seam keeps the pace.
        self.duration = self._offsets[-1] + period
        self._host = host
        self._speed = speed
        self._loop = loop
        self._clock = clock
        self._wall_clock = wall_clock
        self._started_at: float | None = None

    @classmethod
    def from_file(cls, path: Path, **kwargs: Any) -> ReplaySource:
        try:
            with path.open(encoding="utf-8") as fh:
                frames = load_frames(fh)
        except OSError as err:
            raise ReplayError(f"cannot read the recording {path}: {err.strerror or err}") from err
        kwargs.setdefault("host", "replay")
        return cls(frames, **kwargs)

    @property
    def name(self) -> str:
        return "replay"

    @property
    def host(self) -> str:
        return self._host

    @property
    def replayed(self) -> bool:
        return True

    @property
    def frames(self) -> tuple[ReplayFrame, ...]:
        return self._frames

    def current_frame(self) -> ReplayFrame:
        now = self._clock()
        if self._started_at is None:
            self._started_at = now
        position = (now - self._started_at) * self._speed
        position = position % self.duration if self._loop else position
        return self._frames[max(0, bisect.bisect_right(self._offsets, position) - 1)]

    def sample(self) -> GpuSnapshot:
        frame = self.current_frame()
        return GpuSnapshot(
            host=self._host,
            source=self.name,
            state=GpuSourceState.OK,
            timestamp=self._wall_clock(),
            gpus=frame.gpus,
            processes=frame.processes,
            replayed=True,
        )

    def close(self) -> None:
        self._started_at = None

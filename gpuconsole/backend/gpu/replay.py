"""Play a recorded GPU session (JSONL) back in real time, looping.

Replays let the console be shown, tested and screenshotted with real H100 behaviour on machines
without a GPU. Every snapshot is flagged ``replayed`` so nobody mistakes a recording for the
host's live GPUs (and so PIDs in it are not attributed to this host's containers).

Format, one JSON object a line (as tests/fixtures/gpu/h100/nvml-recording-h100.jsonl): ``t``
(unix seconds), ``index``, ``uuid``, ``name``, ``mem_used``/``mem_total`` (bytes),
``util_gpu``/``util_mem`` (%), ``power_mw``/``power_limit_mw``, ``temp_c``, ``sm_mhz``,
``fan_percent`` (null: not supported), ``procs`` (list of ``{pid, used}``). Lines of several GPUs
taken in the same round form one frame: a frame ends when a GPU index repeats.

A recording cut off mid-line (the recorder was killed) or with a few garbled lines still plays:
``ReplaySource.from_file`` skips the lines that are not GPU samples and says which
(``ReplaySource.skipped``, a one-line ``note`` on every snapshot). Only a file without one
good sample is an error.
"""

from __future__ import annotations

import bisect
import json
import math
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
    if value is None:
        return None
    try:
        return int(value)
    except (ValueError, TypeError, OverflowError):
        raise ValueError(f"{key} is {value!r}, not a number") from None


def _milli(row: Mapping[str, Any], key: str) -> float | None:
    value = row.get(key)
    if value is None:
        return None
    try:
        milli = float(value)
    except (ValueError, TypeError):
        raise ValueError(f"{key} is {value!r}, not a number") from None
    if not math.isfinite(milli):
        raise ValueError(f"{key} is {value!r}, not a number")
    return milli / 1000.0


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


def _processes(row: Mapping[str, Any]) -> tuple[GpuProcess, ...]:
    procs = row.get("procs") or []
    if not isinstance(procs, list):
        raise TypeError(f"procs must be a list, got {procs!r}")
    return tuple(
        GpuProcess(
            pid=int(p["pid"]),
            gpu_index=int(row["index"]),
            gpu_uuid=str(row.get("uuid", "")),
            used_memory_bytes=None if p.get("used") is None else int(p["used"]),
        )
        for p in procs
    )


def _why(err: Exception, line: str) -> str:
    if isinstance(err, json.JSONDecodeError):
        text = line.strip()
        if text.startswith("{") and not text.endswith("}"):
            return "cut off (not a whole JSON object)"
        return f"not JSON ({err.msg}, column {err.colno})"
    if isinstance(err, KeyError):
        return f"no {err.args[0]!r} field"
    return str(err) or type(err).__name__


def load_frames(lines: Iterable[str], skipped: list[str] | None = None) -> tuple[ReplayFrame, ...]:
    """Group recorded lines into frames (one per sampling round, all GPUs of that round).

    A line that is not a GPU sample raises ReplayError naming it — unless ``skipped`` is
    given: then it is left out and ``"line N: why"`` appended there.
    """
    frames: list[ReplayFrame] = []
    rows: list[tuple[float, dict[str, Any], GpuSample, tuple[GpuProcess, ...]]] = []

    def flush() -> None:
        if not rows:
            return
        start, first = rows[0][0], rows[0][1]
        gpus = tuple(sorted((r[2] for r in rows), key=lambda g: g.index))
        procs = tuple(p for r in rows for p in r[3])
        phase = first.get("phase")
        frames.append(ReplayFrame(start, gpus, procs, phase if isinstance(phase, str) else None))
        rows.clear()

    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise TypeError(f"a JSON {type(row).__name__}, not an object")
            t = float(row["t"])
            if not math.isfinite(t):
                raise ValueError(f"t is {t}")
            sample = _sample(row)
            procs = _processes(row)
        except (ValueError, KeyError, TypeError, OverflowError, AttributeError) as err:
            problem = f"line {number}: {_why(err, line)}"
            if skipped is None:
                raise ReplayError(
                    f"line {number} of the recording is not a GPU sample: {_why(err, line)}"
                ) from err
            skipped.append(problem)
            continue
        if any(r[2].index == sample.index for r in rows):
            flush()
        rows.append((t, row, sample, procs))
    flush()
    if not frames:
        if skipped:
            raise ReplayError(
                f"the recording holds no samples ({len(skipped)} bad line(s): {skipped[0]})"
            )
        raise ReplayError("the recording holds no samples")
    origin = frames[0].offset
    return tuple(ReplayFrame(f.offset - origin, f.gpus, f.processes, f.phase) for f in frames)


def skipped_note(skipped: tuple[str, ...] | list[str]) -> str | None:
    """One line about the lines a replay left out, None when there were none."""
    if not skipped:
        return None
    shown = "; ".join(skipped[:3]) + ("; …" if len(skipped) > 3 else "")
    return f"skipped {len(skipped)} line(s) of the recording that are not GPU samples ({shown})"


class ReplaySource:
    """GpuSource that plays frames at their recorded pace (``speed`` x), from the first sample."""

    def __init__(
        self,
        frames: tuple[ReplayFrame, ...],
        *,
        host: str = "replay",
        skipped: tuple[str, ...] = (),
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
        #: ``"line N: why"`` for each line of the file that was left out.
        self.skipped = skipped
        self.note = skipped_note(skipped)

    @classmethod
    def from_file(cls, path: Path, **kwargs: Any) -> ReplaySource:
        skipped: list[str] = []
        try:
            with path.open(encoding="utf-8", errors="replace") as fh:
                frames = load_frames(fh, skipped)
        except OSError as err:
            raise ReplayError(f"cannot read the recording {path}: {err.strerror or err}") from err
        except ReplayError as err:
            raise ReplayError(f"{path}: {err}") from err
        kwargs.setdefault("host", "replay")
        kwargs.setdefault("skipped", tuple(skipped))
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
            error=self.note,
        )

    def close(self) -> None:
        self._started_at = None

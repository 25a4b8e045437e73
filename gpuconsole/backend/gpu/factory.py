"""Pick the local GPU source: a replay if asked, else NVML, else an nvidia-smi stream, else none.

The choice needs ``nvmlInit``, which can block on a sick driver, so it is made lazily on the
first ``sample()`` (in the caller's worker thread), never when the console starts its UI.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

from gpuconsole.backend.gpu.models import GpuSnapshot, GpuSource, GpuSourceState
from gpuconsole.backend.gpu.nvml_source import NvmlSource
from gpuconsole.backend.gpu.replay import ReplaySource
from gpuconsole.backend.gpu.smi_stream import SmiStreamSource


class NoGpuSource:
    """Reports, every sample, why this host has no GPU telemetry."""

    def __init__(self, reason: str, host: str = "local") -> None:
        self.reason = reason
        self._host = host

    @property
    def name(self) -> str:
        return "none"

    @property
    def host(self) -> str:
        return self._host

    @property
    def replayed(self) -> bool:
        return False

    def sample(self) -> GpuSnapshot:
        return GpuSnapshot(
            host=self._host,
            source=self.name,
            state=GpuSourceState.UNAVAILABLE,
            timestamp=time.time(),
            error=self.reason,
        )

    def close(self) -> None:
        pass


class LocalGpuSource:
    """Decides NVML vs nvidia-smi vs none on first use, then delegates to the chosen source."""

    def __init__(
        self,
        interval: float = 1.0,
        *,
        host: str = "local",
        nvml_factory: Callable[[], NvmlSource] | None = None,
        which: Callable[[str], str | None] = shutil.which,
    ) -> None:
        self._interval = interval
        self._host = host
        self._nvml_factory = nvml_factory or (lambda: NvmlSource(host))
        self._which = which
        self._chosen: GpuSource | None = None

    @property
    def name(self) -> str:
        return "local" if self._chosen is None else self._chosen.name

    @property
    def host(self) -> str:
        return self._host

    @property
    def replayed(self) -> bool:
        return False

    @property
    def processes_pending(self) -> bool:
        """The chosen source's (an nvidia-smi stream's first process list): a one-shot reader
        such as ``gpuconsole gpus`` waits for it, or it shows GPU 0 alone and no owners."""
        return bool(getattr(self._chosen, "processes_pending", False))

    @property
    def chosen(self) -> GpuSource:
        if self._chosen is None:
            self._chosen = self._choose()
        return self._chosen

    def _choose(self) -> GpuSource:
        nvml = self._nvml_factory()
        reason = nvml.init_error
        if reason is None:
            return nvml
        nvml.close()
        smi = self._which("nvidia-smi")
        if smi is not None:
            return SmiStreamSource(host=self._host, interval=self._interval, executable=smi)
        return NoGpuSource(f"{reason}; nvidia-smi is not installed either", self._host)

    def sample(self) -> GpuSnapshot:
        return self.chosen.sample()

    def close(self) -> None:
        if self._chosen is not None:
            self._chosen.close()


def open_local_gpu_source(replay: Path | None, interval: float = 1.0) -> GpuSource:
    """The CLI's GPU source for this machine; never raises for a missing driver or GPU.

    A replay that cannot be read raises ReplayError: the user asked for that file explicitly.
    """
    if replay is not None:
        return ReplaySource.from_file(replay)
    return LocalGpuSource(interval)

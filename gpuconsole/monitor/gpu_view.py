"""What the GPU widgets draw from: one immutable bundle per sample, built in the poller thread."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from gpuconsole.backend.gpu import ContainerGpuUsage, GpuAttribution, GpuSnapshot

Series = tuple[float | int | None, ...]


@dataclass(frozen=True, slots=True)
class GpuView:
    snapshot: GpuSnapshot
    #: (gpu uuid, metric) -> oldest-first values over the history window.
    history: Mapping[tuple[str, str], Series] = field(default_factory=dict)
    timestamps: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    attribution: GpuAttribution | None = None
    #: Container id -> name, for labelling processes and cards.
    names: Mapping[str, str] = field(default_factory=dict)
    interval: float = 1.0
    replay_name: str | None = None

    def series(self, uuid: str, metric: str) -> Series:
        return self.history.get((uuid, metric), ())

    def holders(self, gpu_index: int) -> tuple[str, ...]:
        """Names of the containers (or host commands) with a process on this GPU."""
        if self.attribution is None:
            return ()
        out: list[str] = []
        for p in self.attribution.processes:
            if p.process.gpu_index != gpu_index:
                continue
            if p.container_id is not None:
                label = self.names.get(p.container_id, p.container_id[:12])
            else:
                label = process_label(p.command, p.process.pid, self.snapshot.replayed)
            if label not in out:
                out.append(label)
        return tuple(out)

    def usage(self) -> Mapping[str, ContainerGpuUsage]:
        if self.attribution is None:
            return {}
        return {u.container_id: u for u in self.attribution.containers}


def process_label(command: str | None, pid: int, replayed: bool) -> str:
    """A GPU process outside any container: its command, or its PID when /proc has none."""
    if replayed:
        return f"pid {pid} (recorded)"
    return f"{command or 'pid ' + str(pid)} (host)"

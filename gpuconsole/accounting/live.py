"""What the recorder has seen so far, for ``/metrics``: the latest figures and running totals.

Counters start at zero when the recorder starts (Prometheus handles resets); the history lives
in the SQLite file.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from gpuconsole.accounting.meter import HOST_OWNER, GpuInterval, OwnerInterval


@dataclass(slots=True)
class GpuFigures:
    host: str
    uuid: str
    index: int
    name: str
    power_w: float | None = None
    utilization: float | None = None
    memory_used: int | None = None
    memory_total: int | None = None
    temperature_c: int | None = None
    energy_j: float = 0.0


@dataclass(slots=True)
class OwnerFigures:
    host: str
    owner: str
    uuid: str
    index: int
    name: str = ""
    image: str = ""
    power_w: float = 0.0
    utilization: float = 0.0
    memory_used: int | None = None
    energy_j: float = 0.0
    gpu_seconds: float = 0.0
    reserved_seconds: float = 0.0
    idle_reserved_seconds: float = 0.0


@dataclass
class LiveFigures:
    """Updated by the recorder's writer thread, read by the metrics server's threads."""

    gpus: dict[tuple[str, str], GpuFigures] = field(default_factory=dict)
    owners: dict[tuple[str, str, str], OwnerFigures] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(
        self,
        gpus: Iterable[GpuInterval],
        owners: Iterable[OwnerInterval],
        names: Mapping[tuple[str, str], tuple[str, str]],
    ) -> None:
        with self.lock:
            index: dict[tuple[str, str], int] = {}
            for g in gpus:
                fig = self.gpus.get((g.host, g.uuid))
                if fig is None:
                    fig = self.gpus[(g.host, g.uuid)] = GpuFigures(g.host, g.uuid, g.index, g.name)
                fig.power_w, fig.utilization = g.power_w, g.utilization
                fig.memory_used, fig.memory_total = g.memory_used, g.memory_total
                fig.temperature_c = g.temperature_c
                fig.energy_j += g.energy_j
                index[(g.host, g.uuid)] = g.index
            seen: set[tuple[str, str, str]] = set()
            for o in owners:
                key = (o.host, o.owner, o.uuid)
                seen.add(key)
                fig_o = self.owners.get(key)
                if fig_o is None:
                    fig_o = self.owners[key] = OwnerFigures(
                        o.host, o.owner, o.uuid, index.get((o.host, o.uuid), -1)
                    )
                name, image = names.get((o.host, o.owner)) or (
                    ("(host processes)", "") if o.owner == HOST_OWNER else (o.owner[:12], "")
                )
                fig_o.name, fig_o.image = name, image
                fig_o.power_w = o.energy_j / o.dt if o.dt else 0.0
                fig_o.utilization = o.util_seconds / o.dt if o.dt else 0.0
                fig_o.memory_used = o.memory_used
                fig_o.energy_j += o.energy_j
                fig_o.gpu_seconds += o.gpu_seconds
                fig_o.reserved_seconds += o.reserved_seconds
                fig_o.idle_reserved_seconds += o.idle_reserved_seconds
            # An owner no longer on a GPU this round draws nothing now (its totals stay).
            rounds = {(o.host, o.uuid) for o in self.owners.values()} & set(index)
            for key, fig_o in self.owners.items():
                if key not in seen and (fig_o.host, fig_o.uuid) in rounds:
                    fig_o.power_w, fig_o.utilization, fig_o.memory_used = 0.0, 0.0, None

    def copy(self) -> tuple[list[GpuFigures], list[OwnerFigures]]:
        import copy

        with self.lock:
            return copy.deepcopy(list(self.gpus.values())), copy.deepcopy(
                list(self.owners.values())
            )

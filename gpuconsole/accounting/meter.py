"""From GPU samples to accounted intervals: energy, GPU time and each owner's share.

Each sample closes the interval since the previous sample of the same GPU and describes it —
NVML's utilization and nvidia-smi's power are averages over the time just past, so the state
at the end of an interval is the one that held during it (right end point).

Energy per interval: NVML's hardware counter where the GPU has one (its difference), else the
power integrated over the interval (trapezoid of the two end points). A gap longer than
``max_gap`` (a few intervals: the source stalled, the recorder stopped) is not bridged: the next
sample only starts a new interval.

Shares (the rule stated in every report): a GPU used by one owner is all of it; a GPU shared by
several is split by their share of the memory used on it (equally where no memory is known).
Owners are containers, and processes outside any container together as the host.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from gpuconsole.backend.gpu import GpuAttribution, GpuSnapshot

SPLIT_RULE = (
    "a GPU used by one container is all of it; a GPU shared by several is split by their "
    "share of its used memory"
)
#: The owner id of GPU processes outside any container.
HOST_OWNER = ""
#: A reserved GPU counts as idle while its utilization is below this (or the holder runs
#: nothing on it).
IDLE_UTILIZATION_PERCENT = 5.0


@dataclass(slots=True)
class GpuInterval:
    """One GPU over one sampling interval that ended at ``t``."""

    host: str
    uuid: str
    index: int
    name: str
    t: float
    dt: float
    energy_j: float
    utilization: float | None
    memory_used: int | None
    memory_total: int | None
    power_w: float | None
    temperature_c: int | None


@dataclass(slots=True)
class OwnerInterval:
    """One owner (container or host processes) on one GPU over one interval."""

    host: str
    owner: str
    uuid: str
    t: float
    dt: float
    #: Seconds of this GPU that were the owner's (dt x share).
    gpu_seconds: float
    energy_j: float
    #: utilization x gpu_seconds: divided by gpu_seconds gives the mean utilization.
    util_seconds: float
    memory_used: int | None
    reserved_seconds: float
    idle_reserved_seconds: float


@dataclass(slots=True)
class _Last:
    t: float
    power_w: float | None
    energy_mj: int | None


def interval_energy(last: _Last, t: float, power_w: float | None, energy_mj: int | None) -> float:
    """Joules between two readings: the counter's difference, else the trapezoid of power."""
    if energy_mj is not None and last.energy_mj is not None and energy_mj >= last.energy_mj:
        return (energy_mj - last.energy_mj) / 1000.0
    if power_w is None or last.power_w is None:
        return 0.0
    return (power_w + last.power_w) / 2.0 * (t - last.t)


def shares(memory_by_owner: Mapping[str, int | None]) -> dict[str, float]:
    """The split of one GPU between its owners (see the module's rule)."""
    if not memory_by_owner:
        return {}
    known = {o: m for o, m in memory_by_owner.items() if m}
    total = sum(known.values())
    if total <= 0:
        return {o: 1.0 / len(memory_by_owner) for o in memory_by_owner}
    return {o: known.get(o, 0) / total for o in memory_by_owner}


class Meter:
    """Integrates one host's samples; keeps the previous reading of each GPU."""

    def __init__(self, host: str, max_gap: float) -> None:
        self.host = host
        self.max_gap = max_gap
        self._last: dict[str, _Last] = {}

    def observe(
        self,
        snapshot: GpuSnapshot,
        attribution: GpuAttribution | None,
        reserved: Mapping[str, Iterable[int]] | None = None,
        running: Collection[str] | None = None,
    ) -> tuple[list[GpuInterval], list[OwnerInterval]]:
        """The intervals this sample closes. ``reserved``: container id -> GPU indices it
        reserved (its DeviceRequests, resolved on this host). ``running``: the host's running
        containers, when known — a process list is refreshed less often than the GPU figures
        (every few seconds over nvidia-smi), and a container the engine says has stopped holds
        no GPU, whatever the last list said."""
        gpu_rows: list[GpuInterval] = []
        owner_rows: list[OwnerInterval] = []
        t = snapshot.timestamp
        # Who is on which GPU, worked out once per sample (not once per GPU): most GPUs of a
        # fleet, most of the time, have nobody to share out and take the short way below.
        memory_on: dict[int, dict[str, int | None]] = {}
        for p in attribution.processes if attribution else ():
            cid = p.container_id
            if cid and running is not None and cid not in running:
                continue  # stopped since the process list was taken
            memory = memory_on.setdefault(p.process.gpu_index, {})
            owner = cid or HOST_OWNER
            used = p.process.used_memory_bytes
            before = memory.get(owner)
            memory[owner] = None if used is None and before is None else (before or 0) + (used or 0)
        holders_on: dict[int, set[str]] = {}
        for cid, indices in (reserved or {}).items():
            for i in indices:
                holders_on.setdefault(i, set()).add(cid)
        last_of = self._last
        max_gap = self.max_gap
        host = self.host
        for gpu in snapshot.gpus:
            key = gpu.uuid or str(gpu.index)
            if gpu.error is not None:
                last_of.pop(key, None)  # a lost GPU: its next reading starts afresh
                continue
            last = last_of.get(key)
            last_of[key] = _Last(t, gpu.power_w, gpu.energy_mj)
            if last is None or not 0 < t - last.t <= max_gap:
                continue
            dt = t - last.t
            energy = interval_energy(last, t, gpu.power_w, gpu.energy_mj)
            util = gpu.utilization_gpu_percent
            gpu_rows.append(
                GpuInterval(
                    host,
                    key,
                    gpu.index,
                    gpu.name,
                    t,
                    dt,
                    energy,
                    None if util is None else float(util),
                    gpu.memory_used_bytes,
                    gpu.memory_total_bytes,
                    gpu.power_w,
                    gpu.temperature_c,
                )
            )
            on = memory_on.get(gpu.index)
            holders = holders_on.get(gpu.index)
            if on or holders:
                owner_rows.extend(
                    self._owners(key, t, dt, energy, util, on or {}, holders or set())
                )
        return gpu_rows, owner_rows

    def _owners(
        self,
        uuid: str,
        t: float,
        dt: float,
        energy: float,
        util: int | None,
        memory: Mapping[str, int | None],
        holders: Collection[str],
    ) -> list[OwnerInterval]:
        """The owners' rows of one GPU: ``memory`` (owner -> memory it uses there) splits the
        GPU, ``holders`` are the containers that reserved it."""
        split = shares(memory)
        busy = util is not None and util >= IDLE_UTILIZATION_PERCENT
        rows = []
        for owner in sorted(set(split) | set(holders)):
            share = split.get(owner, 0.0)
            holds = owner in holders
            idle = holds and (owner not in split or not busy)
            rows.append(
                OwnerInterval(
                    self.host,
                    owner,
                    uuid,
                    t,
                    dt,
                    gpu_seconds=dt * share,
                    energy_j=energy * share,
                    util_seconds=(util or 0) * dt * share,
                    memory_used=memory.get(owner),
                    reserved_seconds=dt if holds else 0.0,
                    idle_reserved_seconds=dt if idle else 0.0,
                )
            )
        return rows

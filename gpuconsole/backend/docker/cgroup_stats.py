"""CPU and memory of running containers, read straight from their cgroups in one pass.

The Docker stats API makes the daemon wait for a second sample (~1 s per container on Docker
20.10, even with ``one_shot``); reading ``cpuacct.usage`` / ``cpu.stat`` and the memory files of
every container costs a few file reads each. CPU % needs two readings, so the reader keeps the
previous one per container and reports None until it has it.

Handles cgroup v1 and v2, with the cgroupfs (``docker/<id>``) and systemd
(``system.slice/docker-<id>.scope``) drivers. A container whose cgroup cannot be found here (an
engine in a VM, rootless Docker in another namespace) is simply missing from the result, and the
caller falls back to the API for it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from gpuconsole.backend.models import ContainerStats

#: cgroup v1 reports "no limit" as a page-rounded LONG_MAX; anything this large means unlimited.
_UNLIMITED = 1 << 60

#: Where engines put a container's cgroup, relative to a controller's mount, in order of likelihood.
_CANDIDATES = (
    "docker/{id}",
    "system.slice/docker-{id}.scope",
    "docker.slice/docker-{id}.scope",
)


@dataclass(frozen=True, slots=True)
class CgroupMounts:
    """Where the controllers we read are mounted (v1) or the unified hierarchy (v2)."""

    version: int
    cpu: Path
    memory: Path


def find_mounts(mountinfo: str) -> CgroupMounts | None:
    """Pick the cpuacct and memory mounts (v1) or the unified mount (v2) from mountinfo text."""
    cpu: Path | None = None
    memory: Path | None = None
    unified: Path | None = None
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields = left.split()
        fstype, _source, *opts = right.split()
        if len(fields) < 5:
            continue
        mountpoint = Path(fields[4])
        options = set(",".join(opts).split(","))
        if fstype == "cgroup2":
            unified = unified or mountpoint
        elif fstype == "cgroup":
            if "cpuacct" in options and cpu is None:
                cpu = mountpoint
            if "memory" in options and memory is None:
                memory = mountpoint
    if cpu is not None and memory is not None:
        return CgroupMounts(1, cpu, memory)
    if unified is not None:
        return CgroupMounts(2, unified, unified)
    return None


@dataclass(frozen=True, slots=True)
class _Reading:
    cpu_ns: int
    at: float


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _stat_value(path: Path, key: str) -> int | None:
    try:
        text = path.read_text()
    except OSError:
        return None
    prefix = key + " "
    for line in text.splitlines():
        if line.startswith(prefix):
            try:
                return int(line[len(prefix) :])
            except ValueError:
                return None
    return None


class CgroupStatsReader:
    """Reads CPU and memory for many containers per call; keeps CPU baselines between calls."""

    def __init__(
        self,
        mounts: CgroupMounts,
        host_memory_bytes: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.mounts = mounts
        self.host_memory_bytes = host_memory_bytes
        self._clock = clock
        self._previous: dict[str, _Reading] = {}
        self._dirs: dict[str, str] = {}
        # The template that found the last container is tried first for the next one.
        self._templates = list(_CANDIDATES)

    @classmethod
    def for_this_machine(
        cls, host_memory_bytes: int | None = None, proc: Path = Path("/proc")
    ) -> CgroupStatsReader | None:
        try:
            mounts = find_mounts((proc / "self" / "mountinfo").read_text())
        except OSError:
            return None
        return cls(mounts, host_memory_bytes) if mounts else None

    def _relative_dir(self, container_id: str) -> str | None:
        known = self._dirs.get(container_id)
        if known is not None:
            return known
        for index, template in enumerate(self._templates):
            rel = template.format(id=container_id)
            if (self.mounts.memory / rel).is_dir():
                if index:
                    self._templates.insert(0, self._templates.pop(index))
                self._dirs[container_id] = rel
                return rel
        return None

    def read(self, container_ids: Iterable[str]) -> dict[str, ContainerStats]:
        """One pass over the given running containers; missing cgroups are left out."""
        out: dict[str, ContainerStats] = {}
        seen: set[str] = set()
        for cid in container_ids:
            rel = self._relative_dir(cid)
            if rel is None:
                continue
            stats = self._read_one(cid, rel)
            if stats is None:
                # The container stopped between list and read: forget its directory.
                self._dirs.pop(cid, None)
                continue
            out[cid] = stats
            seen.add(cid)
        for gone in set(self._previous) - seen:
            del self._previous[gone]
        return out

    def _read_one(self, cid: str, rel: str) -> ContainerStats | None:
        now = self._clock()
        if self.mounts.version == 1:
            cpu_ns = _read_int(self.mounts.cpu / rel / "cpuacct.usage")
            mem_dir = self.mounts.memory / rel
            usage = _read_int(mem_dir / "memory.usage_in_bytes")
            limit = _read_int(mem_dir / "memory.limit_in_bytes")
            inactive = _stat_value(mem_dir / "memory.stat", "total_inactive_file")
        else:
            group = self.mounts.cpu / rel
            usec = _stat_value(group / "cpu.stat", "usage_usec")
            cpu_ns = None if usec is None else usec * 1000
            usage = _read_int(group / "memory.current")
            limit = _read_int(group / "memory.max")
            inactive = _stat_value(group / "memory.stat", "inactive_file")
        if cpu_ns is None and usage is None:
            return None
        cpu_percent: float | None = None
        if cpu_ns is not None:
            before = self._previous.get(cid)
            if before is not None and now > before.at and cpu_ns >= before.cpu_ns:
                cpu_percent = (cpu_ns - before.cpu_ns) / ((now - before.at) * 1e9) * 100.0
            self._previous[cid] = _Reading(cpu_ns, now)
        memory: int | None = None
        if usage is not None:
            # docker stats subtracts the inactive page cache; do the same so the figures agree.
            memory = usage - inactive if inactive is not None and inactive < usage else usage
        if limit is None or limit >= _UNLIMITED:
            limit = self.host_memory_bytes
        elif self.host_memory_bytes is not None:
            limit = min(limit, self.host_memory_bytes)
        return ContainerStats(cid, cpu_percent, memory, limit, source="cgroup")

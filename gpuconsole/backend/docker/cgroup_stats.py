"""CPU and memory of running containers, read straight from their cgroups in one pass.

The Docker stats API makes the daemon wait for a second sample (~1 s per container on Docker
20.10, even with ``one_shot``); reading ``cpuacct.usage`` / ``cpu.stat`` and the memory files of
every container costs a few file reads each. CPU % needs two readings, so the reader keeps the
previous one per container and reports None until it has it.

Handles cgroup v1 and v2, with the cgroupfs (``docker/<id>``) and systemd
(``system.slice/docker-<id>.scope``) drivers. A container whose cgroup cannot be found here (an
engine in a VM, rootless Docker in another namespace) is simply missing from the result, and the
caller falls back to the API for it. The files are read through the engine's Machine.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gpuconsole.backend.models import ContainerStats

if TYPE_CHECKING:
    from gpuconsole.backend.hosts.machine import Machine

#: cgroup v1 reports "no limit" as a page-rounded LONG_MAX; anything this large means unlimited.
_UNLIMITED = 1 << 60

_HEX = frozenset("0123456789abcdef")

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
        rest = right.split()
        if len(fields) < 5 or len(rest) < 2:  # a line cut short
            continue
        fstype, _source, *opts = rest
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


#: On the local machine a container that did nothing since its last reading (same CPU time,
#: same memory usage) has its memory limit and memory.stat (half the cost of a reading: the
#: kernel sums ~40 counters for it) read every this many refreshes only, staggered over the
#: containers; one that moved, every refresh. Over SSH every file is read each refresh: the
#: woken ones' would need a second remote command.
SLOW_EVERY = 5


@dataclass(frozen=True, slots=True)
class _Reading:
    cpu_ns: int
    at: float
    usage: int | None = None


def _int_of(text: str | None) -> int | None:
    if text is None:
        return None
    text = text.strip()
    if text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _stat_of(text: str | None, key: str) -> int | None:
    """The value of ``key`` in a flat-keyed cgroup file (``key value`` lines); a substring
    search, not a split of the whole file: memory.stat has ~40 lines and this runs for every
    container on every refresh."""
    if text is None:
        return None
    prefix = key + " "
    at = 0 if text.startswith(prefix) else text.find("\n" + prefix) + 1
    if at == 0 and not text.startswith(prefix):
        return None
    start = at + len(prefix)
    end = text.find("\n", start)
    try:
        return int(text[start:] if end < 0 else text[start:end])
    except ValueError:
        return None


class CgroupStatsReader:
    """Reads CPU and memory for many containers per call; keeps CPU baselines between calls.

    Every file of every container is read in ONE ``machine.read_files`` call: locally that is a
    few reads each, over SSH one remote command per refresh whatever the number of containers.
    A container whose directory is not known yet is looked up under every candidate layout in
    that same call; the layout that answered is remembered.
    """

    def __init__(
        self,
        mounts: CgroupMounts,
        host_memory_bytes: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        machine: Machine | None = None,
    ) -> None:
        from gpuconsole.backend.hosts.local import LocalMachine

        self.mounts = mounts
        self.host_memory_bytes = host_memory_bytes
        self.machine: Machine = machine or LocalMachine()
        self._clock = clock
        self._previous: dict[str, _Reading] = {}
        self._dirs: dict[str, str] = {}
        #: The layout (a _CANDIDATES template) where containers were last found.
        self._layout: str | None = None
        #: Relative cgroup directory -> its four file paths (built once, not per refresh).
        self._paths: dict[str, tuple[str, ...]] = {}
        #: Container -> (limit, inactive page cache) as last read from the slow files.
        self._slow: dict[str, tuple[int | None, int | None]] = {}
        #: Containers whose last two readings had the same CPU time and memory usage.
        self._idle: set[str] = set()
        self._round = 0

    @classmethod
    def for_machine(
        cls, machine: Machine, host_memory_bytes: int | None = None
    ) -> CgroupStatsReader | None:
        """The reader for the cgroups of ``machine``, or None where none are mounted."""
        path = "/proc/self/mountinfo"
        mounts = find_mounts(machine.read_files([path]).get(path, ""))
        return cls(mounts, host_memory_bytes, machine=machine) if mounts else None

    @classmethod
    def for_this_machine(cls, host_memory_bytes: int | None = None) -> CgroupStatsReader | None:
        from gpuconsole.backend.hosts.local import LocalMachine

        return cls.for_machine(LocalMachine(), host_memory_bytes)

    def _files(self, rel: str) -> tuple[str, ...]:
        files = self._paths.get(rel)
        if files is None:
            files = self._paths[rel] = self._build_files(rel)
        return files

    def _build_files(self, rel: str) -> tuple[str, ...]:
        if self.mounts.version == 1:
            cpu, mem = f"{self.mounts.cpu}/{rel}", f"{self.mounts.memory}/{rel}"
            return (
                f"{cpu}/cpuacct.usage",
                f"{mem}/memory.usage_in_bytes",
                f"{mem}/memory.limit_in_bytes",
                f"{mem}/memory.stat",
            )
        group = f"{self.mounts.cpu}/{rel}"
        return (
            f"{group}/cpu.stat",
            f"{group}/memory.current",
            f"{group}/memory.max",
            f"{group}/memory.stat",
        )

    def local_ids(self) -> list[str]:
        """Ids of the containers that have a cgroup on this (local) machine, found by listing
        the layouts' parent directories: no engine call, so ``ps`` can start its CPU window
        before the engine has even answered."""
        ids: list[str] = []
        for template in _CANDIDATES:
            parent, _, leaf = f"{self.mounts.cpu}/{template}".rpartition("/")
            prefix, _, suffix = leaf.partition("{id}")
            try:
                names = os.listdir(parent)
            except OSError:
                continue
            for name in names:
                if name.startswith(prefix) and name.endswith(suffix):
                    cid = name[len(prefix) : len(name) - len(suffix)]
                    if len(cid) == 64 and all(ch in _HEX for ch in cid):
                        ids.append(cid)
        return ids

    def baseline_times(self, container_ids: Iterable[str]) -> dict[str, float]:
        """When each container's last CPU reading was taken (those with one)."""
        return {cid: r.at for cid in container_ids if (r := self._previous.get(cid)) is not None}

    def read(self, container_ids: Iterable[str], prune: bool = True) -> dict[str, ContainerStats]:
        """One pass over the given running containers; missing cgroups are left out.

        A container seen before is read where it was found; a new one first under the layout
        that found the others (one pass for a whole engine's first read, which ``ps`` pays
        inside its CPU window), the other layouts only for those not found there. ``prune``
        forgets the baselines of every container not read here (the ids are all that run);
        a partial read passes False and calls ``keep_only`` once it knows what runs.
        """
        ids = list(container_ids)
        self._round += 1
        first = self._layout or _CANDIDATES[0]
        out = self._read_dirs({cid: self._dirs.get(cid) or first.format(id=cid) for cid in ids})
        missing = [cid for cid in ids if cid not in out]
        for template in _CANDIDATES:
            if not missing:
                break
            if template == first:
                continue
            found = self._read_dirs({cid: template.format(id=cid) for cid in missing})
            if found:
                self._layout = template
            out.update(found)
            missing = [cid for cid in missing if cid not in found]
        if prune:
            self.keep_only(out)
        return out

    def keep_only(self, container_ids: Iterable[str]) -> None:
        """Forget baselines and directories of every container but these (the running ones
        whose cgroups answered): stopped since, or not visible here."""
        keep = set(container_ids)
        for gone in set(self._previous) - keep:
            del self._previous[gone]
        for gone in set(self._dirs) - keep:
            del self._dirs[gone]
        for gone in set(self._slow) - keep:
            del self._slow[gone]
        self._idle &= keep
        if len(self._paths) > 4 * len(keep) + 64:
            self._paths.clear()

    def _slow_due(self, cid: str) -> bool:
        """Whether this container's limit and memory.stat are read this refresh: always for
        one not known idle (new, or CPU time or usage moved at its last reading), else every
        SLOW_EVERY refreshes (a ``docker update`` of an idle container's limit shows within
        that many), at a turn of its own so that they spread over the refreshes."""
        return (
            cid not in self._idle
            or cid not in self._slow
            or (self._round + hash(cid)) % SLOW_EVERY == 0
        )

    def _read_dirs(self, dirs: dict[str, str]) -> dict[str, ContainerStats]:
        """Containers' stats from the given cgroup directories, in one ``read_files`` call
        (locally a second, small one: the slow files of containers that turned busy)."""
        turns = self.machine.is_local
        slow = {cid: not turns or self._slow_due(cid) for cid in dirs}
        paths = [
            path
            for cid, rel in dirs.items()
            for path in (self._files(rel) if slow[cid] else self._files(rel)[:2])
        ]
        if not paths:
            return {}
        before = self._clock()
        texts = self.machine.read_files(paths)
        # Over SSH the files were read somewhere between the two clock readings.
        now = (before + self._clock()) / 2
        firsts: dict[str, tuple[int | None, int | None]] = {}
        late: list[str] = []
        for cid, rel in dirs.items():
            files = self._files(rel)
            cpu_ns, usage = firsts[cid] = (
                self._cpu_ns(texts.get(files[0])),
                _int_of(texts.get(files[1])),
            )
            if not slow[cid] and not self._same_as_before(cid, cpu_ns, usage):
                late.append(cid)
        if late:
            # Woke since its last reading: its page cache may have moved with its usage.
            texts.update(
                self.machine.read_files([p for cid in late for p in self._files(dirs[cid])[2:]])
            )
            slow.update(dict.fromkeys(late, True))
        out: dict[str, ContainerStats] = {}
        for cid, rel in dirs.items():
            files = self._files(rel)
            cpu_ns, usage = firsts[cid]
            slow_texts = (texts.get(files[2]), texts.get(files[3])) if slow[cid] else None
            stats = self._parse(cid, cpu_ns, usage, slow_texts, now)
            if stats is not None:
                self._dirs[cid] = rel
                out[cid] = stats
        return out

    def _cpu_ns(self, text: str | None) -> int | None:
        if self.mounts.version == 1:
            return _int_of(text)
        usec = _stat_of(text, "usage_usec")
        return None if usec is None else usec * 1000

    def _same_as_before(self, cid: str, cpu_ns: int | None, usage: int | None) -> bool:
        before = self._previous.get(cid)
        return before is not None and before.cpu_ns == cpu_ns and before.usage == usage

    def _parse(
        self,
        cid: str,
        cpu_ns: int | None,
        usage: int | None,
        slow_texts: tuple[str | None, str | None] | None,
        now: float,
    ) -> ContainerStats | None:
        """One container's figures; ``slow_texts`` (limit, memory.stat) None: not read this
        time, the last values stand."""
        if cpu_ns is None and usage is None:
            return None
        if slow_texts is not None:
            limit_text, stat_text = slow_texts
            key = "total_inactive_file" if self.mounts.version == 1 else "inactive_file"
            limit, inactive = self._slow[cid] = (_int_of(limit_text), _stat_of(stat_text, key))
        else:
            limit, inactive = self._slow[cid]
        cpu_percent: float | None = None
        before = self._previous.get(cid)
        if self._same_as_before(cid, cpu_ns, usage):
            self._idle.add(cid)
        else:
            self._idle.discard(cid)
        if cpu_ns is not None:
            if before is not None and now > before.at and cpu_ns >= before.cpu_ns:
                cpu_percent = (cpu_ns - before.cpu_ns) / ((now - before.at) * 1e9) * 100.0
            self._previous[cid] = _Reading(cpu_ns, now, usage)
        memory: int | None = None
        if usage is not None:
            # docker stats subtracts the inactive page cache; do the same so the figures agree.
            memory = usage - inactive if inactive is not None and inactive < usage else usage
        if limit is None or limit >= _UNLIMITED:
            limit = self.host_memory_bytes
        elif self.host_memory_bytes is not None:
            limit = min(limit, self.host_memory_bytes)
        return ContainerStats(cid, cpu_percent, memory, limit, source="cgroup")

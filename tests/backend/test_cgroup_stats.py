"""The cgroup reader: path forms for v1/v2 and both drivers (fixture trees), and real containers."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpuconsole.backend.docker.cgroup_stats import CgroupMounts, CgroupStatsReader, find_mounts

from support import wait_for

CID = "4f1c" + "0" * 60
GIB = 1024**3

MOUNTINFO_V1 = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
36 31 0:33 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
"""
MOUNTINFO_V2 = """\
25 30 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate
"""


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_find_mounts_v1_and_v2() -> None:
    v1 = find_mounts(MOUNTINFO_V1)
    assert v1 == CgroupMounts(1, Path("/sys/fs/cgroup/cpu,cpuacct"), Path("/sys/fs/cgroup/memory"))
    v2 = find_mounts(MOUNTINFO_V2)
    assert v2 == CgroupMounts(2, Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup"))
    assert find_mounts("") is None


def _v2_group(root: Path, rel: str, usage_usec: int, current: int, maximum: str) -> Path:
    group = root / rel
    group.mkdir(parents=True, exist_ok=True)
    (group / "cpu.stat").write_text(f"usage_usec {usage_usec}\nuser_usec 1\nsystem_usec 2\n")
    (group / "memory.current").write_text(f"{current}\n")
    (group / "memory.max").write_text(f"{maximum}\n")
    (group / "memory.stat").write_text("anon 100\nfile 4096\ninactive_file 1048576\n")
    return group


@pytest.mark.parametrize(
    "rel", [f"system.slice/docker-{CID}.scope", f"docker/{CID}"], ids=["systemd", "cgroupfs"]
)
def test_v2_cpu_percent_and_memory_like_docker_stats(tmp_path: Path, rel: str) -> None:
    clock = Clock()
    reader = CgroupStatsReader(CgroupMounts(2, tmp_path, tmp_path), 16 * GIB, clock=clock)
    _v2_group(tmp_path, rel, 5_000_000, 11 * 1024 * 1024, "max")
    first = reader.read([CID])[CID]
    # One reading cannot give a rate: CPU is unknown, not 0.
    assert first.cpu_percent is None
    # Inactive page cache is not counted, as in `docker stats`.
    assert first.memory_bytes == 10 * 1024 * 1024
    # "max" means unlimited: the host's memory is the limit, as `docker stats` shows.
    assert first.memory_limit_bytes == 16 * GIB

    clock.now += 2.0
    _v2_group(tmp_path, rel, 5_000_000 + 3_000_000, 11 * 1024 * 1024, str(2 * GIB))
    second = reader.read([CID])[CID]
    assert second.cpu_percent == pytest.approx(150.0)  # 3 s of CPU in 2 s: 1.5 cores
    assert second.memory_limit_bytes == 2 * GIB


def test_v1_systemd_driver(tmp_path: Path) -> None:
    cpu = tmp_path / "cpuacct"
    mem = tmp_path / "memory"
    rel = f"system.slice/docker-{CID}.scope"
    (cpu / rel).mkdir(parents=True)
    (mem / rel).mkdir(parents=True)
    (cpu / rel / "cpuacct.usage").write_text("1000000000\n")
    (mem / rel / "memory.usage_in_bytes").write_text(f"{300 * 1024 * 1024}\n")
    (mem / rel / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    (mem / rel / "memory.stat").write_text(
        f"cache 0\ninactive_file 0\ntotal_inactive_file {100 * 1024 * 1024}\n"
    )
    clock = Clock()
    reader = CgroupStatsReader(CgroupMounts(1, cpu, mem), 8 * GIB, clock=clock)
    assert reader.read([CID])[CID].memory_bytes == 200 * 1024 * 1024
    clock.now += 1.0
    (cpu / rel / "cpuacct.usage").write_text("1250000000\n")
    stats = reader.read([CID])[CID]
    assert stats.cpu_percent == pytest.approx(25.0)
    assert stats.memory_limit_bytes == 8 * GIB


class CountingMachine:
    """The local machine, counting the files each refresh asks for."""

    def __init__(self) -> None:
        from gpuconsole.backend.hosts.local import LocalMachine

        self.inner = LocalMachine()
        self.is_local = True
        self.asked: list[str] = []

    def read_files(self, paths: list[str]) -> dict[str, str]:
        self.asked += paths
        return self.inner.read_files(paths)


def test_idle_containers_read_limit_and_memory_stat_in_turns(tmp_path: Path) -> None:
    """500 idle sleepers cost half the file reads: limit and memory.stat (the kernel's
    costliest file) are read every SLOW_EVERY refreshes for a container that did nothing,
    every refresh for one that did; the figures shown stay those of the files."""
    from gpuconsole.backend.docker.cgroup_stats import SLOW_EVERY

    ids = [f"{i:04x}" + "0" * 60 for i in range(20)]
    for cid in ids:
        _v2_group(tmp_path, f"docker/{cid}", 1_000_000, 11 * 1024 * 1024, "max")
    clock = Clock()
    machine = CountingMachine()
    reader = CgroupStatsReader(CgroupMounts(2, tmp_path, tmp_path), 16 * GIB, clock, machine)  # type: ignore[arg-type]
    asked = []
    for _ in range(2 * SLOW_EVERY + 2):
        machine.asked = []
        out = reader.read(ids)
        clock.now += 2.0
        asked.append(len(machine.asked))
        assert all(out[cid].memory_bytes == 10 * 1024 * 1024 for cid in ids)
    # The first two readings read everything; after that about 2 files a container, and each
    # container's slow files once every SLOW_EVERY refreshes.
    assert asked[:2] == [4 * len(ids)] * 2
    steady = asked[2:]
    assert sum(steady) == len(steady) * 2 * len(ids) + 2 * len(ids) * len(steady) // SLOW_EVERY
    # One container turns busy: its page cache grows, its usage too; shown at the next refresh.
    busy = ids[3]
    _v2_group(tmp_path, f"docker/{busy}", 3_000_000, 30 * 1024 * 1024, "max")
    (tmp_path / f"docker/{busy}/memory.stat").write_text("anon 1\nfile 2\ninactive_file 4194304\n")
    machine.asked = []
    out = reader.read(ids)
    clock.now += 2.0
    assert len(machine.asked) < 3 * len(ids)  # the woken one's slow files, not every one's
    assert out[busy].cpu_percent == pytest.approx(100.0)
    assert out[busy].memory_bytes == 26 * 1024 * 1024  # new usage less the new inactive cache
    # An idle container's limit changed by `docker update` shows within SLOW_EVERY refreshes.
    (tmp_path / f"docker/{ids[5]}/memory.max").write_text(f"{GIB}\n")
    seen = []
    for _ in range(SLOW_EVERY):
        seen.append(reader.read(ids)[ids[5]].memory_limit_bytes)
        clock.now += 2.0
    assert seen[-1] == GIB


def test_missing_cgroup_is_left_out_for_the_api_fallback(tmp_path: Path) -> None:
    reader = CgroupStatsReader(CgroupMounts(2, tmp_path, tmp_path), GIB)
    assert reader.read([CID]) == {}


def test_real_containers_busy_and_idle(make_container, local_host) -> None:  # type: ignore[no-untyped-def]
    busy = make_container("while :; do :; done")
    idle = make_container("sleep 3600", mem_limit="64m")
    ids = [busy.id, idle.id]
    stats = local_host.measured_stats(ids, window=1.0)
    assert stats[busy.id].source == "cgroup"
    # A shell spinning in a loop keeps about one core busy (CI machines have 2 cores).
    assert stats[busy.id].cpu_percent is not None and stats[busy.id].cpu_percent > 40
    assert stats[idle.id].cpu_percent is not None and stats[idle.id].cpu_percent < 10
    assert stats[idle.id].memory_limit_bytes == 64 * 1024 * 1024
    host_memory = local_host.status().memory_bytes
    assert stats[busy.id].memory_limit_bytes == host_memory
    assert 0 < (stats[idle.id].memory_bytes or 0) < 64 * 1024 * 1024


def test_real_memory_agrees_with_the_stats_api(make_container, local_host) -> None:  # type: ignore[no-untyped-def]
    # Put 20 MiB in the container's tmpfs so there is something to measure.
    c = make_container("head -c 20971520 /dev/zero > /dev/shm/blob; sleep 3600")
    wait_for(
        lambda: (
            (getattr(local_host.stats([c.id]).get(c.id), "memory_bytes", 0) or 0)
            >= 20 * 1024 * 1024
        ),
        what="the container to fill 20 MiB",
    )
    ours = local_host.stats([c.id])[c.id].memory_bytes
    api = local_host._api_stats([c.id])[c.id]
    assert api.source == "api"
    assert ours is not None and api.memory_bytes is not None
    assert abs(ours - api.memory_bytes) <= 0.05 * api.memory_bytes
    assert api.memory_limit_bytes == local_host.stats([c.id])[c.id].memory_limit_bytes


def test_refresh_reading_cgroups_while_the_engine_lists(make_container, local_host) -> None:  # type: ignore[no-untyped-def]
    """With no event stream the refresh lists every container and, meanwhile, reads the
    cgroups of those that ran last time: a container started or stopped in between must still
    come out right, and every running container's CPU % must keep its baseline from one
    refresh to the next (a CPU column of dashes otherwise)."""
    first = make_container("sleep 3600")
    local_host.snapshot(all=True)
    assert first.id in local_host._last_running  # the next refresh reads it ahead
    second = make_container("sleep 3600")
    snap = local_host.snapshot(all=True)
    assert snap.stats[first.id].cpu_percent is not None
    assert snap.stats[second.id].memory_bytes
    first.stop(timeout=0)
    third = make_container("sleep 3600")
    snap = local_host.snapshot(all=True)
    assert first.id not in snap.stats
    assert snap.stats[second.id].cpu_percent is not None
    assert third.id in snap.stats
    snap = local_host.snapshot(all=True)
    assert snap.stats[second.id].cpu_percent is not None
    assert snap.stats[third.id].cpu_percent is not None
    assert not local_host._cgroups.baseline_times([first.id])

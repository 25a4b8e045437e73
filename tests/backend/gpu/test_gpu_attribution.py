"""Attribution of GPU processes to containers from fixture /proc trees (cgroup v1 and v2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpuconsole.backend.gpu.attribution import (
    attribute_gpu_processes,
    container_id_from_cgroup,
    owner_of,
)
from gpuconsole.backend.gpu.models import GpuProcess, GpuSample, GpuSnapshot, GpuSourceState
from gpuconsole.backend.models import GpuRequest

A, B, C, D, E, F = (ch * 64 for ch in "abcdef")
GIB = 1024**3

CGROUPS = {
    # cgroup v1, cgroupfs driver: every hierarchy names the container.
    100: "12:memory:/docker/{A}\n11:cpu,cpuacct:/docker/{A}\n1:name=systemd:/docker/{A}\n",
    # cgroup v2, systemd driver.
    200: "0::/system.slice/docker-{B}.scope\n",
    # a host process in a login session.
    300: "0::/user.slice/user-1000.slice/session-3.scope\n",
    # a CI job's cgroup: 64 hex, but not a Docker container of this engine.
    400: "0::/actions_job/{C}\n",
    # a container of the engine running inside that CI job (nested prefix).
    500: "0::/actions_job/{C}/docker/{D}\n",
    # a Kubernetes pod container (cgroup v1): hex, but no Docker form.
    600: (
        "12:memory:/kubepods/besteffort/pod1234/{E}\n"
        "1:name=systemd:/kubepods/besteffort/pod1234/{E}\n"
    ),
    # cgroup v1, systemd driver.
    800: (
        "12:memory:/system.slice/docker-{F}.scope\n1:name=systemd:/system.slice/docker-{F}.scope\n"
    ),
}
COMMS = {100: "python", 200: "torchrun", 300: "python3", 400: "runner", 500: "pt_main_thread"}


@pytest.fixture
def proc(tmp_path: Path) -> Path:
    for pid, text in CGROUPS.items():
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "cgroup").write_text(text.format(A=A, B=B, C=C, D=D, E=E, F=F))
        if pid in COMMS:
            (tmp_path / str(pid) / "comm").write_text(COMMS[pid] + "\n")
    return tmp_path


@pytest.mark.parametrize(
    ("pid", "container"),
    [(100, A), (200, B), (300, None), (400, None), (500, D), (600, None), (800, F)],
)
def test_container_of_each_cgroup_form(proc: Path, pid: int, container: str | None) -> None:
    assert owner_of(pid, proc).container_id == container


def test_known_ids_accept_other_forms_but_not_unknown_hex(proc: Path) -> None:
    known = {C[:12], E}
    assert owner_of(600, proc, known).container_id == E
    assert owner_of(400, proc, known).container_id == C[:12]  # short ids match by prefix
    assert owner_of(300, proc, known).container_id is None
    assert container_id_from_cgroup(f"0::/kubepods/pod1/{E}\n", {A}) is None


def test_host_processes_have_their_command_name_and_vanished_pids_are_marked(proc: Path) -> None:
    host = owner_of(300, proc)
    assert (host.container_id, host.command, host.visible) == (None, "python3", True)
    gone = owner_of(700, proc)
    assert (gone.container_id, gone.command, gone.visible) == (None, None, False)


def snapshot(*procs: GpuProcess, replayed: bool = False) -> GpuSnapshot:
    gpus = (GpuSample(0, "GPU-zero", "H100"), GpuSample(1, "GPU-one", "H100"))
    return GpuSnapshot("local", "nvml", GpuSourceState.OK, 1.0, gpus, procs, replayed=replayed)


def test_per_container_use_beside_reservation(proc: Path) -> None:
    snap = snapshot(
        GpuProcess(100, 0, "GPU-zero", 1 * GIB),
        GpuProcess(100, 1, "GPU-one", 2 * GIB),
        GpuProcess(200, 1, "GPU-one", 5 * GIB),
        GpuProcess(300, 0, "GPU-zero", 7 * GIB),
        GpuProcess(500, 1, "GPU-one", None, process_name="/usr/bin/python3"),
    )
    idle, by_uuid = "9" * 64, "8" * 64
    requests = {
        A: GpuRequest(device_ids=("0",)),
        B: GpuRequest(all=True),
        idle: GpuRequest(count=1),
        by_uuid: GpuRequest(device_ids=("GPU-one",)),
    }
    result = attribute_gpu_processes(snap, requests, proc_root=proc)

    a = result.usage_of(A)
    assert a is not None
    assert a.memory_used_bytes == 3 * GIB
    assert a.used_indices == (0, 1) and a.requested_indices == (0,)  # uses a GPU it did not ask
    assert not a.idle_reservation
    b = result.usage_of(B)
    assert b is not None and b.requested_indices == (0, 1) and b.used_indices == (1,)
    idle_usage = result.usage_of(idle)
    assert idle_usage is not None and idle_usage.idle_reservation
    assert idle_usage.requested_indices is None  # "--gpus 1": the runtime picked which
    uuid_usage = result.usage_of(by_uuid)
    assert uuid_usage is not None and uuid_usage.requested_indices == (1,)
    assert uuid_usage.idle_reservation
    d = result.usage_of(D)
    assert d is not None and d.unreserved_use and d.memory_used_bytes is None

    assert [(p.process.pid, p.command) for p in result.host_processes] == [(300, "python3")]
    assert result.container_of(200) == B
    assert result.container_of(300) is None


def test_a_container_with_no_request_and_no_process_is_not_listed(proc: Path) -> None:
    result = attribute_gpu_processes(snapshot(), {A: GpuRequest()}, proc_root=proc)
    assert result.containers == ()


def test_replayed_pids_are_not_looked_up_on_this_host(proc: Path) -> None:
    snap = snapshot(GpuProcess(100, 0, "GPU-zero", GIB), replayed=True)
    result = attribute_gpu_processes(snap, {A: GpuRequest(all=True)}, proc_root=proc)
    assert result.container_of(100) is None
    usage = result.usage_of(A)
    assert usage is not None and usage.idle_reservation

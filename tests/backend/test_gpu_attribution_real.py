"""Attribution with real container PIDs from the real engine (cgroup v1 on the CI machine)."""

from __future__ import annotations

import os
from pathlib import Path

from gpuconsole.backend.gpu import (
    GpuProcess,
    GpuSample,
    GpuSnapshot,
    GpuSourceState,
    attribute_gpu_processes,
)
from gpuconsole.backend.models import GpuRequest

GIB = 1024**3


def _snapshot(*procs: GpuProcess) -> GpuSnapshot:
    return GpuSnapshot(
        host="local",
        source="test",
        state=GpuSourceState.OK,
        timestamp=1.0,
        gpus=(
            GpuSample(0, "GPU-0", "H100", 0, 80 * GIB),
            GpuSample(1, "GPU-1", "H100", 0, 80 * GIB),
        ),
        processes=procs,
    )


def test_real_container_pids_map_to_their_containers(make_container, local_host) -> None:  # type: ignore[no-untyped-def]
    a = make_container()
    b = make_container("sleep 3600 & sleep 3600")  # the shell's child is in the same cgroup
    a_pid = a.attrs["State"]["Pid"]
    b_pid = b.attrs["State"]["Pid"]
    children = Path(f"/proc/{b_pid}/task/{b_pid}/children").read_text()
    b_children = [int(p) for p in children.split()]
    me = os.getpid()
    snap = _snapshot(
        GpuProcess(a_pid, 0, "GPU-0", 2 * GIB),
        GpuProcess(b_children[0], 1, "GPU-1", 5 * GIB),
        GpuProcess(me, 1, "GPU-1", GIB),
    )
    running = local_host.list_containers(all=False)
    requests = {
        **local_host.gpu_requests([c.id for c in running]),
        # A reservation with nothing running on it (this engine cannot start GPU containers).
        a.id: GpuRequest(device_ids=("0", "1")),
    }
    result = attribute_gpu_processes(snap, requests, known_ids=[c.id for c in running])
    assert result.container_of(a_pid) == a.id
    assert result.container_of(b_children[0]) == b.id
    (host_proc,) = result.host_processes
    assert host_proc.process.pid == me
    assert host_proc.command == Path("/proc/self/comm").read_text().strip()  # named by its comm
    usage_a = result.usage_of(a.id)
    assert usage_a is not None and usage_a.used_indices == (0,)
    assert usage_a.requested_indices == (0, 1) and not usage_a.idle_reservation
    usage_b = result.usage_of(b.id)
    assert usage_b is not None and usage_b.memory_used_bytes == 5 * GIB
    assert usage_b.unreserved_use  # uses a GPU it never asked for


def test_reserved_but_unused_is_an_idle_reservation(make_container) -> None:  # type: ignore[no-untyped-def]
    c = make_container()
    result = attribute_gpu_processes(_snapshot(), {c.id: GpuRequest(all=True)})
    usage = result.usage_of(c.id)
    assert usage is not None and usage.idle_reservation and usage.requested_indices == (0, 1)

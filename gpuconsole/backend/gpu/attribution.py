"""Which container owns each GPU process, and what each container holds versus what it reserved.

NVML and nvidia-smi report host PIDs only; the one link from a PID to a container is its cgroup.
Docker puts a container's processes in ``/docker/<64-hex id>`` (cgroupfs driver, cgroup v1 and
v2) or ``/system.slice/docker-<id>.scope`` (systemd driver). Other 64-hex path parts (a CI job's
``/actions_job/<id>``, a Kubernetes pod) are not Docker containers of this engine, so a bare hex
component only counts when it is one of the engine's known container ids. Everything else is a
host process, named by ``/proc/<pid>/comm``.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gpuconsole.backend.gpu.models import GpuProcess, GpuSnapshot
from gpuconsole.backend.models import GpuRequest

if TYPE_CHECKING:
    from gpuconsole.backend.hosts.machine import Machine

_HEX64 = re.compile(r"[0-9a-f]{64}")
_SYSTEMD_SCOPE = re.compile(r"docker-([0-9a-f]{64})\.scope")


def _docker_form_ids(path: str) -> list[str]:
    parts = path.split("/")
    found = []
    for i, part in enumerate(parts):
        if part == "docker" and i + 1 < len(parts) and _HEX64.fullmatch(parts[i + 1]):
            found.append(parts[i + 1])
        else:
            scope = _SYSTEMD_SCOPE.fullmatch(part)
            if scope:
                found.append(scope.group(1))
    return found


def _match_known(candidate: str, known: Collection[str]) -> str | None:
    if candidate in known:
        return candidate
    for known_id in known:
        if len(known_id) >= 12 and candidate.startswith(known_id):
            return known_id
    return None


def container_id_from_cgroup(text: str, known_ids: Collection[str] | None = None) -> str | None:
    """The Docker container id in a ``/proc/<pid>/cgroup`` text (v1 or v2), or None.

    With ``known_ids`` (the engine's containers), any 64-hex id in the path that the engine knows
    wins, so runtimes with other scope names still attribute; the innermost match is used when
    containers nest (Docker in Docker, CI jobs).
    """
    paths = [line.split(":", 2)[2] for line in text.splitlines() if line.count(":") >= 2]
    for path in paths:
        if known_ids:
            for candidate in reversed(_HEX64.findall(path)):
                known = _match_known(candidate, known_ids)
                if known is not None:
                    return known
        docker = _docker_form_ids(path)
        if docker:
            return docker[-1]
    return None


@dataclass(frozen=True, slots=True)
class ProcessOwner:
    """Who a host PID belongs to. ``visible`` is False when /proc has no such PID here
    (it exited, or the console runs in a PID namespace that does not show host processes)."""

    pid: int
    container_id: str | None
    command: str | None
    visible: bool


def owner_of(
    pid: int, proc_root: Path = Path("/proc"), known_ids: Collection[str] | None = None
) -> ProcessOwner:
    return owners_of([pid], proc_root=proc_root, known_ids=known_ids)[pid]


def owner_from_texts(
    pid: int, cgroup: str | None, comm: str | None, known_ids: Collection[str] | None = None
) -> ProcessOwner:
    """Who owns ``pid``, from its /proc/<pid>/cgroup and comm as read on its host."""
    if cgroup is None:
        return ProcessOwner(pid, None, None, visible=False)
    command = comm.strip() if comm is not None else None
    return ProcessOwner(pid, container_id_from_cgroup(cgroup, known_ids), command, visible=True)


def owners_of(
    pids: Collection[int],
    *,
    machine: Machine | None = None,
    proc_root: Path = Path("/proc"),
    known_ids: Collection[str] | None = None,
) -> dict[int, ProcessOwner]:
    """Owners of many PIDs from ONE read of their /proc files on the machine they run on."""
    if machine is None:
        from gpuconsole.backend.hosts.local import LocalMachine

        machine = LocalMachine()
    paths = {
        pid: (str(proc_root / str(pid) / "cgroup"), str(proc_root / str(pid) / "comm"))
        for pid in pids
    }
    texts = machine.read_files([p for pair in paths.values() for p in pair]) if paths else {}
    return {
        pid: owner_from_texts(pid, texts.get(cg), texts.get(comm), known_ids)
        for pid, (cg, comm) in paths.items()
    }


@dataclass(frozen=True, slots=True)
class AttributedProcess:
    """A GPU process row as the console shows it: the process, its container or its command."""

    process: GpuProcess
    container_id: str | None
    command: str | None


@dataclass(frozen=True, slots=True)
class ContainerGpuUsage:
    """One container's GPUs: what it asked for beside what it really holds."""

    container_id: str
    request: GpuRequest
    #: GPU indices the request names; None when it asks for a count (the runtime picks which).
    requested_indices: tuple[int, ...] | None
    used_indices: tuple[int, ...]
    memory_used_bytes: int | None
    pids: tuple[int, ...]

    @property
    def idle_reservation(self) -> bool:
        """Reserved GPUs but runs nothing on any: a GPU others could be using."""
        return not self.request.none and not self.pids

    @property
    def unreserved_use(self) -> bool:
        """Uses GPUs without having asked (e.g. NVIDIA_VISIBLE_DEVICES=all in the image)."""
        return self.request.none and bool(self.pids)


@dataclass(frozen=True, slots=True)
class GpuAttribution:
    processes: tuple[AttributedProcess, ...]
    containers: tuple[ContainerGpuUsage, ...]

    @property
    def host_processes(self) -> tuple[AttributedProcess, ...]:
        return tuple(p for p in self.processes if p.container_id is None)

    def container_of(self, pid: int) -> str | None:
        for p in self.processes:
            if p.process.pid == pid:
                return p.container_id
        return None

    def usage_of(self, container_id: str) -> ContainerGpuUsage | None:
        for usage in self.containers:
            if usage.container_id == container_id:
                return usage
        return None


def requested_indices(request: GpuRequest, snapshot: GpuSnapshot) -> tuple[int, ...] | None:
    """Resolve ``--gpus`` to GPU indices: ``all``, indices ("0") or UUIDs ("GPU-...")."""
    if request.all:
        return tuple(g.index for g in snapshot.gpus)
    if not request.device_ids:
        return None if request.count else ()
    by_uuid = {g.uuid: g.index for g in snapshot.gpus}
    indices = set()
    for device in request.device_ids:
        device = device.strip()
        if device.isdigit():
            indices.add(int(device))
        elif device in by_uuid:
            indices.add(by_uuid[device])
        else:
            indices.update(i for uuid, i in by_uuid.items() if device and uuid.startswith(device))
    return tuple(sorted(indices))


def attribute_gpu_processes(
    snapshot: GpuSnapshot,
    requests: Mapping[str, GpuRequest] | None = None,
    *,
    proc_root: Path = Path("/proc"),
    known_ids: Collection[str] | None = None,
    machine: Machine | None = None,
) -> GpuAttribution:
    """Join a snapshot's GPU processes to containers and to the containers' GPU requests.

    ``requests`` maps container id -> its GpuRequest (running containers); those ids also count
    as known ids. The PIDs are the GPU host's, so their /proc is read through ``machine`` (this
    computer when None) — or not at all when the source already read it with the process list
    (``snapshot.origins``, one remote command for both). A replayed snapshot's PIDs belong to
    another machine, so /proc is not read.
    """
    requests = requests or {}
    known = set(known_ids or ()) | set(requests)
    pids = {proc.pid for proc in snapshot.processes}
    owners: dict[int, ProcessOwner]
    if snapshot.replayed:
        owners = {pid: ProcessOwner(pid, None, None, visible=False) for pid in pids}
    elif snapshot.origins or snapshot.origins_read:
        texts = {pid: (cgroup, comm) for pid, cgroup, comm in snapshot.origins}
        owners = {
            pid: owner_from_texts(pid, *texts.get(pid, (None, None)), known or None) for pid in pids
        }
    else:
        owners = owners_of(pids, machine=machine, proc_root=proc_root, known_ids=known or None)
    rows = []
    for proc in snapshot.processes:
        owner = owners[proc.pid]
        command = owner.command
        if command is None and proc.process_name:
            command = proc.process_name.rsplit("/", 1)[-1]
        rows.append(AttributedProcess(proc, owner.container_id, command))

    ids = list(dict.fromkeys([*(r.container_id for r in rows if r.container_id), *requests]))
    usages = []
    for cid in ids:
        request = requests.get(cid, GpuRequest())
        mine = [r for r in rows if r.container_id == cid]
        if request.none and not mine:
            continue
        known_mem = [r.process.used_memory_bytes for r in mine]
        memory = (
            None if mine and all(m is None for m in known_mem) else sum(m or 0 for m in known_mem)
        )
        usages.append(
            ContainerGpuUsage(
                container_id=cid,
                request=request,
                requested_indices=requested_indices(request, snapshot),
                used_indices=tuple(sorted({r.process.gpu_index for r in mine})),
                memory_used_bytes=memory,
                pids=tuple(sorted({r.process.pid for r in mine})),
            )
        )
    return GpuAttribution(tuple(rows), tuple(usages))

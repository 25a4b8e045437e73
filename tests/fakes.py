"""A small in-memory DockerHost for snapshot tests, whose pictures must not depend on timing.

Everything else tests against the real engine; this exists only so SVG snapshots are stable
(real containers say "Up 3 seconds" one run and "Up 4 seconds" the next).
"""

from __future__ import annotations

from dataclasses import replace

from gpuconsole.backend.errors import ContainerNotFound, HostUnreachable
from gpuconsole.backend.hosts.local import LocalMachine
from gpuconsole.backend.models import (
    NO_GPUS,
    ContainerDetails,
    ContainerStats,
    ContainerSummary,
    EngineState,
    GpuRequest,
    HostSnapshot,
    HostStatus,
    Mount,
    PortMapping,
)

GIB = 1024**3
MIB = 1024**2


def _c(
    name: str, image: str, state: str, status: str, created: float, **kw: object
) -> ContainerSummary:
    return ContainerSummary(
        host="local",
        id=(name.encode().hex() * 8)[:64],
        name=name,
        image=image,
        state=state,
        status=status,
        created=created,
        **kw,  # type: ignore[arg-type]
    )


CONTAINERS = (
    _c(
        "jupyter-ana-1",
        "gpuconsole/pytorch-jupyter:2.6.0-cuda12.4-cudnn9-runtime",
        "running",
        "Up 3 hours",
        300,
        ports=(PortMapping(8888, "tcp", "127.0.0.1", 8888),),
        labels=(("gpuconsole.variant", "jupyter"),),
        mounts=(Mount("bind", "/home/ana/notebooks", "/workspace/notebooks"),),
    ),
    _c(
        "pytorch-train",
        "gpuconsole/pytorch-ssh:2.6.0-cuda12.4-cudnn9-runtime",
        "running",
        "Up 2 days",
        200,
        ports=(PortMapping(22, "tcp", "127.0.0.1", 2222),),
        labels=(("gpuconsole.variant", "ssh"),),
        mounts=(Mount("bind", "/data/projects", "/home/aiuser/projects"),),
    ),
    _c("etl-once", "debian:bookworm-slim", "exited", "Exited (1) 2 minutes ago", 100),
)

STATS = {
    CONTAINERS[0].id: ContainerStats(CONTAINERS[0].id, 12.5, 3 * GIB + 200 * MIB, 32 * GIB),
    CONTAINERS[1].id: ContainerStats(CONTAINERS[1].id, 387.2, 21 * GIB, 64 * GIB),
}
GPUS = {
    CONTAINERS[0].id: GpuRequest(device_ids=("0",)),
    CONTAINERS[1].id: GpuRequest(all=True),
    CONTAINERS[2].id: NO_GPUS,
}


class FakeHost:
    """Answers from fixed data; ``down=True`` behaves like an engine that is not there."""

    def __init__(self, down: bool = False) -> None:
        self.down = down
        self.containers = list(CONTAINERS)
        self.calls: list[tuple[str, str]] = []

    @property
    def name(self) -> str:
        return "local"

    @property
    def address(self) -> str:
        return "unix:///var/run/docker.sock"

    @property
    def machine(self) -> LocalMachine:
        return LocalMachine()

    def _check(self) -> None:
        if self.down:
            raise HostUnreachable(
                "local",
                self.address,
                "no engine is listening there",
                "start the engine (sudo systemctl start docker) or set DOCKER_HOST",
            )

    def status(self) -> HostStatus:
        return HostStatus("local", self.address, EngineState.UP, "27.5.1", "1.47", 64, 503 * GIB)

    def list_containers(self, all: bool = True) -> tuple[ContainerSummary, ...]:
        self._check()
        return tuple(c for c in self.containers if all or c.running)

    def stats(self, container_ids: list[str]) -> dict[str, ContainerStats]:
        return {i: STATS[i] for i in container_ids if i in STATS}

    def gpu_requests(self, container_ids: list[str]) -> dict[str, GpuRequest]:
        return {i: GPUS[i] for i in container_ids if i in GPUS}

    def snapshot(self, all: bool = True, stats: bool = True) -> HostSnapshot:
        containers = self.list_containers(all)
        ids = [c.id for c in containers]
        return HostSnapshot(
            self.status(),
            containers,
            self.stats([c.id for c in containers if c.running]),
            self.gpu_requests(ids),
            0.0,
        )

    def _find(self, ref: str) -> ContainerSummary:
        for c in self.containers:
            if ref in (c.id, c.name):
                return c
        raise ContainerNotFound(ref, "local")

    def inspect(self, ref: str) -> ContainerDetails:
        c = self._find(ref)
        return ContainerDetails(
            summary=c,
            command=("jupyter", "notebook"),
            entrypoint=(),
            created_iso="2026-11-26T09:00:00Z",
            started_at="2026-11-26T09:00:01Z",
            finished_at=None,
            exit_code=0,
            restart_policy="unless-stopped",
            memory_limit_bytes=32 * GIB,
            nano_cpus=8_000_000_000,
            shm_size_bytes=8 * GIB,
            gpus=GPUS.get(c.id, NO_GPUS),
            env=(("JUPYTER_TOKEN", "s3cr3t-token-value"), ("PATH", "/usr/local/bin:/usr/bin")),
            labels=c.labels,
            mounts=c.mounts,
            ports=c.ports,
            ulimits=(("memlock", -1, -1), ("stack", 67108864, 67108864)),
        )

    def _act(self, action: str, ref: str, state: str, status: str) -> None:
        c = self._find(ref)
        self.calls.append((action, c.name))
        i = self.containers.index(c)
        self.containers[i] = replace(c, state=state, status=status)

    def start(self, ref: str) -> None:
        self._act("start", ref, "running", "Up Less than a second")

    def stop(self, ref: str, timeout: int = 10) -> None:
        self._act("stop", ref, "exited", "Exited (0) Less than a second ago")

    def restart(self, ref: str, timeout: int = 10) -> None:
        self._act("restart", ref, "running", "Up Less than a second")

    def remove(self, ref: str, force: bool = False) -> None:
        c = self._find(ref)
        self.calls.append(("remove", c.name))
        self.containers.remove(c)

    def watch_events(self, on_event: object) -> _NoWatch:
        return _NoWatch()

    def close(self) -> None:
        pass


class _NoWatch:
    def close(self) -> None:
        pass


H100_RECORDING = (
    __import__("pathlib").Path(__file__).parent
    / "fixtures"
    / "gpu"
    / "h100"
    / "nvml-recording-h100.jsonl"
)


class SteppedReplay:
    """The real H100 recording through the real ReplaySource, on a clock that moves ``step``
    seconds per sample and stops after ``limit`` samples, so pictures and assertions do not
    depend on how fast the machine runs."""

    def __init__(self, step: float = 1.0, limit: int = 40, start: float = 0.0) -> None:
        from gpuconsole.backend.gpu import ReplaySource

        self.calls = 0
        self.limit = limit
        self.step = step
        self._now = start
        self._inner = ReplaySource.from_file(
            H100_RECORDING, clock=lambda: self._now, wall_clock=lambda: 1_795_713_095.0 + self._now
        )
        self._last = None

    @property
    def name(self) -> str:
        return "replay"

    @property
    def host(self) -> str:
        return "replay"

    @property
    def replayed(self) -> bool:
        return True

    def sample(self):  # type: ignore[no-untyped-def]
        if self.calls < self.limit:
            self.calls += 1
            self._last = self._inner.sample()
            self._now += self.step
        return self._last

    def close(self) -> None:
        pass


class StaticGpuSource:
    """One fixed GpuSnapshot, for GPU processes that must carry real container PIDs."""

    def __init__(self, snapshot: object) -> None:
        self.snapshot = snapshot

    @property
    def name(self) -> str:
        return "static"

    @property
    def host(self) -> str:
        return "local"

    @property
    def replayed(self) -> bool:
        return False

    def sample(self):  # type: ignore[no-untyped-def]
        return self.snapshot

    def close(self) -> None:
        pass

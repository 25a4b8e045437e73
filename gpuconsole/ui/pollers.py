"""One poller per host: refresh, then wait for the interval or an engine event, never overlapping.

The poller runs in a Textual thread worker; everything it learns crosses to the event loop as an
immutable snapshot inside a message. Engine events (start, die, destroy, ...) wake it at once,
so state changes show immediately while CPU/memory follow the slower interval.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from textual.message import Message

from gpuconsole.backend.docker.host import DockerHost, EventWatch
from gpuconsole.backend.errors import GpuconsoleError, HostUnreachable
from gpuconsole.backend.gpu import GpuSource
from gpuconsole.backend.models import EngineState, HostSnapshot, HostStatus
from gpuconsole.ui.messages import GpuUpdate, HostDown, PollFailed, SnapshotReady

#: Engine events that change what the table shows; exec_*, top, attach and the like do not.
_RELEVANT = frozenset(
    {
        "create",
        "start",
        "restart",
        "die",
        "stop",
        "kill",
        "destroy",
        "pause",
        "unpause",
        "rename",
        "update",
        "oom",
        "health_status",
        "reconnect",
    }
)


class HostPoller:
    def __init__(
        self,
        host: DockerHost,
        post: Callable[[Message], object],
        interval: float = 2.0,
        down_interval: float = 2.0,
        show_all: bool = True,
    ) -> None:
        self.host = host
        self._post = post
        self.interval = interval
        self.down_interval = down_interval
        self.show_all = show_all
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._watch: EventWatch | None = None
        self.failures = 0

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()
        if self._watch is not None:
            self._watch.close()

    def _on_event(self, action: str, container_id: str) -> None:
        base = action.split(":", 1)[0].strip()
        if base in _RELEVANT:
            self._wake.set()

    def run(self) -> None:
        """The worker body: loops until stop()."""
        while not self._stopped.is_set():
            self._wake.clear()
            wait = self.interval
            try:
                snapshot = self.host.snapshot(all=self.show_all)
            except HostUnreachable as exc:
                self.failures += 1
                wait = self.down_interval
                status = HostStatus(
                    self.host.name,
                    self.host.address,
                    EngineState.DOWN,
                    error=exc.reason,
                    hint=exc.hint,
                )
                self._post(HostDown(status, self.failures))
            except GpuconsoleError as exc:
                self._post(PollFailed(str(exc)))
            except Exception as exc:  # never let a poller die: show it and go on
                self._post(PollFailed(f"refresh failed: {type(exc).__name__}: {exc}"))
            else:
                self.failures = 0
                self._post(SnapshotReady(snapshot))
                if self._watch is None:
                    self._watch = self.host.watch_events(self._on_event)
            if self._stopped.is_set():
                break
            self._wake.wait(wait)


class GpuPoller:
    """Samples a GPU source at its interval, keeps the history and re-attributes processes.

    Attribution reads /proc for every GPU process, so it runs at a lower rate than sampling.
    The containers' GPU requests and names come from the host poller's latest snapshot.
    """

    def __init__(
        self,
        source: GpuSource,
        post: Callable[[Message], object],
        containers: Callable[[], HostSnapshot | None],
        interval: float = 1.0,
        window_s: float = 600.0,
        attribution_every: float = 2.0,
        replay_name: str | None = None,
    ) -> None:
        from gpuconsole.backend.gpu import GpuHistory

        self.source = source
        self._post = post
        self._containers = containers
        self.interval = interval
        self.history = GpuHistory(interval=interval, window_s=window_s)
        self._attribution_every = attribution_every
        self._replay_name = replay_name
        self._stopped = threading.Event()

    def stop(self) -> None:
        self._stopped.set()

    def run(self) -> None:
        import time

        from gpuconsole.backend.gpu import METRICS, attribute_gpu_processes
        from gpuconsole.ui.gpu_view import GpuView

        attribution = None
        attributed_at = 0.0
        attributed_for: HostSnapshot | None = None
        attributed_pids: tuple[tuple[int, int], ...] = ()
        while not self._stopped.is_set():
            started = time.monotonic()
            try:
                snapshot = self.source.sample()
                self.history.append(snapshot)
                containers = self._containers()
                running = (
                    set()
                    if containers is None
                    else {c.id for c in containers.containers if c.running}
                )
                requests = (
                    {}
                    if containers is None
                    else {cid: req for cid, req in containers.gpus.items() if cid in running}
                )
                names = {} if containers is None else {c.id: c.name for c in containers.containers}
                # Re-attribute at once when the GPU processes or the container list changed (so
                # names, requests and owners always match), and on a timer for PID reuse.
                pids = tuple(sorted((p.pid, p.gpu_index) for p in snapshot.processes))
                if (
                    attribution is None
                    or containers is not attributed_for
                    or pids != attributed_pids
                    or started - attributed_at >= self._attribution_every
                ):
                    attribution = attribute_gpu_processes(
                        snapshot, requests, known_ids=names.keys()
                    )
                    attributed_at = started
                    attributed_for = containers
                    attributed_pids = pids
                host = snapshot.host
                history: dict[tuple[str, str], tuple[float | int | None, ...]] = {
                    (g.uuid, m): self.history.series(host, g.uuid or str(g.index), m)
                    for g in snapshot.gpus
                    for m in METRICS
                }
                stamps = {
                    g.uuid: self.history.timestamps(host, g.uuid or str(g.index))
                    for g in snapshot.gpus
                }
                self._post(
                    GpuUpdate(
                        GpuView(
                            snapshot,
                            history,
                            stamps,
                            attribution,
                            names,
                            self.interval,
                            self._replay_name,
                        )
                    )
                )
            except Exception as exc:  # a source must not take the console down
                self._post(PollFailed(f"GPU sampling failed: {type(exc).__name__}: {exc}"))
            elapsed = time.monotonic() - started
            self._stopped.wait(max(0.05, self.interval - elapsed))
        self.source.close()

"""``gpuconsole record``: the host monitors, headless, writing what they see into the recording.

The monitors sample in their own threads (one slow host never delays another); their events go
through a queue to one writer, which meters them and commits once per sampling interval — so a
``kill -9`` loses at most the last interval. Container lists come from the same monitors,
at a slower pace (engine events still bring a new container in at once); only names, images and
GPU reservations are needed from them.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gpuconsole.accounting.live import LiveFigures
from gpuconsole.accounting.meter import GpuInterval, Meter, OwnerInterval
from gpuconsole.accounting.store import Writer
from gpuconsole.backend.gpu.models import GpuSourceState
from gpuconsole.monitor.events import (
    AlertChanged,
    AlertCommandFailed,
    ContainersUpdated,
    GpusUpdated,
    MonitorEvent,
    RefreshFailed,
)

if TYPE_CHECKING:
    from gpuconsole.backend.hosts.host import Host
    from gpuconsole.monitor.gpu_view import GpuView
    from gpuconsole.settings.config import AlertSettings

log = logging.getLogger("gpuconsole.record")

#: Gaps longer than this many intervals are not bridged (see meter).
MAX_GAP_INTERVALS = 3.0
#: How often raw rows older than a day are rolled up.
ROLLUP_EVERY_S = 300.0


def reservations(view: GpuView) -> dict[str, tuple[int, ...]]:
    """Container id -> GPU indices it reserved: the indices its request names, or (a count the
    runtime resolved) the ones its processes use."""
    out: dict[str, tuple[int, ...]] = {}
    for usage in view.usage().values():
        if usage.request.none:
            continue
        indices = usage.requested_indices
        out[usage.container_id] = indices if indices is not None else usage.used_indices
    return out


@dataclass
class RecorderStats:
    rounds: int = 0
    commits: int = 0
    gpu_rows: int = 0
    owner_rows: int = 0
    errors: list[str] = field(default_factory=list)


class Recorder:
    def __init__(
        self,
        hosts: Sequence[Host],
        writer: Writer,
        *,
        interval: float = 1.0,
        refresh_seconds: float = 60.0,
        live: LiveFigures | None = None,
        on_event: Callable[[MonitorEvent], None] | None = None,
        clock: Callable[[], float] = time.time,
        alerts: AlertSettings | None = None,
    ) -> None:
        self.hosts = tuple(hosts)
        self.writer = writer
        self.interval = interval
        self.refresh_seconds = refresh_seconds
        self.live = live
        self.on_event = on_event
        self.clock = clock
        #: The ``[alerts]`` rules, judged on every sample as the console does: raised and
        #: cleared alerts are logged, and ``[alerts] command`` runs for each (headless alerts).
        self.alerts = alerts
        self.meters = {h.name: Meter(h.name, interval * MAX_GAP_INTERVALS) for h in self.hosts}
        self.names: dict[tuple[str, str], tuple[str, str]] = {}
        #: Host -> ids of its running containers, from the latest list (None: not listed yet).
        self.running: dict[str, set[str]] = {}
        self.stats = RecorderStats()
        self._events: queue.Queue[MonitorEvent] = queue.Queue()
        self._reported: dict[str, str] = {}

    def run(self, stop: threading.Event) -> None:
        """Record until ``stop`` is set; the last batch is committed before returning."""
        from gpuconsole.monitor.fleet import Fleet

        fleet = Fleet(
            self.hosts,
            self._events.put,
            refresh_seconds=self.refresh_seconds,
            gpu_interval=self.interval,
            gpu_window_s=max(4 * self.interval, 4.0),
            show_all=True,
            alerts=self.alerts,
            container_stats=False,
        )
        fleet.start()
        pending_gpus: list[GpuInterval] = []
        pending_owners: list[OwnerInterval] = []
        last_commit = last_rollup = time.monotonic()
        self.writer.rollup(self.clock())
        try:
            while not stop.is_set():
                try:
                    event = self._events.get(timeout=min(1.0, self.interval))
                except queue.Empty:
                    event = None
                while event is not None:
                    self._take(event, pending_gpus, pending_owners)
                    try:
                        event = self._events.get_nowait()
                    except queue.Empty:
                        event = None
                now = time.monotonic()
                if (pending_gpus or pending_owners) and now - last_commit >= self.interval:
                    self._commit(pending_gpus, pending_owners)
                    last_commit = now
                if now - last_rollup >= ROLLUP_EVERY_S:
                    self.writer.rollup(self.clock())
                    last_rollup = now
        finally:
            fleet.stop()
            while True:  # what arrived before the stop still counts
                try:
                    self._take(self._events.get_nowait(), pending_gpus, pending_owners)
                except queue.Empty:
                    break
            if pending_gpus or pending_owners:
                self._commit(pending_gpus, pending_owners)

    def _take(
        self, event: MonitorEvent, gpus: list[GpuInterval], owners: list[OwnerInterval]
    ) -> None:
        if self.on_event is not None:
            self.on_event(event)
        if isinstance(event, ContainersUpdated):
            for c in event.snapshot.containers:
                self.names[(event.host, c.id)] = (c.name, c.image)
            self.running[event.host] = {c.id for c in event.snapshot.containers if c.running}
        elif isinstance(event, GpusUpdated):
            self.stats.rounds += 1
            snapshot = event.view.snapshot
            if snapshot.state not in (GpuSourceState.OK, GpuSourceState.DEGRADED):
                # Starting, stale (old figures repeated) or no telemetry: nothing to count; the
                # next good sample starts a new interval (the meter does not bridge the gap).
                if snapshot.state is not GpuSourceState.STARTING:
                    self._report(event.host, snapshot.error or snapshot.state.value)
                return
            self._reported.pop(event.host, None)
            g, o = self.meters[event.host].observe(
                snapshot,
                event.view.attribution,
                reservations(event.view),
                self.running.get(event.host),
            )
            for cid, name in event.view.names.items():
                self.names.setdefault((event.host, cid), (name, ""))
            gpus.extend(g)
            owners.extend(o)
        elif isinstance(event, RefreshFailed):
            self._report(event.host, event.error)
        elif isinstance(event, AlertChanged):
            a = event.alert
            log.warning("alert %s: %s", "raised" if a.raised else "cleared", a.message)
        elif isinstance(event, AlertCommandFailed):
            log.warning("alerts command failed for %s: %s", event.alert.message, event.error)

    def _report(self, host: str, problem: str) -> None:
        """Once per change of problem per host, not every second."""
        if self._reported.get(host) != problem:
            self._reported[host] = problem
            log.warning("%s: %s", host, problem)
            self.stats.errors.append(f"{host}: {problem}")

    def _commit(self, gpus: list[GpuInterval], owners: list[OwnerInterval]) -> None:
        names: Mapping[tuple[str, str], tuple[str, str]] = self.names
        self.writer.write(gpus, owners, names)
        if self.live is not None:
            self.live.add(gpus, owners, names)
        self.stats.commits += 1
        self.stats.gpu_rows += len(gpus)
        self.stats.owner_rows += len(owners)
        gpus.clear()
        owners.clear()

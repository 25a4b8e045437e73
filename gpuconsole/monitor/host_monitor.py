"""One monitor per host: its containers loop and its GPU loop, joined on that host.

Each loop runs in a daemon thread (a refresh stuck on a hung engine or a dead SSH link must not
hold up quitting) and never overlaps itself: refresh, then wait for the next beat of the interval
(see ``on_the_beat``) or a wake-up.
Engine events (start, die, destroy, ...) wake the containers loop at once, so state changes show
immediately while CPU and memory follow the slower interval. The GPU loop attributes GPU
processes against THIS host's containers (their cgroups are read through this host's machine)
and, when given alert settings, judges every sample against the alert rules (monitor/alerts.py).
Everything learnt leaves as an immutable event through ``emit``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from gpuconsole.backend.docker.live_list import relevant
from gpuconsole.backend.errors import GpuconsoleError, HostUnreachable
from gpuconsole.backend.hosts.machine import MachineUnreachable
from gpuconsole.backend.models import EngineState, HostSnapshot, HostStatus
from gpuconsole.monitor.alerts import AlertTracker
from gpuconsole.monitor.events import (
    AlertChanged,
    ContainersUpdated,
    Emit,
    EngineDown,
    EngineSlow,
    GpusUpdated,
    RefreshFailed,
)
from gpuconsole.monitor.gpu_view import GpuView

if TYPE_CHECKING:
    from gpuconsole.backend.docker.host import EventWatch
    from gpuconsole.backend.gpu import GpuAttribution
    from gpuconsole.backend.hosts.host import Host
    from gpuconsole.monitor.alert_command import AlertCommand
    from gpuconsole.settings.config import AlertSettings


class HostMonitor:
    """Watches one host; ``start()`` launches its loops, ``stop()`` ends them."""

    def __init__(
        self,
        host: Host,
        emit: Emit,
        *,
        refresh_seconds: float = 2.0,
        down_interval: float = 2.0,
        show_all: bool = True,
        gpu_interval: float = 1.0,
        gpu_window_s: float = 600.0,
        attribution_every: float = 2.0,
        replay_name: str | None = None,
        alerts: AlertSettings | None = None,
        alert_command: AlertCommand | None = None,
        clock: Callable[[], float] = time.time,
        container_stats: bool = True,
        slow_after: float = 5.0,
    ) -> None:
        """``alerts``: judge GPU samples against these rules (None or disabled: no alerts);
        ``alert_command``: where raised and cleared alerts are also sent; ``clock``: the alert
        rules' time (tests pass their own); ``slow_after``: a containers refresh still waiting
        after this many seconds is reported (EngineSlow) without waiting for the engine call's
        own timeout — a hung engine must show as such at once, not as the last list."""
        from gpuconsole.backend.gpu import GpuHistory

        self.host = host
        self._emit = emit
        self.interval = refresh_seconds
        #: CPU and memory of the running containers with each refresh (what the table shows;
        #: the headless recorder needs only names, images and GPU requests).
        self.container_stats = container_stats
        self.down_interval = down_interval
        self.show_all = show_all
        self.gpu_interval = gpu_interval
        self.history = GpuHistory(interval=gpu_interval, window_s=gpu_window_s)
        self._attribution_every = attribution_every
        self._replay_name = replay_name
        self._wake = threading.Event()
        self._stopped = threading.Event()
        #: Cleared while the console has handed the terminal to a shell: nothing is drawn then,
        #: so nothing is asked of the host either.
        self._running = threading.Event()
        self._running.set()
        self._watch: EventWatch | None = None
        self.failures = 0
        self.slow_after = slow_after
        #: When the containers refresh in progress began (monotonic), None between refreshes;
        #: guarded by ``_refreshing``, which the watchdog thread waits on.
        self._refresh_since: float | None = None
        self._refreshing = threading.Condition()
        #: The latest containers refresh (read by the GPU loop for attribution).
        self.snapshot: HostSnapshot | None = None
        self._threads: list[threading.Thread] = []
        #: The alert rules over this host's GPU samples (read by the GPU loop only).
        self.alerts: AlertTracker | None = None
        if alerts is not None and alerts.enabled:
            # A gap of a few samples is a slow sample; longer, nobody watched (see alerts.py).
            gap = max(120.0, 5 * gpu_interval)
            self.alerts = AlertTracker(host.name, alerts, clock=clock, max_gap_s=gap)
        self._alert_command = alert_command

    @property
    def name(self) -> str:
        return self.host.name

    def start(self) -> None:
        loops = [("containers", self.run_containers), ("watchdog", self.run_watchdog)]
        if self.host.gpu is not None:
            loops.append(("gpu", self.run_gpus))
        for what, body in loops:
            thread = threading.Thread(target=body, name=f"poll:{what}:{self.name}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def wake(self) -> None:
        """Refresh now, the whole list included (an action's result, a host brought back): an
        engine that keeps its list from events (DockerEngine.relist, reached through any
        wrapper) takes it whole; the others list whole on every refresh anyway."""
        relist = getattr(self.host.engine, "relist", None)
        if callable(relist):
            relist()
        self._wake.set()

    def pause(self) -> None:
        """Stop polling after the refresh in progress (if any) until ``resume``."""
        self._running.clear()

    def resume(self) -> None:
        """Poll again, at once."""
        self._running.set()
        self._wake.set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def stop(self) -> None:
        self._stopped.set()
        self._running.set()
        self._wake.set()
        with self._refreshing:
            self._refreshing.notify_all()
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.close()

    def _on_event(self, action: str, container_id: str) -> None:
        if relevant(action):
            self._wake.set()

    # -- containers ---------------------------------------------------------------------------

    def refresh_once(self) -> float:
        """One containers refresh; returns how long to wait before the next."""
        engine = self.host.engine
        try:
            # The engine's own call, as the DockerHost protocol has it: an engine that keeps
            # its list from events does so beneath it (and pings when it lists nothing).
            snapshot = engine.snapshot(all=self.show_all, stats=self.container_stats)
        except (HostUnreachable, MachineUnreachable) as exc:
            self.failures += 1
            status = HostStatus(
                self.name,
                engine.address,
                EngineState.DOWN,
                error=exc.reason,
                hint=exc.hint,
            )
            timed_out = bool(getattr(exc, "timed_out", False))
            self._emit(EngineDown(self.name, status, self.failures, self.down_interval, timed_out))
            return self.down_interval
        except GpuconsoleError as exc:
            self._emit(RefreshFailed(self.name, str(exc)))
        except Exception as exc:  # never let a loop die: show it and go on
            self._emit(RefreshFailed(self.name, f"refresh failed: {type(exc).__name__}: {exc}"))
        else:
            self.failures = 0
            self.snapshot = snapshot
            self._emit(ContainersUpdated(self.name, snapshot))
            if self._watch is None and not self._stopped.is_set():
                self._watch = engine.watch_events(self._on_event)
        return self.interval

    def run_containers(self) -> None:
        while not self._stopped.is_set():
            self._running.wait()
            if self._stopped.is_set():
                break
            self._wake.clear()
            with self._refreshing:
                self._refresh_since = time.monotonic()
                self._refreshing.notify_all()
            try:
                wait = self.refresh_once()
            finally:
                with self._refreshing:
                    self._refresh_since = None
                    self._refreshing.notify_all()
            if self._stopped.is_set():
                break
            self._wake.wait(on_the_beat(time.monotonic(), wait))

    def run_watchdog(self) -> None:
        """Report a containers refresh that outlives ``slow_after`` (once per refresh).

        A thread of its own that sleeps on a condition: two wake-ups per refresh, nothing in
        between, so a healthy host pays next to nothing for it."""
        reported: float | None = None
        with self._refreshing:
            while not self._stopped.is_set():
                since = self._refresh_since
                if since is None or since == reported:
                    self._refreshing.wait()
                    continue
                late = since + self.slow_after - time.monotonic()
                if late > 0:
                    self._refreshing.wait(late)
                    continue
                reported = since
                self._emit(EngineSlow(self.name, since))

    # -- GPUs ---------------------------------------------------------------------------------

    def run_gpus(self) -> None:
        from gpuconsole.backend.gpu import METRICS, attribute_gpu_processes

        source = self.host.gpu
        assert source is not None
        attribution: GpuAttribution | None = None
        attributed_at = 0.0
        attributed_for: HostSnapshot | None = None
        attributed_pids: tuple[tuple[int, int], ...] = ()
        while not self._stopped.is_set():
            self._running.wait()
            if self._stopped.is_set():
                break
            started = time.monotonic()
            try:
                snapshot = source.sample()
                self.history.append(snapshot)
                containers = self.snapshot
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
                        snapshot, requests, known_ids=names.keys(), machine=self.host.machine
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
                view = GpuView(
                    snapshot,
                    history,
                    stamps,
                    attribution,
                    names,
                    self.gpu_interval,
                    self._replay_name,
                )
                self._emit(GpusUpdated(self.name, view))
            except Exception as exc:  # a source must not take the console down
                self._emit(
                    RefreshFailed(self.name, f"GPU sampling failed: {type(exc).__name__}: {exc}")
                )
            else:
                self._judge(view, containers)
            # On the beat too: a fleet's samples then reach the screen together.
            self._stopped.wait(on_the_beat(time.monotonic(), self.gpu_interval))
        source.close()

    def _judge(self, view: GpuView, containers: HostSnapshot | None) -> None:
        """The alert rules over one sample: what they raise or clear leaves as events (and
        through the alert command). A bug here must not stop the sampling."""
        if self.alerts is None:
            return
        try:
            changes = self.alerts.observe(view, containers)
        except Exception as exc:
            self._emit(RefreshFailed(self.name, f"alert check failed: {type(exc).__name__}: {exc}"))
            return
        for alert in changes:
            self._emit(AlertChanged(self.name, alert))
            if self._alert_command is not None:
                self._alert_command.submit(alert)


def on_the_beat(now: float, interval: float) -> float:
    """How long to wait for the next multiple of ``interval`` on the monotonic clock (at least a
    quarter of it away). Every host of a fleet then refreshes on the same beat, whatever its
    refresh took or an event woke it in between, so the console redraws its table once per
    beat rather than once per host."""
    wait = interval - now % interval
    return wait + interval if wait < interval / 4 else wait

"""``gpuconsole record``: each host's GPU source, headless, written into the recording.

Lean by design — the recorder runs for months beside the work it measures, and on a shared box
a thread waking up can cost more than the sample it takes:

* ONE thread (the round) wakes once per interval, takes every host's latest sample in turn,
  meters it and, where ``[alerts]`` are on, judges it; then commits everything the round
  sampled, for all hosts, in one transaction — so a ``kill -9`` loses at most the last
  interval. No history and no view of the whole host per sample: the console's monitor keeps
  those for drawing. Over SSH the round also reads each host's nvidia-smi stream as it samples
  it (``gpuconsole record`` opens its hosts with ``gpu_read_in_sample``): no reader thread per
  host woken by every round of readings.
* A host's first sample (which connects) runs in a thread of its own, so hosts join the round
  as they answer; a host whose sample keeps the round waiting (a stream restarting over a hung
  link) is left to a thread of its own by a guard, and a new round goes on with the others —
  one slow host never delays another by more than half an interval.
* Attribution (who owns each GPU process) is redone only when the process list or the
  containers changed, and on a slow timer for PID reuse.
* Containers (names, images, GPU requests, which run) come from one mostly idle thread per
  host that lists the running containers, then follows the engine's events: a container that
  stops or is paused is marked so at once without asking the engine anything, one that starts
  is inspected alone; the whole list is taken again every ``refresh_seconds`` and after the
  event stream reconnects (events may have been missed).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gpuconsole.accounting.live import LiveFigures
from gpuconsole.accounting.meter import GpuInterval, Meter, OwnerInterval
from gpuconsole.accounting.store import Writer
from gpuconsole.backend.errors import GpuconsoleError, HostUnreachable
from gpuconsole.backend.gpu.models import GpuSourceState

if TYPE_CHECKING:
    from gpuconsole.backend.docker.host import EventWatch
    from gpuconsole.backend.gpu import GpuAttribution, GpuSnapshot, GpuSource
    from gpuconsole.backend.hosts.host import Host
    from gpuconsole.backend.models import ContainerSummary, GpuRequest, HostSnapshot
    from gpuconsole.monitor.alert_command import AlertCommand
    from gpuconsole.monitor.alerts import Alert, AlertTracker
    from gpuconsole.settings.config import AlertSettings

log = logging.getLogger("gpuconsole.record")

#: Gaps longer than this many intervals are not bridged (see meter).
MAX_GAP_INTERVALS = 3.0
#: How often raw rows older than a day are rolled up.
ROLLUP_EVERY_S = 300.0
#: Attribution is redone at least this often even when nothing changed (a PID reused by another
#: process between two process lists); any change of the processes or containers redoes it at once.
ATTRIBUTE_EVERY_S = 30.0
#: A host whose sample keeps the round waiting this long (a fraction of the interval; a sample
#: takes microseconds to milliseconds) gets a thread of its own.
STALL_INTERVALS = 0.25
#: Seconds between attempts while a host's engine cannot be reached.
ENGINE_RETRY_S = 5.0

#: Engine events after which a container no longer runs (its processes hold no GPU).
_STOPPED = frozenset({"die", "pause", "destroy"})
#: Engine events after which a container runs (again).
_STARTED = frozenset({"start", "restart", "unpause"})
#: Engine events that change what is known of a container: it is inspected again.
_CHANGED = frozenset({"rename"})


@dataclass
class RecorderStats:
    rounds: int = 0
    commits: int = 0
    gpu_rows: int = 0
    owner_rows: int = 0
    errors: list[str] = field(default_factory=list)


class _Containers:
    """One host's containers as the recorder needs them, kept current from engine events.

    ``snapshot`` is replaced (never changed) whenever something changed, so readers compare it
    by identity; None until the first list came back."""

    def __init__(self, recorder: Recorder, host: Host) -> None:
        self._recorder = recorder
        self.host = host
        self.snapshot: HostSnapshot | None = None
        self._summaries: dict[str, ContainerSummary] = {}
        self._requests: dict[str, GpuRequest] = {}
        #: Ids the previous full list had: names are forgotten once two lists in a row miss them.
        self._listed: set[str] = set()
        self._events: deque[tuple[str, str]] = deque()
        self._wake = threading.Event()
        self._full_due = True
        self._watch: EventWatch | None = None

    def on_event(self, action: str, container_id: str) -> None:
        """Called on the engine's event thread: only queued here."""
        verb = action.split(":", 1)[0].strip()
        if verb in _STOPPED or verb in _STARTED or verb in _CHANGED or verb == "reconnect":
            self._events.append((verb, container_id))
            self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    def run(self, stop: threading.Event) -> None:
        next_full = 0.0
        while not stop.is_set():
            self._wake.clear()
            now = time.monotonic()
            if self._full_due or now >= next_full:
                ok = self._refresh(stop)
                next_full = now + (self._recorder.refresh_seconds if ok else ENGINE_RETRY_S)
                if ok and self._watch is None and not stop.is_set():
                    try:
                        self._watch = self.host.engine.watch_events(self.on_event)
                    except Exception as exc:  # tried again after the next list
                        log.debug("%s: no engine events: %s", self.host.name, exc)
            elif self._events:
                self._apply_events()
            if stop.is_set():
                break
            if self._events or self._full_due:
                continue
            self._wake.wait(max(0.0, next_full - time.monotonic()))
        self.close()

    def close(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.close()

    # -- the full list ------------------------------------------------------------------------

    def _refresh(self, stop: threading.Event) -> bool:
        engine = self.host.engine
        self._full_due = False
        self._events.clear()  # the list is newer than anything queued
        try:
            listed = engine.list_containers(all=False)
            ids = [c.id for c in listed]
            unknown = [cid for cid in ids if cid not in self._requests]
            if unknown:
                self._requests.update(engine.gpu_requests(unknown))
        except HostUnreachable as exc:
            self._recorder._report(self.host.name, "containers", exc.reason)
            return False
        except GpuconsoleError as exc:
            self._recorder._report(self.host.name, "containers", str(exc))
            return False
        except Exception as exc:  # never let the loop die: say it and go on
            problem = f"containers refresh failed: {type(exc).__name__}: {exc}"
            self._recorder._report(self.host.name, "containers", problem)
            return False
        self._recorder._recovered(self.host.name, "containers")
        if stop.is_set():
            return True
        wanted = set(ids)
        self._summaries = {c.id: c for c in listed}
        self._requests = {cid: r for cid, r in self._requests.items() if cid in wanted}
        names = self._recorder.names
        for c in listed:
            names[(self.host.name, c.id)] = (c.name, c.image)
        forgotten = [
            key
            for key in list(names)
            if key[0] == self.host.name and key[1] not in wanted and key[1] not in self._listed
        ]
        for key in forgotten:
            names.pop(key, None)
        self._listed = wanted
        self._publish()
        return True

    # -- events -------------------------------------------------------------------------------

    def _apply_events(self) -> None:
        changed = False
        while self._events:
            verb, cid = self._events.popleft()
            if verb == "reconnect":
                self._full_due = True  # the stream was down: events may have been missed
                self._wake.set()
                return
            if not cid:
                continue
            known = self._summaries.get(cid)
            if verb in _STOPPED:
                if verb == "destroy":
                    changed = self._summaries.pop(cid, None) is not None or changed
                elif known is not None and known.running:
                    state = "paused" if verb == "pause" else "exited"
                    self._summaries[cid] = dataclasses.replace(known, state=state)
                    changed = True
                continue
            if verb in _STARTED and known is not None and cid in self._requests:
                if not known.running:
                    self._summaries[cid] = dataclasses.replace(known, state="running")
                    changed = True
                continue
            changed = self._inspect(cid) or changed
            if self._full_due:
                break
        if changed:
            self._publish()

    def _inspect(self, cid: str) -> bool:
        """A container that started (or changed): one inspect of it alone."""
        try:
            details = self.host.engine.inspect(cid)
        except HostUnreachable as exc:
            self._recorder._report(self.host.name, "containers", exc.reason)
            self._full_due = True  # once it answers again, take the whole list
            return False
        except GpuconsoleError:
            return self._summaries.pop(cid, None) is not None  # gone already
        except Exception as exc:
            log.debug("%s: inspecting %s failed: %s", self.host.name, cid[:12], exc)
            self._full_due = True
            return False
        summary = details.summary
        self._requests[cid] = details.gpus
        self._recorder.names[(self.host.name, cid)] = (summary.name, summary.image)
        self._summaries[cid] = summary
        return True

    def _publish(self) -> None:
        """A new snapshot for the sampling, only when what it holds changed (a new one makes
        the next sample attribute its processes again)."""
        from gpuconsole.backend.models import EngineState, HostSnapshot, HostStatus

        containers = tuple(self._summaries.values())
        requests = {cid: r for cid, r in self._requests.items() if cid in self._summaries}
        old = self.snapshot
        if old is not None and old.containers == containers and old.gpus == requests:
            return
        engine = self.host.engine
        self.snapshot = HostSnapshot(
            HostStatus(self.host.name, engine.address, EngineState.UP),
            containers,
            {},
            requests,
            time.time(),
        )


class _HostLoop:
    """One host's sampling: source -> attribution (when due) -> meter -> alerts."""

    def __init__(
        self,
        recorder: Recorder,
        host: Host,
        source: GpuSource,
        alerts: AlertTracker | None,
    ) -> None:
        self.recorder = recorder
        self.host = host
        self.name = host.name
        self.source = source
        self.meter = Meter(host.name, recorder.interval * MAX_GAP_INTERVALS)
        self.containers = _Containers(recorder, host)
        self.alerts = alerts
        self._attribution: GpuAttribution | None = None
        self._attributed_for: HostSnapshot | None = None
        self._attributed_processes: tuple[object, ...] | None = None
        self._attributed_origins: object = None
        self._attributed_at = 0.0
        self._reserved: dict[str, tuple[int, ...]] = {}
        self._running: set[str] | None = None
        self._names: dict[str, str] = {}
        self._requests: dict[str, GpuRequest] = {}
        #: Sampled by the round once its first sample came back; ``alone``: in its own thread.
        self.joined = False
        self.alone = False

    def tick(self) -> None:
        """One sample of this host, metered and judged; never raises."""
        started = time.monotonic()
        try:
            self.step(self.source.sample(), started)
        except Exception as exc:  # a source must not stop the recording
            self.recorder._report(
                self.name, "gpu", f"GPU sampling failed: {type(exc).__name__}: {exc}"
            )

    def run_alone(self, halt: threading.Event) -> None:
        """This host's samples in a thread of its own (one that once kept the round waiting)."""
        interval = self.recorder.interval
        while not halt.is_set():
            started = time.monotonic()
            self.tick()
            halt.wait(max(0.05, interval - (time.monotonic() - started)))

    def step(self, snapshot: GpuSnapshot, now: float) -> None:
        recorder = self.recorder
        containers = self.containers.snapshot
        attribution: GpuAttribution | None = None
        if snapshot.state in (GpuSourceState.OK, GpuSourceState.DEGRADED):
            recorder._recovered(self.name, "gpu")
            attribution = self._attribute(snapshot, containers, now)
            gpus, owners = self.meter.observe(snapshot, attribution, self._reserved, self._running)
            recorder._add(gpus, owners)
        else:
            # Starting, stale (old figures repeated) or no telemetry: nothing to count; the
            # next good sample starts a new interval (the meter does not bridge the gap).
            recorder._add((), ())
            if snapshot.state is not GpuSourceState.STARTING:
                recorder._report(self.name, "gpu", snapshot.error or snapshot.state.value)
        if self.alerts is not None:
            self._judge(snapshot, attribution, containers)

    def _attribute(
        self, snapshot: GpuSnapshot, containers: HostSnapshot | None, now: float
    ) -> GpuAttribution:
        """The attribution of this sample: the last one unless the processes, their origins or
        the containers changed, or it is ``ATTRIBUTE_EVERY_S`` old."""
        attribution = self._attribution
        if (
            attribution is not None
            and containers is self._attributed_for
            and snapshot.origins is self._attributed_origins
            and snapshot.processes == self._attributed_processes
            and now - self._attributed_at < ATTRIBUTE_EVERY_S
        ):
            return attribution
        from gpuconsole.backend.gpu import attribute_gpu_processes

        if containers is not self._attributed_for or attribution is None:
            if containers is None:
                self._running, self._names, self._requests = None, {}, {}
            else:
                self._running = {c.id for c in containers.containers if c.running}
                self._names = {c.id: c.name for c in containers.containers}
                self._requests = {
                    cid: r for cid, r in containers.gpus.items() if cid in self._running
                }
        attribution = attribute_gpu_processes(
            snapshot, self._requests, known_ids=self._names.keys(), machine=self.host.machine
        )
        self._reserved = reservations(attribution)
        self._attribution = attribution
        self._attributed_for = containers
        self._attributed_processes = snapshot.processes
        self._attributed_origins = snapshot.origins
        self._attributed_at = now
        return attribution

    def _judge(
        self,
        snapshot: GpuSnapshot,
        attribution: GpuAttribution | None,
        containers: HostSnapshot | None,
    ) -> None:
        """The alert rules over one sample, as the console judges them; a bug in them must not
        stop the recording."""
        assert self.alerts is not None
        try:
            if self.alerts.observe_quiet(snapshot, attribution, containers):
                return  # the usual sample of a quiet host: no view built, no rule run
            from gpuconsole.monitor.gpu_view import GpuView

            view = GpuView(
                snapshot,
                attribution=attribution,
                names=self._names,
                interval=self.recorder.interval,
            )
            changes = self.alerts.observe(view, containers)
        except Exception as exc:
            self.recorder._report(
                self.name, "alerts", f"alert check failed: {type(exc).__name__}: {exc}"
            )
            return
        for alert in changes:
            self.recorder._alert(alert)


def reservations(attribution: GpuAttribution | None) -> dict[str, tuple[int, ...]]:
    """Container id -> GPU indices it reserved: the indices its request names, or (a count the
    runtime resolved) the ones its processes use."""
    out: dict[str, tuple[int, ...]] = {}
    for usage in attribution.containers if attribution is not None else ():
        if usage.request.none:
            continue
        indices = usage.requested_indices
        out[usage.container_id] = indices if indices is not None else usage.used_indices
    return out


@dataclass(eq=False)
class _Round:
    """The thread that samples the joined hosts in turn: which host it is on, since when."""

    #: When the round began (its passes start every interval from then).
    t0: float = 0.0
    busy: _HostLoop | None = None
    since: float = 0.0
    #: Set by the guard: a new round took over; this thread stays with ``busy`` alone.
    retired: bool = False


class Recorder:
    def __init__(
        self,
        hosts: Sequence[Host],
        writer: Writer,
        *,
        interval: float = 1.0,
        refresh_seconds: float = 60.0,
        live: LiveFigures | None = None,
        clock: Callable[[], float] = time.time,
        alerts: AlertSettings | None = None,
    ) -> None:
        self.hosts = tuple(hosts)
        self.writer = writer
        self.interval = interval
        #: How often each host's full container list is taken again (events keep it current
        #: in between).
        self.refresh_seconds = refresh_seconds
        self.live = live
        self.clock = clock
        #: The ``[alerts]`` rules, judged on every sample as the console does: raised and
        #: cleared alerts are logged, and ``[alerts] command`` runs for each (headless alerts).
        self.alerts = alerts
        #: (host, container id) -> (name, image), for the owners' rows.
        self.names: dict[tuple[str, str], tuple[str, str]] = {}
        self.stats = RecorderStats()
        self._lock = threading.Lock()
        self._pending_gpus: list[GpuInterval] = []
        self._pending_owners: list[OwnerInterval] = []
        self._reported: dict[tuple[str, str], str] = {}
        self._alert_command: AlertCommand | None = None
        self._threads: list[threading.Thread] = []
        self._write_lock = threading.Lock()
        self._round_lock = threading.Lock()
        self._round = _Round()
        self._halt = threading.Event()
        self._stop = threading.Event()
        self._last_rollup = 0.0
        #: What stopped the round (a recording that cannot be written): ``run`` raises it.
        self._failure: BaseException | None = None
        self.loops: dict[str, _HostLoop] = {}
        for host in self.hosts:
            if host.gpu is None:
                continue
            tracker: AlertTracker | None = None
            if alerts is not None and alerts.enabled:
                from gpuconsole.monitor.alerts import AlertTracker

                # A gap of a few samples is a slow sample; longer, nobody watched.
                gap = max(120.0, 5 * interval)
                tracker = AlertTracker(host.name, alerts, clock=clock, max_gap_s=gap)
            self.loops[host.name] = _HostLoop(self, host, host.gpu, tracker)

    def run(self, stop: threading.Event) -> None:
        """Record until ``stop`` is set; the last batch is committed before returning."""
        if self.alerts is not None and self.alerts.enabled and self.alerts.command:
            from gpuconsole.monitor.alert_command import AlertCommand

            self._alert_command = AlertCommand(
                self.alerts.command,
                on_failure=lambda alert, error: log.warning(
                    "alerts command failed for %s: %s", alert.message, error
                ),
            )
        halt = self._halt = threading.Event()
        for name, loop in self.loops.items():
            self._spawn(f"record:containers:{name}", loop.containers.run, halt)
            # The first sample connects (and may wait on a dead host): each in its own thread,
            # all at once; the host joins the round once it has answered.
            self._spawn(f"record:start:{name}", self._first_sample, loop)
        self.writer.rollup(self.clock())
        self._last_rollup = time.monotonic()
        self._stop = stop
        self._new_round()
        self._spawn("record:guard", self._guard, halt)
        try:
            stop.wait()  # no timeout: the signal handler, the caller or a failed commit sets it
        finally:
            halt.set()
            for loop in self.loops.values():
                loop.containers.wake()
                loop.containers.close()
            deadline = time.monotonic() + max(2.0, 2 * self.interval)
            for thread in list(self._threads):
                if not thread.name.startswith("record:containers:"):
                    thread.join(max(0.0, deadline - time.monotonic()))
            for loop in self.loops.values():
                try:
                    loop.source.close()
                except Exception:  # closing must not lose the last batch
                    log.debug("closing the GPU source of %s failed", loop.name, exc_info=True)
            if self._alert_command is not None:
                self._alert_command.close()
            if self._failure is None:
                self._commit()  # what was sampled before the stop still counts
        if self._failure is not None:
            raise self._failure

    # -- the round ------------------------------------------------------------------------------

    def _spawn(self, name: str, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _first_sample(self, loop: _HostLoop) -> None:
        loop.tick()
        with self._round_lock:
            loop.joined = True

    def _new_round(self) -> None:
        """Start a thread that samples every joined host in turn once per interval, then
        commits: ONE wake-up per interval for the whole fleet, where a thread per host woke
        every host's thread (and, on a busy machine, a wake-up costs more than the sample)."""
        round_ = _Round(t0=time.monotonic())
        with self._round_lock:
            self._round = round_
        self._spawn("record:round", self._run_round, round_)

    def _run_round(self, me: _Round) -> None:
        try:
            self._round_loop(me)
        except BaseException as exc:  # the recording cannot be written: stop, and say why
            self._failure = exc
            self._stop.set()

    def _round_loop(self, me: _Round) -> None:
        halt = self._halt
        interval = self.interval
        next_at = me.t0
        last = False
        while True:
            with self._round_lock:
                loops = [loop for loop in self.loops.values() if loop.joined and not loop.alone]
            for loop in loops:
                with self._round_lock:
                    me.busy, me.since = loop, time.monotonic()
                loop.tick()
                with self._round_lock:
                    me.busy = None
                    retired = me.retired
                if retired:
                    # The guard gave the round to a new thread while this host kept it
                    # waiting: this thread stays with that host alone.
                    loop.run_alone(halt)
                    return
            self._commit()
            if last:
                return
            now = time.monotonic()
            if now - self._last_rollup >= ROLLUP_EVERY_S:
                self._last_rollup = now
                with self._write_lock:
                    self.writer.rollup(self.clock())
            next_at += interval
            if next_at <= now:  # fell behind (a slow commit): keep the pace, not the debt
                next_at = now + interval
            # Stopped: one last pass, so the readings that came in since the last one count.
            last = halt.wait(next_at - now)

    def _guard(self, halt: threading.Event) -> None:
        """Once per interval, half an interval after the round began: a host whose sample
        has kept the round for ``STALL_INTERVALS`` of an interval (a stream restarting over a
        hung SSH link, a wedged driver) is left to a thread of its own, and a new round goes on
        with the others — so the others' samples are at most one and a half intervals apart
        (the meter bridges three), whatever one host does."""
        interval = self.interval
        stall = STALL_INTERVALS * interval
        while True:
            with self._round_lock:
                t0 = self._round.t0
            now = time.monotonic()
            due = t0 + interval / 2
            if due <= now:
                due += ((now - due) // interval + 1) * interval
            if halt.wait(due - now):
                return
            with self._round_lock:
                round_ = self._round
                busy = round_.busy
                if busy is None or time.monotonic() - round_.since < stall:
                    continue
                round_.retired = True
                busy.alone = True
            log.warning(
                "%s: a GPU sample kept the others waiting; this host is sampled apart", busy.name
            )
            self._new_round()

    # -- called by the host loops ---------------------------------------------------------------

    def _add(self, gpus: Sequence[GpuInterval], owners: Sequence[OwnerInterval]) -> None:
        with self._lock:
            self.stats.rounds += 1
            self._pending_gpus.extend(gpus)
            self._pending_owners.extend(owners)

    def _alert(self, alert: Alert) -> None:
        log.warning("alert %s: %s", "raised" if alert.raised else "cleared", alert.message)
        if self._alert_command is not None:
            self._alert_command.submit(alert)

    def _report(self, host: str, what: str, problem: str) -> None:
        """Once per change of problem per host and part, not every second."""
        key = (host, what)
        with self._lock:
            if self._reported.get(key) == problem:
                return
            self._reported[key] = problem
            self.stats.errors.append(f"{host}: {problem}")
        log.warning("%s: %s", host, problem)

    def _recovered(self, host: str, what: str) -> None:
        if (host, what) in self._reported:
            with self._lock:
                self._reported.pop((host, what), None)

    # -- the writer ------------------------------------------------------------------------------

    def _commit(self) -> None:
        with self._lock:
            gpus, self._pending_gpus = self._pending_gpus, []
            owners, self._pending_owners = self._pending_owners, []
        if not gpus and not owners:
            return
        names: Mapping[tuple[str, str], tuple[str, str]] = self.names
        with self._write_lock:
            self.writer.write(gpus, owners, names)
            if self.live is not None:
                self.live.add(gpus, owners, names)
            self.stats.commits += 1
            self.stats.gpu_rows += len(gpus)
            self.stats.owner_rows += len(owners)

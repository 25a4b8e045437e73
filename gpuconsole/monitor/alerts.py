"""Alerts from one host's GPU samples: idle reservations, heat, full memory, a lost GPU, a sick
driver, GPU use by a container that reserved none.

Headless and clock-driven, so the console, the recorder and the tests share one engine: feed an
``AlertTracker`` what a HostMonitor emits (``observe(view, containers)``, or ``feed(event)``)
and it returns the alerts raised or cleared by that sample. Each condition is raised once when it
starts and cleared once when it ends; thresholds have a band (a reading that wobbles around one
does not raise every sample) and conditions that come and go must stay gone a while before they
clear. Rules, exactly:

- idle reservation (warning), per container that reserved GPUs (DeviceRequests; a count the
  runtime resolves is judged on the GPUs its processes use): idle in a sample when it runs no
  process on any GPU, or when every GPU it reserved or uses reads under
  ``idle_utilization_percent``. Raised once it has been idle in every sample for
  ``idle_minutes``; cleared by the first sample that is not idle, or when the container stops.
- temperature (error): raised at ``temperature_c`` or above; cleared at 5 °C below it.
- memory (warning): raised when used memory reaches ``memory_percent`` of the total; cleared
  5 points below.
- GPU lost (error): a GPU seen before is missing from a sample, or its sample carries an error;
  cleared once it has answered for ``clear_after_s``.
- driver (error): the source's state is STALE or UNAVAILABLE after GPUs were seen (or the
  driver reports a version mismatch); cleared once the state has been OK for ``clear_after_s``.
  A host that never had GPUs raises nothing.
- unreserved use (warning): a running container whose inspected request is "no GPUs" has a
  process on a GPU; cleared once it has had none for ``clear_after_s``.

A reading a device does not give (None), a source still starting or a stale one leaves a live
alert as it is and never raises; a gap between samples longer than ``max_gap_s`` (the console
handed to a shell, a suspended laptop) restarts the idle count, which was not watched meanwhile.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from gpuconsole.backend.gpu.models import GpuSample, GpuSnapshot, GpuSourceState
from gpuconsole.settings.config import AlertSettings

if TYPE_CHECKING:
    from gpuconsole.backend.gpu import ContainerGpuUsage, GpuAttribution
    from gpuconsole.backend.models import HostSnapshot
    from gpuconsole.monitor.gpu_view import GpuView

#: Below the raise threshold by this much before a temperature alert clears (°C).
TEMPERATURE_BAND_C = 5.0
#: Below the raise threshold by this many points before a memory alert clears (%).
MEMORY_BAND_PERCENT = 5.0


class AlertKind(str, Enum):
    IDLE_RESERVATION = "idle-reservation"
    TEMPERATURE = "temperature"
    MEMORY = "memory"
    GPU_LOST = "gpu-lost"
    DRIVER = "driver"
    UNRESERVED_USE = "unreserved-use"


class AlertSeverity(str, Enum):
    WARNING = "warning"
    ERROR = "error"


SEVERITY: Mapping[AlertKind, AlertSeverity] = {
    AlertKind.IDLE_RESERVATION: AlertSeverity.WARNING,
    AlertKind.TEMPERATURE: AlertSeverity.ERROR,
    AlertKind.MEMORY: AlertSeverity.WARNING,
    AlertKind.GPU_LOST: AlertSeverity.ERROR,
    AlertKind.DRIVER: AlertSeverity.ERROR,
    AlertKind.UNRESERVED_USE: AlertSeverity.WARNING,
}


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert raised, or the same alert cleared; immutable, safe to hand to any thread.

    Times are the tracker's clock (wall-clock seconds by default): ``started_at`` is when the
    condition began (for an idle reservation, the first idle sample), ``at`` when this event
    (raise or clear) happened.
    """

    kind: AlertKind
    severity: AlertSeverity
    host: str
    message: str
    started_at: float
    at: float
    raised: bool
    gpu_index: int | None = None
    gpu_uuid: str | None = None
    container_id: str | None = None
    container_name: str | None = None
    image: str | None = None
    #: The reading behind it (°C, %, idle minutes) and the threshold it crossed, when any.
    value: float | None = None
    threshold: float | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        """What a raise and its clear share: the kind, the host and the GPU or container."""
        return (self.kind.value, self.host, self.gpu_uuid or self.container_id or "")

    @property
    def state(self) -> str:
        return "raised" if self.raised else "cleared"

    def to_json(self) -> dict[str, Any]:
        """The alert as the ``[alerts] command`` reads it on stdin (keys stable, values plain)."""
        return {
            "kind": self.kind.value,
            "state": self.state,
            "severity": self.severity.value,
            "host": self.host,
            "message": self.message,
            "started_at": self.started_at,
            "at": self.at,
            "gpu_index": self.gpu_index,
            "gpu_uuid": self.gpu_uuid,
            "container_id": self.container_id,
            "container_name": self.container_name,
            "image": self.image,
            "value": self.value,
            "threshold": self.threshold,
        }


class AlertLog:
    """Live alerts by key and a bounded history, newest first: one tracker's, or the fleet's.

    Not thread-safe by itself: the tracker guards its own, the console touches its one on the
    event loop only.
    """

    def __init__(self, limit: int = 500) -> None:
        self._live: dict[tuple[str, str, str], Alert] = {}
        self._history: deque[Alert] = deque(maxlen=limit)

    def add(self, alert: Alert) -> None:
        self._history.append(alert)
        if alert.raised:
            self._live[alert.key] = alert
        else:
            self._live.pop(alert.key, None)

    @property
    def live(self) -> tuple[Alert, ...]:
        """The alerts raised and not cleared, newest first."""
        return tuple(sorted(self._live.values(), key=lambda a: a.at, reverse=True))

    @property
    def history(self) -> tuple[Alert, ...]:
        """Every raise and clear kept, newest first."""
        return tuple(reversed(self._history))

    def idle_reservations(self, host: str) -> dict[str, Alert]:
        """Container id -> its live idle-reservation alert, on ``host``."""
        return {
            a.container_id: a
            for a in self._live.values()
            if a.kind is AlertKind.IDLE_RESERVATION and a.host == host and a.container_id
        }


@dataclass(slots=True)
class _Track:
    """One condition's progress: since when it has held, since when it has not, its alert."""

    since: float | None = None
    absent_since: float | None = None
    alert: Alert | None = None


Key = tuple[AlertKind, str]


class AlertTracker:
    """The alert rules over one host's samples; see the module docstring for each rule."""

    def __init__(
        self,
        host: str,
        settings: AlertSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
        clear_after_s: float = 30.0,
        max_gap_s: float = 120.0,
        history_limit: int = 200,
    ) -> None:
        self.host = host
        self.settings = settings or AlertSettings()
        self._clock = clock
        self.clear_after_s = clear_after_s
        self.max_gap_s = max_gap_s
        self._tracks: dict[Key, _Track] = {}
        #: GPU uuid -> (index, name) of every GPU seen on this host.
        self._seen: dict[str, tuple[int, str]] = {}
        self._containers: HostSnapshot | None = None
        #: ``_container_maps`` of the last containers refresh judged.
        self._maps: tuple[HostSnapshot, tuple[dict[str, str], dict[str, str], set[str]]] | None = (
            None
        )
        self._last: float | None = None
        self._lock = threading.Lock()
        self._log = AlertLog(history_limit)

    # -- what others read ---------------------------------------------------------------------

    @property
    def live(self) -> tuple[Alert, ...]:
        with self._lock:
            return self._log.live

    @property
    def history(self) -> tuple[Alert, ...]:
        with self._lock:
            return self._log.history

    # -- input --------------------------------------------------------------------------------

    def feed(self, event: object) -> list[Alert]:
        """A HostMonitor event as it comes (any other value is ignored): containers are
        remembered for names and requests, a GPU sample is judged."""
        from gpuconsole.monitor.events import ContainersUpdated, GpusUpdated

        if isinstance(event, ContainersUpdated):
            self._containers = event.snapshot
        elif isinstance(event, GpusUpdated):
            return self.observe(event.view)
        return []

    def observe(
        self, view: GpuView, containers: HostSnapshot | None = None, now: float | None = None
    ) -> list[Alert]:
        """Judge one sample; returns the alerts it raised or cleared, in that order.

        ``containers``: the host's latest containers refresh (names, images, inspected GPU
        requests); without one yet, the container rules wait.
        """
        now = self._clock() if now is None else now
        if containers is not None:
            self._containers = containers
        out: list[Alert] = []
        with self._lock:
            if self._quiet_sample(view.snapshot, view.attribution, now):
                return out
            if self._last is not None and now - self._last > self.max_gap_s:
                self._forget_streaks()
            self._last = now
            snapshot = view.snapshot
            self._driver(snapshot, now, out)
            if snapshot.state in (GpuSourceState.OK, GpuSourceState.DEGRADED):
                self._gpus(view, now, out)
                self._container_rules(view, now, out)
            for alert in out:
                self._log.add(alert)
        return out

    def observe_quiet(
        self,
        snapshot: GpuSnapshot,
        attribution: GpuAttribution | None,
        containers: HostSnapshot | None = None,
    ) -> bool:
        """Judge a quiet sample the short way: True when it was one (then it is judged, with
        nothing raised or cleared), False when ``observe`` must judge it. For the recorder,
        which judges every host every second and, on a quiet host, need not even build the
        view ``observe`` takes."""
        now = self._clock()
        if containers is not None:
            self._containers = containers
        with self._lock:
            return self._quiet_sample(snapshot, attribution, now)

    def _quiet_sample(
        self, snapshot: GpuSnapshot, attribution: GpuAttribution | None, now: float
    ) -> bool:
        """Under the lock: the usual sample of a quiet host — nothing raised or counting, the
        source OK, the same GPUs as before (same order, index and name), each answering and
        under both limits, no container using or holding a GPU (while the container rules
        have a subject they run every sample: an idle count needs each one). Every rule would
        leave such a sample as it found it, so none runs: the sample is noted (for the gap
        rule) and that is all. One tight loop in place of the rules' calls per GPU, which were
        most of what a quiet fleet cost the recorder."""
        if self._tracks or snapshot.state is not GpuSourceState.OK:
            return False
        gpus = snapshot.gpus
        seen = self._seen
        if not gpus or len(gpus) != len(seen):
            return False
        settings = self.settings
        temperature_limit = settings.temperature_c
        memory_limit = settings.memory_percent
        for gpu, (uuid, (index, name)) in zip(gpus, seen.items(), strict=True):
            # Positional: with as many GPUs as were ever seen, each where it was, every GPU
            # seen is present (none to call lost) and none is new (nothing to remember).
            if (
                gpu.error is not None
                or (gpu.uuid or f"#{gpu.index}") != uuid
                or gpu.index != index
                or gpu.name != name
            ):
                return False
            temperature = gpu.temperature_c
            if temperature is not None and temperature >= temperature_limit:
                return False
            used, total = gpu.memory_used_bytes, gpu.memory_total_bytes
            # As _memory_percent and _under judge it (0.1 % steps, ">=").
            if used is not None and total and round(used / total * 100, 1) >= memory_limit:
                return False
        containers = self._containers
        if (
            attribution is not None
            and attribution.containers
            and containers is not None
            and not self._containers_quiet(attribution, containers, gpus)
        ):
            return False
        self._last = now
        return True

    def _containers_quiet(
        self, attribution: GpuAttribution, containers: HostSnapshot, gpus: tuple[GpuSample, ...]
    ) -> bool:
        """With nothing tracked: neither container rule would start a count on this sample —
        every running container that reserved GPUs uses one that is busy (or unread), and none
        that reserved none uses one. What ``_container_rules`` would find, without its
        messages and maps."""
        running = self._container_maps(containers)[2]
        utilization = {g.index: g.utilization_gpu_percent for g in gpus}
        under = self.settings.idle_utilization_percent
        for usage in attribution.containers:
            cid = usage.container_id
            if cid not in running:
                continue
            if usage.request.none:
                if usage.pids and cid in containers.gpus:
                    return False  # unreserved use
            elif _idle_holding(usage, utilization, under):
                return False  # an idle reservation starts (or goes on) counting
        return True

    def _forget_streaks(self) -> None:
        """After a gap nobody watched, a condition not yet raised starts its count again."""
        for key in [k for k, t in self._tracks.items() if t.alert is None]:
            del self._tracks[key]

    # -- the one state machine every rule goes through ------------------------------------------

    def _live(self, key: Key) -> bool:
        track = self._tracks.get(key)
        return track is not None and track.alert is not None

    def _step(
        self,
        key: Key,
        holding: bool | None,
        now: float,
        out: list[Alert],
        *,
        raise_alert: Callable[[float], Alert],
        clear_alert: Callable[[Alert], Alert],
        raise_after: float = 0.0,
        clear_after: float = 0.0,
    ) -> None:
        """Advance one condition by one sample. ``holding`` None: unknown this sample (a live
        alert stays; a count not yet raised starts again)."""
        track = self._tracks.get(key)
        if holding is None:
            if track is not None and track.alert is None:
                del self._tracks[key]
            return
        if holding:
            if track is None:
                track = self._tracks[key] = _Track(since=now)
            track.absent_since = None
            if track.since is None:
                track.since = now
            if track.alert is None and now - track.since >= raise_after:
                track.alert = raise_alert(track.since)
                out.append(track.alert)
            return
        if track is None:
            return
        if track.alert is None:
            del self._tracks[key]
            return
        if track.absent_since is None:
            track.absent_since = now
        if now - track.absent_since >= clear_after:
            out.append(clear_alert(track.alert))
            del self._tracks[key]

    def _tracked(self, kind: AlertKind) -> list[str]:
        return [subject for k, subject in self._tracks if k is kind]

    def _alert(self, kind: AlertKind, message: str, since: float, now: float, **kw: Any) -> Alert:
        return Alert(kind, SEVERITY[kind], self.host, message, since, now, True, **kw)

    @staticmethod
    def _cleared(alert: Alert, message: str, now: float, value: float | None = None) -> Alert:
        """The same alert (key, start, threshold), cleared now, with the reading that ended it."""
        return dataclasses.replace(alert, message=message, at=now, raised=False, value=value)

    # -- the source --------------------------------------------------------------------------

    def _driver(self, snapshot: GpuSnapshot, now: float, out: list[Alert]) -> None:
        state = snapshot.state
        holding: bool | None
        if state is GpuSourceState.STARTING:
            holding = None
        elif state in (GpuSourceState.STALE, GpuSourceState.UNAVAILABLE):
            # A host that never showed a GPU has none to lose; a version mismatch is a broken
            # driver whatever was seen before it.
            holding = bool(self._seen) or "mismatch" in (snapshot.error or "").lower()
        else:
            holding = False
            if (AlertKind.DRIVER, "") not in self._tracks:
                return  # the usual sample: nothing raised, nothing to raise
        what = "stalled" if state is GpuSourceState.STALE else "unavailable"
        reason = snapshot.error or state.value
        self._step(
            (AlertKind.DRIVER, ""),
            holding,
            now,
            out,
            raise_alert=lambda since: self._alert(
                AlertKind.DRIVER, f"GPU telemetry on {self.host} {what}: {reason}", since, now
            ),
            clear_alert=lambda alert: self._cleared(
                alert, f"GPU telemetry on {self.host} is back ({snapshot.source})", now
            ),
            clear_after=self.clear_after_s,
        )

    # -- each GPU ----------------------------------------------------------------------------

    def _gpus(self, view: GpuView, now: float, out: list[Alert]) -> None:
        snapshot = view.snapshot
        present: set[str] = set()
        for gpu in snapshot.gpus:
            uuid = gpu.uuid or f"#{gpu.index}"
            present.add(uuid)
            self._seen[uuid] = (gpu.index, gpu.name)
            if self._quiet(gpu, uuid):
                continue
            self._lost(uuid, gpu.index, gpu.name, gpu.error, now, out)
            answered = gpu.error is None
            self._temperature(view, gpu, uuid, answered, now, out)
            self._memory(view, gpu, uuid, answered, now, out)
        for uuid, (index, name) in self._seen.items():
            if uuid not in present:
                self._lost(uuid, index, name, "missing from the readings", now, out)

    def _quiet(self, gpu: GpuSample, uuid: str) -> bool:
        """The usual sample: a GPU that answers, under both limits, with nothing raised or
        counting for it. The three rules would leave it as it is (a GPU that answers has nothing
        to lose, a reading under its limit raises nothing), so they are skipped: they were most
        of what judging a quiet 8-GPU host's sample cost the recorder."""
        tracks = self._tracks
        settings = self.settings
        return (
            gpu.error is None
            and (
                not tracks
                or (
                    (AlertKind.GPU_LOST, uuid) not in tracks
                    and (AlertKind.TEMPERATURE, uuid) not in tracks
                    and (AlertKind.MEMORY, uuid) not in tracks
                )
            )
            and _under(gpu.temperature_c, settings.temperature_c)
            and _under(_memory_percent(gpu), settings.memory_percent)
        )

    def _lost(
        self, uuid: str, index: int, name: str, error: str | None, now: float, out: list[Alert]
    ) -> None:
        self._step(
            (AlertKind.GPU_LOST, uuid),
            error is not None,
            now,
            out,
            raise_alert=lambda since: self._alert(
                AlertKind.GPU_LOST,
                f"GPU {index} ({name}) on {self.host} stopped answering: {error}",
                since,
                now,
                gpu_index=index,
                gpu_uuid=uuid,
            ),
            clear_alert=lambda alert: self._cleared(
                alert, f"GPU {index} ({name}) on {self.host} answers again", now
            ),
            clear_after=self.clear_after_s,
        )

    def _temperature(
        self, view: GpuView, gpu: GpuSample, uuid: str, answered: bool, now: float, out: list[Alert]
    ) -> None:
        temp = gpu.temperature_c if answered else None
        where = f"GPU {gpu.index} on {self.host}"
        self._threshold(
            AlertKind.TEMPERATURE,
            view,
            gpu,
            uuid,
            temp,
            self.settings.temperature_c,
            TEMPERATURE_BAND_C,
            now,
            out,
            raised=lambda v, limit: f"{where} is at {v:g} °C (alert at {limit:g} °C)",
            cleared=lambda v: f"{where} cooled to {v:g} °C",
        )

    def _memory(
        self, view: GpuView, gpu: GpuSample, uuid: str, answered: bool, now: float, out: list[Alert]
    ) -> None:
        percent = _memory_percent(gpu) if answered else None
        where = f"GPU {gpu.index} on {self.host}"
        self._threshold(
            AlertKind.MEMORY,
            view,
            gpu,
            uuid,
            percent,
            self.settings.memory_percent,
            MEMORY_BAND_PERCENT,
            now,
            out,
            raised=lambda v, limit: f"{where} memory is {v:g} % full (alert at {limit:g} %)",
            cleared=lambda v: f"{where} memory down to {v:g} %",
        )

    def _threshold(
        self,
        kind: AlertKind,
        view: GpuView,
        gpu: GpuSample,
        uuid: str,
        value: float | None,
        limit: float,
        band: float,
        now: float,
        out: list[Alert],
        *,
        raised: Callable[[float, float], str],
        cleared: Callable[[float], str],
    ) -> None:
        """A reading at or above ``limit`` raises; it clears only ``band`` below it (no
        flapping around the line); a missing reading changes nothing."""
        key = (kind, uuid)
        holding = None
        if value is not None:
            holding = value > limit - band if self._live(key) else value >= limit
        holders = _holders(view, gpu.index)
        self._step(
            key,
            holding,
            now,
            out,
            raise_alert=lambda since: self._alert(
                kind,
                raised(value, limit) + holders,  # type: ignore[arg-type]  # holding: not None
                since,
                now,
                gpu_index=gpu.index,
                gpu_uuid=uuid,
                value=value,
                threshold=limit,
            ),
            clear_alert=lambda alert: self._cleared(
                alert,
                cleared(value),  # type: ignore[arg-type]
                now,
                value,
            ),
        )

    # -- each container ----------------------------------------------------------------------

    def _container_rules(self, view: GpuView, now: float, out: list[Alert]) -> None:
        containers = self._containers
        attribution = view.attribution
        if containers is None or attribution is None:
            return  # who is who is not known yet: live alerts stay, nothing new
        if self._no_container_subject(attribution):
            return
        usages = {u.container_id: u for u in attribution.containers}
        names, images, running = self._container_maps(containers)
        utilization = {
            g.index: g.utilization_gpu_percent for g in view.snapshot.gpus if g.error is None
        }

        def who(cid: str) -> dict[str, Any]:
            return {
                "container_id": cid,
                "container_name": names.get(cid) or view.names.get(cid) or cid[:12],
                "image": images.get(cid),
            }

        reserved = {cid: u for cid, u in usages.items() if not u.request.none and cid in running}
        for cid in set(reserved) | set(self._tracked(AlertKind.IDLE_RESERVATION)):
            usage = reserved.get(cid)
            self._idle(cid, usage, utilization, who(cid), now, out)

        # The request must be known to be "none" (inspected), not merely missing because the
        # container started after the last refresh.
        unreserved = {
            cid
            for cid, u in usages.items()
            if u.unreserved_use and cid in running and cid in containers.gpus
        }
        for cid in unreserved | set(self._tracked(AlertKind.UNRESERVED_USE)):
            self._unreserved(cid, usages.get(cid), cid in unreserved, who(cid), now, out)

    def _container_maps(
        self, containers: HostSnapshot
    ) -> tuple[dict[str, str], dict[str, str], set[str]]:
        """Names and images by container id, and the running ones: worked out once per
        containers refresh (a host's hundred containers), not once per GPU sample."""
        cached = self._maps
        if cached is not None and cached[0] is containers:
            return cached[1]
        listed = containers.containers
        maps = (
            {c.id: c.name for c in listed},
            {c.id: c.image for c in listed},
            {c.id for c in listed if c.running},
        )
        self._maps = (containers, maps)
        return maps

    def _no_container_subject(self, attribution: GpuAttribution) -> bool:
        """No container runs anything on a GPU and none is tracked: both container rules have
        nothing to judge (the usual sample of a host without GPU containers)."""
        return not attribution.containers and not any(
            kind is AlertKind.IDLE_RESERVATION or kind is AlertKind.UNRESERVED_USE
            for kind, _ in self._tracks
        )

    def _idle(
        self,
        cid: str,
        usage: ContainerGpuUsage | None,
        utilization: Mapping[int, int | None],
        who: dict[str, Any],
        now: float,
        out: list[Alert],
    ) -> None:
        settings = self.settings
        under = settings.idle_utilization_percent
        holding = _idle_holding(usage, utilization, under)
        gpus: list[int] = []
        if usage is not None:
            gpus = sorted(set(usage.requested_indices or ()) | set(usage.used_indices))
        name = who["container_name"]
        on = _gpu_list(gpus, usage)
        minutes = settings.idle_minutes

        def raise_alert(since: float) -> Alert:
            them = "it" if len(gpus) == 1 else "them"
            doing = (
                f"runs nothing on {them}"
                if usage is not None and not usage.pids
                else f"kept {them} under {under:g} % utilization"
            )
            return self._alert(
                AlertKind.IDLE_RESERVATION,
                f"{name} on {self.host} reserved {on} and {doing} for "
                f"{_minutes(now - since)}; stopping it frees {them}",
                since,
                now,
                value=round((now - since) / 60, 2),
                threshold=minutes,
                **who,
            )

        def clear_alert(alert: Alert) -> Alert:
            why = "stopped or released its GPUs" if usage is None else "uses its GPUs again"
            return self._cleared(alert, f"{name} on {self.host} {why}", now)

        self._step(
            (AlertKind.IDLE_RESERVATION, cid),
            holding,
            now,
            out,
            raise_alert=raise_alert,
            clear_alert=clear_alert,
            raise_after=minutes * 60,
        )

    def _unreserved(
        self,
        cid: str,
        usage: ContainerGpuUsage | None,
        holding: bool,
        who: dict[str, Any],
        now: float,
        out: list[Alert],
    ) -> None:
        name = who["container_name"]
        used = ",".join(str(i) for i in usage.used_indices) if usage is not None else ""
        self._step(
            (AlertKind.UNRESERVED_USE, cid),
            holding,
            now,
            out,
            raise_alert=lambda since: self._alert(
                AlertKind.UNRESERVED_USE,
                f"{name} on {self.host} uses GPU {used} but reserved none (no --gpus: other "
                "launches will not see it taken)",
                since,
                now,
                **who,
            ),
            clear_alert=lambda alert: self._cleared(
                alert, f"{name} on {self.host} no longer uses a GPU", now
            ),
            clear_after=self.clear_after_s,
        )


def _idle_holding(
    usage: ContainerGpuUsage | None, utilization: Mapping[int, int | None], under: float
) -> bool | None:
    """Is a container that reserved GPUs idle in this sample (None: not known)?"""
    if usage is None:
        return False  # stopped, removed, or no longer reserving
    if not usage.pids:
        return True  # runs nothing on any GPU: what runs there is someone else's
    gpus = set(usage.requested_indices or ()) | set(usage.used_indices)
    readings = [utilization.get(i) for i in gpus]
    known = [r for r in readings if r is not None]
    # One GPU that gives no reading: not known to be idle (nor to be busy).
    return None if len(known) < len(readings) else all(r < under for r in known)


def _memory_percent(gpu: GpuSample) -> float | None:
    """Used memory in percent of the total, as the memory rule judges it (0.1 % steps)."""
    fraction = gpu.memory_fraction
    return None if fraction is None else round(fraction * 100, 1)


def _under(value: float | None, limit: float) -> bool:
    """A reading that raises nothing when no alert is live: missing, or under ``limit`` (the
    negation of the rule's ``value >= limit``, so it agrees on every value)."""
    return value is None or not value >= limit


def _holders(view: GpuView, index: int) -> str:
    names = view.holders(index)
    return f"; on it: {', '.join(names)}" if names else ""


def _gpu_list(indices: Iterable[int], usage: ContainerGpuUsage | None) -> str:
    shown = list(indices)
    if not shown:
        count = usage.request.count if usage is not None else 0
        return f"{count} GPU{'s' if count != 1 else ''}" if count else "GPUs"
    return ("GPU " if len(shown) == 1 else "GPUs ") + ",".join(str(i) for i in shown)


def _minutes(seconds: float) -> str:
    minutes = seconds / 60
    if minutes < 1:
        return f"{seconds:.0f} s"
    if minutes < 120:
        return f"{minutes:.0f} min"
    return f"{minutes / 60:.1f} h"

"""The alert rules (gpuconsole.monitor.alerts) on an injected clock: nothing sleeps 15 minutes.

Samples are built the way the monitor builds them: GPU readings (from the real NVML source on
the stand-in devices where a device is involved), processes joined to containers by the real
attribution code through their cgroup text, containers as the engine reports them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pynvml
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpuconsole.backend.gpu import (
    GpuProcess,
    GpuSample,
    GpuSnapshot,
    GpuSourceState,
    attribute_gpu_processes,
)
from gpuconsole.backend.gpu.nvml_source import NvmlSource
from gpuconsole.backend.gpu.nvml_standin import StandInNvml, h100_devices
from gpuconsole.backend.models import (
    NO_GPUS,
    ContainerSummary,
    EngineState,
    GpuRequest,
    HostSnapshot,
    HostStatus,
)
from gpuconsole.monitor.alerts import Alert, AlertKind, AlertSeverity, AlertTracker
from gpuconsole.monitor.events import ContainersUpdated, GpusUpdated
from gpuconsole.monitor.gpu_view import GpuView
from gpuconsole.settings.config import AlertSettings

GIB = 1024**3
HOST = "gpu1"


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def cid(name: str) -> str:
    return (name.encode().hex() * 16)[:64]


def container(name: str, running: bool = True) -> ContainerSummary:
    return ContainerSummary(
        host=HOST,
        id=cid(name),
        name=name,
        image="pytorch-cuda:v2.6",
        state="running" if running else "exited",
        status="Up 1 hour" if running else "Exited (0) 1 second ago",
        created=1.0,
    )


def engine(*containers: ContainerSummary, requests: Mapping[str, GpuRequest]) -> HostSnapshot:
    """What the engine says: the containers and their inspected GPU requests (by name)."""
    return HostSnapshot(
        HostStatus(HOST, "ssh://gpu1", EngineState.UP),
        tuple(containers),
        {},
        {cid(name): request for name, request in requests.items()},
        0.0,
    )


def gpu(index: int = 0, util: int | None = 0, temp: int | None = 40, **kw: object) -> GpuSample:
    return GpuSample(
        index,
        f"GPU-{index:04d}",
        "NVIDIA H100 80GB HBM3",
        memory_used_bytes=kw.pop("used", 2 * GIB),  # type: ignore[arg-type]
        memory_total_bytes=80 * GIB,
        utilization_gpu_percent=util,
        temperature_c=temp,
        **kw,  # type: ignore[arg-type]
    )


def view(
    gpus: Iterable[GpuSample],
    procs: Iterable[tuple[str, int, int]] = (),
    containers: HostSnapshot | None = None,
    state: GpuSourceState = GpuSourceState.OK,
    error: str | None = None,
) -> GpuView:
    """A sample; ``procs``: (container name, host pid, GPU index), attributed by the real code
    from the cgroup each would have under Docker's cgroupfs driver."""
    gpus = tuple(gpus)
    processes = tuple(GpuProcess(pid, i, f"GPU-{i:04d}", GIB) for _, pid, i in procs)
    origins = tuple((pid, f"12:memory:/docker/{cid(name)}\n", "python") for name, pid, _ in procs)
    snapshot = GpuSnapshot(
        HOST, "nvml", state, 0.0, gpus, processes, error, origins=origins, origins_read=True
    )
    running = {}
    if containers is not None:
        live = {c.id for c in containers.containers if c.running}
        running = {k: v for k, v in containers.gpus.items() if k in live}
    attribution = attribute_gpu_processes(snapshot, running)
    names = {} if containers is None else {c.id: c.name for c in containers.containers}
    return GpuView(snapshot, attribution=attribution, names=names)


def kinds(alerts: Iterable[Alert]) -> list[tuple[str, str]]:
    return [(a.kind.value, a.state) for a in alerts]


# -- idle reservations --------------------------------------------------------------------------


def test_idle_reservation_is_raised_after_exactly_the_configured_minutes() -> None:
    clock = Clock()
    tracker = AlertTracker(HOST, AlertSettings(idle_minutes=15), clock=clock)
    box = engine(container("jupyter-ana"), requests={"jupyter-ana": GpuRequest(device_ids=("0",))})
    start = clock.now
    for second in range(15 * 60):
        clock.now = start + second
        # A kernel holding memory on GPU 0 and computing nothing (2 %).
        assert tracker.observe(view([gpu(0, util=2)], [("jupyter-ana", 4242, 0)], box), box) == []
    clock.now = start + 15 * 60
    (alert,) = tracker.observe(view([gpu(0, util=2)], [("jupyter-ana", 4242, 0)], box), box)
    assert alert.kind is AlertKind.IDLE_RESERVATION and alert.raised
    assert alert.severity is AlertSeverity.WARNING
    assert (alert.host, alert.container_name, alert.container_id) == (
        HOST,
        "jupyter-ana",
        cid("jupyter-ana"),
    )
    assert alert.image == "pytorch-cuda:v2.6"
    assert alert.started_at == start and alert.at == start + 900
    assert alert.message == (
        "jupyter-ana on gpu1 reserved GPU 0 and kept it under 5 % utilization for 15 min; "
        "stopping it frees it"
    )
    assert tracker.live == (alert,)
    # Raised once: the samples after it say nothing new.
    for second in range(1, 120):
        clock.now = start + 900 + second
        assert tracker.observe(view([gpu(0, util=2)], [("jupyter-ana", 4242, 0)], box), box) == []


def test_idle_alert_clears_when_utilization_rises_and_the_count_starts_again() -> None:
    clock = Clock()
    tracker = AlertTracker(HOST, AlertSettings(idle_minutes=10), clock=clock)
    box = engine(container("train"), requests={"train": GpuRequest(device_ids=("0", "1"))})
    start = clock.now

    def at(seconds: float, util0: int, util1: int) -> list[Alert]:
        clock.now = start + seconds
        sample = view([gpu(0, util=util0), gpu(1, util=util1)], [("train", 77, 0)], box)
        return tracker.observe(sample, box)

    raised = [a for t in range(0, 601, 10) for a in at(t, 0, 3)]
    assert kinds(raised) == [("idle-reservation", "raised")]
    # Every GPU it reserved counts, not only the one its process is on.
    (cleared,) = at(610, 0, 60)
    assert cleared.state == "cleared" and cleared.message == "train on gpu1 uses its GPUs again"
    assert cleared.started_at == start and cleared.at == start + 610
    assert tracker.live == ()
    # Idle again: a new full window before it is raised again (no flapping).
    assert [a for t in range(620, 1220, 10) for a in at(t, 1, 1)] == []
    (again,) = at(1220, 1, 1)
    assert again.raised and again.started_at == start + 620
    assert [a.state for a in tracker.history] == ["raised", "cleared", "raised"][::-1]


def test_utilization_wobbling_around_the_threshold_does_not_raise() -> None:
    clock = Clock()
    tracker = AlertTracker(HOST, AlertSettings(idle_minutes=1), clock=clock)
    box = engine(container("etl"), requests={"etl": GpuRequest(device_ids=("0",))})
    out = []
    for util in [3, 4, 2, 6] * 60:  # busy every 4th second: never idle for 60 s
        clock.now += 1
        out += tracker.observe(view([gpu(0, util=util)], [("etl", 5, 0)], box), box)
    assert out == []


def test_a_reservation_with_no_process_is_idle_whatever_the_gpu_does() -> None:
    clock = Clock()
    tracker = AlertTracker(
        HOST, AlertSettings(idle_minutes=5, idle_utilization_percent=10), clock=clock
    )
    box = engine(
        container("holder"),
        container("counted"),
        container("worker"),
        requests={
            "holder": GpuRequest(all=True),
            "counted": GpuRequest(count=2),  # the runtime picks which two
            "worker": NO_GPUS,
        },
    )
    out: list[Alert] = []
    for _ in range(301):
        # GPU 0 is busy, but with another container's work.
        out += tracker.observe(view([gpu(0, util=100), gpu(1)], [("worker", 9, 0)], box), box)
        clock.now += 1
    idle = {a.container_name: a for a in out if a.kind is AlertKind.IDLE_RESERVATION}
    assert set(idle) == {"holder", "counted"}
    assert "reserved GPUs 0,1 and runs nothing on them for 5 min" in idle["holder"].message
    assert "reserved 2 GPUs and runs nothing on them" in idle["counted"].message
    assert idle["holder"].threshold == 5 and idle["holder"].value == 5.0


def test_a_container_that_stops_clears_its_idle_alert() -> None:
    clock = Clock()
    tracker = AlertTracker(HOST, AlertSettings(idle_minutes=0), clock=clock)
    request = {"nb": GpuRequest(device_ids=("0",))}
    up = engine(container("nb"), requests=request)
    (raised,) = tracker.observe(view([gpu(0)], containers=up), up)
    assert raised.raised and "runs nothing on it " in raised.message
    clock.now += 2
    down = engine(container("nb", running=False), requests=request)
    (cleared,) = tracker.observe(view([gpu(0)], containers=down), down)
    assert cleared.message == "nb on gpu1 stopped or released its GPUs"
    assert tracker.live == ()


def test_unknown_readings_and_gaps_neither_raise_nor_clear() -> None:
    clock = Clock()
    tracker = AlertTracker(HOST, AlertSettings(idle_minutes=2), clock=clock, max_gap_s=120)
    box = engine(container("nb"), requests={"nb": GpuRequest(device_ids=("0",))})

    def sample(util: int | None) -> list[Alert]:
        clock.now += 10
        return tracker.observe(view([gpu(0, util=util)], [("nb", 3, 0)], box), box)

    # 110 s idle, then a reading the device does not give: the count starts again.
    assert [a for _ in range(12) for a in sample(1)] == []
    assert sample(None) == []
    assert [a for _ in range(12) for a in sample(1)] == []
    assert kinds(sample(1)) == [("idle-reservation", "raised")]
    # Live alert: an unknown reading keeps it.
    assert sample(None) == []
    assert len(tracker.live) == 1
    tracker.observe(view([gpu(0, util=50)], [("nb", 3, 0)], box), box)  # cleared
    # A gap longer than max_gap_s (nobody watched) restarts the count.
    for _ in range(11):
        sample(1)
    clock.now += 300
    assert sample(1) == []
    assert [a for _ in range(11) for a in sample(1)] == []
    assert kinds(sample(1)) == [("idle-reservation", "raised")]


def test_container_rules_wait_for_the_first_containers_refresh() -> None:
    tracker = AlertTracker(HOST, AlertSettings(idle_minutes=0), clock=Clock())
    # Processes in a Docker cgroup, but the engine has not answered yet: no request is known.
    assert tracker.observe(view([gpu(0, util=90)], [("late", 8, 0)])) == []


# -- temperature and memory -----------------------------------------------------------------------


def test_temperature_threshold_from_config_with_a_band() -> None:
    clock = Clock()
    tracker = AlertTracker(HOST, AlertSettings(temperature_c=80), clock=clock)
    out: list[Alert] = []
    for temp in [70, 79, 80, 82, 79, 81, 76, 80, 75, 79, 80]:
        clock.now += 1
        out += tracker.observe(view([gpu(0, temp=temp)]))
    # Raised at 80, held through 79/81/76 (above 80 - 5), cleared at 75, raised again at 80.
    assert [(a.state, a.value) for a in out] == [
        ("raised", 80),
        ("cleared", 75),
        ("raised", 80),
    ]
    first = out[0]
    assert first.severity is AlertSeverity.ERROR and first.gpu_index == 0
    assert first.gpu_uuid == "GPU-0000" and first.threshold == 80
    assert first.message == "GPU 0 on gpu1 is at 80 °C (alert at 80 °C)"
    assert out[1].message == "GPU 0 on gpu1 cooled to 75 °C"


def test_default_temperature_is_85() -> None:
    tracker = AlertTracker(HOST, clock=Clock())
    assert tracker.observe(view([gpu(0, temp=84)])) == []
    assert kinds(tracker.observe(view([gpu(0, temp=85)]))) == [("temperature", "raised")]


def test_memory_threshold_from_config_names_the_holders() -> None:
    clock = Clock()
    tracker = AlertTracker(HOST, AlertSettings(memory_percent=90), clock=clock)
    box = engine(container("train"), requests={"train": GpuRequest(all=True)})
    out: list[Alert] = []
    for used in [70, 72, 76, 73, 71.9]:  # GiB of 80: 87.5, 90, 95, 91.2, 89.9 %
        clock.now += 1
        sample = view([gpu(0, util=99, used=int(used * GIB))], [("train", 11, 0)], box)
        out += tracker.observe(sample, box)
    assert [(a.state, a.value) for a in out] == [("raised", 90.0)]
    assert out[0].message == "GPU 0 on gpu1 memory is 90 % full (alert at 90 %); on it: train"
    clock.now += 1
    (cleared,) = tracker.observe(view([gpu(0, used=68 * GIB)], [("train", 11, 0)], box), box)
    assert cleared.state == "cleared" and cleared.value == 85.0


# -- lost GPUs and the driver ---------------------------------------------------------------------


def test_a_gpu_lost_through_nvml_raises_once() -> None:
    devices = h100_devices(2)
    source = NvmlSource(HOST, nvml=StandInNvml(devices))
    clock = Clock()
    tracker = AlertTracker(HOST, clock=clock)
    assert tracker.observe(GpuView(source.sample())) == []
    devices[1].failure = pynvml.NVMLError_GpuIsLost()
    clock.now += 1
    lost = source.sample()
    assert lost.state is GpuSourceState.DEGRADED
    (alert,) = tracker.observe(GpuView(lost))
    assert (alert.kind, alert.gpu_index, alert.gpu_uuid) == (
        AlertKind.GPU_LOST,
        1,
        devices[1].uuid,
    )
    assert alert.severity is AlertSeverity.ERROR
    assert alert.message == "GPU 1 (NVIDIA H100 80GB HBM3) on gpu1 stopped answering: " + str(
        lost.gpus[1].error
    )
    for _ in range(5):  # NVML keeps a lost GPU lost (it needs a reset): still one alert
        clock.now += 1
        assert tracker.observe(GpuView(source.sample())) == []
    assert [a.kind for a in tracker.live] == [AlertKind.GPU_LOST]


def test_a_gpu_that_answers_again_clears_after_a_while() -> None:
    # As the nvidia-smi stream reports a GPU whose lines stop, then come back.
    clock = Clock()
    tracker = AlertTracker(HOST, clock=clock, clear_after_s=30)
    tracker.observe(view([gpu(0), gpu(1)]))
    silent = gpu(1, util=None, temp=None, used=None, error="GPU 1 stopped answering")
    (alert,) = tracker.observe(view([gpu(0), silent], state=GpuSourceState.DEGRADED))
    assert alert.kind is AlertKind.GPU_LOST
    for flap in (False, True, False):  # back, lost again, back: no new alert either way
        clock.now += 10
        sample = [gpu(0), silent if flap else gpu(1)]
        assert tracker.observe(view(sample)) == []
    for _ in range(2):
        clock.now += 10
        assert tracker.observe(view([gpu(0), gpu(1)])) == []
    clock.now += 10  # answering for 30 s
    (cleared,) = tracker.observe(view([gpu(0), gpu(1)]))
    assert cleared.state == "cleared"
    assert cleared.message == "GPU 1 (NVIDIA H100 80GB HBM3) on gpu1 answers again"


def test_a_gpu_missing_from_the_readings_is_lost() -> None:
    tracker = AlertTracker(HOST, clock=Clock())
    tracker.observe(view([gpu(0), gpu(1)]))
    (alert,) = tracker.observe(view([gpu(0)]))
    assert alert.kind is AlertKind.GPU_LOST and alert.gpu_index == 1
    assert "missing from the readings" in alert.message


def test_driver_errors_from_the_nvml_source() -> None:
    mismatch = NvmlSource(HOST, nvml=StandInNvml([], pynvml.NVMLError_LibRmVersionMismatch()))
    (alert,) = AlertTracker(HOST, clock=Clock()).observe(GpuView(mismatch.sample()))
    assert alert.kind is AlertKind.DRIVER and alert.severity is AlertSeverity.ERROR
    assert alert.message.startswith("GPU telemetry on gpu1 unavailable: NVIDIA driver/library")
    # A host without a driver never had a GPU to lose: no alert, sample after sample.
    nothing = NvmlSource(HOST, nvml=StandInNvml([], pynvml.NVMLError_LibraryNotFound()))
    tracker = AlertTracker(HOST, clock=Clock())
    assert [a for _ in range(3) for a in tracker.observe(GpuView(nothing.sample()))] == []


def test_telemetry_that_stalls_after_gpus_were_seen_is_a_driver_alert() -> None:
    clock = Clock()
    tracker = AlertTracker(HOST, clock=clock, clear_after_s=30)
    stale = "no nvidia-smi line for 5 s"
    assert tracker.observe(view([], state=GpuSourceState.STARTING)) == []
    assert tracker.observe(view([gpu(0, temp=90)])) != []  # the temperature alert
    clock.now += 1
    (alert,) = tracker.observe(view([gpu(0)], state=GpuSourceState.STALE, error=stale))
    assert alert.kind is AlertKind.DRIVER
    assert alert.message == f"GPU telemetry on gpu1 stalled: {stale}"
    # While stale, the GPUs' own alerts stay as they were (the readings are old).
    assert {a.kind for a in tracker.live} == {AlertKind.DRIVER, AlertKind.TEMPERATURE}
    clock.now += 1
    assert tracker.observe(view([], state=GpuSourceState.UNAVAILABLE, error="gone")) == []
    clock.now += 1
    back = tracker.observe(view([gpu(0, temp=50)]))
    assert kinds(back) == [("temperature", "cleared")]
    clock.now += 30
    (cleared,) = tracker.observe(view([gpu(0, temp=50)]))
    assert cleared.kind is AlertKind.DRIVER and cleared.state == "cleared"


# -- GPU use without a reservation ----------------------------------------------------------------


def test_unreserved_use_raises_once_and_clears_after_the_processes_are_gone() -> None:
    clock = Clock()
    tracker = AlertTracker(HOST, clock=clock, clear_after_s=30)
    box = engine(container("sneaky"), requests={"sneaky": NO_GPUS})
    (alert,) = tracker.observe(view([gpu(0, util=80)], [("sneaky", 21, 0)], box), box)
    assert alert.kind is AlertKind.UNRESERVED_USE and alert.container_name == "sneaky"
    assert alert.message.startswith("sneaky on gpu1 uses GPU 0 but reserved none")
    # Short-lived processes coming and going: one alert, no flapping.
    for procs in ([], [("sneaky", 22, 0)], [], [], [("sneaky", 23, 0)]):
        clock.now += 5
        assert tracker.observe(view([gpu(0)], procs, box), box) == []
    for _ in range(6):  # gone for 0 .. 25 s
        clock.now += 5
        assert tracker.observe(view([gpu(0)], [], box), box) == []
    clock.now += 5  # 30 s
    (cleared,) = tracker.observe(view([gpu(0)], [], box), box)
    assert cleared.state == "cleared" and cleared.message == "sneaky on gpu1 no longer uses a GPU"


def test_a_container_not_yet_inspected_is_not_unreserved() -> None:
    tracker = AlertTracker(HOST, clock=Clock())
    box = engine(container("new"), requests={})  # started after the last refresh
    assert tracker.observe(view([gpu(0)], [("new", 30, 0)], box), box) == []


# -- the shortcuts judge as every rule does ------------------------------------------------------


class AllRules(AlertTracker):
    """The tracker without its shortcuts: every rule judges every GPU and every container."""

    def _quiet(self, gpu: GpuSample, uuid: str) -> bool:
        return False

    def _quiet_sample(self, snapshot: GpuSnapshot, attribution: object, now: float) -> bool:
        return False

    def _no_container_subject(self, attribution: object) -> bool:
        return False

    def _container_maps(self, containers: HostSnapshot) -> Any:
        self._maps = None  # worked out afresh for every sample
        return super()._container_maps(containers)


def state_of(tracker: AlertTracker) -> object:
    tracks = {k: (t.since, t.absent_since, t.alert) for k, t in tracker._tracks.items()}
    return tracks, dict(tracker._seen), tracker._last, tracker.live, tracker.history


FLEET = engine(
    container("train"),
    container("rogue"),
    container("gone", running=False),
    requests={
        "train": GpuRequest(device_ids=("0",)),
        "rogue": NO_GPUS,
        "gone": GpuRequest(all=True),
    },
)
#: The same containers after a refresh: "train" stopped, "gone" removed.
REFRESHED = engine(
    container("train", running=False),
    container("rogue"),
    requests={"train": GpuRequest(device_ids=("0",)), "rogue": NO_GPUS},
)
BOXES = {"not yet": None, "listed": FLEET, "refreshed": REFRESHED}
#: (container, pid, GPU index) a sample may show.
PROCESSES = [("train", 11, 0), ("rogue", 12, 1), ("gone", 13, 2), ("train", 14, 2)]

a_gpu = st.tuples(
    st.sampled_from(["there"] * 8 + ["missing", "error"]),
    st.one_of(st.none(), st.sampled_from([40, 79, 80, 84, 85, 86, 95])),  # limit 85, band 5
    st.one_of(st.none(), st.sampled_from([0, 70.0, 71.9, 72.0, 75.9, 76.0, 79.9, 80.0])),  # GiB
    st.sampled_from([0, 2, 50, 100]),  # utilization
)
a_step = st.tuples(
    st.sampled_from([1.0, 1.0, 10.0, 31.0, 200.0]),  # seconds since the last (200: a gap)
    st.sampled_from([GpuSourceState.OK] * 4 + list(GpuSourceState)),  # mostly OK: quiet hosts
    st.lists(a_gpu, min_size=3, max_size=3),
    st.lists(st.sampled_from(PROCESSES), max_size=3, unique=True),
    st.sampled_from(list(BOXES)),  # the host's containers, as last refreshed
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(a_step, min_size=1, max_size=40), st.booleans())
def test_the_shortcuts_raise_and_clear_exactly_what_every_rule_does(
    steps: list[
        tuple[
            float,
            GpuSourceState,
            list[tuple[str, int | None, float | None, int]],
            list[tuple[str, int, int]],
            str,
        ]
    ],
    recorder_way: bool,
) -> None:
    """Quiet GPUs and hosts without GPU containers skip their rules (``_quiet``,
    ``_no_container_subject``), a quiet host's sample skips them all (``_quiet_sample``,
    also through ``observe_quiet``, before a view is built) and a refresh's containers are
    looked up once (``_container_maps``): on any sequence of samples — thresholds crossed and left,
    GPUs lost and back, readings missing, gaps, containers with and without requests — the
    tracker raises and clears what the tracker without shortcuts does, and keeps the same
    state."""
    clock = Clock()
    settings_ = AlertSettings(idle_minutes=0.5, temperature_c=85, memory_percent=95)
    fast = AlertTracker(HOST, settings_, clock=clock, clear_after_s=30, max_gap_s=120)
    every = AllRules(HOST, settings_, clock=clock, clear_after_s=30, max_gap_s=120)
    for dt, state, readings, procs, refresh in steps:
        clock.now += dt
        gpus = []
        for index, (how, temp, used, util) in enumerate(readings):
            if how == "missing":
                continue
            memory = None if used is None else int(used * GIB)
            error = "GPU stopped answering" if how == "error" else None
            gpus.append(gpu(index, util=util, temp=temp, used=memory, error=error))
        on = [p for p in procs if p[2] < len(readings) and readings[p[2]][0] != "missing"]
        box = BOXES[refresh]
        sample = view(gpus, on, box, state=state, error=None if state is GpuSourceState.OK else "x")
        expected = every.observe(sample, box)
        if recorder_way:  # a quiet sample judged before any view is built, as the recorder does
            quiet = fast.observe_quiet(sample.snapshot, sample.attribution, box)
            assert (fast.observe(sample, box) if not quiet else []) == expected
        else:
            assert fast.observe(sample, box) == expected
        assert state_of(fast) == state_of(every)


def judged_as_the_recorder_does(
    tracker: AlertTracker, sample: GpuView, box: HostSnapshot
) -> list[Alert]:
    """A quiet sample judged before any view is built (``observe_quiet``), else ``observe``."""
    if tracker.observe_quiet(sample.snapshot, sample.attribution, box):
        return []
    return tracker.observe(sample, box)


def test_a_busy_reservation_that_goes_idle_or_a_container_that_starts_using_a_gpu_raises() -> None:
    """A quiet host with GPU containers (busy "train" on the GPU it reserved) is judged the
    short way; "train" going idle still raises after the configured minutes, and "rogue",
    which reserved none, raises at its first process on a GPU."""
    clock = Clock()
    tracker = AlertTracker(HOST, AlertSettings(idle_minutes=1), clock=clock)
    busy = view([gpu(0, util=90), gpu(1, util=0)], [("train", 11, 0)], FLEET)
    raised: list[Alert] = []
    for _ in range(120):
        clock.now += 1
        raised += judged_as_the_recorder_does(tracker, busy, FLEET)
    assert raised == []
    idle = view([gpu(0, util=1), gpu(1, util=0)], [("train", 11, 0)], FLEET)
    for _ in range(61):
        clock.now += 1
        raised += judged_as_the_recorder_does(tracker, idle, FLEET)
    assert kinds(raised) == [("idle-reservation", "raised")]
    assert raised[0].container_name == "train"

    clock.now += 1
    assert kinds(judged_as_the_recorder_does(tracker, busy, FLEET)) == [
        ("idle-reservation", "cleared")
    ]
    for _ in range(5):
        clock.now += 1
        assert judged_as_the_recorder_does(tracker, busy, FLEET) == []
    rogue = view([gpu(0, util=90), gpu(1, util=40)], [("train", 11, 0), ("rogue", 12, 1)], FLEET)
    clock.now += 1
    out = judged_as_the_recorder_does(tracker, rogue, FLEET)
    assert kinds(out) == [("unreserved-use", "raised")]
    assert out[0].container_name == "rogue"


def test_a_quiet_gpu_still_raises_at_the_limit_and_clears_under_the_band() -> None:
    clock = Clock()
    tracker = AlertTracker(HOST, AlertSettings(temperature_c=85, memory_percent=95), clock=clock)
    out: list[Alert] = []
    for temp, used in [(40, 10), (84, 10), (85, 10), (81, 10), (80, 10), (60, 76), (60, 72)]:
        clock.now += 1
        out += tracker.observe(view([gpu(0, temp=temp, used=used * GIB)]))
    assert [(a.kind.value, a.state, a.value) for a in out] == [
        ("temperature", "raised", 85),
        ("temperature", "cleared", 80),
        ("memory", "raised", 95.0),
        ("memory", "cleared", 90.0),
    ]
    assert tracker.live == ()


# -- plumbing -------------------------------------------------------------------------------------


def test_feed_takes_monitor_events_and_history_is_bounded_newest_first() -> None:
    clock = Clock()
    tracker = AlertTracker(HOST, AlertSettings(idle_minutes=0), clock=clock, history_limit=3)
    box = engine(container("a"), requests={"a": GpuRequest(device_ids=("0",))})
    assert tracker.feed(ContainersUpdated(HOST, box)) == []
    assert kinds(tracker.feed(GpusUpdated(HOST, view([gpu(0)], containers=box)))) == [
        ("idle-reservation", "raised")
    ]
    for temp in (90, 50, 90, 50):
        clock.now += 1
        tracker.feed(GpusUpdated(HOST, view([gpu(0, temp=temp)], containers=box)))
    history = tracker.history
    assert len(history) == 3
    assert [a.at for a in history] == sorted((a.at for a in history), reverse=True)
    assert [(a.kind.value, a.state) for a in history] == [
        ("temperature", "cleared"),
        ("temperature", "raised"),
        ("temperature", "cleared"),
    ]
    assert [a.kind for a in tracker.live] == [AlertKind.IDLE_RESERVATION]


def test_alert_json_is_plain() -> None:
    import json

    tracker = AlertTracker(HOST, clock=Clock())
    (alert,) = tracker.observe(view([gpu(2, temp=91)]))
    data = json.loads(json.dumps(alert.to_json()))
    assert data["kind"] == "temperature" and data["state"] == "raised"
    assert data["severity"] == "error" and data["gpu_index"] == 2 and data["value"] == 91


@pytest.mark.parametrize("enabled", [True, False])
def test_a_host_monitor_judges_only_when_alerts_are_on(enabled: bool) -> None:
    from gpuconsole.monitor.host_monitor import HostMonitor

    from support import host_of

    class NoEngine:
        address = "none"

    monitor = HostMonitor(
        host_of(NoEngine()), lambda event: None, alerts=AlertSettings(enabled=enabled)
    )
    assert (monitor.alerts is not None) is enabled
    assert HostMonitor(host_of(NoEngine()), lambda event: None).alerts is None


def test_the_alert_engine_is_headless() -> None:
    """The recorder runs it too: no Textual or Rich behind any alert module."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import gpuconsole.monitor.alerts, gpuconsole.monitor.alert_command\n"
        "import gpuconsole.monitor.fleet, gpuconsole.monitor.host_monitor\n"
        "print(sorted({n.split('.')[0] for n in sys.modules} & {'textual', 'rich'}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"

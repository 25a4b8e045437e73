"""The recorder's round, over hosts made of stand-ins (the end-to-end run over SSH, with a real
container, is test_record_remote.py): one thread samples every host per interval and commits all
of them in one transaction; a host whose sample hangs is left to a thread of its own while the
others go on; containers follow the engine's events (no list per event); attribution is redone
only when something changed; alerts are judged on every sample; a recording that cannot be
written stops the recorder with the error."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gpuconsole.accounting import recorder as recorder_module
from gpuconsole.accounting.recorder import Recorder
from gpuconsole.accounting.store import Writer
from gpuconsole.backend.gpu.models import GpuProcess, GpuSample, GpuSnapshot, GpuSourceState
from gpuconsole.backend.hosts.host import Host
from gpuconsole.backend.hosts.local import LocalMachine
from gpuconsole.backend.models import (
    NO_GPUS,
    ContainerDetails,
    ContainerSummary,
    EngineState,
    GpuRequest,
    HostSnapshot,
    HostStatus,
)
from gpuconsole.settings.config import AlertSettings

INTERVAL = 0.2
GIB = 1 << 30


def cgroup(cid: str) -> str:
    return f"0::/system.slice/docker-{cid}.scope\n"


class Source:
    """Two steady GPUs at 300 W; ``hang()`` makes the next sample wait until ``release()``."""

    def __init__(self, host: str, temperature: int = 40) -> None:
        self.host = host
        self.name = "stand-in"
        self.replayed = False
        self.samples = 0
        self.temperature = temperature
        self.processes: tuple[GpuProcess, ...] = ()
        self.origins: tuple[tuple[int, str | None, str | None], ...] = ()
        self._hang = threading.Event()
        self._release = threading.Event()
        self.hanging = threading.Event()

    def hang(self) -> None:
        self._release.clear()
        self._hang.set()

    def release(self) -> None:
        self._hang.clear()
        self._release.set()

    def sample(self) -> GpuSnapshot:
        if self._hang.is_set():
            self.hanging.set()
            self._release.wait(30)
        self.samples += 1
        gpus = tuple(
            GpuSample(
                index=i,
                uuid=f"GPU-{self.host}-{i}",
                name="H100",
                memory_used_bytes=GIB,
                memory_total_bytes=80 * GIB,
                utilization_gpu_percent=100,
                power_w=300.0,
                temperature_c=self.temperature,
            )
            for i in range(2)
        )
        return GpuSnapshot(
            self.host,
            self.name,
            GpuSourceState.OK,
            time.time(),
            gpus,
            self.processes,
            origins=self.origins,
            origins_read=True,
        )

    def close(self) -> None:
        pass


class Watch:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


class Engine:
    """A DockerHost of running containers that counts what it is asked."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.containers: dict[str, ContainerSummary] = {}
        self.requests: dict[str, GpuRequest] = {}
        self.calls: list[str] = []
        self.on_event: Callable[[str, str], None] | None = None
        self.watch = Watch()

    def add(self, name: str, request: GpuRequest = NO_GPUS) -> str:
        cid = (name.encode().hex() * 16)[:64]
        self.containers[cid] = ContainerSummary(
            self.host, cid, name, f"img/{name}", "running", "Up", 0.0
        )
        self.requests[cid] = request
        return cid

    name = property(lambda self: self.host)
    address = property(lambda self: f"ssh://{self.host}")
    machine = property(lambda self: LocalMachine())

    def list_containers(self, all: bool = True) -> tuple[ContainerSummary, ...]:
        self.calls.append("list")
        return tuple(c for c in self.containers.values() if all or c.running)

    def gpu_requests(self, container_ids: list[str]) -> dict[str, GpuRequest]:
        self.calls.append(f"requests {len(container_ids)}")
        return {cid: self.requests[cid] for cid in container_ids if cid in self.requests}

    def inspect(self, ref: str) -> ContainerDetails:
        self.calls.append(f"inspect {self.containers[ref].name}")
        c = self.containers[ref]
        return ContainerDetails(
            c,
            (),
            (),
            "",
            None,
            None,
            None,
            "no",
            None,
            None,
            None,
            self.requests[ref],
            (),
            (),
            (),
            (),
        )

    def status(self) -> HostStatus:
        return HostStatus(self.host, self.address, EngineState.UP)

    def snapshot(self, all: bool = True, stats: bool = True) -> HostSnapshot:
        raise AssertionError("the recorder takes no full snapshot")

    def watch_events(self, on_event: Callable[[str, str], None]) -> Watch:
        self.on_event = on_event
        return self.watch

    def emit(self, action: str, cid: str) -> None:
        assert self.on_event is not None
        self.on_event(action, cid)

    def close(self) -> None:
        pass


def fleet(n: int, **source_kw: Any) -> tuple[list[Host], list[Source], list[Engine]]:
    sources = [Source(f"h{i}", **source_kw) for i in range(n)]
    engines = [Engine(f"h{i}") for i in range(n)]
    hosts = [
        Host(f"h{i}", LocalMachine(), engine, source)  # type: ignore[arg-type]
        for i, (engine, source) in enumerate(zip(engines, sources, strict=True))
    ]
    return hosts, sources, engines


class Running:
    """A recorder running in a thread until ``stop()``."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.stop_event = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.recorder.run(self.stop_event)
        except BaseException as exc:
            self.error = exc

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(10)
        assert not self.thread.is_alive()


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[Writer]:
    w = Writer(tmp_path / "usage.sqlite")
    yield w
    w.close()


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def test_one_thread_samples_every_host_and_commits_them_together(writer: Writer) -> None:
    hosts, _, _ = fleet(4)
    rec = Recorder(hosts, writer, interval=INTERVAL, alerts=AlertSettings(enabled=False))
    before = threading.active_count()
    running = Running(rec)
    wait_for(lambda: rec.stats.gpu_rows >= 4 * 2 * 5, what="five rounds of four hosts")
    names = {t.name for t in threading.enumerate()}
    assert "record:round" in names
    assert not any(n.startswith(("record:gpu", "poll:")) for n in names)  # no thread per host
    running.stop()
    assert running.error is None
    stats = rec.stats
    # Every commit holds a whole round: all hosts' GPUs (the first rounds start the meters).
    assert stats.gpu_rows / stats.commits == pytest.approx(8, abs=1.5)
    per_gpu = rows(writer.path, "SELECT gpu, count(*), sum(dt) FROM gpu_samples GROUP BY gpu")
    assert len(per_gpu) == 8
    counts = [n for _, n, _ in per_gpu]
    assert max(counts) - min(counts) <= 1
    for _, n, seconds in per_gpu:
        assert seconds == pytest.approx(n * INTERVAL, rel=0.5)
    # The threads it started are gone (the engines' watches closed).
    wait_for(lambda: threading.active_count() <= before, what="the recorder's threads to end")


def test_a_hung_host_is_sampled_apart_and_the_others_go_on(
    writer: Writer, caplog: pytest.LogCaptureFixture
) -> None:
    interval = 0.5
    hosts, sources, _ = fleet(3)
    rec = Recorder(hosts, writer, interval=interval, alerts=AlertSettings(enabled=False))
    running = Running(rec)
    try:
        wait_for(lambda: all(s.samples >= 3 for s in sources), what="three samples of each")
        with caplog.at_level(logging.WARNING, "gpuconsole.record"):
            sources[1].hang()
            assert sources[1].hanging.wait(5)
            hung_at = [s.samples for s in sources]
            time.sleep(8 * interval)
        # The others kept their pace while h1 hung...
        assert sources[0].samples - hung_at[0] >= 6
        assert sources[2].samples - hung_at[2] >= 6
        assert "h1: a GPU sample kept the others waiting" in caplog.text
        # ...with no gap their meters would not bridge.
        gaps = rows(writer.path, "SELECT max(dt) FROM gpu_samples")[0][0]
        assert gaps <= recorder_module.MAX_GAP_INTERVALS * interval
        sources[1].release()
        n = sources[1].samples
        wait_for(lambda: sources[1].samples >= n + 3, what="h1 sampled again, apart")
        assert sum(t.name == "record:round" for t in threading.enumerate()) == 2
    finally:
        sources[1].release()
        running.stop()
    assert running.error is None


def test_containers_follow_the_engine_events(writer: Writer, monkeypatch: Any) -> None:
    monkeypatch.setattr(recorder_module, "ATTRIBUTE_EVERY_S", 3600.0)
    hosts, sources, engines = fleet(1)
    engine, source = engines[0], sources[0]
    trainer = engine.add("trainer", GpuRequest(device_ids=("1",)))
    engine.add("web")
    attributions = []
    real = recorder_module.reservations

    def counted(attribution: Any) -> Any:
        attributions.append(attribution)
        return real(attribution)

    monkeypatch.setattr(recorder_module, "reservations", counted)
    source.processes = (GpuProcess(4242, 0, "GPU-h0-0", 10 * GIB, "python"),)
    source.origins = ((4242, cgroup(trainer), "python"),)
    rec = Recorder(hosts, writer, interval=INTERVAL, alerts=AlertSettings(enabled=False))
    running = Running(rec)
    try:
        wait_for(lambda: engine.on_event is not None, what="the event watch")
        engine.emit("reconnect", "")  # as the watch says once it is connected
        wait_for(lambda: engine.calls.count("list") == 2, what="the list after the reconnect")
        wait_for(lambda: rec.stats.owner_rows >= 6, what="the trainer's rows")
        # One list (and one inspect per container, at first), then only the events.
        assert engine.calls[:2] == ["list", "requests 2"]
        sampled, attributed = source.samples, len(attributions)
        wait_for(lambda: source.samples >= sampled + 5, what="five more samples")
        assert len(attributions) == attributed  # nothing changed: the same attribution
        # A container that starts is inspected alone; one that dies is dropped, unasked.
        newcomer = engine.add("newcomer", GpuRequest(count=1))
        engine.emit("start", newcomer)
        wait_for(lambda: "inspect newcomer" in engine.calls, what="the newcomer's inspect")
        engine.emit("exec_start: sh", trainer)  # nothing the recorder needs
        engine.emit("die", trainer)
        died = time.time()
        time.sleep(5 * INTERVAL)
    finally:
        running.stop()
    assert running.error is None
    assert engine.calls.count("list") == 2
    assert [c for c in engine.calls if c.startswith("inspect")] == ["inspect newcomer"]
    assert engine.watch.closed
    owners = dict(rows(writer.path, "SELECT container_id, name FROM owners"))
    assert owners[trainer] == "trainer"
    last = rows(
        writer.path,
        "SELECT max(t) FROM owner_samples s JOIN owners o ON o.id = s.owner "
        f"WHERE o.container_id = '{trainer}'",
    )[0][0]
    assert last <= died + 2 * INTERVAL  # its process no longer counts once it died
    # The trainer reserved GPU 1 and ran nothing there: reserved, idle time.
    idle = rows(
        writer.path,
        "SELECT sum(s.idle_reserved_seconds) FROM owner_samples s JOIN owners o "
        f"ON o.id = s.owner JOIN gpus g ON g.id = s.gpu WHERE o.container_id = '{trainer}' "
        "AND g.gpu_index = 1",
    )[0][0]
    assert idle > 0


def test_alerts_are_judged_on_every_sample(
    writer: Writer, caplog: pytest.LogCaptureFixture
) -> None:
    hosts, sources, _ = fleet(2, temperature=90)
    rec = Recorder(hosts, writer, interval=INTERVAL, alerts=AlertSettings(temperature_c=85))
    with caplog.at_level(logging.WARNING, "gpuconsole.record"):
        running = Running(rec)
        wait_for(lambda: caplog.text.count("alert raised") >= 4, what="four heat alerts")
        for s in sources:
            s.temperature = 40
        wait_for(lambda: caplog.text.count("alert cleared") >= 4, what="four clears")
        running.stop()
    assert "GPU 1 on h0 is at 90 °C" in caplog.text
    assert running.error is None


def test_a_recording_that_cannot_be_written_stops_the_recorder(writer: Writer) -> None:
    hosts, _, _ = fleet(1)
    rec = Recorder(hosts, writer, interval=INTERVAL, alerts=AlertSettings(enabled=False))

    def broken(*args: Any) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    writer.write = broken  # type: ignore[method-assign]
    stop = threading.Event()
    with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
        rec.run(stop)
    assert stop.is_set()


def test_what_was_sampled_before_the_stop_is_committed(writer: Writer) -> None:
    from gpuconsole.accounting.meter import GpuInterval

    hosts, sources, _ = fleet(2)
    rec = Recorder(hosts, writer, interval=5.0, alerts=AlertSettings(enabled=False))
    running = Running(rec)
    wait_for(lambda: all(s.samples >= 1 for s in sources), timeout=15, what="a first sample")
    # A host sampled apart hands its rows to the round, which is asleep until the next interval.
    late = GpuInterval(
        "h0", "GPU-h0-0", 0, "H100", 1.0, 1.0, 300.0, 100.0, GIB, 80 * GIB, 300.0, 40
    )
    rec._add([late], [])
    running.stop()
    assert running.error is None
    assert (1.0, 300.0) in rows(writer.path, "SELECT t, energy_j FROM gpu_samples")

"""The nvidia-smi stream source: one long-lived process, parsed lines, failures as states."""

from __future__ import annotations

import os
import queue
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from gpuconsole.backend.gpu.models import GpuSnapshot, GpuSourceState
from gpuconsole.backend.gpu.runner import CommandError, LineStream
from gpuconsole.backend.gpu.smi_stream import SmiStreamSource

UUID = "GPU-85f63f49-2356-f053-21c3-2eb02bd04522"


def wait_for(source: SmiStreamSource, ok: Callable[[GpuSnapshot], bool]) -> GpuSnapshot:
    deadline = time.monotonic() + 10
    while True:
        snap = source.sample()
        if ok(snap) or time.monotonic() > deadline:
            return snap
        time.sleep(0.01)


def invocations(log: Path, flag: str) -> list[str]:
    if not log.exists():
        return []
    return [line for line in log.read_text().splitlines() if flag in line]


@pytest.fixture
def smi_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    log = tmp_path / "smi.log"
    monkeypatch.setenv("GPUCONSOLE_SMI_STUB_LOG", str(log))
    return log


def test_many_samples_use_one_nvidia_smi_process(stub_smi: Path, smi_log: Path) -> None:
    source = SmiStreamSource(executable=str(stub_smi), interval=0.02, process_interval=0.5)
    try:
        first = wait_for(source, lambda s: bool(s.gpus) and bool(s.processes))
        powers = set()
        started = time.monotonic()
        for _ in range(40):
            snap = source.sample()
            powers.add(snap.gpus[0].power_w)
            time.sleep(0.02)
        elapsed = time.monotonic() - started
    finally:
        source.close()
    assert first.state is GpuSourceState.OK
    gpu = first.gpus[0]
    assert (gpu.index, gpu.uuid, gpu.name) == (0, UUID, "NVIDIA H100 80GB HBM3")
    assert gpu.fan_percent is None
    assert [(p.pid, p.gpu_index, p.process_name) for p in first.processes] == [(416, 0, "python3")]
    assert len(powers) > 3  # the readings move with the recording: it really streams
    streams = invocations(smi_log, "--query-gpu")
    assert len(streams) == 1, streams
    assert "-lms 20" in streams[0]
    apps = invocations(smi_log, "--query-compute-apps")
    assert 1 <= len(apps) <= elapsed / 0.5 + 2  # process lists at the lower rate
    assert source.spawns == 1


def test_close_ends_the_nvidia_smi_process(stub_smi: Path, smi_log: Path) -> None:
    source = SmiStreamSource(executable=str(stub_smi), interval=0.05)
    wait_for(source, lambda s: bool(s.gpus))
    pid = int(invocations(smi_log, "--query-gpu")[0].split()[0])
    os.kill(pid, 0)  # alive while the source runs
    source.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_eight_gpus_in_one_stream(
    stub_smi: Path, smi_log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GPUCONSOLE_SMI_STUB_GPUS", "8")
    source = SmiStreamSource(executable=str(stub_smi), interval=0.05)
    try:
        snap = wait_for(source, lambda s: len(s.gpus) == 8)
    finally:
        source.close()
    assert [g.index for g in snap.gpus] == list(range(8))
    assert len({g.uuid for g in snap.gpus}) == 8
    assert len(invocations(smi_log, "--query-gpu")) == 1


def test_no_driver_is_a_clear_state_and_not_a_respawn_loop(
    stub_smi: Path, smi_log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "GPUCONSOLE_SMI_STUB_FAIL",
        "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
        "Make sure that the latest NVIDIA driver is installed and running.",
    )
    source = SmiStreamSource(executable=str(stub_smi), interval=0.05, restart_delay=60)
    try:
        snap = wait_for(source, lambda s: s.error is not None)
        for _ in range(10):
            snap = source.sample()
    finally:
        source.close()
    assert snap.state is GpuSourceState.UNAVAILABLE
    assert snap.error is not None and snap.error.startswith("no NVIDIA driver on this host")
    assert len(invocations(smi_log, "--query-gpu")) == 1


def test_missing_nvidia_smi_is_a_state(tmp_path: Path) -> None:
    source = SmiStreamSource(executable=str(tmp_path / "nvidia-smi"))
    snap = source.sample()
    source.close()
    assert snap.state is GpuSourceState.UNAVAILABLE
    assert snap.error is not None and "cannot start" in snap.error


class QueueStream:
    def __init__(self, lines: queue.Queue[str | None]) -> None:
        self._lines = lines

    def __iter__(self) -> Iterator[str]:
        while (line := self._lines.get(timeout=10)) is not None:
            yield line

    def close(self) -> None:
        self._lines.put(None)


class ScriptedRunner:
    """What an SSH runner looks like to the source: lines arrive when the test says so."""

    def __init__(self, apps: str = "") -> None:
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.streams: list[list[str]] = []
        self.runs: list[list[str]] = []
        self.apps = apps

    def stream(self, argv: Sequence[str]) -> LineStream:
        self.streams.append(list(argv))
        return QueueStream(self.lines)

    def run(self, argv: Sequence[str], timeout: float) -> str:
        self.runs.append(list(argv))
        if self.apps == "fail":
            raise CommandError("ssh: connection reset")
        if self.apps == "down":
            from gpuconsole.backend.hosts.machine import MachineUnreachable

            raise MachineUnreachable("far", "root@far", "the SSH server stopped answering")
        return self.apps


def row(index: int, power: str = "76.57") -> str:
    uuid = UUID[:-2] + f"{index:02d}"
    return (
        f"{index}, {uuid}, NVIDIA H100 80GB HBM3, 480, 81559, 0, 0, {power}, 700.00, 48, 345, [N/A]"
    )


def test_injected_runner_a_gpu_that_stops_answering_is_flagged() -> None:
    now = [100.0]
    runner = ScriptedRunner()
    source = SmiStreamSource(runner, host="gpu-box", interval=1.0, clock=lambda: now[0])
    assert source.sample().state is GpuSourceState.STARTING
    runner.lines.put(row(0))
    runner.lines.put(row(1))
    snap = wait_for(source, lambda s: len(s.gpus) == 2)
    assert snap.state is GpuSourceState.OK and snap.host == "gpu-box"
    for _ in range(3):
        now[0] += 3.0
        runner.lines.put(row(0, "300.00"))
        runner.lines.put("Unable to determine the device handle for GPU0000:3B:00.0: GPU is lost")
    snap = wait_for(source, lambda s: s.state is GpuSourceState.DEGRADED)
    source.close()
    assert snap.gpus[0].power_w == pytest.approx(300.0)
    assert snap.gpus[1].error == "GPU 1 stopped answering"
    assert snap.gpus[1].power_w is None  # no stale reading presented as current
    assert snap.error is not None and "GPU is lost" in snap.error
    assert len(runner.streams) == 1


def test_injected_runner_stream_end_goes_stale_then_restarts() -> None:
    now = [0.0]
    runner = ScriptedRunner(apps="fail")
    source = SmiStreamSource(runner, interval=1.0, restart_delay=10.0, clock=lambda: now[0])
    source.sample()
    runner.lines.put(row(0))
    runner.lines.put(None)  # the SSH channel closed
    snap = wait_for(source, lambda s: s.error is not None and "stopped" in s.error)
    assert snap.gpus and snap.state is GpuSourceState.OK
    assert (
        snap.error
        == "nvidia-smi stopped streaming; cannot list GPU processes: ssh: connection reset"
    )
    now[0] = 6.0
    snap = source.sample()
    assert snap.state is GpuSourceState.STALE
    assert snap.error is not None and snap.error.startswith("no reading from nvidia-smi for 6 s")
    assert len(runner.streams) == 1  # not restarted before restart_delay
    now[0] = 11.0
    source.sample()
    assert len(runner.streams) == 2
    source.close()


def test_process_lists_follow_memory_changes(
    stub_smi: Path, smi_log: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A GPU process starting or ending changes the memory used; while it stays the same the
    process list is asked for only at the long interval (each is a process, remote: a channel)."""
    import json

    recording = Path(__file__).parents[2] / "fixtures/gpu/h100/nvml-recording-h100.jsonl"
    row = json.loads(recording.open().readline())

    def run(memories: list[int]) -> int:
        steady = tmp_path / "rec.jsonl"
        steady.write_text("".join(json.dumps({**row, "mem_used": m}) + "\n" for m in memories))
        monkeypatch.setenv("GPUCONSOLE_SMI_STUB_RECORDING", str(steady))
        smi_log.unlink(missing_ok=True)
        source = SmiStreamSource(
            executable=str(stub_smi),
            interval=0.02,
            process_interval=0.1,
            process_max_interval=1.0,
        )
        try:
            wait_for(source, lambda s: bool(s.processes))
            time.sleep(2.0)
        finally:
            source.close()
        return len(invocations(smi_log, "--query-compute-apps"))

    steady = run([20 << 30])
    moving = run([20 << 30, 21 << 30])
    assert 2 <= steady <= 4  # the first, then one a second
    assert moving >= steady + 3  # as often as it can (0.1 s): the memory moves every reading


def test_a_host_going_down_under_the_process_list_is_a_state_not_a_dead_thread() -> None:
    """The SSH host stopped answering just as the process list was asked for: the reader
    thread must end the way a stream end does (a state, a restart later), not die with it."""
    import threading

    died: list[BaseException] = []
    before = threading.excepthook
    threading.excepthook = lambda args: died.append(args.exc_value)  # type: ignore[assignment]
    try:
        runner = ScriptedRunner(apps="down")
        source = SmiStreamSource(runner, interval=1.0)
        source.sample()
        runner.lines.put(row(0))
        runner.lines.put(None)  # and the channel closes with the connection
        snap = wait_for(source, lambda s: s.error is not None and "stopped" in s.error)
        source.close()
    finally:
        threading.excepthook = before
    assert died == []
    assert snap.error is not None and "the SSH server stopped answering" in snap.error


# -- a read at a time (an SSH channel) is taken as line by line ----------------------------------


class _Timed:
    """Reads, each arriving at its time: the clock is set as a read comes in."""

    def __init__(self, reads: list[tuple[float, list[str]]], now: list[float]) -> None:
        self._reads = reads
        self._now = now

    def close(self) -> None:
        pass


class TimedBatches(_Timed):
    """As SshLineStream offers it: all the lines of one read at once."""

    def batches(self) -> Iterator[list[str]]:
        for at, lines in self._reads:
            self._now[0] = at
            yield lines


class TimedPolls(_Timed):
    """As SshLineStream offers it to a reader that samples many hosts: one read a poll."""

    def __init__(self, reads: list[tuple[float, list[str]]], now: list[float]) -> None:
        super().__init__(reads, now)
        self._next = iter(reads)
        self.polls = 0

    def poll_batches(self) -> tuple[list[list[str]], bool]:
        self.polls += 1
        for at, lines in self._next:
            self._now[0] = at
            return [lines], False
        return [], True

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("read in sample: never iterated")


class TimedLines(_Timed):
    """The same reads, one line at a time (a local process's stream)."""

    def __iter__(self) -> Iterator[str]:
        for at, lines in self._reads:
            self._now[0] = at
            yield from lines


def _read_all(stream_class: type[_Timed], reads: list[tuple[float, list[str]]]) -> object:
    """Everything the source did and shows after reading ``reads``: each process list asked
    for (when, and the memory the GPUs read then) and the snapshot at the end."""
    now = [0.0]
    asked: list[tuple[float, dict[int, int | None]]] = []

    class Runner:
        def stream(self, argv: Sequence[str]) -> LineStream:
            return stream_class(reads, now)

        def run(self, argv: Sequence[str], timeout: float) -> str:
            # The memory the GPUs used at the end of the round the list is asked for.
            asked.append((now[0], dict(source._memory_at_query)))
            return f"{4000 + len(asked)}, python3, 1024, {UUID[:-2]}01\n"

    source = SmiStreamSource(
        Runner(),
        interval=1.0,
        process_interval=5.0,
        restart_delay=1e6,
        clock=lambda: now[0],
        wall_clock=lambda: 1e9 + now[0],
        read_in_sample=stream_class is TimedPolls,
    )
    source.sample()
    if stream_class is TimedPolls:  # one read per sample, the process list waited for
        for _ in reads:
            source.sample()
            if source._query_thread is not None:
                source._query_thread.join(10)
        assert source._polled is None  # the stream's end was seen
    assert source._thread is not None
    source._thread.join(10)
    snapshot = source.sample()
    source.close()
    return asked, snapshot


def test_a_read_at_a_time_and_a_read_in_sample_give_what_line_by_line_gives() -> None:
    def memory(line: str, mib: int) -> str:
        cells = line.split(", ")
        cells[3] = str(mib)
        return ", ".join(cells)

    rounds = [row(i) for i in range(4)]
    moved = [memory(row(i, "250.10"), 900 + i) for i in range(4)]
    reset = ", ".join(["2", *["[GPU requires reset]"] * 11])
    reads = [
        (10.0, rounds[:3]),
        (10.5, [rounds[3], ""]),
        (11.0, rounds),  # the first round is complete at GPU 0 again: processes asked there
        (17.0, ["0, GPU-85f63f49, 480", *moved]),  # garbled; memory moved: asked again
        (18.0, [*moved[:2], reset, moved[3]]),
        (24.0, [moved[0], "Unable to determine the device handle for GPU0000:3B:00.0"]),
        (30.0, [*moved[1:], *rounds]),  # two rounds in one read: asked between them
        (30.4, ["NVIDIA-SMI has failed because it couldn't communicate with the driver."]),
    ]
    by_read = _read_all(TimedBatches, reads)
    by_line = _read_all(TimedLines, reads)
    in_sample = _read_all(TimedPolls, reads)
    assert by_read == by_line == in_sample
    asked, snapshot = by_read  # type: ignore[misc]
    # Each asked for at the end of a round, with the rows after it in the same read not
    # taken yet.
    assert [at for at, _ in asked] == [11.0, 17.0, 24.0, 30.0]
    assert asked[1][1] == {0: 900 << 20, 1: 480 << 20, 2: 480 << 20, 3: 480 << 20}
    assert asked[3][1] == {0: 900 << 20, 1: 901 << 20, 2: 902 << 20, 3: 903 << 20}
    assert snapshot.gpus[2].uuid == UUID[:-2] + "02"  # the reset GPU kept its identity
    assert snapshot.error is not None and "communicate with the driver" in snapshot.error

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

"""Faults of the GPU telemetry, as a user meets them: an nvidia-smi that hangs, dies mid-line,
prints garbage or "[GPU requires reset]"; a GPU recording cut off or with garbled lines.

The nvidia-smi path is the real one: the stand-in (tests/fixtures/bin/nvidia-smi, fault knobs in
its docstring) first on PATH, no NVML on this machine, ``gpuconsole gpus`` as a subprocess and
the console through Pilot. Each test checks the words shown, the exit status, no traceback, and
that no nvidia-smi process is left behind.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Static

from gpuconsole.backend.gpu import GpuSnapshot, GpuSourceState, ReplayError, ReplaySource
from gpuconsole.backend.gpu.smi_stream import SmiStreamSource
from gpuconsole.backend.hosts.local import _PopenLines
from gpuconsole.ui.app import GpuconsoleApp
from gpuconsole.ui.screens.gpus import GpuScreen
from gpuconsole.ui.widgets.gpu_card import GpuCard

from fakes import H100_RECORDING
from support import host_at, run_cli
from uihelpers import until

STUB_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "bin"
STUB = STUB_DIR / "nvidia-smi"

needs_no_driver = pytest.mark.skipif(
    shutil.which("nvidia-smi") is not None or Path("/dev/nvidiactl").exists(),
    reason="this host has an NVIDIA driver: NVML would be used, not the stand-in nvidia-smi",
)


KNOBS = (
    "HANG_AFTER", "DIE_AFTER", "GARBAGE", "BAD_BYTES", "RESET", "RESET_AFTER", "GPUS", "FAIL",
    "ROUNDS",
)  # fmt: skip


@pytest.fixture
def smi_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the stand-in logs its processes (PIDs); no fault knob left over from outside."""
    log = tmp_path / "smi.log"
    monkeypatch.setenv("GPUCONSOLE_SMI_STUB_LOG", str(log))
    for knob in KNOBS:
        monkeypatch.delenv(f"GPUCONSOLE_SMI_STUB_{knob}", raising=False)
    return log


@pytest.fixture
def knobs(smi_log: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Turn fault knobs of the stand-in on for this test (the stream source's processes
    inherit this process's environment)."""

    def turn(**values: str) -> None:
        for name, value in values.items():
            assert name in KNOBS, name
            monkeypatch.setenv(f"GPUCONSOLE_SMI_STUB_{name}", value)

    return turn


def stub_pids(log: Path) -> list[int]:
    if not log.exists():
        return []
    return [int(line.split()[0]) for line in log.read_text().splitlines() if line.strip()]


def alive(pid: int) -> bool:
    """Running (a zombie, dead but not yet reaped by init, does not count)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def assert_none_left(log: Path, timeout: float = 10.0) -> None:
    pids = stub_pids(log)
    assert pids, "the stand-in nvidia-smi never ran"
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in pids if alive(p)], "an nvidia-smi process was left running"


def gpus_cli(*args: str, **knobs: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": f"{STUB_DIR}{os.pathsep}{os.environ.get('PATH', '')}",
        **{f"GPUCONSOLE_SMI_STUB_{k}": v for k, v in knobs.items()},
    }
    out = run_cli("gpus", *args, env=env, timeout=120)
    assert "Traceback" not in out.stderr, out.stderr
    return out


def wait_for(source: Any, ok: Callable[[GpuSnapshot], bool], timeout: float = 30.0) -> GpuSnapshot:
    deadline = time.monotonic() + timeout
    while True:
        started = time.monotonic()
        snap = source.sample()
        assert time.monotonic() - started < 0.5, "sample() blocked: the UI would freeze"
        if ok(snap):
            return snap
        assert time.monotonic() < deadline, f"timed out; last snapshot: {snap}"
        time.sleep(0.02)


def plain(widget: Any) -> str:
    """What a Static (or a widget rendering Rich Text) shows, as plain text."""
    content = widget.content if isinstance(widget, Static) else widget.render()
    return content.plain if hasattr(content, "plain") else str(content)


def panel_status(app: GpuconsoleApp) -> str:
    return plain(app.screen.query_one("#gpu-status"))


# -- `gpuconsole gpus` against a misbehaving nvidia-smi ------------------------------------


@needs_no_driver
def test_gpus_with_a_hung_nvidia_smi_says_so_and_ends(smi_log: Path) -> None:
    started = time.monotonic()
    out = gpus_cli(HANG_AFTER="0")
    assert time.monotonic() - started < 60  # gives up; does not wait for the hung process
    assert out.returncode == 1
    assert "no GPU telemetry: " in out.stderr and "no reading" in out.stderr
    assert "no GPUs found" not in out.stderr  # a hang is not "no GPU"
    assert_none_left(smi_log)


@needs_no_driver
def test_gpus_with_nvidia_smi_dying_mid_line(smi_log: Path) -> None:
    out = gpus_cli(DIE_AFTER="0")
    assert out.returncode == 1
    assert "no GPU telemetry: nvidia-smi stopped streaming" in out.stderr
    assert "NVIDIA H1" not in out.stderr  # the cut-off line is not presented as a message
    assert_none_left(smi_log)
    smi_log.unlink()
    out = gpus_cli(DIE_AFTER="1")  # one whole round, then killed: that round is shown
    assert out.returncode == 0, out.stderr
    assert "NVIDIA H100 80GB HBM3" in out.stdout and "/ 700 W" in out.stdout
    assert_none_left(smi_log)


@needs_no_driver
def test_gpus_with_garbage_lines_shows_every_gpu(smi_log: Path) -> None:
    out = gpus_cli(GARBAGE="1", GPUS="4")
    assert out.returncode == 0, out.stderr
    rows = [line.split()[0] for line in out.stdout.splitlines()[1:]]
    assert rows == ["0", "1", "2", "3"]  # every GPU of the round, not GPU 0 alone
    assert "infoROM" not in out.stdout and ",,," not in out.stdout
    assert "pid 416" in out.stdout  # and the process list came with it
    assert_none_left(smi_log)


@needs_no_driver
def test_gpus_with_a_gpu_that_requires_reset(smi_log: Path) -> None:
    out = gpus_cli(GPUS="3", RESET="1")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    by_gpu = {line.split()[0]: line for line in lines[1:] if line[:1].isdigit()}
    assert set(by_gpu) == {"0", "1", "2"}
    assert "N/A" in by_gpu["1"] and "W" not in by_gpu["1"].split("N/A", 1)[1].split()[:1]
    assert "needs a reset" in out.stdout and "GPU 1" in out.stdout
    for fine in ("0", "2"):
        assert "NVIDIA H100 80GB HBM3" in by_gpu[fine] and "/ 700 W" in by_gpu[fine]
    assert_none_left(smi_log)


# -- the stream source the console polls ----------------------------------------------------


class PolledProcess(_PopenLines):
    """A local nvidia-smi's output read without waiting, as ``SshLineStream.poll_batches``
    reads an SSH channel: the stream source read in sample (the recorder's way). Stopped as
    the local machine stops its streams (``_PopenLines.close``)."""

    def __init__(self, argv: list[str]) -> None:
        super().__init__(
            subprocess.Popen(  # type: ignore[arg-type]  # bytes: read with os.read below
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
            )
        )
        assert self._proc.stdout is not None
        self._fd = self._proc.stdout.fileno()
        os.set_blocking(self._fd, False)
        self._partial = b""

    def poll_batches(self) -> tuple[list[list[str]], bool]:
        out: list[list[str]] = []
        ended = False
        while True:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                break
            if not data:
                ended = True
                break
            *lines, self._partial = (self._partial + data).split(b"\n")
            if lines:
                out.append([line.decode("utf-8", errors="replace") for line in lines])
        if ended:
            if self._partial:
                out.append([self._partial.decode("utf-8", errors="replace")])
                self._partial = b""
            self.close()
        return out, ended

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("read in sample: never iterated")


class PolledRunner:
    def stream(self, argv: Sequence[str]) -> PolledProcess:
        return PolledProcess(list(argv))

    def run(self, argv: Sequence[str], timeout: float) -> str:
        from gpuconsole.backend.hosts.local import LocalMachine

        return LocalMachine().run(argv, timeout)


@pytest.fixture(params=["reader thread", "read in sample"])
def stream_source(request: pytest.FixtureRequest) -> Callable[..., SmiStreamSource]:
    """The stream source as the console reads it (a reader thread), and as the recorder does
    (read by whoever samples it, never waiting)."""

    def make(**kw: Any) -> SmiStreamSource:
        if request.param == "read in sample":
            kw.update(runner=PolledRunner(), read_in_sample=True)
        return SmiStreamSource(**kw)

    return make


def test_a_stream_that_stops_answering_is_stale_and_sample_never_blocks(
    smi_log: Path, knobs: Callable[..., None], stream_source: Callable[..., SmiStreamSource]
) -> None:
    knobs(HANG_AFTER="3")
    source = stream_source(executable=str(STUB), interval=0.05, stale_after=0.6)
    try:
        first = wait_for(source, lambda s: bool(s.gpus))
        assert first.state is GpuSourceState.OK
        snap = wait_for(source, lambda s: s.state is GpuSourceState.STALE)
    finally:
        source.close()
    assert snap.error is not None and snap.error.startswith("no reading from nvidia-smi for")
    assert "stopped answering" in snap.error
    assert source.spawns == 1  # a hung driver is not hammered with new processes
    assert_none_left(smi_log)


def test_a_stream_silent_from_the_start_is_not_starting_forever(
    smi_log: Path, knobs: Callable[..., None], stream_source: Callable[..., SmiStreamSource]
) -> None:
    knobs(HANG_AFTER="0")
    source = stream_source(executable=str(STUB), interval=0.05, stale_after=0.6)
    try:
        assert source.sample().state is GpuSourceState.STARTING
        snap = wait_for(
            source, lambda s: s.state is not GpuSourceState.STARTING and bool(stub_pids(smi_log))
        )
    finally:
        source.close()
    assert snap.state is GpuSourceState.STALE and not snap.gpus
    assert snap.error is not None and "since it started" in snap.error
    assert "not answering" in snap.error
    assert_none_left(smi_log)


def test_a_stream_killed_mid_line_is_restarted(
    smi_log: Path, knobs: Callable[..., None], stream_source: Callable[..., SmiStreamSource]
) -> None:
    knobs(DIE_AFTER="2")
    source = stream_source(executable=str(STUB), interval=0.05, stale_after=0.5, restart_delay=0.3)
    try:
        wait_for(source, lambda s: bool(s.gpus))
        ended = wait_for(source, lambda s: s.error is not None and "stopped" in s.error)
        assert "NVIDIA H1" not in (ended.error or "")
        wait_for(source, lambda s: source.spawns >= 2 and s.state is GpuSourceState.OK)
    finally:
        source.close()
    assert_none_left(smi_log)


def test_garbage_lines_are_skipped_and_named(
    smi_log: Path, knobs: Callable[..., None], stream_source: Callable[..., SmiStreamSource]
) -> None:
    knobs(GARBAGE="1")
    knobs(GPUS="2")
    source = stream_source(executable=str(STUB), interval=0.05)
    seen: set[str] = set()
    try:

        def collect(s: GpuSnapshot) -> bool:
            seen.add(s.error or "")
            return len(s.gpus) == 2 and any(e.startswith(("nvidia-smi: ", "skipped")) for e in seen)

        snap = wait_for(source, collect)
    finally:
        source.close()
    assert snap.state is GpuSourceState.OK
    assert [g.name for g in snap.gpus] == ["NVIDIA H100 80GB HBM3"] * 2
    assert all(g.error is None and g.power_w is not None for g in snap.gpus)
    assert all("\x1b" not in e and "\x00" not in e for e in seen)  # shown printable
    assert source.spawns == 1
    assert_none_left(smi_log)


def test_bytes_that_are_not_text_are_one_garbled_line(
    smi_log: Path, knobs: Callable[..., None], stream_source: Callable[..., SmiStreamSource]
) -> None:
    knobs(BAD_BYTES="1")
    source = stream_source(executable=str(STUB), interval=0.05, restart_delay=0.2)
    try:
        source.sample()
        time.sleep(1.0)
        snap = source.sample()
    finally:
        source.close()
    assert source.spawns == 1 and snap.state is GpuSourceState.OK and snap.gpus


def test_a_gpu_that_requires_reset_keeps_its_identity(
    smi_log: Path, knobs: Callable[..., None], stream_source: Callable[..., SmiStreamSource]
) -> None:
    knobs(GPUS="2", RESET="1", RESET_AFTER="2")
    source = stream_source(executable=str(STUB), interval=0.05)
    try:
        healthy = wait_for(source, lambda s: len(s.gpus) == 2)
        snap = wait_for(source, lambda s: s.state is GpuSourceState.DEGRADED)
    finally:
        source.close()
    good, bad = snap.gpus
    assert good.error is None and good.power_w is not None
    assert bad.error == "GPU 1 needs a reset (nvidia-smi: GPU requires reset)"
    assert (bad.power_w, bad.memory_used_bytes, bad.temperature_c) == (None, None, None)
    assert (bad.uuid, bad.name) == (healthy.gpus[1].uuid, healthy.gpus[1].name)  # same card
    assert snap.error is not None and "GPU 1 needs a reset" in snap.error
    assert_none_left(smi_log)


# -- the console ------------------------------------------------------------------------------


async def test_console_with_a_hung_nvidia_smi_says_so_and_answers_keys(
    smi_log: Path, knobs: Callable[..., None]
) -> None:
    knobs(HANG_AFTER="2")
    source = SmiStreamSource(executable=str(STUB), interval=0.05, stale_after=0.6)
    app = GpuconsoleApp(host_at(gpu=source), gpu_interval=0.05, refresh_seconds=0.5)
    async with app.run_test(size=(140, 40)) as pilot:
        await until(
            pilot,
            lambda: (
                "not answering" in panel_status(app) or "stopped answering" in panel_status(app)
            ),
            what="the panel to say nvidia-smi stopped answering",
        )
        assert "no reading from nvidia-smi" in panel_status(app)
        await pilot.press("g")  # the UI is not frozen
        await until(pilot, lambda: isinstance(app.screen, GpuScreen), what="the GPU screen")
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, GpuScreen), what="back")
    assert_none_left(smi_log)


async def test_console_shows_the_gpu_that_needs_a_reset_and_the_others(
    smi_log: Path, knobs: Callable[..., None]
) -> None:
    knobs(GPUS="2", RESET="1", RESET_AFTER="3")
    source = SmiStreamSource(executable=str(STUB), interval=0.05)
    app = GpuconsoleApp(host_at(gpu=source), gpu_interval=0.05, refresh_seconds=0.5)
    async with app.run_test(size=(140, 40)) as pilot:

        def cards() -> dict[int, str]:
            return {c.index: plain(c) for c in app.screen.query(GpuCard)}

        await until(pilot, lambda: "needs a reset" in cards().get(1, ""), what="GPU 1's card")
        text = cards()
        assert "H100" in text[1]  # still named: the card of the GPU that was there
        assert "needs a reset" not in text[0] and "/ 700 W" in text[0]
        assert "needs a reset" in panel_status(app)
        await pilot.press("g")
        await until(pilot, lambda: isinstance(app.screen, GpuScreen), what="the GPU screen")
        await until(
            pilot,
            lambda: "needs a reset" in plain(app.screen.query_one("#gpu-head-1", Static)),
            what="GPU 1's head on the GPU screen",
        )
    assert_none_left(smi_log)


# -- a recording cut off, or with garbled lines ------------------------------------------


def damaged_recording(tmp_path: Path) -> Path:
    lines = H100_RECORDING.read_text().splitlines()[:30]
    lines.insert(10, '{"t": 1795713098.0, "index": 0, "mem_used": "lots"}')  # wrong type
    lines.insert(20, "\x00\x00garbage from a crashed writer")
    path = tmp_path / "cut.jsonl"
    path.write_text("\n".join(lines) + "\n" + lines[-1][:57])  # the recorder was killed
    return path


def test_gpus_replay_of_a_damaged_recording_shows_the_good_samples(tmp_path: Path) -> None:
    path = damaged_recording(tmp_path)
    out = run_cli("gpus", "--replay", str(path))
    assert "Traceback" not in out.stderr
    assert out.returncode == 0, out.stderr
    assert "NVIDIA H100 80GB HBM3" in out.stdout and "replayed" in out.stdout
    (note,) = out.stderr.strip().splitlines()  # one line
    assert str(path) in note and "skipped 3 line(s)" in note
    assert "line 11: mem_used is 'lots', not a number" in note
    assert "line 21: not JSON" in note and "line 33: cut off" in note


def test_a_recording_without_one_good_sample_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "junk.jsonl"
    path.write_bytes(b'{"t": 1, "index"\n\xff\xfe\n')
    out = run_cli("gpus", "--replay", str(path))
    assert "Traceback" not in out.stderr
    assert out.returncode == 1
    assert "--replay" in out.stderr and str(path) in out.stderr
    assert "holds no samples" in out.stderr and "line 1: cut off" in out.stderr
    out = run_cli("--gpu-replay", str(path))  # the console: refused before it draws
    assert (
        out.returncode == 1 and "holds no samples" in out.stderr and "Traceback" not in out.stderr
    )


def test_replay_lines_of_any_wrong_type_are_skipped_not_raised(tmp_path: Path) -> None:
    good = json.loads(H100_RECORDING.read_text().splitlines()[0])
    bad = [
        {**good, "index": "zero"},
        {**good, "t": None},
        {**good, "temp_c": 1e400},
        {**good, "power_mw": float("nan")},
        {**good, "procs": [{"pid": "x"}]},
        {**good, "procs": "none"},
        [1, 2],
        "text",
    ]
    path = tmp_path / "typed.jsonl"
    path.write_text("\n".join(json.dumps(b) for b in [good, *bad]) + "\n")
    source = ReplaySource.from_file(path)
    assert len(source.frames) == 1 and len(source.skipped) == len(bad)
    assert [s.split(":")[0] for s in source.skipped] == [f"line {n}" for n in range(2, 10)]
    snap = source.sample()
    assert snap.gpus[0].name == "NVIDIA H100 80GB HBM3" and snap.state is GpuSourceState.OK
    assert snap.error is not None and snap.error.startswith("skipped 8 line(s)")
    with pytest.raises(ReplayError, match="line 2"):  # the strict reader still names it
        from gpuconsole.backend.gpu.replay import load_frames

        load_frames(path.read_text().splitlines())


async def test_console_replaying_a_damaged_recording_says_what_it_skipped(tmp_path: Path) -> None:
    path = damaged_recording(tmp_path)
    source = ReplaySource.from_file(path)
    app = GpuconsoleApp(host_at(gpu=source), gpu_interval=0.05, replay_name=path.name)
    async with app.run_test(size=(140, 40)) as pilot:
        await until(pilot, lambda: "skipped 3 line(s)" in panel_status(app), what="the note")
        assert "REPLAY" in panel_status(app)
        await until(pilot, lambda: bool(app.screen.query(GpuCard)), what="the GPU card")
        await pilot.press("g")
        await until(pilot, lambda: isinstance(app.screen, GpuScreen), what="the GPU screen")
        await until(
            pilot,
            lambda: "skipped 3 line(s)" in plain(app.screen.query_one("#gpu-screen-status")),
            what="the note on the GPU screen",
        )


def test_the_console_is_told_what_the_replay_skipped_and_what_is_wrong_with_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``gpuconsole --gpu-replay FILE``: the notes the console shows once it starts (the app
    itself is replaced: this checks what the command hands it)."""
    import gpuconsole.ui.app
    from gpuconsole.cli import main

    given: dict[str, Any] = {}

    class Console:
        return_code = 0

        def __init__(self, hosts: Any, **kwargs: Any) -> None:
            given.update(kwargs)

        def run(self) -> None:
            pass

    monkeypatch.setattr(gpuconsole.ui.app, "GpuconsoleApp", Console)
    config = tmp_path / "config.toml"
    config.write_text("[ui]\nrefresh_seconds = 2\n")
    config.chmod(0o666)
    path = damaged_recording(tmp_path)
    assert main(["--config", str(config), "--gpu-replay", str(path)]) == 0
    warnings = given["warnings"]
    assert any("skipped 3 line(s)" in w and str(path) in w for w in warnings)
    assert any("can be changed by other users" in w for w in warnings)

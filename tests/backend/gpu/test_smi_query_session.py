"""The GPU process list over SSH as the recorder asks for it: questions on ONE session kept
open (a private sshd whose sessions get the stand-in nvidia-smi and a process list of this
test's own), not a remote command each time."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpuconsole.backend.gpu.models import GpuSnapshot
from gpuconsole.backend.gpu.smi_stream import SmiStreamSource
from gpuconsole.backend.hosts.ssh_machine import SshMachine

if TYPE_CHECKING:
    from sshfixtures import SshEnv

UUID = "GPU-85f63f49-2356-f053-21c3-2eb02bd04522"


def sample_until(
    source: SmiStreamSource, done: Callable[[GpuSnapshot], bool], timeout: float = 15.0
) -> GpuSnapshot:
    """Sample as the recorder's round does (every 0.2 s here) until ``done``."""
    deadline = time.monotonic() + timeout
    while True:
        snapshot = source.sample()
        if done(snapshot) or time.monotonic() > deadline:
            return snapshot
        time.sleep(0.2)


def pids(snapshot: GpuSnapshot) -> set[int]:
    return {p.pid for p in snapshot.processes}


def servers(sshd: Any) -> list[int]:
    """The session shells answering process-list questions under this sshd."""
    found = []
    for pid in sshd.tree():
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(b"while IFS= read -r _; do q" in arg for arg in argv):
            found.append(pid)
    return found


def test_the_process_list_is_asked_on_one_session_that_comes_back_when_it_ends(
    apps_file: Path, ssh_env: SshEnv, private_sshd: Callable[..., Any]
) -> None:
    apps = apps_file  # what the stand-in nvidia-smi lists on the "remote" host
    me = os.getpid()
    apps.write_text(f"{me}, python3, 20480, {UUID}\n")
    sshd = private_sshd()
    machine = SshMachine("q", "127.0.0.1", ssh_env.connector(sshd.port), latency_probes=False)
    source = SmiStreamSource(
        machine,
        host="q",
        interval=0.2,
        process_interval=0.2,
        process_max_interval=0.4,  # asked again every 0.4 s though the memory stays the same
        with_origins=True,
        read_in_sample=True,
    )
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        first = sample_until(source, lambda s: me in pids(s))
        assert pids(first) == {me} and first.error is None
        # Its origin came with it: this process's cgroup and command, read on the "remote".
        (origin,) = [o for o in first.origins if o[0] == me]
        assert origin[1] == Path(f"/proc/{me}/cgroup").read_text()
        execs, sessions = machine.execs, machine.sessions_opened

        apps.write_text(f"{sleeper.pid}, sleep, 512, {UUID}\n")
        changed = sample_until(source, lambda s: pids(s) == {sleeper.pid})
        assert pids(changed) == {sleeper.pid}
        time.sleep(1.0)
        source.sample()
        # Asked several times since (every 0.4 s), all on the session already open.
        assert (machine.execs, machine.sessions_opened) == (execs, sessions)

        # The session's shell ends (killed on the host): the next question opens another.
        (server,) = servers(sshd)
        os.kill(server, 15)
        apps.write_text(f"{me}, python3, 20480, {UUID}\n")
        back = sample_until(source, lambda s: pids(s) == {me})
        assert pids(back) == {me}
        assert machine.sessions_opened == sessions + 1
    finally:
        sleeper.kill()
        sleeper.wait()
        source.close()
        machine.close()
    # Closed with the source: no shell left waiting for questions on the host.
    gone = time.monotonic() + 5
    while servers(sshd) and time.monotonic() < gone:
        time.sleep(0.05)
    assert servers(sshd) == []


class _Polled:
    """A stream read without waiting, as an SSH session's; the GPU stream prints one round of
    two GPUs per poll, a query session what the test puts in ``out``."""

    def __init__(self, gpu_rounds: bool) -> None:
        self.gpu_rounds = gpu_rounds
        self.out: list[str] = []
        self.sent: list[bytes] = []
        self.closed = False

    def poll_batches(self) -> tuple[list[list[str]], bool]:
        if self.gpu_rounds:
            return [[_ROW.format(0, UUID), _ROW.format(1, UUID[:-2] + "01")]], False
        out, self.out = self.out, []
        return ([out] if out else []), self.closed

    def send(self, data: bytes) -> None:
        self.sent.append(data)

    def close(self) -> None:
        self.closed = True

    def __iter__(self) -> Any:
        return iter(())


_ROW = "{}, {}, NVIDIA H100 80GB HBM3, 480, 81559, 0, 0, 69.12, 700.00, 33, 345, [N/A]"


class _Runner:
    """A host whose nvidia-smi hangs on the first process-list question (a wedged driver:
    what cannot be made to happen here on purpose)."""

    def __init__(self) -> None:
        self.sessions: list[_Polled] = []

    def stream(self, argv: Any) -> _Polled:
        if argv[0] == "sh":
            self.sessions.append(_Polled(gpu_rounds=False))
            return self.sessions[-1]
        return _Polled(gpu_rounds=True)

    def run(self, argv: Any, timeout: float) -> str:
        raise AssertionError("the process list is asked on the session, not by a command")


def test_an_unanswered_question_is_said_and_asked_again_on_a_new_session() -> None:
    now = [100.0]
    runner = _Runner()
    source = SmiStreamSource(
        runner,
        host="wedged",
        command_timeout=10.0,
        clock=lambda: now[0],
        with_origins=True,
        read_in_sample=True,
    )
    source.sample()
    now[0] += 1
    source.sample()  # the first round is complete: the list is asked for
    (hung,) = runner.sessions
    assert hung.sent == [b"\n"]
    now[0] += 11  # no answer for longer than the command timeout
    said = source.sample()
    assert hung.closed and said.error is not None
    assert "did not answer within 10 s" in said.error and said.gpus  # the GPUs still show
    now[0] += 31  # due again (30 s after, the GPUs' memory the same)
    source.sample()
    hung_too, fresh = runner.sessions
    assert hung_too is hung and fresh.sent == [b"\n"] and not fresh.closed
    fresh.out = ["\036apps 0", f"4242, python3, 100, {UUID}", "\036end"]
    now[0] += 1
    answered = source.sample()
    assert [p.pid for p in answered.processes] == [4242]
    assert [p.gpu_index for p in answered.processes] == [0]
    assert answered.error is None
    source.close()
    assert fresh.closed


class _Refusing(_Runner):
    """A host whose connection breaks as the session is opened (an error of any kind)."""

    def stream(self, argv: Any) -> _Polled:
        if argv[0] == "sh":
            raise OSError("Connection reset by peer")
        return super().stream(argv)


def test_a_session_that_cannot_be_opened_costs_the_list_not_the_samples() -> None:
    now = [100.0]
    source = SmiStreamSource(
        _Refusing(), host="flaky", clock=lambda: now[0], with_origins=True, read_in_sample=True
    )
    source.sample()
    now[0] += 1
    snapshot = source.sample()  # the list is due here, and cannot be asked
    assert [g.index for g in snapshot.gpus] == [0, 1]
    assert snapshot.error is not None and "Connection reset by peer" in snapshot.error
    source.close()

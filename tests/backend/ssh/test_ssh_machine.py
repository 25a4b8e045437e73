"""SshMachine against a real sshd (loopback; private ones for stop/refuse cases) and the real
test Docker engine."""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import select
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import paramiko
import pytest

from gpuconsole.backend.errors import GpuconsoleError
from gpuconsole.backend.hosts.machine import CommandError, Machine, MachineUnreachable
from gpuconsole.backend.hosts.ssh_machine import (
    LinkState,
    LinkStatus,
    SshMachine,
    parse_read_files_output,
    read_files_argv,
)

if TYPE_CHECKING:  # the fixtures' types (conftest is not imported at run time)
    from sshfixtures import PrivateSshd, SshEnv

FAST: dict[str, Any] = {"probe_interval": 1.0, "probe_timeout": 0.5, "down_after": 2}


def wait_for(cond: Callable[[], bool], timeout: float, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


@pytest.fixture
def machine(ssh_env: SshEnv) -> Iterator[SshMachine]:
    m = SshMachine("dev", f"root@127.0.0.1:{ssh_env.port}", ssh_env.connector(), **FAST)
    yield m
    m.close()


def test_it_is_a_machine(machine: SshMachine) -> None:
    assert isinstance(machine, Machine)
    assert machine.is_local is False
    assert machine.status.state is LinkState.CONNECTING
    assert machine.connects == 0  # nothing happens before first use


# -- run ---------------------------------------------------------------------------------------


def test_run_returns_stdout_and_quotes_argv(machine: SshMachine) -> None:
    assert machine.run(["echo", "hello world"], 5) == "hello world\n"
    out = machine.run(["printf", "%s|", "a b", "$HOME", "'q'", "*"], 5)
    assert out == "a b|$HOME|'q'|*|"
    assert machine.run(["cat"], 5, stdin=b"abc\n") == "abc\n"
    assert machine.run(["printf", "\\377ok"], 5) == "\ufffdok"
    assert machine.connects == 1 and machine.execs == 4 and machine.sessions_opened == 4
    sock = machine.transport().sock
    assert isinstance(sock, socket.socket)
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)  # see _no_delay


def test_run_failures_are_command_errors(machine: SshMachine) -> None:
    with pytest.raises(CommandError, match=r"^false exited 1$"):
        machine.run(["false"], 5)
    with pytest.raises(CommandError, match=r"^first$"):
        machine.run(["sh", "-c", "echo; echo first >&2; echo second >&2; exit 3"], 5)


def test_run_timeout_closes_the_channel(machine: SshMachine) -> None:
    machine.run(["true"], 5)
    start = time.monotonic()
    with pytest.raises(CommandError, match=r"sleep did not answer within 0\.5 s"):
        machine.run(["sleep", "5"], 0.5)
    assert time.monotonic() - start < 1.5
    assert machine.run(["echo", "ok"], 5) == "ok\n"  # the slot came back


def test_run_reads_stdout_and_stderr_together(machine: SshMachine) -> None:
    # 3 MB of stderr before any stdout: more than the channel window (2 MB). Reading stdout
    # alone would stall the command until the timeout.
    script = (
        "head -c 3000000 /dev/zero | tr '\\0' e >&2; head -c 3000000 /dev/zero | tr '\\0' o; echo"
    )
    out = machine.run(["sh", "-c", script], 20)
    assert len(out) == 3_000_001 and out.startswith("ooo")


def test_thirty_threads_share_one_login_and_queue_for_sessions(
    ssh_env: SshEnv,
) -> None:
    calls = []

    def connect() -> paramiko.Transport:
        calls.append(1)
        return ssh_env.connect()

    m = SshMachine("dev", "dev", connect, **FAST)
    barrier = threading.Barrier(30)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait(10)
            m.run(["sleep", "0.2"], 30)
            m.run(["true"], 30)
        except BaseException as e:
            errors.append(e)

    try:
        threads = [threading.Thread(target=worker) for _ in range(30)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
        assert errors == []
        assert m.connects == 1 and len(calls) == 1
        assert m.sessions_opened == 60
    finally:
        m.close()


def test_without_the_session_limit_sshd_refuses_sessions(ssh_env: SshEnv) -> None:
    """The negative control of the test above: why the semaphore exists (MaxSessions 10)."""
    m = SshMachine("dev", "dev", ssh_env.connector(), max_sessions=30, **FAST)
    barrier = threading.Barrier(30)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait(10)
            m.run(["sleep", "0.3"], 30)
        except BaseException as e:
            errors.append(e)

    try:
        threads = [threading.Thread(target=worker) for _ in range(30)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
        assert errors, "sshd accepted 30 sessions at once: is MaxSessions raised?"
        assert all(isinstance(e, CommandError) for e in errors)
        # Refused sessions are retried briefly; what is still refused then says so.
        assert any(w in str(errors[0]) for w in ("refused an SSH session", "open channel"))
    finally:
        m.close()


# -- stream ------------------------------------------------------------------------------------


def test_stream_yields_lines_with_stderr_merged(machine: SshMachine) -> None:
    s = machine.stream(["sh", "-c", "echo out; echo err >&2; sleep 0.2; printf last"])
    lines = list(s)
    assert sorted(lines) == ["err", "last", "out"]
    assert s.exit_status == 0
    s.close()


def test_stream_polled_without_waiting(machine: SshMachine) -> None:
    """``poll_batches``: what came so far (a read's lines together), never waiting; the end
    with the last line that had no newline, and the session slot given back."""
    loop = "echo a; echo b; sleep 0.2; echo c; sleep 0.2; printf last"
    for _ in range(10):  # more than the 8 session slots: the end must give them back
        s = machine.stream(["sh", "-c", loop])
        lines: list[str] = []
        polls = 0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            started = time.monotonic()
            batches, ended = s.poll_batches()
            assert time.monotonic() - started < 0.1  # at once, not when the next line comes
            polls += 1
            lines += [line for batch in batches for line in batch]
            if ended:
                break
            time.sleep(0.05)
        assert ended and lines == ["a", "b", "c", "last"]
        assert polls > 4  # it was polled while the command ran
        assert s.poll_batches() == ([], True)


def _consume(lines: Iterable[str], into: list[str]) -> None:
    for line in lines:
        into.append(line)


def _has(items: list[str], n: int) -> bool:
    return len(items) >= n


def test_stream_close_from_another_thread_ends_the_iteration(machine: SshMachine) -> None:
    loop = "i=0; while :; do echo line$i; i=$((i+1)); sleep 0.02; done"
    for _ in range(12):  # more than the 8 session slots: close must give them back
        s = machine.stream(["sh", "-c", loop])
        got: list[str] = []
        th = threading.Thread(target=_consume, args=(s, got))
        th.start()
        assert wait_for(functools.partial(_has, got, 3), 5)
        start = time.monotonic()
        s.close()
        th.join(2)
        assert not th.is_alive()
        assert time.monotonic() - start < 1.0
        assert got[:3] == ["line0", "line1", "line2"]
        s.close()  # idempotent
    assert machine.run(["echo", "ok"], 5) == "ok\n"


# -- read_files / existing / make_dirs ---------------------------------------------------------


def _local_read(path: str) -> str | None:
    """The reference: what read_files documents (NULs dropped; a file that opens but cannot be
    read, like a write-only cgroup control file, reads as empty)."""
    if not os.path.isfile(path) or not os.access(path, os.R_OK):
        return None
    try:
        f = open(path, "rb")  # noqa: SIM115
    except OSError:
        return None
    with f:
        try:
            data = f.read()
        except OSError:
            data = b""
    return data.replace(b"\0", b"").decode("utf-8", errors="replace")


def _special_files(tmp: Path) -> list[str]:
    cases: dict[str, bytes] = {
        "no-trailing-newline": b"one\ntwo",
        "empty": b"",
        "only-newlines": b"\n\n\n",
        "blank-lines-and-spaces": b"  lead\n\ntrail  \n\t tab\n",
        "backslashes": b"a\\nb\\\\c\\\n",
        "framing-lookalikes": b">not a header\n|pipe\n=eq\n>\n",
        "utf8-and-invalid": "héllo ✓\n".encode() + b"\xff\xfe bad\n",
        "long-line": b"x" * 20000 + b"\n",
        "nul-bytes": b"a\0b\0\nc\0",
        "name with spaces": b"spaces\n",
        "$(echo injected)": b"literal\n",
        "unterminated-before-unreadable": b"stale",
    }
    out = []
    for name, data in cases.items():
        p = tmp / name
        p.write_bytes(data)
        out.append(str(p))
    # opens, but read(2) fails (EIO at offset 0): must read as "", not keep the last line above
    out.append("/proc/self/mem")
    locked = tmp / "mode-000"
    locked.write_bytes(b"root reads it anyway\n")
    locked.chmod(0)
    out.append(str(locked))
    return out


def _five_hundred_paths(tmp: Path, container_pid: int, container_id: str) -> list[str]:
    special = _special_files(tmp)
    missing = [f"/nonexistent/gpuconsole/{i}" for i in range(30)]
    missing += [f"/proc/99999999{i}/cgroup" for i in range(9)]
    missing += [str(tmp), "/sys/fs/cgroup", ""]  # directories and an empty name
    procs = []
    per_pid: tuple[str, ...] = (
        "cgroup",
        "comm",
        "status",
        "stat",
        "statm",
        "limits",
        "cmdline",
        "environ",
    )
    per_pid += ("io", "oom_score", "oom_score_adj", "mountinfo", "cpuset", "uid_map")
    for pid in (1, os.getpid(), container_pid, os.getppid()):
        procs += [f"/proc/{pid}/{name}" for name in per_pid]
    procs += ["/proc/version", "/proc/filesystems", "/proc/cpuinfo", "/proc/meminfo"]
    procs += ["/proc/sys/kernel/ostype", "/proc/sys/kernel/pid_max", "/proc/loadavg"]
    cgroup = sorted(
        str(Path(root) / f) for root, _, files in os.walk("/sys/fs/cgroup") for f in files
    )
    # our container's cgroup files first, then the hierarchy above the containers (other test
    # sessions' containers come and go meanwhile: left out)
    cid_files = [p for p in cgroup if container_id in p]
    rest = [p for p in cgroup if "/docker/" not in p and "/process_api/" not in p]
    head = special + missing + procs
    paths = head + (cid_files + rest)[: 500 - len(head)]
    paths += [f"/nonexistent/gpuconsole/pad/{i}" for i in range(500 - len(paths))]
    assert len(paths) == 500 and len(cid_files) > 20
    return paths


# Compared for presence only: gauges that go up and down (memory usage, pressure), and files
# listing the processes there are right now (the remote read's own shell shows up there while it
# runs and is gone before and after). Counters that only grow are caught by reading 3 times.
_LIVE = ("tasks", "cgroup.procs", "cgroup.threads", "pids.current", "usage", "stat", "pressure")


@pytest.fixture
def busybox_container(ssh_env: SshEnv) -> Iterator[Any]:
    """A labelled busybox container of this test only (other sessions share the engine)."""
    import docker

    client = docker.DockerClient(base_url=ssh_env.docker_host, version="1.41", timeout=30)
    image = os.environ.get("GPUCONSOLE_TEST_IMAGE", "gpuconsole-test/busybox:1")
    container = client.containers.run(
        image, ["sleep", "3600"], detach=True, labels={"gpuconsole-test": "1"}
    )
    container.reload()
    try:
        yield container
    finally:
        with contextlib.suppress(Exception):
            container.remove(force=True)
        client.close()


def test_read_files_500_paths_in_one_exec(
    machine: SshMachine, ssh_env: SshEnv, tmp_path: Path, busybox_container: Any
) -> None:
    container = busybox_container
    paths = _five_hundred_paths(tmp_path, container.attrs["State"]["Pid"], container.id)

    machine.run(["true"], 5)
    local_port = machine.transport().sock.getsockname()[1]  # type: ignore[union-attr]
    marker = f"Starting session: command for root from 127.0.0.1 port {local_port} "

    def sessions_started() -> int:
        return sum(marker in line for line in ssh_env.log_lines())

    execs, opened, logged = machine.execs, machine.sessions_opened, sessions_started()
    before = {p: _local_read(p) for p in paths}
    again = {p: _local_read(p) for p in paths}
    start = time.monotonic()
    remote = machine.read_files(paths)
    elapsed = time.monotonic() - start
    after = {p: _local_read(p) for p in paths}

    assert machine.execs - execs == 1
    assert machine.sessions_opened - opened == 1
    assert wait_for(lambda: sessions_started() - logged == 1, 2)

    exact = [
        p
        for p in paths
        if before[p] == again[p] == after[p] and not any(w in Path(p).name for w in _LIVE)
    ]
    assert len(exact) >= 200, "too few stable files to compare"
    mismatched = [p for p in exact if remote.get(p) != before[p]]
    assert mismatched == [], {p: (remote.get(p), before[p]) for p in mismatched[:3]}
    # volatile ones (counters, our own processes): present exactly when readable
    readable = {p for p in paths if before[p] is not None and after[p] is not None}
    unreadable = {p for p in paths if before[p] is None and after[p] is None}
    assert readable <= set(remote) and not unreadable & set(remote)
    assert remote[str(tmp_path / "no-trailing-newline")] == "one\ntwo"
    assert remote[str(tmp_path / "empty")] == ""
    assert remote[str(tmp_path / "nul-bytes")] == "ab\nc"  # documented: NULs dropped
    assert remote["/proc/sys/kernel/pid_max"] == before["/proc/sys/kernel/pid_max"]
    assert f"/proc/{container.attrs['State']['Pid']}/cgroup" in remote
    print(
        f"read_files: {len(paths)} paths, {len(remote)} read, {len(exact)} compared exactly, "
        f"{elapsed * 1000:.0f} ms"
    )


def test_read_files_served_by_one_session_across_calls(machine: SshMachine, tmp_path: Path) -> None:
    """Refreshes read through one long-lived session: no command, no session per call; a
    server that ended is replaced, and its caller still gets the files."""
    files = {tmp_path / f"f{i}": f"line {i}\n#12\n.\n" * i for i in range(1, 6)}
    for path, text in files.items():
        path.write_text(text)
    (tmp_path / "last").write_text("no newline at the end")
    paths = [str(p) for p in (*files, tmp_path / "last", tmp_path / "missing")]
    want = {str(p): t for p, t in files.items()} | {str(tmp_path / "last"): "no newline at the end"}

    assert machine.read_files(paths) == want
    execs, opened = machine.execs, machine.sessions_opened
    for _ in range(5):
        assert machine.read_files(paths) == want
    assert (machine.execs, machine.sessions_opened) == (execs, opened)

    server = machine._server
    assert server is not None
    server._chan.close()  # the server ended under us (killed, or the shell died)
    assert machine.read_files(paths) == want
    assert machine.read_files(paths) == want
    assert machine.execs - execs == 1, "one new server"


def test_read_files_served_answer_comes_in_one_ssh_message(
    machine: SshMachine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refresh's files (here five of 30 lines, as a host's cgroup files are) come back as one
    SSH data message, not one per line bash wrote: each message is ~0.1 ms of paramiko in the
    console, for every host every refresh. Backslashes and backslash-n in the files survive."""
    from paramiko.common import MSG_CHANNEL_DATA

    files = {
        tmp_path / f"memory{i}.stat": "".join(f"key_{j} {i * 1000 + j}\\n\\\n" for j in range(30))
        for i in range(5)
    }
    for path, text in files.items():
        path.write_text(text)
    (tmp_path / "last").write_text("ends in a backslash\\")
    paths = [str(p) for p in (*files, tmp_path / "last")]
    want = {str(p): t for p, t in files.items()} | {str(tmp_path / "last"): "ends in a backslash\\"}
    assert machine.read_files(paths) == want  # starts the server
    server = machine._server
    assert server is not None

    messages: list[int] = []
    table = paramiko.Transport._channel_handler_table
    feed = table[MSG_CHANNEL_DATA]

    def counted(chan: paramiko.Channel, m: paramiko.Message) -> None:
        if chan is server._chan:
            messages.append(len(m.asbytes()))
        feed(chan, m)

    monkeypatch.setitem(table, MSG_CHANNEL_DATA, counted)
    for _ in range(3):
        messages.clear()
        assert machine.read_files(paths) == want
        assert machine._server is server
        assert len(messages) == 1, f"{len(messages)} messages of {messages} bytes"


@pytest.mark.parametrize(
    ("shell", "bash_on_path"),
    [("/bin/dash", False), ("/usr/bin/busybox", False), ("/bin/bash", False), ("/bin/dash", True)],
)
def test_read_files_script_needs_no_external_program(
    tmp_path: Path, shell: str, bash_on_path: bool
) -> None:
    """With nothing but (maybe) bash on PATH, the command still reads every file: builtins
    only, so one process however many files. dash and busybox leave /proc/sys out (their
    one-byte reads would get its first byte only); bash reads it."""
    import subprocess

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if bash_on_path:
        (bin_dir / "bash").symlink_to("/bin/bash")
    sysctl = "/proc/sys/kernel/pid_max"
    paths = [*_special_files(tmp_path), "/proc/1/cgroup", "/nonexistent", sysctl]
    stdin = "".join(p + "\n" for p in paths).encode()
    argv = read_files_argv("sh")
    argv = [shell, *argv] if shell.endswith("busybox") else [shell, *argv[1:]]
    out = subprocess.run(
        argv, input=stdin, capture_output=True, env={"PATH": str(bin_dir)}, check=True, timeout=10
    ).stdout
    got = parse_read_files_output(out)
    expected = {p: c for p in paths if (c := _local_read(p)) is not None}
    bash = shell.endswith("bash") or bash_on_path
    assert out.count(b"\n#") == (len(expected) if bash else 0)  # which reader ran
    if not bash:
        del expected[sysctl]
    assert got == expected


def test_existing_and_make_dirs(machine: SshMachine, tmp_path: Path) -> None:
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    asked = [str(tmp_path), str(tmp_path / "nope"), "/proc/1", "", str(tmp_path / "dangling")]
    assert machine.existing(asked) == {str(tmp_path), "/proc/1"}
    assert machine.existing([]) == frozenset()

    execs = machine.execs
    new = [str(tmp_path / "a" / "b" / "c"), str(tmp_path / "with space" / "d"), str(tmp_path)]
    machine.make_dirs(new)
    assert machine.execs - execs == 1
    assert all(Path(p).is_dir() for p in new)

    (tmp_path / "file").write_text("x")
    bad = str(tmp_path / "file" / "sub")
    with pytest.raises(CommandError) as info:
        machine.make_dirs([str(tmp_path / "ok"), bad, str(tmp_path / "later")])
    assert bad in str(info.value) and "Not a directory" in str(info.value)


# -- forwarding --------------------------------------------------------------------------------


def test_connect_tcp_reaches_a_port_of_the_remote_side(machine: SshMachine) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.sendall(b"echo:" + conn.recv(100))

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    try:
        chan = machine.connect_tcp("127.0.0.1", port, 5)
        chan.sendall(b"hi")
        chan.settimeout(5)
        data = b""
        while chunk := chan.recv(100):
            data += chunk
        chan.close()
        assert data == b"echo:hi"
    finally:
        server.close()

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(ConnectionRefusedError) as info:
        machine.connect_tcp("127.0.0.1", closed, 5)
    assert isinstance(info.value, OSError)
    assert time.monotonic() - start < 1.0
    assert machine.status.state is LinkState.UP  # a refused port is not a broken link


def test_connect_unix_reaches_the_docker_engine(machine: SshMachine, ssh_env: SshEnv) -> None:
    chan = machine.connect_unix(ssh_env.docker_socket, 5)
    chan.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
    data = b""
    chan.settimeout(5)
    while chunk := chan.recv(4096):
        data += chunk
    chan.close()
    assert data.endswith(b"\r\n\r\nOK")
    sessions = machine.sessions_opened
    with pytest.raises(ConnectionRefusedError):
        machine.connect_unix("/nonexistent/docker.sock", 5)
    assert machine.sessions_opened == sessions  # the refusal check is not a caller's session


# -- pty ---------------------------------------------------------------------------------------


def _read_until(pty: Any, needle: bytes, timeout: float = 5.0) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    while needle not in data and time.monotonic() < deadline:
        ready, _, _ = select.select([pty.fileno()], [], [], max(0.0, deadline - time.monotonic()))
        if ready:
            chunk = pty.read(4096)
            if not chunk:
                break
            data += chunk
    return data


def test_open_pty_sizes_and_resize(machine: SshMachine) -> None:
    pty = machine.open_pty(["sh", "-c", "stty size; read x; stty size"], cols=100, rows=30)
    try:
        assert b"30 100" in _read_until(pty, b"30 100")
        pty.resize(120, 40)
        pty.write(b"\n")
        assert b"40 120" in _read_until(pty, b"40 120")
        assert pty.wait(5) == 0
    finally:
        pty.close()
        pty.close()


def test_open_pty_login_shell(machine: SshMachine) -> None:
    pty = machine.open_pty(None, cols=90, rows=20, term="xterm")
    try:
        pty.write(b"stty size; echo TERM=$TERM; exit 3\n")
        out = _read_until(pty, b"TERM=xterm\r")
        assert b"20 90" in out
        assert pty.wait(5) == 3
    finally:
        pty.close()


# -- the link: states, supervision, reconnection ------------------------------------------------


def test_down_within_budget_then_up_again(
    ssh_env: SshEnv, private_sshd: Callable[..., PrivateSshd]
) -> None:
    sshd = private_sshd()
    m = SshMachine("p", f"127.0.0.1:{sshd.port}", ssh_env.connector(sshd.port, 2.0), **FAST)
    other = SshMachine("dev", "dev", ssh_env.connector(), **FAST)
    seen: list[tuple[LinkStatus, str]] = []
    m.add_listener(lambda st: seen.append((st, threading.current_thread().name)))
    try:
        assert m.run(["echo", "hi"], 5) == "hi\n"
        other.run(["true"], 5)
        assert wait_for(lambda: m.status.latency_ms is not None, 3)  # a probe answered
        in_flight: list[BaseException] = []

        def long_call() -> None:
            try:
                m.run(["sleep", "60"], 120)
            except BaseException as e:
                in_flight.append(e)

        th = threading.Thread(target=long_call)
        th.start()
        time.sleep(0.2)

        sshd.stop()
        stopped = time.monotonic()
        budget = FAST["probe_interval"] * FAST["down_after"] + FAST["probe_timeout"] + 1.0
        latencies = []
        while m.status.state is not LinkState.DOWN and time.monotonic() - stopped < budget:
            t0 = time.monotonic()
            assert other.run(["echo", "ok"], 5) == "ok\n"
            latencies.append(time.monotonic() - t0)
            time.sleep(0.05)
        down_after = time.monotonic() - stopped
        assert m.status.state is LinkState.DOWN, m.status
        assert "stopped answering" in m.status.reason
        assert latencies and max(latencies) < 0.5, latencies  # the other host is unaffected

        th.join(2)
        assert not th.is_alive()  # the call in flight ended with the link
        assert isinstance(in_flight[0], MachineUnreachable)

        start = time.monotonic()
        with pytest.raises(MachineUnreachable, match="stopped answering"):
            m.run(["true"], 5)
        assert time.monotonic() - start < 0.1  # at once, no reconnect in the caller's thread

        sshd.cont()
        resumed = time.monotonic()
        assert wait_for(lambda: m.status.state is LinkState.UP, 15), m.status
        up_after = time.monotonic() - resumed
        assert m.run(["echo", "back"], 5) == "back\n"
        assert m.connects == 2
        states = [st.state for st, _ in seen]
        assert states[:1] == [LinkState.UP] and LinkState.DOWN in states
        assert states[-1] is LinkState.UP
        assert {name for _, name in seen} == {"gpuconsole-ssh-p"}
        print(f"DOWN after {down_after:.2f} s (budget {budget:g}); UP {up_after:.2f} s later")
    finally:
        sshd.cont()
        m.close()
        other.close()


def test_a_probe_stuck_inside_paramiko_is_a_miss(ssh_env: SshEnv) -> None:
    """paramiko can block in a send beyond any timeout (full TCP buffer, key exchange): the
    supervisor still decides within the budget."""
    m = SshMachine("dev", "dev", ssh_env.connector(), **FAST)
    stuck = threading.Event()
    try:
        m.run(["true"], 5)
        m._probe_once = lambda t: (stuck.wait(), ("alive", 0.0))[1]  # type: ignore[method-assign]
        start = time.monotonic()
        budget = FAST["probe_interval"] * FAST["down_after"] + FAST["probe_timeout"] + 1.0
        assert wait_for(lambda: m.status.state is LinkState.DOWN, budget), m.status
        assert time.monotonic() - start <= budget
    finally:
        stuck.set()
        m.close()


def test_close_returns_quickly_while_reconnecting(
    ssh_env: SshEnv, private_sshd: Callable[..., PrivateSshd]
) -> None:
    sshd = private_sshd()
    m = SshMachine("p", "p", ssh_env.connector(sshd.port, 5.0), **FAST)
    try:
        m.run(["true"], 5)
        sshd.stop()
        assert wait_for(lambda: m.status.state is LinkState.DOWN, 4.5)
        time.sleep(1.0)  # a reconnection attempt is now stuck waiting for the banner
        start = time.monotonic()
        m.close()
        assert time.monotonic() - start < 1.2
        with pytest.raises(MachineUnreachable, match="closed"):
            m.run(["true"], 5)
    finally:
        sshd.cont()
        m.close()


def test_first_use_is_shared_by_concurrent_callers(ssh_env: SshEnv) -> None:
    calls = []

    def connect() -> paramiko.Transport:
        calls.append(1)
        time.sleep(0.2)
        return ssh_env.connect()

    m = SshMachine("dev", "dev", connect, **FAST)
    try:
        got: list[paramiko.Transport] = []
        threads = [threading.Thread(target=lambda: got.append(m.transport())) for _ in range(10)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(10)
        assert len(calls) == 1 and m.connects == 1
        assert len(got) == 10 and len({id(t) for t in got}) == 1
    finally:
        m.close()


class HostKeyUnknown(GpuconsoleError):
    """Named like gpuconsole.backend.ssh.trust's: SshMachine goes by class name."""


class HostKeyChanged(GpuconsoleError):
    pass


class SshAuthFailed(GpuconsoleError):
    pass


class ChangedAgain(HostKeyChanged):
    pass


@pytest.mark.parametrize(
    ("error", "state"),
    [
        (HostKeyUnknown("unknown host key"), LinkState.NEEDS_TRUST),
        (HostKeyChanged("host key changed"), LinkState.REFUSED),
        (ChangedAgain("host key changed"), LinkState.REFUSED),
        (SshAuthFailed("no key got in"), LinkState.REFUSED),
    ],
)
def test_trust_and_login_errors_wait_for_retry_now(
    ssh_env: SshEnv, error: Exception, state: LinkState
) -> None:
    calls = []
    failing = [True]

    def connect() -> paramiko.Transport:
        calls.append(1)
        if failing[0]:
            raise error
        return ssh_env.connect()

    m = SshMachine("x", "x", connect, probe_interval=0.2, probe_timeout=0.5)
    try:
        with pytest.raises(type(error)):
            m.transport()  # the first caller gets the original error
        assert m.status.state is state and m.status.reason == str(error)
        with pytest.raises(MachineUnreachable, match=str(error)):
            m.run(["true"], 5)  # later ones: MachineUnreachable with the reason
        time.sleep(1.0)
        assert len(calls) == 1  # no retry by itself

        failing[0] = False
        m.retry_now()
        assert m.status.state is LinkState.CONNECTING
        assert wait_for(lambda: m.status.state is LinkState.UP, 5)
        assert m.run(["echo", "ok"], 5) == "ok\n"
        assert len(calls) == 2
    finally:
        m.close()


def test_unreachable_address_retries_with_growing_backoff() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    calls: list[float] = []

    def connect() -> paramiko.Transport:
        calls.append(time.monotonic())
        socket.create_connection(("127.0.0.1", port), 1).close()
        raise AssertionError("nothing should listen there")

    m = SshMachine("gone", f"127.0.0.1:{port}", connect, **FAST)
    try:
        with pytest.raises(MachineUnreachable, match="Connection refused"):
            m.transport()
        assert m.status.state is LinkState.DOWN
        start = time.monotonic()
        with pytest.raises(MachineUnreachable, match="Connection refused"):
            m.run(["true"], 5)
        assert time.monotonic() - start < 0.05
        assert wait_for(lambda: len(calls) >= 4, 6)
        gaps = [b - a for a, b in itertools.pairwise(calls)]
        # 0.5, 1, 2 s (+ up to 25 % jitter)
        assert 0.45 <= gaps[0] <= 0.7 and 0.95 <= gaps[1] <= 1.35 and 1.95 <= gaps[2] <= 2.6
        assert m.status.state is LinkState.DOWN
    finally:
        m.close()


@pytest.mark.parametrize("latency_probes", [True, False])
def test_a_streaming_host_needs_no_probes_and_is_still_found_down(
    ssh_env: SshEnv, private_sshd: Callable[..., PrivateSshd], latency_probes: bool
) -> None:
    """Output on a stream proves the link as a probe would (each probe is a thread and a
    channel); when the peer stops answering, the probes come back and find it down. Without
    latency probes (the recorder) a streaming host is not probed at all."""
    sshd = private_sshd()
    streaming = SshMachine(
        "s",
        f"127.0.0.1:{sshd.port}",
        ssh_env.connector(sshd.port, 2.0),
        latency_probes=latency_probes,
        **FAST,
    )
    idle = SshMachine("i", f"127.0.0.1:{sshd.port}", ssh_env.connector(sshd.port, 2.0), **FAST)
    lines: list[str] = []
    try:
        stream = streaming.stream(["sh", "-c", "while :; do echo tick; sleep 0.2; done"])
        threading.Thread(target=_consume, args=(stream, lines), daemon=True).start()
        idle.run(["true"], 5)
        assert wait_for(lambda: len(lines) >= 3, 5)
        before = (streaming.probes, idle.probes)
        time.sleep(4.5)
        extra_streaming = streaming.probes - before[0]
        extra_idle = idle.probes - before[1]
        assert extra_idle >= 4  # one a second
        # At most the one that keeps the latency current; none without latency probes.
        assert extra_streaming <= (1 if latency_probes else 0), extra_streaming

        sshd.stop()
        stopped = time.monotonic()
        budget = FAST["probe_interval"] * (FAST["down_after"] + 1) + FAST["probe_timeout"] + 1.0
        assert wait_for(lambda: streaming.status.state is LinkState.DOWN, budget), streaming.status
        print(f"DOWN {time.monotonic() - stopped:.2f} s after the peer stopped (budget {budget})")
    finally:
        sshd.cont()
        streaming.close()
        idle.close()

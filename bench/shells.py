"""Attached shells: keystroke-to-echo round trip of ``gpuconsole shell`` against the docker CLI.

    eval "$(scripts/dev-env)" && .venv/bin/python -m bench.shells [--keys 200] [--cmds 30]

The issue's figure (#8, "Done when"): the shell round trip over the SSH host is at most 2x that
of ``docker exec -it`` over ``docker -H ssh://`` in the same run, and no slower than
``ssh -t host docker exec -it``. Every client below is spawned on its own pty (100x30, as a
terminal emulator would run it) into the SAME running container (busybox by default), so they
all talk to the same ``sh`` (busybox's ash, with line editing, echoes each key it gets):

1. ``gpuconsole shell NAME`` — the local engine: exec through the Docker API on its unix socket,
   our bridge (raw terminal <-> session select loop). The floor of our own path.
2. ``docker exec -it NAME sh`` — the local docker CLI: what a user would otherwise type; the
   reference for (1).
3. ``gpuconsole --config CFG shell --host remote NAME`` — over the bench's sshd: the exec through
   the Docker API carried on a ``direct-streamlocal`` channel of the host's one paramiko
   connection. The row the targets are about.
4. ``docker -H ssh://gpcbench exec -it NAME sh`` — the docker CLI's own SSH transport (an ``ssh
   ... docker system dial-stdio`` per HTTP connection): the issue's "2x" reference.
5. ``ssh -t gpcbench docker exec -it NAME sh`` — the system ssh with a remote pty and the remote
   docker CLI: the issue's "no slower than" reference (the habit gpuconsole replaces).
6. ``gpuconsole --config CFG shell --host remote`` — for reference only: a login shell on the host
   through the same paramiko connection (a session channel, no engine in the path), to separate
   the cost of the SSH channel from the cost of the exec stream.

Every container row runs the container's ``sh`` (gpuconsole with ``--shell sh``: by default it
would pick bash where the image has one). Per client: the time from spawning it to the shell's
first prompt (``# ``); the keystroke round trip (one printable byte written to the pty master,
until its echo comes back; ``--keys`` of them, with Ctrl-U now and then so the line never
grows; p50 / p95 / max); the command round trip (``echo $((6*7))`` + Enter until ``42`` comes
back, ``--cmds`` times; p50 / p95 — busybox's ash itself takes some 20 ms per command line,
whoever carries it; ``--image gpuconsole-test/debian:bookworm`` runs dash, at about 2 ms).
Keystrokes go to the clients in turn (one key each, in a fresh random order every round), and
commands in batches of five, so a change in the shared machine's load hits them all alike. The
"client CPU" column is the CPU time of the client's local processes (it and its children: the
docker CLI's ssh) over the keystroke phase, idle time included, per key. Last, ``exit 3`` in
each: the client's exit code must be 3. The SSH rows also count logins in the bench sshd's log
(its "Accepted publickey" lines) while each client opened and closed its session: gpuconsole
needs exactly one.

Reuses bench/remote.py's rig (its own sshd from the dev sshd's config, a throw-away HOME with
known_hosts, an ssh config with the alias ``gpcbench`` and an ``ssh`` wrapper for the docker CLI,
a gpuconsole config naming the sshd as host ``remote``). The sshd's sessions get the dev engine's
DOCKER_HOST from its SetEnv, so the remote ``docker`` of (4) and (5) reaches the same engine.
Needs the docker CLI, ssh and sshd (and tmux and less, which that rig checks for).
The container carries the label gpuconsole-bench-shells=1 (not gpuconsole-bench=1: the other
benches remove every container with that label when they end) and is removed at the end, with
the sshd and the temporary directories. Prints one table; exits 1 if a target is missed or a
client failed.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import pty
import random
import select
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.remote import ALIAS, Rig, load_average, say
from bench.tmuxpane import cpu_seconds, percentile, print_targets

COLS, ROWS = 100, 30
PROMPT = b"# "
#: Keys typed between two Ctrl-U (the prompt "/ # " plus these stays on one 100-column line).
LINE_KEYS = 24
KEY_TIMEOUT = 10.0
OPEN_TIMEOUT = 60.0
#: After Ctrl-U: the shell's redraw is over once nothing came for this long.
QUIET_S = 0.08
KEY_LETTERS = b"abcdefghijklmnopqrstuvwxyz"
CLEAR_LINE = b"\x15"  # Ctrl-U
#: The container's label. Not ``gpuconsole-bench``: bench/containers.py and bench/logs_screen.py
#: remove every container with that label when they end, and may run beside this one.
LABEL = "gpuconsole-bench-shells"


class Box:
    """The one busybox container every client opens its shell in."""

    def __init__(self, url: str, image: str) -> None:
        import docker

        self.client: Any = docker.DockerClient(base_url=url, version="auto", timeout=60)
        self.name = f"bench-shells-{uuid.uuid4().hex[:8]}"
        self.container: Any = self.client.containers.run(
            image,
            ["sleep", "86400"],
            name=self.name,
            detach=True,
            labels={LABEL: "1"},
            network_mode="none",
        )

    def still_there(self) -> bool:
        try:
            self.container.reload()
        except Exception:
            return False
        return bool(self.container.status == "running")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.container.remove(force=True)
        self.client.close()


@dataclass
class Client:
    key: str  # "1" .. "6"
    label: str
    argv: list[str]
    env: dict[str, str]
    remote: bool
    target_row: bool = True  # in the comparison (6 is a reference only)
    pid: int = 0
    fd: int = -1
    output: bytearray = field(default_factory=bytearray)
    open_s: float | None = None
    keys: list[float] = field(default_factory=list)
    key_timeouts: int = 0
    cmds: list[float] = field(default_factory=list)
    cmd_timeouts: int = 0
    exit_code: int | None = None
    logins_open: int = 0
    logins_close: int = 0
    error: str = ""
    typed: int = 0  # keys on the current line
    closed: bool = False  # the pty gave EOF: the client is gone
    #: CPU seconds of the client's local processes (it and its children) per keystroke, idle
    #: time between its keys included.
    cpu_per_key: float | None = None

    # -- the pty ----------------------------------------------------------------------------

    def spawn(self) -> None:
        pid, fd = pty.fork()
        if pid == 0:  # the child: the pty is its terminal
            try:
                fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
                os.execvpe(self.argv[0], self.argv, self.env)
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd

    def send(self, data: bytes) -> None:
        os.write(self.fd, data)

    def read_some(self, timeout: float) -> bytes | None:
        """What the client wrote within ``timeout`` (b"" for nothing); None once it closed."""
        readable, _, _ = select.select([self.fd], [], [], max(0.0, timeout))
        if not readable:
            return b""
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # EIO: the client closed the pty
            data = b""
        if not data:
            self.closed = True
            return None
        self.output += data
        return data

    def wait_for(self, needle: bytes, timeout: float, start: int | None = None) -> float | None:
        """Seconds until ``needle`` is in the output after offset ``start`` (default: what is
        read from now on); None if not within ``timeout`` or the client closed."""
        began = time.perf_counter()
        offset = len(self.output) if start is None else start
        while True:
            if self.output.find(needle, offset) >= 0:
                return time.perf_counter() - began
            left = timeout - (time.perf_counter() - began)
            if left <= 0:
                return None
            if self.read_some(left) is None:
                return None

    def drain(self, quiet: float = QUIET_S, limit: float = 5.0) -> None:
        """Read until nothing has come for ``quiet`` seconds (at most ``limit``)."""
        end = time.monotonic() + limit
        while time.monotonic() < end:
            data = self.read_some(quiet)
            if not data:
                return

    def gone(self) -> bool:
        """After a timeout: True (with ``error`` set) when the client has ended."""
        if self.closed:
            deadline = time.monotonic() + 2
            while self.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
        if self.poll() is None:
            return False
        self.error = f"ended unasked (exit {self.exit_code}); the terminal shows: {self.tail()!r}"
        return True

    def poll(self) -> int | None:
        if self.exit_code is None and self.pid:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.exit_code = os.waitstatus_to_exitcode(status)
                self.pid = 0
        return self.exit_code

    def close(self) -> None:
        if self.pid and self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)
            self.pid = 0
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1

    def tail(self) -> str:
        return bytes(self.output[-300:]).decode("utf-8", "replace").replace("\r", "")

    # -- the measurements -------------------------------------------------------------------

    def open(self, rig: Rig) -> None:
        before = rig.logins()
        start = time.perf_counter()
        self.spawn()
        took = self.wait_for(PROMPT, OPEN_TIMEOUT, start=0)
        if took is None:
            self.error = f"no prompt within {OPEN_TIMEOUT:g} s; the terminal shows: {self.tail()!r}"
            return
        self.open_s = time.perf_counter() - start
        self.drain()
        if self.remote:
            time.sleep(0.3)  # the sshd logs the login a moment after the session starts
            self.logins_open = rig.logins() - before

    def type_keys(self, n: int, gap: tuple[float, float]) -> None:
        """``n`` keystrokes, each timed from the write to its echo."""
        for _ in range(n):
            if self.error:
                return
            if self.typed >= LINE_KEYS:
                self.send(CLEAR_LINE)
                self.drain()
                self.typed = 0
            letter = bytes([KEY_LETTERS[len(self.keys) % len(KEY_LETTERS)]])
            offset = len(self.output)
            start = time.perf_counter()
            self.send(letter)
            took = self.wait_for(letter, KEY_TIMEOUT, start=offset)
            if took is None:
                if self.gone():
                    return
                self.key_timeouts += 1
                self.keys.append(KEY_TIMEOUT)
                self.drain()
            else:
                self.keys.append(time.perf_counter() - start)
            self.typed += 1
            time.sleep(random.uniform(*gap))

    def run_commands(self, n: int, gap: tuple[float, float]) -> None:
        """``n`` times ``echo $((6*7))`` + Enter, timed from the write to the answer."""
        if self.typed:
            self.send(CLEAR_LINE)
            self.drain()
            self.typed = 0
        for _ in range(n):
            if self.error:
                return
            offset = len(self.output)
            start = time.perf_counter()
            self.send(b"echo $((6*7))\r")
            # b"42\r\n" is only in the answer (the echoed line says $((6*7))); bash puts
            # "\x1b[?2004l\r" (bracketed paste off) between the line and the answer.
            took = self.wait_for(b"42\r\n", KEY_TIMEOUT, start=offset)
            if took is None:
                if self.gone():
                    return
                self.cmd_timeouts += 1
                self.cmds.append(KEY_TIMEOUT)
            else:
                self.cmds.append(time.perf_counter() - start)
            self.wait_for(PROMPT, KEY_TIMEOUT, start=offset)
            self.drain(quiet=0.02)
            time.sleep(random.uniform(*gap))

    def leave(self, rig: Rig, code: int) -> None:
        """``exit CODE`` in the shell; the client's own exit code, and the logins meanwhile."""
        before = rig.logins()
        if self.pid and self.poll() is None:
            self.send(f"exit {code}\r".encode())
            deadline = time.monotonic() + 20
            while self.poll() is None and time.monotonic() < deadline:
                self.read_some(0.05)
            if self.poll() is None:
                self.error = self.error or f"still running 20 s after `exit {code}`"
        if self.remote:
            time.sleep(0.3)
            self.logins_close = rig.logins() - before


def clients(rig: Rig, container: str, config: Path, with_host_shell: bool) -> list[Client]:
    py = [sys.executable, "-m", "gpuconsole"]
    # The docker CLI rows run `sh`; so does gpuconsole's default in busybox (bash where there is
    # one): name it, so every row runs the same program whatever --image is.
    same_sh = ["--shell", "sh"]
    plain = rig.env(TERM="xterm-256color")  # gpuconsole: the bench HOME, the plain PATH
    cli = rig.env(docker_cli=True, TERM="xterm-256color")  # `ssh` = the wrapper (-F config)
    out = [
        Client("1", "gpuconsole shell (local)", [*py, "shell", *same_sh, container], plain, False),
        Client(
            "2", "docker exec -it (local)", ["docker", "exec", "-it", container, "sh"], cli, False
        ),
        Client(
            "3",
            "gpuconsole shell --host (SSH)",
            [*py, "--config", str(config), "shell", "--host", "remote", *same_sh, container],
            plain,
            True,
        ),
        Client(
            "4",
            f"docker -H ssh://{ALIAS} exec -it",
            ["docker", "-H", f"ssh://{ALIAS}", "exec", "-it", container, "sh"],
            cli,
            True,
        ),
        Client(
            "5",
            f"ssh -t {ALIAS} docker exec -it",
            ["ssh", "-t", ALIAS, "docker", "exec", "-it", container, "sh"],
            cli,
            True,
        ),
    ]
    if with_host_shell:
        out.append(
            Client(
                "6",
                "gpuconsole shell --host, no NAME (ref.)",
                [*py, "--config", str(config), "shell", "--host", "remote"],
                plain,
                True,
                target_row=False,
            )
        )
    return out


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of ``pid`` and its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += cpu_seconds(current)
        todo += children.get(current, [])
    return total


# -- the report ------------------------------------------------------------------------------


def fmt_ms(samples: Sequence[float], p: float) -> str:
    if not samples:
        return "-"
    value = statistics.median(samples) if p == 50 else percentile(samples, p)
    return f"{value * 1000:.1f}"


def row(c: Client) -> str:
    exit_ok = "yes" if c.exit_code == 3 else f"**NO** ({c.exit_code})"
    logins = str(c.logins_open + c.logins_close) if c.remote else "-"
    if c.remote and c.logins_close:
        logins += f" ({c.logins_open} open + {c.logins_close} at exit)"
    timeouts = c.key_timeouts + c.cmd_timeouts
    cells = [
        f"({c.key}) {c.label}",
        f"{c.open_s:.2f}" if c.open_s is not None else "-",
        fmt_ms(c.keys, 50),
        fmt_ms(c.keys, 95),
        f"{max(c.keys) * 1000:.1f}" if c.keys else "-",
        f"{c.cpu_per_key * 1000:.2f}" if c.cpu_per_key is not None else "-",
        fmt_ms(c.cmds, 50),
        fmt_ms(c.cmds, 95),
        exit_ok,
        logins,
        str(timeouts) if timeouts else "",
    ]
    return " | ".join(cells)


def p95(c: Client) -> float:
    return percentile(c.keys, 95) if c.keys else float("inf")


def p50_ms(c: Client) -> float:
    return statistics.median(c.keys) * 1000 if c.keys else float("inf")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--keys", type=int, default=200, help="keystrokes per client (200)")
    parser.add_argument("--cmds", type=int, default=30, help="echo commands per client (30)")
    parser.add_argument(
        "--gap-ms",
        type=float,
        nargs=2,
        default=(10.0, 30.0),
        metavar=("MIN", "MAX"),
        help="random pause after each keystroke, before the next client's (10 30)",
    )
    parser.add_argument(
        "--no-host-shell", action="store_true", help="leave out the reference row (6)"
    )
    parser.add_argument(
        "--image", default=os.environ.get("GPUCONSOLE_TEST_IMAGE", "gpuconsole-test/busybox:1")
    )
    args = parser.parse_args()
    gap = (args.gap_ms[0] / 1000, args.gap_ms[1] / 1000)
    for tool in ("docker", "ssh"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed for this bench")

    tmp = Path(tempfile.mkdtemp(prefix="gpcbench-shells-"))
    rig = Rig(tmp)
    os.environ.pop("GPUCONSOLE_CONFIG", None)
    box: Box | None = None
    started, load_before = time.monotonic(), load_average()
    running: list[Client] = []
    notes: list[str] = []
    try:
        rig.start_sshd()
        say(f"sshd on 127.0.0.1:{rig.port}; HOME {rig.home}")
        box = Box(rig.engine_url, args.image)
        config = rig.config("shells", [("remote", rig.port)])
        running = clients(rig, box.name, config, not args.no_host_shell)

        say("opening a shell with each client, one after the other")
        for c in running:
            c.open(rig)
            state = f"{c.open_s:.2f} s" if c.open_s is not None else f"FAILED: {c.error}"
            extra = f", {c.logins_open} login(s)" if c.remote else ""
            say(f"  ({c.key}) {c.label}: prompt after {state}{extra}")
        live = [c for c in running if not c.error]

        say(f"{args.keys} keystrokes per client, one client after the other in a random order")
        logins_before = rig.logins()
        cpu_before = {c.key: tree_cpu(c.pid) for c in live}
        for _ in range(args.keys):
            for c in random.sample(live, len(live)):
                c.type_keys(1, gap)
        for c in live:
            if c.keys and not c.error:
                c.cpu_per_key = (tree_cpu(c.pid) - cpu_before[c.key]) / len(c.keys)
        say(f"{args.cmds} commands per client, interleaved")
        for i in range(0, args.cmds, 5):
            for c in random.sample(live, len(live)):
                c.run_commands(min(5, args.cmds - i), gap)
        during = rig.logins() - logins_before
        if during:
            notes.append(f"{during} sshd login(s) while the sessions were only typed into")

        if not box.still_there():
            notes.append(
                f"the container {box.name} was removed or stopped during the run (not by this "
                "bench): the rows after that are void"
            )
        say("`exit 3` in each")
        for c in running:
            c.leave(rig, 3)
    finally:
        for c in running:
            c.close()
        if box is not None:
            box.close()
        rig.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    by_key = {c.key: c for c in running}
    ours, cli_ssh, ssh_t = by_key["3"], by_key["4"], by_key["5"]
    ratio = p95(ours) / p95(cli_ssh) if cli_ssh.keys else float("inf")
    vs_ssh = p95(ours) / p95(ssh_t) if ssh_t.keys else float("inf")
    # "No slower than": the same or better, within the resolution of 200 keys on a shared
    # 2-core machine (1 ms, or 10 % of ssh -t's p95, whichever is larger).
    slack = max(0.001, 0.10 * p95(ssh_t))
    targets: list[tuple[str, str, str, bool | None]] = [
        (
            "(3) key p95 / (4) key p95",
            f"{ratio:.2f}",
            "<= 2.0",
            ratio <= 2.0,
        ),
        (
            "(3) key p95 / (5) key p95",
            f"{vs_ssh:.2f} ({p95(ours) * 1000:.1f} vs {p95(ssh_t) * 1000:.1f} ms; p50 "
            f"{fmt_ms(ours.keys, 50)} vs {fmt_ms(ssh_t.keys, 50)} ms)",
            "(3) <= (5) (within 1 ms or 10 %)",
            p95(ours) <= p95(ssh_t) + slack,
        ),
        (
            "(3) key p50 minus (4)'s, minus (5)'s (for the record)",
            f"{p50_ms(ours) - p50_ms(cli_ssh):+.2f} ms, {p50_ms(ours) - p50_ms(ssh_t):+.2f} ms",
            "",
            None,
        ),
        (
            "(3) logins for the whole session",
            str(ours.logins_open + ours.logins_close),
            "exactly 1",
            ours.logins_open + ours.logins_close == 1,
        ),
    ]

    import docker

    engine = docker.APIClient(base_url=rig.engine_url, version="auto").version()
    versions = {
        "docker CLI": subprocess.run(
            ["docker", "version", "--format", "{{.Client.Version}}"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip(),
        "ssh": subprocess.run(["ssh", "-V"], capture_output=True, text=True, check=False)
        .stderr.strip()
        .split(",")[0],
    }
    print()
    print(
        f'`eval "$(scripts/dev-env)" && .venv/bin/python -m bench.shells` '
        f"({time.monotonic() - started:.0f} s; {args.keys} keys and {args.cmds} commands per "
        f"client, {args.gap_ms[0]:g}-{args.gap_ms[1]:g} ms between keys)"
    )
    print(
        f"engine {engine.get('Version')} at {rig.engine_url}; {versions['docker CLI']} docker "
        f"CLI; {versions['ssh']}; the SSH host is the bench's own loopback sshd; image "
        f"{args.image} (its sh); ptys {COLS}x{ROWS}; {os.cpu_count()} CPUs, load average "
        f"{load_before} at the start, {load_average()} at the end"
    )
    print()
    print(
        "client | open s | key p50 ms | key p95 ms | key max ms | client CPU ms/key | cmd p50 ms "
        "| cmd p95 ms | exit code ok | sshd logins | timeouts"
    )
    print("--- | --- | --- | --- | --- | --- | --- | --- | --- | --- | ---")
    for c in running:
        print(row(c))
    print()
    print_targets(("target", "result", "wanted", "met"), targets)
    failed = [c for c in running if c.error or c.exit_code != 3 or c.key_timeouts]
    for c in failed:
        notes.append(f"({c.key}) {c.label}: {c.error or 'see the row'}")
    if notes:
        print()
        for note in notes:
            print(f"- {note}")
    return 1 if failed or any(ok is False for *_, ok in targets) else 0


if __name__ == "__main__":
    raise SystemExit(main())

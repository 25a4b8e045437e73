"""The console at rest and under keys, beside `docker stats` (nvitop on a GPU machine), same run.

    eval "$(scripts/dev-env)" && .venv/bin/python -m bench.tui [--sizes 100 500] [--seconds 30]
        [--gpus auto|replay|standin8|nvml] [--presses 20] [--settle 10] [--quick]

Every tool runs for real in its own terminal of 180x50: a pane of a private tmux server (where
tmux is installed), and inside it a tiny pty relay written by this bench (Python, started with
this interpreter) that forks the tool on a pty of the same size, copies its output to the pane
and its keys to the tool, and logs every chunk of output with its time, so the bytes a tool
writes to its terminal per second are counted exactly (the relay's own CPU is not the tool's:
CPU is read from the tool's own /proc/PID/stat). The tools get ``TERM=xterm-256color``,
``COLORTERM=truecolor``, a throw-away HOME (no user config) and nothing else of the caller's
environment but PATH, PYTHONPATH, the locale and DOCKER_HOST.

For each size N the bench starts N busybox sleepers (label gpuconsole-bench=1 and this run's
own label, by which they are removed at the end; containers it did not start are left alone,
and are counted in the engine's totals it prints), then, one tool at a time (engine CPU is
attributed by measuring each tool ALONE in turn):
  1. baseline: the engine's CPU (dockerd + its containerd + the containerd shims) over
     --seconds with neither tool running, just before each tool (other clients of a shared
     engine are in it, and drift: the engine figures are the noisiest here);
  2. ``docker stats`` (the Go CLI, streaming): time to rows (from the relay's fork to the pane's
     first line of figures), then after --settle seconds its CPU (% of one core, utime+stime
     over --seconds), the engine CPU it causes (the engine over the same window minus the
     baseline's rate), its RSS at the end, its bytes/s to the terminal;
  3. the console (``python -m gpuconsole`` with the GPU mode of --gpus): the same figures
     (time to rows: to the first container name on the pane; CPU: the process, i.e. all its
     threads; the processes it starts, such as the stand-in nvidia-smi, counted apart), then
     key to screen, each press timed from tmux send-keys to the pane showing its effect through
     one tmux control-mode client (bench/tmuxpane.py), --presses times each (a key pair
     stops at 120 s; a press counts as missed after 5 s): ``?`` / ``escape``
     (help; and ``?`` / ``?``, which closes it without the escape key's wait), ``/`` / a few
     characters typed / ``escape`` (filter as you type: to the host line showing
     ``filter: TEXT``), ``enter`` / ``escape`` (details: to the title shown and "Loading…" gone);
     ``less`` in a second pane (under the same relay) gets ``G`` / ``g`` (end of its file, start:
     a full redraw each) in turn with every console press: what a trivial program shows
     through the same harness under the same load;
  4. the console's GPU screen (``g``): after --settle, CPU, bytes/s, RSS, and ``g`` / ``escape``
     key to screen;
  5. in-process, in this bench: the containers refresh (``host.engine.snapshot(all=True)``,
     cold and the median of 5 warm, as bench/containers.py times it) and ContainersTable.apply
     on the event loop (the real app headless via App.run_test at 180x50 on the same engine,
     apply wrapped with a timer: the first apply, empty to N rows, and the steady ones; the
     repaint that follows is in the key figures, not here).
With ``--gpus nvml`` (the default on a machine where ``nvidia-smi -L`` works) nvitop runs in
its own pane too (monitor mode, its default interval): CPU, RSS, bytes/s beside the GPU screen.

--quick: 20 containers, windows of 8 s after 3 s, 5 presses (about 2 minutes here). The GPU
screen's targets (8 GPUs at 1 Hz) are judged with standin8 and nvml only, not on 1 replayed GPU.

GPU modes: ``replay`` plays the recorded H100 (tests/fixtures/gpu/h100/nvml-recording-h100.jsonl;
1 GPU); ``standin8`` puts tests/fixtures/bin/nvidia-smi first on PATH with
GPUCONSOLE_SMI_STUB_GPUS=8 (NVML fails where there is no driver, so the console streams
nvidia-smi: 8 GPUs at 1 Hz; the stand-in is a separate process whose CPU is printed apart);
``nvml``: the machine's real GPUs (no arguments: the console picks NVML itself).

Where there is no Docker engine (or no docker CLI) the parts that need one are skipped and the
output says so; the console then runs once (its containers screen shows the engine down) for its
CPU, RSS, bytes/s and the GPU screen. Without tmux, the relay alone runs each tool (keys go in
through its stdin): CPU, RSS and bytes/s are measured, time to rows and key latency are not.

Prints the run's facts, then one markdown table per size (and one for the GPU screen of each
console run) with the issue's targets beside the figures (bench/tmuxpane.print_targets). Exits 0
even when targets are missed (it is a measurement); 1 only when the harness itself fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import tmuxpane
from bench.tmuxpane import Control, machine_busy, percentile, print_targets

COLS, ROWS = 180, 50
LABEL = "gpuconsole-bench"  # bench/remote.py's labels: every bench removes LABEL containers
RUN_LABEL = "gpuconsole-bench-run"
REPO = Path(__file__).resolve().parent.parent
REPLAY = REPO / "tests/fixtures/gpu/h100/nvml-recording-h100.jsonl"
SHARED_REPLAY = REPO.parent / "shared/fixtures/gpu/h100/nvml-recording-h100.jsonl"
STANDIN_BIN = REPO / "tests/fixtures/bin"

HELP_MARK = "Mouse: click a row"  # the console's help screen (gpuconsole/ui/screens/help.py)
FILTER_MARK = "filter by name or image"  # the filter box's placeholder
GPU_MARK = "Container / process"  # the GPU screen's process table header
LESS_TOP = "line 0 of a file"  # less at the start of its file
LESS_END = "line 1999 of a file"  # ... and at its end
DETAILS_TITLE = re.compile(r"\bContainer (?!/)\S")
STATS_ROW = re.compile(r"^[0-9a-f]{12}\s+\S+\s+\d+(\.\d+)?%", re.M)
KEY_TIMEOUT = 5.0
#: Seconds one group of presses (one key pair, --presses times) may take in all.
KEYS_BUDGET = 120.0
POLL = 0.002  # between two captures while waiting for a key's effect
TARGET_KEY = 0.050

#: The pty relay each tool runs under (written to a file, run with this interpreter).
#: argv: COLS ROWS LOG [--dump FILE] -- PROGRAM ARGS...; LOG gets "pid PID SPAWN", then
#: "TIME TOTAL_BYTES" per chunk of output (flushed every 0.2 s), then "exit STATUS".
RELAY = r"""
import errno, fcntl, os, select, signal, struct, sys, termios, time, tty

cols, rows, log_path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rest = sys.argv[4:]
dump = None
if rest[0] == "--dump":
    dump = open(rest[1], "wb")
    rest = rest[2:]
argv = rest[1:]  # after "--"
master, slave = os.openpty()
fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
log = open(log_path, "w")
spawn = time.monotonic()
pid = os.fork()
if pid == 0:
    try:
        os.close(master)
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
        for fd in (0, 1, 2):
            os.dup2(slave, fd)
        if slave > 2:
            os.close(slave)
        os.execvp(argv[0], argv)
    finally:
        os._exit(127)
os.close(slave)
log.write(f"pid {pid} {spawn:.6f}\n")
log.flush()
saved = None
if os.isatty(0):
    saved = termios.tcgetattr(0)
    tty.setraw(0)


def end(signum, frame):
    try:
        os.kill(pid, signal.SIGTERM)
    except OSError:
        pass


signal.signal(signal.SIGTERM, end)
signal.signal(signal.SIGHUP, end)
total, records, flushed = 0, [], spawn
fds = [master, 0]
status = None
try:
    while True:
        ready, _, _ = select.select(fds, [], [], 0.2)
        now = time.monotonic()
        if master in ready:
            try:
                data = os.read(master, 65536)
            except OSError:
                data = b""
            if not data:
                break
            total += len(data)
            records.append(f"{now:.6f} {total}\n")
            if dump is not None:
                dump.write(data)
            view = memoryview(data)
            while view:
                try:
                    view = view[os.write(1, view):]
                except OSError as exc:
                    if exc.errno != errno.EINTR:
                        break
        if 0 in ready:
            data = os.read(0, 4096)
            if data:
                os.write(master, data)
            else:
                fds.remove(0)
        if records and now - flushed >= 0.2:
            log.write("".join(records))
            log.flush()
            records.clear()
            flushed = now
        if not ready:
            done, code = os.waitpid(pid, os.WNOHANG)
            if done:
                status = code
                break
finally:
    log.write("".join(records))
    if status is None:
        _, status = os.waitpid(pid, 0)
    log.write(f"exit {status}\n")
    log.close()
    if saved is not None:
        termios.tcsetattr(0, termios.TCSADRAIN, saved)
"""


def say(text: str) -> None:
    print(f"-- {text}", file=sys.stderr, flush=True)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


# -- /proc ------------------------------------------------------------------------------------


def stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name (index 0 is field 3, the state); None if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


TICK = os.sysconf("SC_CLK_TCK")


def cpu_of(pid: int, children: bool = False) -> float:
    """utime+stime (and, with ``children``, the reaped children's too) in seconds; 0 if gone."""
    f = stat_fields(pid)
    if f is None:
        return 0.0
    ticks = int(f[11]) + int(f[12]) + ((int(f[13]) + int(f[14])) if children else 0)
    return ticks / TICK


def all_pids() -> Iterator[int]:
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            yield int(entry.name)


def descendants(root: int) -> list[int]:
    parent: dict[int, int] = {}
    for pid in all_pids():
        f = stat_fields(pid)
        if f is not None:
            parent[pid] = int(f[1])
    kids: dict[int, list[int]] = {}
    for pid, ppid in parent.items():
        kids.setdefault(ppid, []).append(pid)
    out: list[int] = []
    todo = [root]
    while todo:
        for kid in kids.get(todo.pop(), []):
            out.append(kid)
            todo.append(kid)
    return out


def family_cpu(pid: int) -> float:
    """CPU seconds of what ``pid`` started: its live descendants (with what they reaped) and
    its own reaped children. Differences of this over a window are the helpers' CPU."""
    return (
        cpu_of(pid, children=True)
        - cpu_of(pid)
        + sum(cpu_of(kid, children=True) for kid in descendants(pid))
    )


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def engine_pids(url: str) -> tuple[list[int], str]:
    """dockerd serving ``url`` (else any dockerd), the containerd it started, and the shims of
    that containerd (else every containerd shim); and a line saying what was found."""
    sock = url.removeprefix("unix://")
    procs = {pid: comm(pid) for pid in all_pids()}
    dockerds = [p for p, c in procs.items() if c == "dockerd"]
    mine = [p for p in dockerds if sock and sock in cmdline(p)] or dockerds
    if not mine:
        return [], "no dockerd process found"
    dockerd = mine[0]
    kids = descendants(dockerd)
    containerds = [p for p in kids if procs.get(p) == "containerd"]
    where = ""
    for p in containerds:
        args = cmdline(p).split()
        if "--config" in args:
            where = str(Path(args[args.index("--config") + 1]).parent)
    shims = [
        p
        for p, c in procs.items()
        if c.startswith("containerd-shim") and (not where or where in cmdline(p))
    ]
    return [dockerd, *kids, *shims], (
        f"dockerd {dockerd} + {len(kids)} of its processes + {len(shims)} containerd shims"
    )


def engine_cpu(pids: Sequence[int]) -> float:
    return sum(cpu_of(p) for p in pids)


# -- one tool in a terminal --------------------------------------------------------------------


class Pane:
    """One program under the relay, in a tmux session of COLSxROWS (``use_tmux``) or as a
    plain subprocess (keys through the relay's stdin)."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: dict[str, str],
        tmp: Path,
        relay: Path,
        use_tmux: bool,
    ) -> None:
        self.name = name
        self.log = tmp / f"{name}-{uuid.uuid4().hex[:4]}.bytes"
        self.dump: Path | None = None
        self.use_tmux = use_tmux
        self.ctl: Control | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        relay_argv = [sys.executable, str(relay), str(COLS), str(ROWS), str(self.log)]
        if not use_tmux:
            self.dump = self.log.with_suffix(".out")
            relay_argv += ["--dump", str(self.dump)]
        full = ["env", "-i", *(f"{k}={v}" for k, v in env.items()), *relay_argv, "--", *argv]
        if use_tmux:
            tmuxpane.tmux(
                "new-session", "-d", "-s", name, "-x", str(COLS), "-y", str(ROWS),
                "-c", str(REPO), "exec " + shlex.join(full),
            )  # fmt: skip
            self.ctl = Control(name)
        else:
            self.proc = subprocess.Popen(
                full,
                cwd=REPO,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=(tmp / f"{name}.relay-err").open("wb"),
                start_new_session=True,
            )
        deadline = time.monotonic() + 20
        self.pid = 0
        self.spawn = 0.0
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError, IndexError):
                first = self.log.read_text().split("\n", 1)[0].split()
                if first and first[0] == "pid":
                    self.pid, self.spawn = int(first[1]), float(first[2])
                    break
            time.sleep(0.01)
        if not self.pid:
            raise RuntimeError(f"{name}: the relay did not start the program")

    def alive(self) -> bool:
        f = stat_fields(self.pid)
        return f is not None and f[0] != "Z"

    def screen(self) -> str:
        return self.ctl.screen() if self.ctl else ""

    def send(self, key: str) -> None:
        """A key by tmux name (or, without tmux, its bytes through the relay)."""
        if self.ctl is not None:
            self.ctl.send(key)
        elif self.proc is not None and self.proc.stdin is not None:
            raw = {"Escape": b"\x1b", "Enter": b"\r"}.get(key, key.encode())
            self.proc.stdin.write(raw)
            self.proc.stdin.flush()

    def output_since(self, offset: int) -> bytes:
        """Without tmux: what the program wrote from byte ``offset`` on (the relay's dump)."""
        if self.dump is None:
            return b""
        with self.dump.open("rb") as f:
            f.seek(offset)
            return f.read()

    def records(self) -> list[tuple[float, int]]:
        out: list[tuple[float, int]] = []
        for line in self.log.read_text().splitlines()[1:]:
            parts = line.split()
            if len(parts) == 2 and parts[0] != "exit":
                with contextlib.suppress(ValueError):
                    out.append((float(parts[0]), int(parts[1])))
        return out

    def bytes_between(self, t0: float, t1: float) -> int:
        time.sleep(0.5)  # the relay flushes its log every 0.2 s
        before = after = 0
        for t, total in self.records():
            if t <= t0:
                before = total
            if t <= t1:
                after = total
        return after - before

    def total_bytes(self) -> int:
        recs = self.records()
        return recs[-1][1] if recs else 0

    def wait_rows(self, check: Callable[[str], bool], timeout: float) -> float | None:
        """Seconds from the relay's fork to ``check(pane)`` holding (polled every 10 ms)."""
        if self.ctl is None:
            return None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check(self.ctl.screen()):
                return time.monotonic() - self.spawn
            if not self.alive():
                return None
            time.sleep(0.01)
        return None

    def last_words(self) -> str:
        lines = [ln.strip() for ln in self.screen().splitlines() if ln.strip()]
        return lines[-1] if lines else "(no screen)"

    def stop(self) -> None:
        family = [self.pid, *descendants(self.pid)]
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 2.0)):
            for pid in family:
                with contextlib.suppress(OSError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and any(self._lives(p) for p in family):
                time.sleep(0.05)
            if not any(self._lives(p) for p in family):
                break
        if self.ctl is not None:
            self.ctl.close()
            with contextlib.suppress(RuntimeError):
                tmuxpane.tmux("kill-session", "-t", self.name)
        if self.proc is not None:
            with contextlib.suppress(OSError):
                if self.proc.stdin is not None:
                    self.proc.stdin.close()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    @staticmethod
    def _lives(pid: int) -> bool:
        f = stat_fields(pid)
        return f is not None and f[0] != "Z"


@dataclass
class Rest:
    """One tool at rest over a window."""

    seconds: float = 0.0
    cpu: float | None = None  # % of one core
    helpers: float | None = None  # % of one core, the processes it started
    engine: float | None = None  # % of one core caused (window minus baseline)
    rss: float | None = None  # MiB at the end
    bps: float | None = None  # bytes/s to the terminal
    machine: float | None = None  # % of all cores, everything
    alive: bool = True
    last_words: str = ""


def measure_rest(pane: Pane, seconds: float, engine: Sequence[int], idle: float | None) -> Rest:
    c0, h0, e0, m0 = cpu_of(pane.pid), family_cpu(pane.pid), engine_cpu(engine), machine_busy()
    t0 = time.monotonic()
    time.sleep(seconds)
    c1, h1, e1, m1 = cpu_of(pane.pid), family_cpu(pane.pid), engine_cpu(engine), machine_busy()
    t1 = time.monotonic()
    span = t1 - t0
    rest = Rest(seconds=span)
    rest.alive = pane.alive()
    if not rest.alive:
        rest.last_words = pane.last_words()
        return rest
    rest.cpu = (c1 - c0) / span * 100
    rest.helpers = (h1 - h0) / span * 100
    if engine and idle is not None:
        rest.engine = (e1 - e0) / span * 100 - idle
    rest.rss = rss_mib(pane.pid)
    rest.bps = pane.bytes_between(t0, t1) / span
    rest.machine = (m1[0] - m0[0]) / max(1, m1[1] - m0[1]) * 100
    return rest


# -- keys --------------------------------------------------------------------------------------


@dataclass
class Keys:
    samples: list[float] = field(default_factory=list)
    timeouts: int = 0
    cut: bool = False  # stopped at KEYS_BUDGET

    def text(self) -> str:
        if not self.samples:
            return "not measured" + (
                f" ({self.timeouts} not within {KEY_TIMEOUT:g} s)" * bool(self.timeouts)
            )
        out = (
            f"p50 {ms(statistics.median(self.samples))}, p95 "
            f"{ms(percentile(self.samples, 95))} ({len(self.samples)}x)"
        )
        if self.timeouts:
            out += f"; {self.timeouts} not within {KEY_TIMEOUT:g} s"
        if self.cut:
            out += f"; stopped at the {KEYS_BUDGET:g} s budget"
        return out

    def ok(self) -> bool | None:
        if not self.samples:
            return None if not self.timeouts else False
        return not self.timeouts and percentile(self.samples, 95) <= TARGET_KEY


def press(ctl: Control, key: str, check: Callable[[str], bool], keys: Keys) -> bool:
    took = ctl.key_until(key, check, KEY_TIMEOUT, POLL)
    if took is None:
        keys.timeouts += 1
        return False
    keys.samples.append(took)
    return True


class Less:
    """``less`` in its own pane: ``G`` to the end of its file, ``g`` back to the start, one
    press per call; each redraws the whole pane, and a press that lands late does no harm
    (unlike ``h`` / ``q``, where a late ``q`` quits less)."""

    def __init__(self, pane: Pane) -> None:
        assert pane.ctl is not None
        self.ctl = pane.ctl

    def press(self, keys: Keys) -> None:
        if LESS_END in self.ctl.screen():
            press(self.ctl, "g", lambda p: LESS_TOP in p, keys)
        else:
            press(self.ctl, "G", lambda p: LESS_END in p, keys)


def shows(text: str) -> Callable[[str], bool]:
    return lambda pane: text in pane


def pause() -> None:
    time.sleep(random.uniform(0.05, 0.1))


def at_base(pane: str) -> bool:
    """The containers screen with nothing over it."""
    return (
        HELP_MARK not in pane
        and FILTER_MARK not in pane
        and "filter:" not in pane
        and GPU_MARK not in pane
        and not DETAILS_TITLE.search(pane)
    )


def back_to_base(ctl: Control) -> bool:
    """Escape until the containers screen shows nothing over it. After a lone escape the
    console waits for more bytes (Textual's escape delay): a key sent within that wait would
    read as alt+key, so the next key waits for it to pass."""
    sent = False
    for _ in range(4):
        if at_base(ctl.screen()):
            break
        ctl.send("Escape")
        sent = True
        ctl.wait_for(at_base, 1.0)
    if sent:
        time.sleep(0.3)
    return at_base(ctl.screen())


@dataclass
class KeyRow:
    what: str
    console: Keys
    less: Keys


def key_groups(ctl: Control, less: Less, presses: int, run_id: str, rows: bool) -> list[KeyRow]:
    """Help, filter, details: each key of each press followed by a press in ``less``."""
    out: list[KeyRow] = []

    def toggle(
        what_open: str,
        what_close: str,
        open_key: str,
        close_key: str,
        shown: Callable[[str], bool],
    ) -> None:
        opened, closed = KeyRow(what_open, Keys(), Keys()), KeyRow(what_close, Keys(), Keys())
        misses = 0
        deadline = time.monotonic() + KEYS_BUDGET
        for _ in range(presses):
            if time.monotonic() > deadline:
                opened.console.cut = closed.console.cut = True
                break
            if not back_to_base(ctl):
                raise RuntimeError(f"the console did not get back to its table:\n{ctl.screen()}")
            if not press(ctl, open_key, shown, opened.console):
                misses += 1
                if misses >= 3:
                    break
                continue
            less.press(opened.less)
            pause()
            press(ctl, close_key, lambda p: not shown(p), closed.console)
            less.press(closed.less)
            pause()
        out.extend([opened, closed])

    def help_shown(p: str) -> bool:
        return HELP_MARK in p

    say("keys: help")
    toggle("`?` opens the help", "`escape` closes it", "?", "Escape", help_shown)
    toggle(
        "`?` opens the help (closed by `?` next)",
        "`?` closes it (no escape wait)",
        "?",
        "?",
        help_shown,
    )
    if not rows:
        return out
    say("keys: filter")
    opened, typed, closed = (
        KeyRow("`/` opens the filter", Keys(), Keys()),
        KeyRow("a character typed in the filter (to `filter: TEXT` on the host line)", Keys(),
               Keys()),
        KeyRow("`escape` clears and closes the filter", Keys(), Keys()),
    )  # fmt: skip
    text = run_id[:4]
    misses = 0
    deadline = time.monotonic() + KEYS_BUDGET
    for _ in range(presses):
        if time.monotonic() > deadline:
            opened.console.cut = typed.console.cut = closed.console.cut = True
            break
        if not back_to_base(ctl):
            raise RuntimeError(f"the console did not get back to its table:\n{ctl.screen()}")
        if not press(ctl, "/", lambda p: FILTER_MARK in p, opened.console):
            misses += 1
            if misses >= 3:
                break
            continue
        less.press(opened.less)
        pause()
        for i in range(1, len(text) + 1):
            sofar = text[:i]
            press(ctl, text[i - 1], shows(f"filter: {sofar}"), typed.console)
            less.press(typed.less)
            pause()
        press(ctl, "Escape", lambda p: FILTER_MARK not in p and "filter:" not in p, closed.console)
        less.press(closed.less)
        pause()
    out.extend([opened, typed, closed])
    say("keys: details")

    def details_shown(p: str) -> bool:
        return bool(DETAILS_TITLE.search(p)) and "Loading…" not in p

    toggle(
        "`enter` opens the details (title shown, Loading… gone)",
        "`escape` closes them",
        "Enter",
        "Escape",
        details_shown,
    )
    return out


def gpu_keys(ctl: Control, less: Less, presses: int) -> list[KeyRow]:
    opened, closed = (
        KeyRow("`g` opens the GPU screen", Keys(), Keys()),
        KeyRow("`escape` back to the table", Keys(), Keys()),
    )
    misses = 0
    deadline = time.monotonic() + KEYS_BUDGET
    for _ in range(presses):
        if time.monotonic() > deadline:
            opened.console.cut = closed.console.cut = True
            break
        if not back_to_base(ctl):
            raise RuntimeError(f"the console did not get back to its table:\n{ctl.screen()}")
        if not press(ctl, "g", lambda p: GPU_MARK in p, opened.console):
            misses += 1
            if misses >= 3:
                break
            continue
        less.press(opened.less)
        pause()
        press(ctl, "Escape", lambda p: GPU_MARK not in p, closed.console)
        less.press(closed.less)
        pause()
    return [opened, closed]


# -- the engine side ---------------------------------------------------------------------------


class Engine:
    """The Docker engine in DOCKER_HOST (docker-py), if it answers."""

    def __init__(self, url: str) -> None:
        import docker

        self.url = url
        self.client: Any = docker.DockerClient(base_url=url, version="auto", timeout=120)
        self.version = str(self.client.version().get("Version"))

    def start(self, image: str, run_id: str, first: int, count: int) -> None:
        def one(i: int) -> None:
            self.client.containers.run(
                image,
                ["sleep", "86400"],
                name=f"gpcb-{run_id}-{i}",
                detach=True,
                labels={LABEL: "1", RUN_LABEL: run_id},
                network_mode="none",
            )

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(one, range(first, first + count)))

    def names(self) -> set[str]:
        return {
            n.lstrip("/")
            for c in self.client.api.containers(all=True)
            for n in c.get("Names") or []
        }

    def counts(self) -> tuple[int, int]:
        every = self.client.api.containers(all=True)
        return len(every), sum(1 for c in every if c.get("State") == "running")

    def remove_mine(self, run_id: str) -> int:
        mine = self.client.api.containers(all=True, filters={"label": f"{RUN_LABEL}={run_id}"})

        def one(c: dict[str, Any]) -> None:
            with contextlib.suppress(Exception):
                self.client.api.remove_container(c["Id"], force=True)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(one, mine))
        return len(mine)


def engine_or_none(url: str) -> tuple[Engine | None, str]:
    try:
        import docker  # noqa: F401
    except ImportError:
        return None, "docker-py is not installed"
    try:
        return Engine(url), ""
    except Exception as exc:
        return None, f"no Docker engine at {url} ({type(exc).__name__})"


def refresh_times(url: str, repeat: int = 5) -> tuple[float, float]:
    """(cold, median warm) seconds of ``host.engine.snapshot(all=True)``, as the console does."""
    from gpuconsole.backend.hosts.open import local_host

    engine = local_host(url, gpu=False).engine
    start = time.perf_counter()
    engine.snapshot(all=True)
    cold = time.perf_counter() - start
    warm = []
    for _ in range(repeat):
        start = time.perf_counter()
        engine.snapshot(all=True)
        warm.append(time.perf_counter() - start)
    engine.close()
    return cold, statistics.median(warm)


async def _apply_times(url: str, applies: int) -> list[float]:
    from gpuconsole.backend.hosts.open import local_host
    from gpuconsole.ui.app import GpuconsoleApp
    from gpuconsole.ui.widgets.containers_table import ContainersTable

    took: list[float] = []
    real = ContainersTable.apply

    def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return real(self, *args, **kwargs)
        finally:
            took.append(time.perf_counter() - start)

    ContainersTable.apply = timed  # type: ignore[method-assign]
    try:
        app = GpuconsoleApp(local_host(url, gpu=False))
        async with app.run_test(size=(COLS, ROWS)) as pilot:
            deadline = time.monotonic() + 30 + 3 * applies
            while len(took) < applies and time.monotonic() < deadline:
                await pilot.pause(0.2)
    finally:
        ContainersTable.apply = real  # type: ignore[method-assign]
    return took


def apply_times(url: str, applies: int = 5) -> tuple[list[float], str]:
    try:
        return asyncio.run(_apply_times(url, applies)), ""
    except Exception as exc:
        return [], f"{type(exc).__name__}: {exc}"


# -- the run -----------------------------------------------------------------------------------


@dataclass
class Options:
    sizes: list[int]
    seconds: float
    settle: float
    presses: int
    gpus: str
    image: str


@dataclass
class Ctx:
    opts: Options
    tmp: Path
    relay: Path
    home: Path
    use_tmux: bool
    url: str
    engine: Engine | None
    docker_cli: str | None
    gpu_args: list[str]
    gpu_env: dict[str, str]
    nvitop: list[str] | None
    notes: list[str] = field(default_factory=list)
    tables: list[tuple[str, list[tuple[str, str, str, str, bool | None]]]] = field(
        default_factory=list
    )

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {
            "HOME": str(self.home),
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "TERM": "xterm-256color",
            "COLORTERM": "truecolor",
            "LANG": os.environ.get("LANG") or "C.UTF-8",
        }
        if self.url:
            env["DOCKER_HOST"] = self.url
        if os.environ.get("PYTHONPATH"):  # packages carried beside the interpreter's own
            env["PYTHONPATH"] = os.environ["PYTHONPATH"]
        env.update(extra or {})
        return env

    def pane(self, name: str, argv: Sequence[str], extra: dict[str, str] | None = None) -> Pane:
        return Pane(name, argv, self.env(extra), self.tmp, self.relay, self.use_tmux)

    def console_argv(self) -> list[str]:
        argv = [sys.executable, "-m", "gpuconsole"]
        if self.url:
            argv += ["--docker-host", self.url]
        return argv + self.gpu_args


def pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f} %"


def mib(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f} MiB"


def rate(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v / 1000:.2f} KB/s" if v >= 100 else f"{v:.0f} B/s"


def secs(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f} s"


def rest_rows(label: str, mine: Rest, peer: Rest | None) -> list[tuple[str, str, str]]:
    """(what, console, peer) rows for two tools at rest."""
    rows = [
        (f"{label}: client CPU at rest ({mine.seconds:.0f} s)", pct(mine.cpu),
         pct(peer.cpu) if peer else "-"),
        (f"{label}: RSS at the end", mib(mine.rss), mib(peer.rss) if peer else "-"),
        (f"{label}: bytes/s to the terminal", rate(mine.bps), rate(peer.bps) if peer else "-"),
    ]  # fmt: skip
    return rows


def measure_size(ctx: Ctx, n: int | None, less: Pane | None, run_id: str) -> None:
    """One size (None: no engine): baseline, docker stats alone, the console alone."""
    opts = ctx.opts
    label = f"N={n}" if n is not None else "no engine"
    rows: list[tuple[str, str, str, str, bool | None]] = []
    gpu_rows: list[tuple[str, str, str, str, bool | None]] = []
    big = n is not None and n >= 500
    engine = ctx.engine if n is not None else None
    eng_pids, eng_line = engine_pids(ctx.url) if engine else ([], "")
    if engine:
        total, running = engine.counts()
        title = f"N = {n} containers of this run ({running} running of {total} on the engine)"
        ctx.notes.append(f"N={n}: engine processes measured: {eng_line}")
    else:
        title = "no Docker engine: the console alone (its table shows the engine down)"

    def baseline(before: str) -> float | None:
        """The engine's CPU with neither tool running, over a window as long as theirs."""
        if not engine:
            return None
        say(f"{label}: engine baseline before {before}, neither tool running ({opts.seconds:g} s)")
        time.sleep(min(opts.settle, 5.0))  # what the last tool left the engine doing ends
        e0, t0 = engine_cpu(eng_pids), time.monotonic()
        time.sleep(opts.seconds)
        return (engine_cpu(eng_pids) - e0) / (time.monotonic() - t0) * 100

    # docker stats, alone
    stats_rest: Rest | None = None
    stats_rows: float | None = None
    stats_idle: float | None = None
    if engine and ctx.docker_cli:
        stats_idle = idle = baseline("docker stats")
        say(f"{label}: docker stats alone")
        pane = ctx.pane("stats", [ctx.docker_cli, "stats"])
        try:
            stats_rows = pane.wait_rows(lambda p: bool(STATS_ROW.search(p)), 60)
            time.sleep(opts.settle)
            stats_rest = measure_rest(pane, opts.seconds, eng_pids, idle)
        finally:
            pane.stop()

    # the console, alone
    idle = baseline("the console")
    say(f"{label}: the console alone")
    names = engine.names() if engine else set()
    pane = ctx.pane("console", ctx.console_argv(), ctx.gpu_env)
    key_rows: list[KeyRow] = []
    gpu_key_rows: list[KeyRow] = []
    console_rows: float | None = None
    gpu_rest: Rest | None = None
    try:
        if engine and pane.ctl is not None:
            console_rows = pane.wait_rows(lambda p: bool(names & set(p.split())), 60)
            if console_rows is None:
                raise RuntimeError(f"the console showed no container row:\n{pane.screen()}")
        time.sleep(opts.settle)
        rest = measure_rest(pane, opts.seconds, eng_pids, idle)
        if not rest.alive:
            raise RuntimeError(f"the console exited: {rest.last_words}")
        if pane.ctl is not None and less is not None and opts.presses:
            key_rows = key_groups(pane.ctl, Less(less), opts.presses, run_id, rows=bool(engine))
            back_to_base(pane.ctl)
        # the GPU screen
        say(f"{label}: the GPU screen")
        gpu_open = True
        if pane.ctl is not None:
            if pane.ctl.key_until("g", lambda p: GPU_MARK in p, 10) is None:
                gpu_open = False
                said = [ln.strip() for ln in pane.screen().splitlines() if "GPU" in ln][:2]
                ctx.notes.append(
                    f"{label}: `g` did not open the GPU screen within 10 s; the screen said: "
                    + (" / ".join(said) or "nothing about GPUs")
                )
        else:
            seen = pane.total_bytes()
            pane.send("g")
            time.sleep(2)
            if GPU_MARK.encode() not in pane.output_since(seen):
                ctx.notes.append(
                    "without tmux: the GPU screen's header was not seen in the output after "
                    "`g` (the figures may be the containers screen's)"
                )
        if gpu_open:
            time.sleep(opts.settle)
            gpu_rest = measure_rest(pane, opts.seconds, eng_pids, idle)
            if pane.ctl is not None and less is not None and opts.presses:
                back_to_base(pane.ctl)
                gpu_key_rows = gpu_keys(pane.ctl, Less(less), opts.presses)
        alive = pane.alive()
    finally:
        pane.stop()

    # in-process
    refresh: tuple[float, float] | None = None
    applies: list[float] = []
    apply_error = ""
    if engine:
        say(f"{label}: in-process refresh and table apply")
        refresh = refresh_times(ctx.url)
        applies, apply_error = apply_times(ctx.url)

    # -- the table ------------------------------------------------------------------------
    if engine:
        at100 = "" if n == 100 else " (issue: at 100)"
        if not ctx.docker_cli:
            rows.append(("docker stats", "skipped: no docker CLI", "", "", None))
        rows.append((
            "time to rows (fork to the first container row on the pane)",
            secs(console_rows),
            secs(stats_rows),
            f"<= docker stats{at100}" if not big else "",
            None if big or console_rows is None or stats_rows is None
            else console_rows <= stats_rows,
        ))  # fmt: skip
    for what, mine, theirs in rest_rows("containers screen", rest, stats_rest):
        target, ok = "", None
        if "CPU" in what:
            if big:
                target, ok = "<= 5 %", (rest.cpu or 0) <= 5
            elif stats_rest and stats_rest.cpu is not None and engine:
                target = f"<= docker stats{' (issue: at 100)' if n != 100 else ''}"
                ok = (rest.cpu or 0) <= stats_rest.cpu
        if "RSS" in what and not big:
            target, ok = "<= 80 MiB (issue: 80 MB)", (rest.rss or 0) <= 80
        rows.append((what, mine, theirs, target, ok))
    if rest.helpers:
        rows.append(("... the processes the console started (apart)", pct(rest.helpers), "", "",
                     None))  # fmt: skip
    if engine:
        rows.append(
            (
                "engine CPU caused (engine over the window minus its idle rate just before: "
                f"{pct(idle)} / {pct(stats_idle)})",
                pct(rest.engine),
                pct(stats_rest.engine) if stats_rest else "-",
                "",
                None,
            )
        )
    for kr in key_rows:
        rows.append((kr.what, kr.console.text(), f"less: {kr.less.text()}", "p95 <= 50 ms",
                     kr.console.ok()))  # fmt: skip
    if not key_rows:
        why = "no tmux" if not ctx.use_tmux else "--presses 0"
        rows.append(("key to screen", f"not measured ({why})", "", "", None))
    if refresh is not None:
        rows.append(
            (
                "in-process refresh, host.engine.snapshot(all=True): warm median of 5 (cold)",
                f"{ms(refresh[1])} ({ms(refresh[0])})",
                "",
                "<= 150 ms" if big else "",
                refresh[1] <= 0.150 if big else None,
            )
        )
    if engine:
        if applies:
            steady = applies[1:] or applies
            rows.append(
                (
                    "ContainersTable.apply on the event loop, headless: first (empty to N rows); "
                    f"steady median / max of {len(steady)}",
                    f"{ms(applies[0])}; {ms(statistics.median(steady))} / {ms(max(steady))}",
                    "",
                    "",
                    None,
                )
            )
        else:
            why = apply_error or "never called"
            rows.append(("ContainersTable.apply (headless)", f"not measured: {why}", "", "", None))
    rows.append(("console still running at the end", "yes" if alive else "NO", "", "yes", alive))
    ctx.tables.append((title, rows))

    # the GPU screen's table
    gpu_title = f"GPU screen ({ctx.opts.gpus}), {title}"
    eight = ctx.opts.gpus in ("standin8", "nvml")
    nv = nvitop_rest(ctx) if ctx.opts.gpus == "nvml" else None
    if gpu_rest is None:
        gpu_rows.append(("GPU screen", "not available (see the notes)", "", "", None))
        if nv is not None:
            gpu_rows.extend(
                (f"nvitop: {what.split(': ', 1)[1]}", "", theirs, "", None)
                for what, _, theirs in rest_rows("nvitop", Rest(), nv)
            )
        ctx.tables.append((gpu_title, gpu_rows))
        return
    for what, mine, theirs in rest_rows("GPU screen", gpu_rest, nv):
        target, ok = "", None
        if "CPU" in what:
            if ctx.opts.gpus == "nvml" and nv and nv.cpu is not None:
                target, ok = "<= 2x nvitop", (gpu_rest.cpu or 0) <= 2 * max(nv.cpu, 0.05)
            else:
                target = "<= 3 % (8 GPUs at 1 Hz)"
                ok = (gpu_rest.cpu or 0) <= 3 if eight else None
        if "bytes" in what:
            if ctx.opts.gpus == "nvml" and nv and nv.bps is not None:
                target, ok = "<= 2x nvitop", (gpu_rest.bps or 0) <= 2 * max(nv.bps, 1)
            else:
                target = "<= 5 KB/s (8 GPUs at 1 Hz)"
                ok = (gpu_rest.bps or 0) <= 5000 if eight else None
        nvml = ctx.opts.gpus == "nvml"
        gpu_rows.append((what, mine, theirs if nv else ("nvitop: not run" if nvml else "-"),
                         target, ok))  # fmt: skip
    if gpu_rest.helpers:
        gpu_rows.append(("... the processes the console started (e.g. the stand-in "
                         "nvidia-smi), apart", pct(gpu_rest.helpers), "", "", None))  # fmt: skip
    for kr in gpu_key_rows:
        gpu_rows.append((kr.what, kr.console.text(), f"less: {kr.less.text()}", "p95 <= 50 ms",
                         kr.console.ok()))  # fmt: skip
    ctx.tables.append((gpu_title, gpu_rows))


def nvitop_rest(ctx: Ctx) -> Rest | None:
    if ctx.nvitop is None:
        ctx.notes.append("nvitop is not installed here: not run")
        return None
    say("nvitop alone")
    pane = ctx.pane("nvitop", ctx.nvitop)
    try:
        time.sleep(ctx.opts.settle)
        return measure_rest(pane, ctx.opts.seconds, [], None)
    finally:
        pane.stop()


def gpu_mode(asked: str) -> str:
    if asked != "auto":
        return asked
    smi = shutil.which("nvidia-smi")
    if smi and str(STANDIN_BIN) not in smi:
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            if subprocess.run([smi, "-L"], capture_output=True, timeout=20).returncode == 0:
                return "nvml"
    return "replay"


def find_nvitop() -> list[str] | None:
    exe = shutil.which("nvitop")
    if exe:
        return [exe]
    probe = subprocess.run([sys.executable, "-c", "import nvitop"], capture_output=True)
    return [sys.executable, "-m", "nvitop"] if probe.returncode == 0 else None


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="default 100 500")
    parser.add_argument("--seconds", type=float, default=None, help="each window (default 30)")
    parser.add_argument("--settle", type=float, default=None, help="before a window (default 10)")
    parser.add_argument("--presses", type=int, default=None, help="per key (default 20)")
    parser.add_argument(
        "--gpus", choices=("auto", "replay", "standin8", "nvml"), default="auto",
        help="auto: nvml where `nvidia-smi -L` works, else replay",
    )  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="20 containers, short windows")
    parser.add_argument(
        "--image", default=os.environ.get("GPUCONSOLE_TEST_IMAGE", "gpuconsole-test/busybox:1")
    )
    args = parser.parse_args()
    quick = args.quick
    opts = Options(
        sizes=args.sizes or ([20] if quick else [100, 500]),
        seconds=args.seconds or (8.0 if quick else 30.0),
        settle=args.settle if args.settle is not None else (3.0 if quick else 10.0),
        presses=args.presses if args.presses is not None else (5 if quick else 20),
        gpus=gpu_mode(args.gpus),
        image=args.image,
    )
    started = time.monotonic()
    url = os.environ.get("DOCKER_HOST", "")
    if not url:
        from gpuconsole.backend.docker.engine import default_docker_host

        url = default_docker_host()
    engine, why_not = engine_or_none(url)
    notes: list[str] = []
    if engine is None:
        notes.append(f"{why_not}: containers, docker stats, time to rows, engine CPU, filter and "
                     "details keys and the in-process refresh are skipped")  # fmt: skip
    docker_cli = shutil.which("docker")
    if engine and not docker_cli:
        notes.append("no docker CLI: docker stats is skipped")
    use_tmux = shutil.which("tmux") is not None
    if not use_tmux:
        notes.append("no tmux: each tool runs under the pty relay alone; time to rows and key "
                     "latency are not measured")  # fmt: skip
    has_less = shutil.which("less") is not None
    if use_tmux and not has_less:
        notes.append("no less: key latency is not measured (less is its reference)")
        opts.presses = 0

    gpu_args: list[str] = []
    gpu_env: dict[str, str] = {}
    if opts.gpus == "replay":
        gpu_args = ["--gpu-replay", str(SHARED_REPLAY if SHARED_REPLAY.exists() else REPLAY)]
    elif opts.gpus == "standin8":
        gpu_env = {
            "PATH": f"{STANDIN_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "GPUCONSOLE_SMI_STUB_GPUS": "8",
        }
    tmp = Path(tempfile.mkdtemp(prefix="gpcbench-tui-"))
    relay = tmp / "relay.py"
    relay.write_text(RELAY)
    home = tmp / "home"
    home.mkdir()
    ctx = Ctx(
        opts=opts, tmp=tmp, relay=relay, home=home, use_tmux=use_tmux,
        url=url if engine else (os.environ.get("DOCKER_HOST", "")), engine=engine,
        docker_cli=docker_cli, gpu_args=gpu_args, gpu_env=gpu_env,
        nvitop=find_nvitop() if opts.gpus == "nvml" else None, notes=notes,
    )  # fmt: skip
    # Digits: typed into the filter, they are no key of the containers screen if one strays.
    run_id = f"{random.randrange(10**6):06d}"
    less: Pane | None = None
    failed = False
    try:
        if use_tmux:
            tmuxpane.start_tmux_server()
            if has_less:
                text = tmp / "less.txt"
                text.write_text("".join(f"line {i} of a file for less\n" for i in range(2000)))
                less = ctx.pane("less", ["less", str(text)])
        if engine is None:
            measure_size(ctx, None, less, run_id)
        else:
            have = 0
            for n in sorted(opts.sizes):
                say(f"starting {n - have} containers (to {n})")
                t = time.monotonic()
                engine.start(opts.image, run_id, have, n - have)
                notes.append(f"N={n}: started {n - have} containers in "
                             f"{time.monotonic() - t:.0f} s")  # fmt: skip
                have = n
                measure_size(ctx, n, less, run_id)
    except Exception as exc:
        failed = True
        import traceback

        traceback.print_exc()
        notes.append(f"HARNESS FAILURE: {type(exc).__name__}: {exc}")
    finally:
        if less is not None:
            less.stop()
        if use_tmux:
            with contextlib.suppress(Exception):
                tmuxpane.kill_tmux_server()
        if engine is not None:
            say("removing this run's containers")
            removed = engine.remove_mine(run_id)
            notes.append(f"removed this run's {removed} containers")
        shutil.rmtree(tmp, ignore_errors=True)

    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO,
        check=False,
    ).stdout.strip()  # fmt: skip
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    tmux_v = (
        subprocess.run(["tmux", "-V"], capture_output=True, text=True).stdout.strip()
        if (use_tmux)
        else "no tmux"
    )
    print()
    print(
        f"`python -m bench.tui {' '.join(sys.argv[1:])}` ({time.monotonic() - started:.0f} s); "
        f"engine {engine.version + ' at ' + url if engine else 'none'}; GPUs: {opts.gpus}; "
        f"{os.cpu_count()} CPUs; load average at the end {load}; {tmux_v}, panes {COLS}x{ROWS} "
        f"under a pty relay; Python {sys.version.split()[0]}; gpuconsole at {head or '?'} plus "
        "uncommitted changes where any"
    )
    print(
        f"windows of {opts.seconds:g} s after {opts.settle:g} s to settle; each tool measured "
        "alone in turn; engine CPU caused = engine (dockerd + containerd + shims) over the "
        "tool's window minus its rate over a window with neither tool running, just before; "
        "CPU in % of one core; key to screen = tmux send-keys to the pane showing the effect"
    )
    for title, rows in ctx.tables:
        print()
        print(f"### {title}")
        print()
        print_targets(("measurement", "gpuconsole", "peer", "target", "met"), rows)
    print()
    for note in notes:
        print(f"- {note}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
